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


class GoalService(AggregateService):
    name = "goal"

    # ---------------------------------------------------------------- cycles

    @command
    def plan_cycle(self, **fields):
        """PlanCycle: cycle_id?, cadence, name, start_date, end_date, parent_cycle_id?"""
        return self.aggregates.run(PlanCycle, fields, self.caller)

    @command
    def activate_cycle(self, **fields):
        """ActivateCycle: cycle_id (planning → active; objective statements freeze)"""
        return self.aggregates.run(ActivateCycle, fields, self.caller)

    @command
    def move_cycle_to_review(self, **fields):
        """MoveCycleToReview: cycle_id (active → review)"""
        return self.aggregates.run(MoveCycleToReview, fields, self.caller)

    @command
    def close_cycle(self, **fields):
        """CloseCycle: cycle_id (review → closed)"""
        return self.aggregates.run(CloseCycle, fields, self.caller)

    @query
    def get_cycle(self, cycle_id=None):
        """The cycle's current state (with its ``version``)."""
        return self.aggregates.read("cycle", cycle_id, self.caller)

    # ------------------------------------------------------------ objectives

    @command
    def create_objective(self, **fields):
        """CreateObjective: objective_id?, cycle_id, level, title, owner, team_id?,
        description?, parent_objective_id? | parent_key_result_id?"""
        return self.aggregates.run(CreateObjective, fields, self.caller)

    @command
    def align_objective(self, **fields):
        """AlignObjective: objective_id, parent_objective_id | parent_key_result_id"""
        return self.aggregates.run(AlignObjective, fields, self.caller)

    @command
    def realign_objective(self, **fields):
        """RealignObjective: objective_id, reason, parent_objective_id? | parent_key_result_id?"""
        return self.aggregates.run(RealignObjective, fields, self.caller)

    @command
    def restate_objective(self, **fields):
        """RestateObjective: objective_id, title, description? (only while planning)"""
        return self.aggregates.run(RestateObjective, fields, self.caller)

    @command
    def archive_objective(self, **fields):
        """ArchiveObjective: objective_id, reason"""
        return self.aggregates.run(ArchiveObjective, fields, self.caller)

    @query
    def get_objective(self, objective_id=None):
        """The objective's current state (with its ``version``)."""
        return self.aggregates.read("objective", objective_id, self.caller)

    # ----------------------------------------------------------- key results

    @command
    def define_key_result(self, **fields):
        """DefineKeyResult: key_result_id?, objective_id, title, kind, start_value,
        target_value, owner, due_date, unit?, currency_code?, weight?"""
        return self.aggregates.run(DefineKeyResult, fields, self.caller)

    @command
    def adjust_key_result(self, **fields):
        """AdjustKeyResult: key_result_id, reason (required while active), target_value?,
        due_date?, weight?"""
        return self.aggregates.run(AdjustKeyResult, fields, self.caller)

    @command
    def assign_key_result_owner(self, **fields):
        """AssignKeyResultOwner: key_result_id, owner, reason (required while active)"""
        return self.aggregates.run(AssignKeyResultOwner, fields, self.caller)

    @command
    def archive_key_result(self, **fields):
        """ArchiveKeyResult: key_result_id, reason"""
        return self.aggregates.run(ArchiveKeyResult, fields, self.caller)

    @query
    def get_key_result(self, key_result_id=None):
        """The key result's current state, check-ins included (with its ``version``)."""
        return self.aggregates.read("kr", key_result_id, self.caller)

    # ----------------------------------------------------------- initiatives

    @command
    def create_initiative(self, **fields):
        """CreateInitiative: initiative_id?, key_result_id, title, assignee, start_date, due_date"""
        return self.aggregates.run(CreateInitiative, fields, self.caller)

    @command
    def start_initiative(self, **fields):
        """StartInitiative: initiative_id, started_on? (default today)"""
        return self.aggregates.run(StartInitiative, fields, self.caller)

    @command
    def complete_initiative(self, **fields):
        """CompleteInitiative: initiative_id, completed_on?, reason (required when late)"""
        return self.aggregates.run(CompleteInitiative, fields, self.caller)

    @command
    def drop_initiative(self, **fields):
        """DropInitiative: initiative_id, reason"""
        return self.aggregates.run(DropInitiative, fields, self.caller)

    @command
    def slip_initiative(self, **fields):
        """SlipInitiative: initiative_id, new_due_date, reason"""
        return self.aggregates.run(SlipInitiative, fields, self.caller)

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
