"""The service layer of the goal and progress services: commands in, events stored,
state out. No nameko here: the services, the CLI and the tests use it alike.

    executor = command_executor(engine)                    # bootstrap.py: the wiring
    call = CallContext(actor="ann", tenant_id="acme")
    executor.run(RecordCheckIn, {"key_result_id": "kr1", "value": 3, "confidence": 7}, call)
    executor.read("kr", "kr1", call)                       # state dict, or NotFound

- ``repository``: load an aggregate = latest snapshot + fold of the events after it;
- ``executor``: load, decide (``okr_shared.domain.handle``), append with the expected
  version, reload and decide again on a conflict (bounded, jittered), idempotent by
  caller-supplied command id;
- ``context``: who calls (actor, tenant) and why (correlation and causation ids);
- ``arguments``: keyword arguments → command, naming unknown or missing fields.
"""

from .arguments import NEW_ID_FIELDS, command_from_fields
from .bootstrap import SchemaNotCurrent, check_schema, command_executor, today_in
from .context import CallContext, DecisionContext
from .executor import AGGREGATES, CommandExecutor, CommandOutcome, RetryPolicy
from .repository import Loaded, Repository

__all__ = [
    "AGGREGATES",
    "NEW_ID_FIELDS",
    "CallContext",
    "CommandExecutor",
    "CommandOutcome",
    "DecisionContext",
    "Loaded",
    "Repository",
    "RetryPolicy",
    "SchemaNotCurrent",
    "check_schema",
    "command_executor",
    "command_from_fields",
    "today_in",
]
