"""The log context of the call or event being handled: correlation id, tenant, service,
entrypoint — one ``contextvars.ContextVar``.

A ContextVar is per thread in a plain process (the gateway's grpc thread pool) and per
greenlet under eventlet (greenlet keeps a context per greenlet), so concurrent nameko
workers never see each other's values. Who sets it: the gateway's gRPC interceptor
(``okr_shared.observability.grpc``), the nameko dependency ``Observed`` for every worker
(RPC calls, event handlers, timers, HTTP); the log formatters read it.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar, Token
from typing import NamedTuple


class LogContext(NamedTuple):
    correlation_id: str = ""
    tenant_id: str = ""
    service: str = ""
    entrypoint: str = ""

    def fields(self) -> dict[str, str]:
        """The non-empty fields (the keys of a JSON log line)."""
        return {k: v for k, v in zip(self._fields, self) if v}


EMPTY = LogContext()

_current: ContextVar[LogContext] = ContextVar("okr_log_context", default=EMPTY)


def current() -> LogContext:
    return _current.get()


def correlation_id() -> str:
    """The correlation id of the call or event being handled ("" outside of one)."""
    return _current.get().correlation_id


def bind(correlation_id: str = "", tenant_id: str = "", service: str = "", entrypoint: str = "") -> Token:
    """Set the context; returns the token for ``reset``."""
    return _current.set(LogContext(_text(correlation_id), _text(tenant_id), _text(service), _text(entrypoint)))


def reset(token: Token) -> None:
    try:
        _current.reset(token)
    except ValueError:  # a token of another context (a different greenlet/thread): just clear
        _current.set(EMPTY)


@contextlib.contextmanager
def bound(**fields: str):
    token = bind(**fields)
    try:
        yield
    finally:
        reset(token)


def _text(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)
