"""Authorisation: what a principal's role lets it do (docs/adr/0012-authentication-and-roles.md).

Pure and table-driven: ``RULES`` maps each role to the rules that grant it actions;
``authorize(principal, action, resource)`` allows when one of the role's rules that
lists the action holds for the resource, and otherwise raises ``PermissionDenied``
naming the rule. Tenant isolation comes first and has no exception (not even admin).

Actions: every command of ``okr_shared.domain.commands`` by class name (``PlanCycle``,
``RecordCheckIn``, ``AddPerson``, ...), the reads (``READS``: ``Read`` and the named read
calls, the directory's included), the audit actions (``AUDIT``: ``GetHistory``,
``ReplayAsOf``, ``VerifyChain``, ``ExportBundle``), ``StreamEvents`` and ``WhoAmI``. An
unknown action is denied. An RPC made of several commands (``COMPOSITES``:
``MovePersonToTeam``) is no action of its own: the gateway authorises each of its parts.

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
- the person commands (``AddPerson`` … ``RevokeRole``): the person (``owner`` = its
  ``person_id``) and, for ``UpdatePerson``, the details the request sets (``fields``);
- the team commands of the directory: the team (``team_id``, the request's);
- ``MovePersonToTeam``: ``RemoveTeamMember`` on ``from_team_id`` and ``AddTeamMember`` on
  ``to_team_id``, both must be allowed;
- reads, audit actions, ``StreamEvents``, ``WhoAmI``: the tenant (other fields may be None).

A rule may also limit which fields of the request the principal may set (``Rule.fields``:
a person changes only their own display name, time zone and language); a field outside
them is ``FieldDenied`` (a ``PermissionDenied`` naming the field).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from okr_shared.domain import commands as _commands

from .auth import ROLES, PermissionDenied, Principal


class FieldDenied(PermissionDenied):
    """The rule that allows the action does not let the principal set ``field``."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


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
#: What a lead may do in the directory, on the teams they lead (and those below them).
TEAM_MEMBERSHIP_COMMANDS = frozenset({"AddTeamMember", "RemoveTeamMember"})
#: The details a person may change on their own person (UpdatePerson); the others
#: (e-mail, user name, external id) are the admins' (and the identity provider's).
OWN_DETAILS = frozenset({"display_name", "time_zone", "language"})
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

#: RPCs made of several commands: (command, the request field naming its team) per part,
#: each authorised on its own (a lead moves a person only between teams they lead).
COMPOSITES: dict[str, tuple[tuple[str, str], ...]] = {
    "MovePersonToTeam": (("RemoveTeamMember", "from_team_id"), ("AddTeamMember", "to_team_id")),
}

READS = frozenset({
    "Read",  # generic: any read the gateway does not name below
    "GetCycle", "GetObjective", "GetKeyResult", "GetInitiative",
    "GetBoard", "GetTeamDashboard", "GetPersonDashboard", "GetScorecard",
    "GetKeyResultHistory", "GetKeyResultStatus", "ListKeyResultStatuses",
    "GetObjectiveRollup", "GetAlignmentTree", "GetDiff",
    "GetPerson", "ListPeople", "GetTeam", "ListTeams",  # the directory
})
AUDIT = frozenset({"GetHistory", "ReplayAsOf", "VerifyChain", "ExportBundle"})
STREAM_EVENTS = "StreamEvents"
STREAMS = frozenset({STREAM_EVENTS})
#: The caller about themself: every principal may ask (a machine key too).
SELF = frozenset({"WhoAmI"})

ACTIONS = COMMANDS | IMPORTS | READS | AUDIT | STREAMS | SELF


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
    #: The fields the request sets, for rules that limit them (UpdatePerson's details).
    fields: frozenset[str] = frozenset()


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
    #: The request fields the rule lets the principal set; None: any.
    fields: frozenset[str] | None = None


_OWN_DETAILS = Rule("own-details", frozenset({"UpdatePerson"}), OWN,
                    "change the display name, time zone and language of their own person", fields=OWN_DETAILS)
_WHO_AM_I = Rule("who-am-i", SELF, TENANT, "ask who they are")

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
        Rule("lead-team-members", TEAM_MEMBERSHIP_COMMANDS, TEAM, "add and remove members of the teams they lead"),
        _OWN_DETAILS,
        _WHO_AM_I,
    ),
    "member": (
        Rule("read", READS, TENANT, "read within their tenant"),
        Rule("own-item-writes", OWN_ITEM_COMMANDS, OWN,
             "write their own key results, initiatives and check-ins"),
        _OWN_DETAILS,
        _WHO_AM_I,
    ),
    "viewer": (
        Rule("read", READS, TENANT, "read within their tenant"),
        _WHO_AM_I,
    ),
    "auditor": (
        Rule("read", READS, TENANT, "read within their tenant"),
        Rule("audit", AUDIT, TENANT, "read history, replay, verify and export within their tenant"),
        _WHO_AM_I,
    ),
    "service": (
        Rule("stream-events", STREAMS, TENANT, "stream their tenant's events"),
        Rule("delegated-check-ins", CHECK_IN_COMMANDS, DELEGATED,
             "record check-ins on the key results delegated to them"),
        _WHO_AM_I,
    ),
}

#: One line per role, for denials of actions the role never has.
ROLE_SUMMARY = {
    "admin": "admins may do everything within their tenant",
    "lead": "leads read the tenant, write their teams' and their own items and their teams' members; "
            "cycles and the rest of the directory are admin-only",
    "member": "members read the tenant and write only their own key results, initiatives, check-ins and "
              "details",
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
            outside = sorted(resource.fields - rule.fields) if rule.fields is not None else []
            if outside:
                raise FieldDenied(f"{outside[0]}: role {principal.role} may only {rule.text} "
                                  f"({', '.join(sorted(rule.fields))}) [{rule.name}]", outside[0])
            return rule
    if not rules:
        summary = ROLE_SUMMARY.get(principal.role, "unknown role")
        raise PermissionDenied(f"role {principal.role} may not {action} ({summary})")
    reasons = " or ".join(f"{r.text} ({_context(r, resource)})" for r in rules)
    raise PermissionDenied(f"role {principal.role} may only {reasons} [{', '.join(r.name for r in rules)}]")


def directory_resource(tenant: str, action: str, request: Mapping[str, object]) -> Resource:
    """What a directory command is about, from its request alone (no look-up): a person
    command's person (``owner``) and the fields it sets besides the person and the command
    id; a team command's team."""
    if action in PERSON_COMMANDS:
        return Resource(tenant, owner=str(request.get("person_id") or "") or None,
                        fields=frozenset(request) - {"person_id", "command_id"})
    return Resource(tenant, team_id=str(request.get("team_id") or "") or None)


def composite_parts(action: str, tenant: str, request: Mapping[str, object]) -> list[tuple[str, Resource]]:
    """The commands an RPC of ``COMPOSITES`` is authorised as, each on its team."""
    return [(command, Resource(tenant, team_id=str(request.get(field) or "") or None))
            for command, field in COMPOSITES[action]]


def allowed(principal: Principal, action: str, resource: Resource) -> bool:
    try:
        authorize(principal, action, resource)
        return True
    except PermissionDenied:
        return False
