"""Commands: what a caller asks the goal and progress services to do.

Plain dataclasses with no behaviour; the deciders in this package validate them against
current state and turn them into events. Dates are ISO strings ``YYYY-MM-DD`` (as in the
event contracts); numbers are floats; enums are the names used in the contracts without
prefix (``"QUARTERLY"``, ``"TEAM"``, ``"INCREASE_TO"``). Ids of new aggregates are chosen
by the caller (the services fill in a fresh UUID when the caller gave none), so a
retried create command is recognisable.
"""

from __future__ import annotations

from dataclasses import dataclass


# ------------------------------------------------------------------------ cycles

@dataclass(frozen=True)
class PlanCycle:
    cycle_id: str
    cadence: str  # MONTHLY | QUARTERLY | ANNUAL
    name: str
    start_date: str
    end_date: str
    parent_cycle_id: str = ""


@dataclass(frozen=True)
class ActivateCycle:
    cycle_id: str


@dataclass(frozen=True)
class MoveCycleToReview:
    cycle_id: str


@dataclass(frozen=True)
class CloseCycle:
    cycle_id: str


# -------------------------------------------------------------------- objectives

@dataclass(frozen=True)
class CreateObjective:
    objective_id: str
    cycle_id: str
    level: str  # COMPANY | TEAM | INDIVIDUAL
    title: str
    owner: str
    team_id: str = ""
    description: str = ""
    parent_objective_id: str = ""  # align to an objective...
    parent_key_result_id: str = ""  # ...or to a key result (not both)


@dataclass(frozen=True)
class AlignObjective:
    """Align an objective that has no parent yet."""

    objective_id: str
    parent_objective_id: str = ""
    parent_key_result_id: str = ""


@dataclass(frozen=True)
class RealignObjective:
    """Change (or, with both parents empty, remove) an existing alignment."""

    objective_id: str
    reason: str
    parent_objective_id: str = ""
    parent_key_result_id: str = ""


@dataclass(frozen=True)
class RestateObjective:
    """Change the statement (title, description): only while the cycle is not active."""

    objective_id: str
    title: str
    description: str = ""


@dataclass(frozen=True)
class ArchiveObjective:
    objective_id: str
    reason: str


# ------------------------------------------------------------------- key results

@dataclass(frozen=True)
class DefineKeyResult:
    key_result_id: str
    objective_id: str
    title: str
    kind: str  # INCREASE_TO | DECREASE_TO | STAY_AT_OR_ABOVE | STAY_AT_OR_BELOW | MILESTONE | PERCENTAGE | CURRENCY
    start_value: float
    target_value: float
    owner: str
    due_date: str
    unit: str = ""
    currency_code: str = ""
    weight: float = 1.0


@dataclass(frozen=True)
class AdjustKeyResult:
    """Adjust target, due date and/or weight (None = unchanged). The reason is
    required while the cycle is active (and always stored when given)."""

    key_result_id: str
    reason: str = ""
    target_value: float | None = None
    due_date: str | None = None
    weight: float | None = None


@dataclass(frozen=True)
class AssignKeyResultOwner:
    key_result_id: str
    owner: str
    reason: str = ""


@dataclass(frozen=True)
class ArchiveKeyResult:
    key_result_id: str
    reason: str


# ------------------------------------------------------------------- initiatives

@dataclass(frozen=True)
class CreateInitiative:
    initiative_id: str
    key_result_id: str
    title: str
    assignee: str
    start_date: str
    due_date: str


@dataclass(frozen=True)
class StartInitiative:
    initiative_id: str
    started_on: str = ""  # default: today


@dataclass(frozen=True)
class CompleteInitiative:
    initiative_id: str
    completed_on: str = ""  # default: today
    reason: str = ""  # required when completed after the due date


@dataclass(frozen=True)
class DropInitiative:
    initiative_id: str
    reason: str


@dataclass(frozen=True)
class SlipInitiative:
    """Move the due date (a reason is always required)."""

    initiative_id: str
    new_due_date: str
    reason: str


# ---------------------------------------------------------------------- check-ins

@dataclass(frozen=True)
class RecordCheckIn:
    check_in_id: str
    key_result_id: str
    value: float | bool
    confidence: int
    effective_date: str = ""  # default: today
    comment: str = ""


@dataclass(frozen=True)
class CorrectCheckIn:
    """A new check-in that replaces an earlier one's value, confidence, comment and
    date; the original stays in history."""

    check_in_id: str
    corrects_check_in_id: str
    key_result_id: str
    value: float | bool
    confidence: int
    reason: str
    effective_date: str = ""  # default: the corrected check-in's date
    comment: str = ""


# ---------------------------------------------------------------------- the directory
# People (stream person-<person_id>: details, manager, active or left, granted roles) and
# teams (stream team-<team_id>: name, parent, leads, members); docs/identity.md.

@dataclass(frozen=True)
class AddPerson:
    person_id: str
    display_name: str
    email: str = ""
    manager_id: str = ""
    time_zone: str = ""  # IANA; empty: the tenant's
    language: str = ""  # en | zh-CN; empty: the tenant's
    user_name: str = ""  # sign-in name; empty: the e-mail address
    external_id: str = ""  # the identity provider's id (SCIM externalId)


@dataclass(frozen=True)
class UpdatePerson:
    """Change a person's details; None keeps a field as it is."""

    person_id: str
    display_name: str | None = None
    email: str | None = None
    time_zone: str | None = None
    language: str | None = None
    user_name: str | None = None
    external_id: str | None = None


@dataclass(frozen=True)
class AssignManager:
    person_id: str
    manager_id: str = ""  # empty: no manager


@dataclass(frozen=True)
class DeactivatePerson:
    person_id: str
    reason: str = ""


@dataclass(frozen=True)
class ReactivatePerson:
    person_id: str
    reason: str = ""


@dataclass(frozen=True)
class GrantRole:
    person_id: str
    role: str  # ADMIN | AUDITOR | OBSERVER


@dataclass(frozen=True)
class RevokeRole:
    person_id: str
    role: str  # ADMIN | AUDITOR | OBSERVER


@dataclass(frozen=True)
class CreateTeam:
    team_id: str
    name: str
    parent_team_id: str = ""
    external_id: str = ""


@dataclass(frozen=True)
class RenameTeam:
    team_id: str
    name: str


@dataclass(frozen=True)
class MoveTeam:
    team_id: str
    parent_team_id: str = ""  # empty: top level


@dataclass(frozen=True)
class ArchiveTeam:
    team_id: str
    reason: str = ""


@dataclass(frozen=True)
class AddTeamMember:
    team_id: str
    person_id: str


@dataclass(frozen=True)
class RemoveTeamMember:
    team_id: str
    person_id: str


@dataclass(frozen=True)
class AssignTeamLead:
    team_id: str
    person_id: str


@dataclass(frozen=True)
class RemoveTeamLead:
    team_id: str
    person_id: str
