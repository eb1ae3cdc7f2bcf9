"""Authorisation: what a principal's role lets it do (docs/adr/0012-authentication-and-roles.md).

Pure and table-driven: ``RULES`` maps each role to the rules that grant it actions;
``authorize(principal, action, resource)`` allows when one of the role's rules that
lists the action holds for the resource, and otherwise raises ``PermissionDenied``
naming the rule. Tenant isolation comes first and has no exception (not even admin).

Actions: every command of ``okr_shared.domain.commands`` by class name (``PlanCycle``,
``RecordCheckIn``, ...), the reads (``READS``: ``Read`` and the named read calls), the
audit actions (``AUDIT``: ``GetHistory``, ``ReplayAsOf``, ``VerifyChain``,
``ExportBundle``) and ``StreamEvents``. An unknown action is denied.

The ``Resource`` is what the gateway looks up before asking: the tenant, and for the
commands the item the command writes to —

- the cycle commands: the cycle (no team, no owner);
- ``CreateObjective``: the new objective (its ``team_id``, ``owner``);
- the other objective commands: the objective (team, owner);
- ``DefineKeyResult``: the objective the key result is added to (team, objective owner);
- the other key result commands: the key result (its objective's team, the KR owner);
- ``CreateInitiative``: the key result it is added to (team, KR owner);
- the other initiative commands: the initiative (team, assignee);
- ``RecordCheckIn``/``CorrectCheckIn``: the key result (team, KR owner, ``key_result_id``);
- ``ImportPlan``: each team the plan writes to (one check per team), else the tenant;
- reads, audit actions, ``StreamEvents``: the tenant (other fields may be None).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from okr_shared.domain import commands as _commands

from .auth import ROLES, PermissionDenied, Principal

# ------------------------------------------------------------------------ actions

CYCLE_COMMANDS = frozenset({"PlanCycle", "ActivateCycle", "MoveCycleToReview", "CloseCycle"})
OBJECTIVE_COMMANDS = frozenset({
    "CreateObjective", "AlignObjective", "RealignObjective", "RestateObjective", "ArchiveObjective",
})
KEY_RESULT_COMMANDS = frozenset({"DefineKeyResult", "AdjustKeyResult", "AssignKeyResultOwner", "ArchiveKeyResult"})
INITIATIVE_COMMANDS = frozenset({
    "CreateInitiative", "StartInitiative", "CompleteInitiative", "DropInitiative", "SlipInitiative",
})
CHECK_IN_COMMANDS = frozenset({"RecordCheckIn", "CorrectCheckIn"})
#: The directory's commands (people, teams, role grants): admin-only unless a rule below
#: grants one (docs/identity.md "Role matrix").
PERSON_COMMANDS = frozenset({
    "AddPerson", "UpdatePerson", "AssignManager", "DeactivatePerson", "ReactivatePerson", "GrantRole", "RevokeRole",
})
TEAM_DIRECTORY_COMMANDS = frozenset({
    "CreateTeam", "RenameTeam", "MoveTeam", "ArchiveTeam", "AddTeamMember", "RemoveTeamMember", "AssignTeamLead",
    "RemoveTeamLead",
})
DIRECTORY_COMMANDS = PERSON_COMMANDS | TEAM_DIRECTORY_COMMANDS
COMMANDS = (CYCLE_COMMANDS | OBJECTIVE_COMMANDS | KEY_RESULT_COMMANDS | INITIATIVE_COMMANDS | CHECK_IN_COMMANDS
            | DIRECTORY_COMMANDS)

#: The commands a member may send about their own items: everything on key results,
#: initiatives and check-ins except adding a key result (a write to the objective).
OWN_ITEM_COMMANDS = (KEY_RESULT_COMMANDS - {"DefineKeyResult"}) | INITIATIVE_COMMANDS | CHECK_IN_COMMANDS
#: What a lead may do to their teams' items.
TEAM_COMMANDS = OBJECTIVE_COMMANDS | KEY_RESULT_COMMANDS | INITIATIVE_COMMANDS | CHECK_IN_COMMANDS

#: Bulk writes: a plan of objectives, key results and initiatives (ImportPlan); the gateway
#: authorises it once per team the plan writes to (each objective row's team, the team of
#: each existing parent named), or for the tenant when it names no team.
IMPORTS = frozenset({"ImportPlan"})

READS = frozenset({
    "Read",  # generic: any read the gateway does not name below
    "GetCycle", "GetObjective", "GetKeyResult", "GetInitiative",
    "GetBoard", "GetTeamDashboard", "GetPersonDashboard", "GetScorecard",
    "GetKeyResultHistory", "GetKeyResultStatus", "ListKeyResultStatuses",
    "GetObjectiveRollup", "GetAlignmentTree", "GetDiff",
})
AUDIT = frozenset({"GetHistory", "ReplayAsOf", "VerifyChain", "ExportBundle"})
STREAM_EVENTS = "StreamEvents"
STREAMS = frozenset({STREAM_EVENTS})

ACTIONS = COMMANDS | IMPORTS | READS | AUDIT | STREAMS


def _command_names() -> set[str]:
    return {
        name for name, obj in vars(_commands).items()
        if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == _commands.__name__
    }


# Fail closed at import: a command added to the domain must be placed in a category here.
if _command_names() != set(COMMANDS):  # pragma: no cover - guards future edits
    raise RuntimeError(
        "policy.py does not classify every command: "
        f"unclassified {sorted(_command_names() - COMMANDS)}, stale {sorted(COMMANDS - _command_names())}"
    )


@dataclass(frozen=True)
class Resource:
    """What an action is about (see the module docstring for what each command names)."""

    tenant: str
    team_id: str | None = None
    owner: str | None = None
    key_result_id: str | None = None


# -------------------------------------------------------------------------- rules

#: Scopes: where a rule holds.
TENANT = "tenant"  # anything in the principal's tenant
TEAM = "team"  # resource.team_id is one of principal.teams
OWN = "own"  # resource.owner is principal.subject
DELEGATED = "delegated"  # resource.key_result_id is one of principal.delegated_key_results


@dataclass(frozen=True)
class Rule:
    name: str
    actions: frozenset[str]
    scope: str
    #: How a denial phrases the rule (after "role <role> may only ...").
    text: str


RULES: dict[str, tuple[Rule, ...]] = {
    "admin": (
        Rule("admin-everything", ACTIONS, TENANT, "act within their tenant"),
    ),
    "lead": (
        Rule("read", READS, TENANT, "read within their tenant"),
        Rule("lead-team-writes", TEAM_COMMANDS, TEAM,
             "write objectives, key results, initiatives and check-ins of the teams they lead"),
        Rule("lead-team-import", IMPORTS, TEAM, "import plans for the teams they lead"),
        Rule("own-item-writes", OWN_ITEM_COMMANDS, OWN,
             "write their own key results, initiatives and check-ins"),
    ),
    "member": (
        Rule("read", READS, TENANT, "read within their tenant"),
        Rule("own-item-writes", OWN_ITEM_COMMANDS, OWN,
             "write their own key results, initiatives and check-ins"),
    ),
    "viewer": (
        Rule("read", READS, TENANT, "read within their tenant"),
    ),
    "auditor": (
        Rule("read", READS, TENANT, "read within their tenant"),
        Rule("audit", AUDIT, TENANT, "read history, replay, verify and export within their tenant"),
    ),
    "service": (
        Rule("stream-events", STREAMS, TENANT, "stream their tenant's events"),
        Rule("delegated-check-ins", CHECK_IN_COMMANDS, DELEGATED,
             "record check-ins on the key results delegated to them"),
    ),
}

#: One line per role, for denials of actions the role never has.
ROLE_SUMMARY = {
    "admin": "admins may do everything within their tenant",
    "lead": "leads read the tenant and write their teams' and their own items; cycles are admin-only",
    "member": "members read the tenant and write only their own key results, initiatives and check-ins",
    "viewer": "viewers only read",
    "auditor": "auditors read and audit (history, replay, verify, export) but never write",
    "service": "services stream events and record check-ins on delegated key results only",
}

assert set(RULES) == set(ROLES) == set(ROLE_SUMMARY)


def _holds(rule: Rule, principal: Principal, resource: Resource) -> bool:
    if rule.scope == TENANT:
        return True
    if rule.scope == TEAM:
        return resource.team_id is not None and resource.team_id in principal.teams
    if rule.scope == OWN:
        return resource.owner is not None and resource.owner != "" and resource.owner == principal.subject
    if rule.scope == DELEGATED:
        return bool(resource.key_result_id) and resource.key_result_id in principal.delegated_key_results
    return False  # unknown scope: fail closed


def _context(rule: Rule, resource: Resource) -> str:
    if rule.scope == TEAM:
        return f"team is {resource.team_id or 'none'}"
    if rule.scope == OWN:
        return f"owner is {resource.owner or 'none'}"
    if rule.scope == DELEGATED:
        return f"key result {resource.key_result_id or 'none'} is not delegated to them"
    return ""


def authorize(principal: Principal, action: str, resource: Resource) -> Rule:
    """Allow (returning the rule that allowed) or raise ``PermissionDenied`` naming the rule."""
    if action not in ACTIONS:
        raise PermissionDenied(f"unknown action {action!r} (denied)")
    if resource.tenant != principal.tenant:
        raise PermissionDenied(
            f"tenant isolation: {principal.subject} belongs to tenant {principal.tenant}, "
            f"not {resource.tenant}"
        )
    rules = [r for r in RULES.get(principal.role, ()) if action in r.actions]
    for rule in rules:
        if _holds(rule, principal, resource):
            return rule
    if not rules:
        summary = ROLE_SUMMARY.get(principal.role, "unknown role")
        raise PermissionDenied(f"role {principal.role} may not {action} ({summary})")
    reasons = " or ".join(f"{r.text} ({_context(r, resource)})" for r in rules)
    raise PermissionDenied(f"role {principal.role} may only {reasons} [{', '.join(r.name for r in rules)}]")


def allowed(principal: Principal, action: str, resource: Resource) -> bool:
    try:
        authorize(principal, action, resource)
        return True
    except PermissionDenied:
        return False
