"""Running commands: load the target aggregate, decide, append with the expected version;
on a concurrent change reload and decide again, a bounded number of times (ADR 0005).

    executor = CommandExecutor(store, repository)
    outcome = executor.execute(RecordCheckIn(...), CallContext(actor="ann", tenant_id="acme"))
    reply = executor.run(RecordCheckIn, {"key_result_id": "kr1", "value": 3, "confidence": 7}, call)
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from types import ModuleType

from google.protobuf.message import Message
from sqlalchemy import select

from .. import contracts
from ..domain.errors import ConcurrencyConflict, DomainError, NotFound, PreconditionFailed, ValidationError
from ..domain.validation import identifier
from ..eventstore import (
    NO_STREAM,
    DuplicateEventIds,
    EventStore,
    NewEvent,
    WrongExpectedVersion,
    schema,
)
from .arguments import NEW_ID_FIELDS, command_from_fields
from .context import CallContext, DecisionContext
from .repository import Loaded, Repository

_log = logging.getLogger(__name__)
_E = schema.events

#: Namespace of the event ids derived from a caller's command id (uuid5).
COMMAND_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:okr:v1:command")
_COMMAND_ID_RE = re.compile(r"[\x21-\x7e]{1,200}")

#: Read models of the four aggregates: stream category → (id field, what to call it).
AGGREGATES: Mapping[str, tuple[str, str]] = {
    "cycle": ("cycle_id", "cycle"),
    "objective": ("objective_id", "objective"),
    "kr": ("key_result_id", "key result"),
    "initiative": ("initiative_id", "initiative"),
}


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """What a command did: the stream's version afterwards, the global positions and
    types of the events it appended (none when there was nothing to do), whether they
    had been stored already by an earlier call with the same command id, and the id of
    what it created (``new_id``: (field, value), for commands that create)."""

    stream_id: str
    version: int
    positions: tuple[int, ...] = ()
    event_types: tuple[str, ...] = ()
    already_stored: bool = False
    new_id: tuple[str, str] | None = None

    def to_reply(self) -> dict:
        """The JSON-safe reply of an RPC command."""
        reply = {
            "stream_id": self.stream_id,
            "aggregate_id": self.stream_id.partition("-")[2],
            "version": self.version,
            "positions": list(self.positions),
            "event_types": list(self.event_types),
            "already_stored": self.already_stored,
        }
        if self.new_id is not None:
            reply[self.new_id[0]] = self.new_id[1]
        return reply


class _StreamLocks:
    """One lock per (tenant, stream), held while a command on it runs in this process:
    commands of one process on one stream queue here instead of racing each other into
    optimistic-concurrency retries. Other processes are still caught by the expected
    version. Keyed by tenant too: another tenant's commands on a stream of the same id
    never wait here (which would let a tenant time another's ids, ADR 0023). (Created
    after eventlet's monkey patching, these are green locks.)"""

    def __init__(self):
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], list] = {}

    @contextmanager
    def hold(self, key: tuple[str, str]):
        with self._guard:
            entry = self._locks.get(key)
            if entry is None:
                entry = self._locks[key] = [threading.Lock(), 0]
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]


@dataclass
class RetryPolicy:
    """How often a command is decided again after a concurrent append to its stream, and
    how long to wait in between: a random delay up to ``base * 2**(attempt-1)`` seconds,
    capped at ``cap`` (full jitter)."""

    max_attempts: int = 10
    base: float = 0.005
    cap: float = 0.1
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = field(default=random.random)

    def backoff(self, attempt: int) -> None:
        self.sleep(self.random() * min(self.cap, self.base * 2 ** (attempt - 1)))


