"""The OKR method as a pure domain model: no nameko, SQLAlchemy or kombu.

    state = fold(events_of_the_stream)                 # (event_type, data) pairs
    events = handle(command, state, ctx)               # okr.v1 messages, or DomainError
    store.append(target_stream(command), state.version if state else NO_STREAM, ...)

- ``commands``: what callers ask (dataclasses);
- ``state``: Cycle, Objective, KeyResult (with its check-ins), Initiative, the
  directory's Person and Team, and the folds;
- ``deciders``: the rules of the method and of the directory (people, teams, roles),
  one function per command;
- ``scoring``: progress, score, pace, status and grading as pure functions;
- ``errors``: ValidationError (names the field), NotFound, PreconditionFailed (names the
  rule), ConcurrencyConflict.
"""

from .deciders import Context, handle, target_stream
from .errors import ConcurrencyConflict, DomainError, NotFound, PreconditionFailed, ValidationError
from .state import (
    SNAPSHOT_VERSION,
    STATE_TYPES,
    CheckIn,
    Cycle,
    Initiative,
    KeyResult,
    Objective,
    Person,
    Team,
    evolve,
    fold,
)

__all__ = [
    "SNAPSHOT_VERSION",
    "STATE_TYPES",
    "CheckIn",
    "ConcurrencyConflict",
    "Context",
    "Cycle",
    "DomainError",
    "Initiative",
    "KeyResult",
    "NotFound",
    "Objective",
    "Person",
    "PreconditionFailed",
    "Team",
    "ValidationError",
    "evolve",
    "fold",
    "handle",
    "target_stream",
]
