"""The goal service: cycles, objectives, key results and initiatives.

Every command is an RPC taking the command's fields as keyword arguments
(okr_shared.domain.commands names them), plus an optional ``command_id`` that makes a
retried call idempotent. A create command without its id gets a fresh one. A command
replies ``{"stream_id", "aggregate_id", "version", "positions", "event_types",
"already_stored"}`` plus the created id (e.g. ``"cycle_id"``); a refusal raises
ValidationError / NotFound / PreconditionFailed / ConcurrencyConflict (a RemoteError with
that ``exc_type`` at the caller) and writes nothing. The call's context data must carry
``actor`` and ``tenant_id`` (okr_services.dependencies.Caller).

    nameko run --config services/config.yaml okr_services.goal.service
"""

from okr_shared.domain.commands import (
    ActivateCycle,
    AdjustKeyResult,
    AlignObjective,
    ArchiveKeyResult,
    ArchiveObjective,
    AssignKeyResultOwner,
    CloseCycle,
    CompleteInitiative,
    CreateInitiative,
    CreateObjective,
    DefineKeyResult,
    DropInitiative,
    MoveCycleToReview,
    PlanCycle,
    RealignObjective,
    RestateObjective,
    SlipInitiative,
    StartInitiative,
)
from okr_shared.service_layer.importer import PlanImporter
from okr_services.dependencies import AggregateService
from okr_services.rpc import command, query


def _command_rpc(command_class, fields: str):
    """The RPC of one command: runs ``command_class`` with the call's keyword arguments
    (``fields``: the command's fields, ``?`` marking the optional ones; plus
    ``command_id``?) as the caller."""

    def run(self, **fields):
        return self.aggregates.run(command_class, fields, self.caller)

    run.__doc__ = f"{command_class.__name__}: {fields}"
    return command(run)


class GoalService(AggregateService):
    name = "goal"

    # ---------------------------------------------------------------- cycles

    plan_cycle = _command_rpc(PlanCycle, "cycle_id?, cadence, name, start_date, end_date, parent_cycle_id?")
    activate_cycle = _command_rpc(ActivateCycle, "cycle_id (planning → active; objective statements freeze)")
    move_cycle_to_review = _command_rpc(MoveCycleToReview, "cycle_id (active → review)")
    close_cycle = _command_rpc(CloseCycle, "cycle_id (review → closed)")

    @query
    def get_cycle(self, cycle_id=None):
        """The cycle's current state (with its ``version``)."""
        return self.aggregates.read("cycle", cycle_id, self.caller)

    # ------------------------------------------------------------ objectives

    create_objective = _command_rpc(CreateObjective, "objective_id?, cycle_id, level, title, owner, team_id?, "
                                                     "description?, parent_objective_id? | parent_key_result_id?")
    align_objective = _command_rpc(AlignObjective, "objective_id, parent_objective_id | parent_key_result_id")
    realign_objective = _command_rpc(RealignObjective, "objective_id, reason, "
                                                       "parent_objective_id? | parent_key_result_id?")
    restate_objective = _command_rpc(RestateObjective, "objective_id, title, description? (only while planning)")
    archive_objective = _command_rpc(ArchiveObjective, "objective_id, reason")

    @query
    def get_objective(self, objective_id=None):
        """The objective's current state (with its ``version``)."""
        return self.aggregates.read("objective", objective_id, self.caller)

    # ----------------------------------------------------------- key results

    define_key_result = _command_rpc(DefineKeyResult, "key_result_id?, objective_id, title, kind, start_value, "
                                                      "target_value, owner, due_date, unit?, currency_code?, weight?")
    adjust_key_result = _command_rpc(AdjustKeyResult, "key_result_id, reason (required while active), "
                                                      "target_value?, due_date?, weight?")
    assign_key_result_owner = _command_rpc(AssignKeyResultOwner, "key_result_id, owner, reason (required while active)")
    archive_key_result = _command_rpc(ArchiveKeyResult, "key_result_id, reason")

    @query
    def get_key_result(self, key_result_id=None):
        """The key result's current state, check-ins included (with its ``version``)."""
        return self.aggregates.read("kr", key_result_id, self.caller)

    # ----------------------------------------------------------- initiatives

    create_initiative = _command_rpc(CreateInitiative, "initiative_id?, key_result_id, title, assignee, "
                                                       "start_date, due_date")
    start_initiative = _command_rpc(StartInitiative, "initiative_id, started_on? (default today)")
    complete_initiative = _command_rpc(CompleteInitiative, "initiative_id, completed_on?, reason (required when late)")
    drop_initiative = _command_rpc(DropInitiative, "initiative_id, reason")
    slip_initiative = _command_rpc(SlipInitiative, "initiative_id, new_due_date, reason")

    @query
    def get_initiative(self, initiative_id=None):
        """The initiative's current state (with its ``version``)."""
        return self.aggregates.read("initiative", initiative_id, self.caller)

    # ---------------------------------------------------------------- import

    @command
    def import_plan(self, rows=None, dry_run=False, command_id=None):
        """ImportPlan: rows (objectives, key results, initiatives, people), dry_run?,
        command_id? — all or nothing; errors come back per line (service_layer.importer)."""
        return PlanImporter(self.aggregates).run(rows or [], self.caller, dry_run=bool(dry_run),
                                                 command_id=command_id)
