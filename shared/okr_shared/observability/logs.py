"""Log records as JSON lines (default) or text, with the log context of the call or
event being handled (``okr_shared.observability.context``).

JSON line fields: ``ts`` (UTC, ms), ``level``, ``logger``, ``msg``; then
``correlation_id``, ``tenant_id``, ``service``, ``entrypoint`` when known (the context);
then the record's ``extra`` fields; ``exc`` with the traceback if any.

Configuration (environment, read through okr_shared.config by ``configure_logging`` and
``handler_from_env``):
``OKR_LOG_FORMAT`` = ``json`` (default) | ``text``; ``OKR_LOG_LEVEL`` = DEBUG | INFO
(default) | WARNING | ERROR | CRITICAL. A bad value is a ValueError naming the variable.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import orjson

from .. import config
from . import context

_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
LEVELS = config.LOG_LEVELS
FORMATS = config.LOG_FORMATS
#: Loggers too chatty at INFO/DEBUG for a service log: kept at WARNING.
NOISY = ("amqp", "alembic", "kombu", "urllib3")


class JsonLines(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        ctx = context.current()
        if ctx is not context.EMPTY:
            out.update(ctx.fields())
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        try:
            return orjson.dumps(out, default=str).decode()
        except TypeError:  # e.g. a dict with non-str keys in an extra field
            return json.dumps(out, default=str, ensure_ascii=False)


class Text(logging.Formatter):
    """``2026-11-27 11:00:00,123 INFO okr.relay [cid=… tenant=…] message``."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s%(okr_ctx)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ctx = context.current()
        record.okr_ctx = (" [" + " ".join(f"{k}={v}" for k, v in ctx.fields().items()) + "]"
                          if ctx is not context.EMPTY else "")
        try:
            return super().format(record)
        finally:
            del record.okr_ctx


def formatter(fmt: str) -> logging.Formatter:
    if fmt not in FORMATS:
        raise ValueError(f"log format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    return JsonLines() if fmt == "json" else Text()


def handler_from_env(stream=None) -> logging.Handler:
    """A stderr handler with the formatter of ``OKR_LOG_FORMAT``; also sets the root
    level from ``OKR_LOG_LEVEL`` and quietens the noisy libraries. nameko's LOGGING
    (services/config.yaml) builds its handler with this (``"()"`` factory)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(config.log_format()))
    logging.getLogger().setLevel(config.log_level())
    _quieten()
    return handler


def configure_logging(level: str | None = None, fmt: str | None = None, stream=None) -> None:
    """Root logger: one stderr handler (JSON lines or text), the level given or
    ``OKR_LOG_LEVEL``. For the relay and the gateway processes (nameko run reads the
    LOGGING key of services/config.yaml)."""
    level = config.log_level({"OKR_LOG_LEVEL": level}) if level else config.log_level()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt or config.log_format()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    _quieten()


def _quieten() -> None:
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    _lean_records()


def _lean_records() -> None:
    """Records without what neither format prints: the calling file, line and function
    (``findCaller`` walks the stack on every record), the thread name (eventlet's green
    ``current_thread`` is slow), the process id and name. With them a record cost the
    reporting service ~15 % of its Python time per event (an access line per event;
    bench/README.md); the JSON line and the text line are unchanged."""
    logging._srcfile = None  # the documented switch: no findCaller
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
