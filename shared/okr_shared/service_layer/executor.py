"""Running commands: load the target aggregate, decide, append with the expected version;
on a concurrent change reload and decide again, a bounded number of times (ADR 0005).

    executor = CommandExecutor(store, repository)
    outcome = executor.execute(RecordCheckIn(...), CallContext(actor="ann", tenant_id="acme"))
    reply = executor.run(RecordCheckIn, {"key_result_id": "kr1", "value": 3, "confidence": 7}, call)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from types import ModuleType

from google.protobuf.message import Message

from ..clock import utc_today
from ..retry import exponential_delay
from .. import contracts
from ..domain.errors import ConcurrencyConflict, NotFound, PreconditionFailed, ValidationError
from ..domain.validation import identifier
from ..eventstore import (
    NO_STREAM,
    DuplicateEventIds,
    EventStore,
    NewEvent,
    WrongExpectedVersion,
)
from ..eventstore.lookups import events_by_id, stream_events_from
from .arguments import NEW_ID_FIELDS, command_from_fields
from .context import CallContext, DecisionContext
from .repository import Loaded, Repository

_log = logging.getLogger(__name__)

#: Namespace of the event ids derived from a caller's command id (uuid5).
COMMAND_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:okr:v1:command")
_COMMAND_ID_RE = re.compile(r"[\x21-\x7e]{1,200}")
#: Event metadata of a command sent with a command id: the command's name and the
#: fingerprint of the request, so that a reused id is told apart from a retry (ADR 0024).
COMMAND_KEY = "command"
REQUEST_KEY = "request"
#: The stable rule of the refusal of a command id used for another request.
COMMAND_ID_REUSED = "command_id_reused"

#: Read models of the four aggregates: stream category → (id field, what to call it).
AGGREGATES: Mapping[str, tuple[str, str]] = {
    "cycle": ("cycle_id", "cycle"),
    "objective": ("objective_id", "objective"),
    "kr": ("key_result_id", "key result"),
    "initiative": ("initiative_id", "initiative"),
}



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
        self.sleep(self.random() * exponential_delay(attempt, self.base, self.cap))


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
            new_id = lambda: created_id(tenant_id, command_id)  # noqa: E731
        command = command_from_fields(command_cls, fields, new_id)
        outcome = self.execute(command, call, command_id=command_id)
        return outcome.to_reply()

    def execute(self, command, call: CallContext, *, command_id: str | None = None) -> CommandOutcome:
        """Decide ``command`` against the current state of its stream and append the
        events. Raises a DomainError: ValidationError, NotFound, PreconditionFailed, or
        ConcurrencyConflict when the stream kept changing for ``retry.max_attempts``
        decisions. A refused command writes nothing.

        With a ``command_id``, the events get ids derived from it and the request's
        fingerprint in their metadata: a second execution of the same request (a retried
        call whose reply was lost) writes nothing and returns the first one's outcome
        with ``already_stored``; the id reused for another request is refused
        (PreconditionFailed ``command_id_reused``, ADR 0024).
        """
        tenant_id = call.require_tenant()
        command_id = self._command_id(command_id)
        metadata = call.event_metadata(command_id)
        if command_id is not None:
            metadata.update(request_fingerprint(type(command).__name__, dataclasses.asdict(command),
                                                metadata["actor"]))
        stream_id = self.domain.target_stream(command)
        id_field = NEW_ID_FIELDS.get(type(command))
        new_id = (id_field, getattr(command, id_field)) if id_field else None
        event_id = _event_ids(tenant_id, command_id)
        with self._locks.hold((tenant_id, stream_id)):
            for attempt in range(1, self.retry.max_attempts + 1):
                if command_id is not None:
                    done = self._stored_outcome(stream_id, event_id, command_id, tenant_id, metadata)
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
                except DuplicateEventIds:  # stored meanwhile by a command on another stream
                    self._stored_outcome(stream_id, event_id, command_id, tenant_id, metadata)
                    raise command_id_reused(command_id) from None
                if result.already_stored:  # stored meanwhile by a concurrent call: the same request?
                    self._stored_outcome(stream_id, event_id, command_id, tenant_id, metadata)
                else:
                    self._after_append(loaded, events, result.stream_version)
                positions = tuple(range(result.first_position, result.last_position + 1))
                return CommandOutcome(stream_id, result.stream_version, positions,
                                      tuple(e.event_type for e in events), result.already_stored, new_id)
        raise ConcurrencyConflict(stream_id, self.retry.max_attempts)

    def _decide(self, command, loaded: Loaded, tenant_id: str, metadata: dict, event_id) -> list[NewEvent]:
        ctx = DecisionContext(self.today(), metadata["actor"],
                              lambda stream_id: self.repository.get(stream_id, tenant_id))
        messages = self.domain.handle(command, loaded.state, ctx)
        return [new_event(m, tenant_id, metadata, event_id(i)) for i, m in enumerate(messages)]

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

    def _stored_outcome(self, stream_id: str, event_id, command_id: str, tenant_id: str, metadata: dict):
        """(stream_id, version, positions, event_types, True) of an earlier execution
        of the same request with the same command id, or None; PreconditionFailed
        ``command_id_reused`` when the id was used for another request (another command,
        stream, actor or fields, or an import)."""
        with self.repository.engine.connect() as conn:
            row, imported = first_uses(conn, tenant_id, command_id)
            if imported is not None:
                raise command_id_reused(command_id, "ImportPlan")
            if row is None:
                return None
            if row.stream_id != stream_id or not same_request(row.metadata, metadata):
                raise command_id_reused(command_id, stored_command(row.metadata))
            rows = stream_events_from(conn, tenant_id, stream_id, row.stream_version, limit=100)
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


def created_id(tenant_id: str, command_id: str) -> str:
    """The id a create command sent with ``command_id`` and no id of its own gets: the same
    on every retry, so a retried call creates the same aggregate, not a second one."""
    return str(uuid.uuid5(COMMAND_NAMESPACE, f"{tenant_id}\x1f{command_id}\x1fid"))


def _event_ids(tenant_id: str, command_id: str | None) -> Callable[[int], uuid.UUID]:
    if command_id is None:
        return lambda _i: uuid.uuid4()
    return lambda i: uuid.uuid5(COMMAND_NAMESPACE, f"{tenant_id}\x1f{command_id}\x1f{i}")


def import_event_id(tenant_id: str, command_id: str, i: int) -> uuid.UUID:
    """The id of the ``i``-th event of a plan import sent with ``command_id``."""
    return uuid.uuid5(COMMAND_NAMESPACE, f"{tenant_id}\x1f{command_id}\x1fimport\x1f{i}")


# ------------------------------------------------------------ reused command ids


def request_fingerprint(command: str, fields: Mapping, actor: str) -> dict[str, str]:
    """The event metadata that identifies one request (ADR 0024): ``command`` (its name)
    and ``request``, the SHA-256 of the canonical JSON of the command's name, the actor
    and every field after defaults (numbers compare by value: 3 and 3.0 are the same)."""
    canonical = json.dumps({"command": command, "actor": actor, "fields": _canonical(fields)},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return {COMMAND_KEY: command, REQUEST_KEY: "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()}


def _canonical(value):
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return str(value)


def first_uses(conn, tenant_id: str, command_id: str):
    """(row, import_row): the stored first event of a single command and of a plan
    import sent with ``command_id`` in ``tenant_id`` (each None when there is none);
    columns event_id, stream_id, stream_version, position, event_type, metadata."""
    single, imported = str(_event_ids(tenant_id, command_id)(0)), str(import_event_id(tenant_id, command_id, 0))
    found = {r.event_id: r for r in events_by_id(conn, tenant_id, (single, imported))}
    return found.get(single), found.get(imported)


def _stored_metadata(text: str) -> dict:
    try:
        stored = json.loads(text)
    except ValueError:
        return {}
    return stored if isinstance(stored, dict) else {}


def same_request(stored_metadata: str, metadata: Mapping) -> bool:
    """Whether a stored event's metadata (JSON text) has the fingerprint of ``metadata``.
    Events stored before fingerprints existed have none: they count as the same request,
    so a retry of a command sent before the upgrade stays idempotent."""
    stored = _stored_metadata(stored_metadata).get(REQUEST_KEY)
    return stored is None or stored == metadata.get(REQUEST_KEY)


def stored_command(stored_metadata: str) -> str | None:
    """The command name a stored event's metadata records (None before fingerprints)."""
    name = _stored_metadata(stored_metadata).get(COMMAND_KEY)
    return name if isinstance(name, str) else None


def command_id_reused(command_id: str, used_for: str | None = None) -> PreconditionFailed:
    """The refusal of a command id already used for another request (docs/api.md)."""
    what = f" ({used_for})" if used_for else ""
    return PreconditionFailed(
        COMMAND_ID_REUSED,
        f"command_id {command_id!r} was already used for a different request{what}; a retry must resend "
        "exactly the same request, a new request needs a new command_id",
    )


def new_event(message: Message, tenant_id: str, metadata: dict, event_id: uuid.UUID) -> NewEvent:
    """The NewEvent of a decided event message (its ``reason`` into the metadata)."""
    reason = getattr(message, "reason", "") if "reason" in message.DESCRIPTOR.fields_by_name else ""
    return NewEvent(
        contracts.event_type_of(message),
        contracts.payload_to_dict(message),
        tenant_id=tenant_id,
        event_id=event_id,
        metadata={**metadata, "reason": reason} if reason else metadata,
    )

