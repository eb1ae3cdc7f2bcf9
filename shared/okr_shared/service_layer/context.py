"""Who is calling and why: the context every command runs in.

The services build a ``CallContext`` from the RPC call's context data (the gateway puts
the authenticated principal there); the CLI and tests build one directly. Validation
happens when a command uses it, so a missing actor is a clear ValidationError that
reaches the caller, not a crash while the worker is being set up.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable

from ..domain.errors import ValidationError
from ..eventstore.store import TENANT_RE

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
MAX_ACTOR = 200
MAX_TRACE_ID = 200


def _trace_id(name: str, value) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or len(value) > MAX_TRACE_ID or _CONTROL_RE.search(value):
        raise ValidationError(name, f"must be text of at most {MAX_TRACE_ID} printable characters, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class CallContext:
    """The caller of one command or query.

    ``actor``: the authenticated principal (person id, or service name); required for
    commands. ``tenant_id``: the organisation; required for everything (tenants are
    isolated in every read and write). ``correlation_id``: shared by everything that
    stems from one original request (default: a fresh UUID per command).
    ``causation_id``: the command or event that directly caused this call (default: the
    command id if the caller gave one, else ``call_id``). ``call_id``: this call itself
    (nameko's call id), for the default causation.
    """

    actor: str | None = None
    tenant_id: str | None = None
    correlation_id: str = ""
    causation_id: str = ""
    call_id: str = ""

    def require_tenant(self) -> str:
        """The tenant id, or ValidationError naming ``tenant_id``."""
        if self.tenant_id in (None, ""):
            raise ValidationError(
                "tenant_id",
                "missing from the call context: pass context_data={'tenant_id': ...} "
                "(the gateway sets it from the authenticated principal)",
            )
        if not isinstance(self.tenant_id, str) or not TENANT_RE.fullmatch(self.tenant_id):
            raise ValidationError("tenant_id", f"must be 1-64 letters, digits, '_', '.' or '-', not {self.tenant_id!r}")
        return self.tenant_id

    def require_actor(self) -> str:
        """The actor, or ValidationError naming ``actor``: no command runs anonymously."""
        actor = self.actor
        if actor is None or (isinstance(actor, str) and not actor.strip()):
            raise ValidationError(
                "actor",
                "missing from the call context: every command needs the principal who "
                "issues it; pass context_data={'actor': ...} (the gateway sets it from "
                "the authenticated principal)",
            )
        if (
            not isinstance(actor, str)
            or actor.strip() != actor
            or len(actor) > MAX_ACTOR
            or _CONTROL_RE.search(actor)
        ):
            raise ValidationError("actor", f"must be a principal id of at most {MAX_ACTOR} printable "
                                           f"characters without surrounding spaces, not {actor!r}")
        return actor

    def event_metadata(self, command_id: str | None) -> dict[str, str]:
        """actor, correlation_id and causation_id for the events of one command
        (validated; empty values left out)."""
        metadata = {
            "actor": self.require_actor(),
            "correlation_id": _trace_id("correlation_id", self.correlation_id) or str(uuid.uuid4()),
            "causation_id": (
                _trace_id("causation_id", self.causation_id) or command_id or _trace_id("call_id", self.call_id)
            ),
        }
        return {k: v for k, v in metadata.items() if v}


@dataclass(slots=True)
class DecisionContext:
    """What a decider may know besides the target's state (the ``ctx`` of
    ``okr_shared.domain.handle``): the date, the actor, and read access to other
    aggregates of the same tenant, each loaded at most once per decision."""

    today: date
    actor: str
    _load: Callable[[str], Any]
    _seen: dict[str, Any] = field(default_factory=dict)

    def get(self, stream_id: str):
        """The folded state of ``stream_id`` (None when it does not exist for this tenant)."""
        try:
            return self._seen[stream_id]
        except KeyError:
            state = self._seen[stream_id] = self._load(stream_id)
            return state