class CommandExecutor:
    """The service layer of the goal and progress services (no nameko in here).

    ``domain`` supplies ``handle``, ``target_stream`` and ``fold`` (default:
    ``okr_shared.domain``); ``today`` the date rules are checked against (default: the
    UTC date); ``retry`` the conflict policy.
    """

    def __init__(
        self,
        store: EventStore,
        repository: Repository,
        *,
        domain: ModuleType | None = None,
        today: Callable[[], date] = utc_today,
        retry: RetryPolicy | None = None,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ):
        if domain is None:
            from .. import domain
        self.store = store
        self.repository = repository
        self.domain = domain
        self.today = today
        self.retry = retry or RetryPolicy()
        self._new_id = new_id
        self._locks = _StreamLocks()

    # ----------------------------------------------------------------- commands

    def run(self, command_cls: type, fields: Mapping, call: CallContext) -> dict:
        """Build ``command_cls`` from keyword ``fields`` (plus an optional ``command_id``
        making a retried call idempotent), execute it and return the RPC reply."""
        fields = dict(fields)
        command_id = self._command_id(fields.pop("command_id", None))
        tenant_id = call.require_tenant()
        call.require_actor()
        if command_id is None:
            new_id = self._new_id
        else:  # a retried call must create the same aggregate, not a second one
            new_id = lambda: str(uuid.uuid5(COMMAND_NAMESPACE, f"{tenant_id}\x1f{command_id}\x1fid"))  # noqa: E731
        command = command_from_fields(command_cls, fields, new_id)
        outcome = self.execute(command, call, command_id=command_id)
        return outcome.to_reply()

    def execute(self, command, call: CallContext, *, command_id: str | None = None) -> CommandOutcome:
        """Decide ``command`` against the current state of its stream and append the
        events. Raises a DomainError: ValidationError, NotFound, PreconditionFailed, or
        ConcurrencyConflict when the stream kept changing for ``retry.max_attempts``
        decisions. A refused command writes nothing.

        With a ``command_id``, the events get ids derived from it: a second execution
        (a retried call whose reply was lost) writes nothing and returns the first one's
        outcome with ``already_stored``.
        """
        tenant_id = call.require_tenant()
        command_id = self._command_id(command_id)
        metadata = call.event_metadata(command_id)
        stream_id = self.domain.target_stream(command)
        id_field = NEW_ID_FIELDS.get(type(command))
        new_id = (id_field, getattr(command, id_field)) if id_field else None
        event_id = _event_ids(tenant_id, command_id)
        with self._locks.hold((tenant_id, stream_id)):
            for attempt in range(1, self.retry.max_attempts + 1):
                if command_id is not None:
                    done = self._stored_outcome(tenant_id, stream_id, event_id, command_id)
                    if done is not None:
                        return CommandOutcome(*done, new_id=new_id)
                loaded = self.repository.load(stream_id, tenant_id)
                events = self._decide(command, loaded, tenant_id, metadata, event_id)
                if not events:
                    return CommandOutcome(stream_id, loaded.version, new_id=new_id)
                try:
                    result = self.store.append(stream_id, loaded.version or NO_STREAM, events)
                except WrongExpectedVersion as conflict:
                    _log.info("%s (attempt %d of %d)", conflict, attempt, self.retry.max_attempts)
                    if attempt < self.retry.max_attempts:
                        self.retry.backoff(attempt)
                    continue
                except DuplicateEventIds:
                    raise ValidationError(
                        "command_id", f"{command_id!r} was already used for a different command"
                    ) from None
                if not result.already_stored:
                    self._after_append(loaded, events, result.stream_version)
                positions = tuple(range(result.first_position, result.last_position + 1))
                return CommandOutcome(stream_id, result.stream_version, positions,
                                      tuple(e.event_type for e in events), result.already_stored, new_id)
        raise ConcurrencyConflict(stream_id, self.retry.max_attempts)

    def _decide(self, command, loaded: Loaded, tenant_id: str, metadata: dict, event_id) -> list[NewEvent]:
        ctx = DecisionContext(self.today(), metadata["actor"],
                              lambda stream_id: self.repository.get(stream_id, tenant_id))
        messages = self.domain.handle(command, loaded.state, ctx)
        return [_new_event(m, tenant_id, metadata, event_id(i)) for i, m in enumerate(messages)]

    def _after_append(self, loaded: Loaded, events: list[NewEvent], version: int) -> None:
        """Keep the new state for the next load, and snapshot it when due. Both are
        optimisations: the events are stored, so any failure here is only logged."""
        repository = self.repository
        since = loaded.since_snapshot + len(events)
        due = repository.snapshots is not None and since >= repository.snapshot_every
        if repository.cache_size <= 0 and not due:
            return
        try:
            state = self.domain.fold([(e.event_type, e.data) for e in events], loaded.state)
        except Exception:
            _log.warning("could not fold the new events of %s", loaded.stream_id, exc_info=True)
            return
        after = Loaded(loaded.stream_id, state, version, events[0].tenant_id, since)
        if due and repository.snapshot(after):
            after = Loaded(loaded.stream_id, state, version, events[0].tenant_id, 0)
        repository.remember(after)

    def _stored_outcome(self, tenant_id: str, stream_id: str, event_id, command_id: str):
        """(stream_id, version, positions, event_types, True) of an earlier execution
        of the same command id in the tenant, or None."""
        first = str(event_id(0))
        query = (
            select(_E.c.event_id, _E.c.stream_id, _E.c.stream_version, _E.c.position, _E.c.event_type)
            .where(_E.c.event_id == first, _E.c.tenant_id == tenant_id)
        )
        with self.repository.engine.connect() as conn:
            row = conn.execute(query).first()
            if row is None:
                return None
            if row.stream_id != stream_id:
                raise ValidationError(
                    "command_id", f"{command_id!r} was already used for a command on another stream"
                )
            rows = conn.execute(
                select(_E.c.event_id, _E.c.stream_version, _E.c.position, _E.c.event_type)
                .where(_E.c.tenant_id == tenant_id, _E.c.stream_id == stream_id,
                       _E.c.stream_version >= row.stream_version)
                .order_by(_E.c.stream_version)
                .limit(100)
            ).all()
        mine = []
        for i, r in enumerate(rows):
            if r.event_id != str(event_id(i)):
                break
            mine.append(r)
        return (stream_id, mine[-1].stream_version, tuple(r.position for r in mine),
                tuple(r.event_type for r in mine), True)

    @staticmethod
    def _command_id(value) -> str | None:
        if value in (None, ""):
            return None
        if not isinstance(value, str) or not _COMMAND_ID_RE.fullmatch(value):
            raise ValidationError("command_id", f"must be 1-200 printable characters without spaces, not {value!r}")
        return value

    # ------------------------------------------------------------------ queries

    def read(self, category: str, aggregate_id, call: CallContext) -> dict:
        """The current state of one aggregate as a JSON-safe dict (with its ``version``);
        NotFound when it does not exist for the caller's tenant."""
        tenant_id = call.require_tenant()
        id_field, kind = AGGREGATES[category]
        identifier(id_field, aggregate_id)
        state = self.repository.get(f"{category}-{aggregate_id}", tenant_id)
        if state is None:
            raise NotFound(kind, aggregate_id)
        return state.to_dict()


def _event_ids(tenant_id: str, command_id: str | None) -> Callable[[int], uuid.UUID]:
    if command_id is None:
        return lambda _i: uuid.uuid4()
    return lambda i: uuid.uuid5(COMMAND_NAMESPACE, f"{tenant_id}\x1f{command_id}\x1f{i}")


def _new_event(message: Message, tenant_id: str, metadata: dict, event_id: uuid.UUID) -> NewEvent:
    reason = getattr(message, "reason", "") if "reason" in message.DESCRIPTOR.fields_by_name else ""
    return NewEvent(
        contracts.event_type_of(message),
        contracts.payload_to_dict(message),
        tenant_id=tenant_id,
        event_id=event_id,
        metadata={**metadata, "reason": reason} if reason else metadata,
    )

