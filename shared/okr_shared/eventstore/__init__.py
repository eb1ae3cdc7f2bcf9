"""The event store: the single source of truth of goals and progress.

    from okr_shared.eventstore import EventStore, NewEvent, NO_STREAM, make_engine, migrate

    engine = make_engine("sqlite:///data/okr.db")
    migrate(engine)
    store = EventStore(engine)
    store.append("kr-42", NO_STREAM, [NewEvent("okr.v1.KeyResultDefined", {...}, tenant_id="acme")])

Only this package touches the store's tables (docs/adr/0029-…): besides ``EventStore``,
``reads`` (a stream's tail, the relay's window), ``lookups`` (events by id or stream
version), ``outbox`` (relay checkpoints and the lag's positions), ``lease`` and
``snapshots`` are the operations other layers use.
"""

from .engine import make_engine
from . import errors
from .errors import *  # noqa: F403 - every error (errors.__all__)
from .export import export_jsonl
from .migrate import migrate
from .model import ANY, NO_STREAM, STREAM_EXISTS, AppendResult, NewEvent, RecordedEvent, VerifyResult
from .store import EventStore

__all__ = [
    *errors.__all__,
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AppendResult",
    "EventStore",
    "NewEvent",
    "RecordedEvent",
    "VerifyResult",
    "export_jsonl",
    "make_engine",
    "migrate",
]
