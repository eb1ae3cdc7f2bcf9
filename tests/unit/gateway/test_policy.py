"""The role matrix: EVERY action × EVERY role × {own item, team item, other team's item,
other tenant}, with the expected answer written out below (not computed by policy.py).
For the directory's person commands the item is the person (``owner`` = the person id:
"own" is alice herself), for its team commands the team (``team_id``)."""

import dataclasses
import inspect

import pytest

from okr_services.gateway import policy
from okr_services.gateway.auth import ROLES, PermissionDenied, Principal
from okr_services.gateway.policy import Resource, authorize
from okr_shared.domain import commands

# Every principal is "alice" of tenant acme; the lead leads team t1; the service has
# key result kr-alice delegated to it.
PRINCIPALS = {
    "admin": Principal("acme", "alice", "admin"),
    "lead": Principal("acme", "alice", "lead", teams=("t1",)),
    "member": Principal("acme", "alice", "member"),
    "viewer": Principal("acme", "alice", "viewer"),
    "auditor": Principal("acme", "alice", "auditor"),
    "service": Principal("acme", "alice", "service", delegated_key_results=("kr-alice",), via="jwt"),
}
SCENARIOS = {
    # alice's own item, in a team the lead does not lead (so "own" is not "team")
    "own": Resource("acme", team_id="t9", owner="alice", key_result_id="kr-alice"),
    # bob's item in team t1 (the lead's team)
    "team": Resource("acme", team_id="t1", owner="bob", key_result_id="kr-bob"),
    # bob's item in another team
    "other": Resource("acme", team_id="t9", owner="bob", key_result_id="kr-bob"),
    # another tenant: an item that would otherwise be alice's own in the lead's team
    "foreign": Resource("globex", team_id="t1", owner="alice", key_result_id="kr-alice"),
}
ROLE_ORDER = ["admin", "lead", "member", "viewer", "auditor", "service"]
SCENARIO_ORDER = ["own", "team", "other", "foreign"]

# One row per action; one group of four per role (admin lead member viewer auditor
# service), each group: own, team, other team's, other tenant. Y = allowed.
MATRIX = [
    #  action                   admin lead member viewer auditor service
    # cycle lifecycle: admin only
    ("PlanCycle",             "YYYN NNNN NNNN NNNN NNNN NNNN"),
    ("ActivateCycle",         "YYYN NNNN NNNN NNNN NNNN NNNN"),
    ("MoveCycleToReview",     "YYYN NNNN NNNN NNNN NNNN NNNN"),
    ("CloseCycle",            "YYYN NNNN NNNN NNNN NNNN NNNN"),
    # objectives: admin, a lead in their teams
    ("CreateObjective",       "YYYN NYNN NNNN NNNN NNNN NNNN"),
    ("AlignObjective",        "YYYN NYNN NNNN NNNN NNNN NNNN"),
    ("RealignObjective",      "YYYN NYNN NNNN NNNN NNNN NNNN"),
    ("RestateObjective",      "YYYN NYNN NNNN NNNN NNNN NNNN"),
    ("ArchiveObjective",      "YYYN NYNN NNNN NNNN NNNN NNNN"),
    # adding a key result writes to the objective: like the objective commands
    ("DefineKeyResult",       "YYYN NYNN NNNN NNNN NNNN NNNN"),
    # key results, initiatives: admin; lead in their teams and their own; member their own
    ("AdjustKeyResult",       "YYYN YYNN YNNN NNNN NNNN NNNN"),
    ("AssignKeyResultOwner",  "YYYN YYNN YNNN NNNN NNNN NNNN"),
    ("ArchiveKeyResult",      "YYYN YYNN YNNN NNNN NNNN NNNN"),
    ("CreateInitiative",      "YYYN YYNN YNNN NNNN NNNN NNNN"),
    ("StartInitiative",       "YYYN YYNN YNNN NNNN NNNN NNNN"),
    ("CompleteInitiative",    "YYYN YYNN YNNN NNNN NNNN NNNN"),
    ("DropInitiative",        "YYYN YYNN YNNN NNNN NNNN NNNN"),
    ("SlipInitiative",        "YYYN YYNN YNNN NNNN NNNN NNNN"),
    # check-ins: as above, plus a service on its delegated key results
    ("RecordCheckIn",         "YYYN YYNN YNNN NNNN NNNN YNNN"),
    ("CorrectCheckIn",        "YYYN YYNN YNNN NNNN NNNN YNNN"),
    # importing a plan: admin; a lead for the teams they lead (checked once per team)
    ("ImportPlan",            "YYYN NYNN NNNN NNNN NNNN NNNN"),
    # reads: everyone in the tenant but services (transparency)
    ("Read",                  "YYYN YYYN YYYN YYYN YYYN NNNN"),
    ("GetCycle",              "YYYN YYYN YYYN YYYN YYYN NNNN"),
    ("GetObjective",          "YYYN YYYN YYYN YYYN YYYN NNNN"),
    ("GetKeyResult",          "YYYN YYYN YYYN YYYN YYYN NNNN"),
    ("GetInitiative",         "YYYN YYYN YYYN YYYN YYYN NNNN"),
    ("GetBoard",              "YYYN YYYN YYYN YYYN YYYN NNNN"),
    ("GetTeamDashboard",      "YYYN YYYN YYYN YYYN YYYN NNNN"),
    ("GetPersonDashboard",    "YYYN YYYN YYYN YYYN YYYN NNNN"),
    ("GetScorecard",          "YYYN YYYN YYYN YYYN YYYN NNNN"),
    ("GetKeyResultHistory",   "YYYN YYYN YYYN YYYN YYYN NNNN"),
    ("GetKeyResultStatus",    "YYYN YYYN YYYN YYYN YYYN NNNN"),
    ("ListKeyResultStatuses", "YYYN YYYN YYYN YYYN YYYN NNNN"),
    ("GetObjectiveRollup",    "YYYN YYYN YYYN YYYN YYYN NNNN"),
    ("GetAlignmentTree",      "YYYN YYYN YYYN YYYN YYYN NNNN"),
    ("GetDiff",               "YYYN YYYN YYYN YYYN YYYN NNNN"),
    # audit: admin and auditor
    ("GetHistory",            "YYYN NNNN NNNN NNNN YYYN NNNN"),
    ("ReplayAsOf",            "YYYN NNNN NNNN NNNN YYYN NNNN"),
    ("VerifyChain",           "YYYN NNNN NNNN NNNN YYYN NNNN"),
    ("ExportBundle",          "YYYN NNNN NNNN NNNN YYYN NNNN"),
    # event streams: admin and services
    ("StreamEvents",          "YYYN NNNN NNNN NNNN NNNN YYYN"),
    # the directory's people: admin; a person changes their own details (which ones:
    # test_own_details_are_the_only_fields_a_person_may_change)
    ("AddPerson",             "YYYN NNNN NNNN NNNN NNNN NNNN"),
    ("UpdatePerson",          "YYYN YNNN YNNN NNNN NNNN NNNN"),
    ("AssignManager",         "YYYN NNNN NNNN NNNN NNNN NNNN"),
    ("DeactivatePerson",      "YYYN NNNN NNNN NNNN NNNN NNNN"),
    ("ReactivatePerson",      "YYYN NNNN NNNN NNNN NNNN NNNN"),
    ("GrantRole",             "YYYN NNNN NNNN NNNN NNNN NNNN"),
    ("RevokeRole",            "YYYN NNNN NNNN NNNN NNNN NNNN"),
    # the directory's teams: admin; a lead adds and removes members of their teams
    ("CreateTeam",            "YYYN NNNN NNNN NNNN NNNN NNNN"),
    ("RenameTeam",            "YYYN NNNN NNNN NNNN NNNN NNNN"),
    ("MoveTeam",              "YYYN NNNN NNNN NNNN NNNN NNNN"),
    ("ArchiveTeam",           "YYYN NNNN NNNN NNNN NNNN NNNN"),
    ("AddTeamMember",         "YYYN NYNN NNNN NNNN NNNN NNNN"),
    ("RemoveTeamMember",      "YYYN NYNN NNNN NNNN NNNN NNNN"),
    ("AssignTeamLead",        "YYYN NNNN NNNN NNNN NNNN NNNN"),
    ("RemoveTeamLead",        "YYYN NNNN NNNN NNNN NNNN NNNN"),
    # directory reads: like every read, everyone in the tenant but services
    ("GetPerson",             "YYYN YYYN YYYN YYYN YYYN NNNN"),
    ("ListPeople",            "YYYN YYYN YYYN YYYN YYYN NNNN"),
    ("GetTeam",               "YYYN YYYN YYYN YYYN YYYN NNNN"),
    ("ListTeams",             "YYYN YYYN YYYN YYYN YYYN NNNN"),
    # the caller about themself: every principal of the tenant, machines too
    ("WhoAmI",                "YYYN YYYN YYYN YYYN YYYN YYYN"),
]


def _cases():
    for action, cells in MATRIX:
        groups = cells.split()
        assert len(groups) == len(ROLE_ORDER) and all(len(g) == 4 for g in groups), action
        for role, group in zip(ROLE_ORDER, groups):
            for scenario, cell in zip(SCENARIO_ORDER, group):
                yield pytest.param(action, role, scenario, cell == "Y", id=f"{action}-{role}-{scenario}")


@pytest.mark.parametrize("action, role, scenario, expected", list(_cases()))
def test_matrix(action, role, scenario, expected):
    principal, resource = PRINCIPALS[role], SCENARIOS[scenario]
    if expected:
        rule = authorize(principal, action, resource)
        assert rule in policy.RULES[role]
    else:
        with pytest.raises(PermissionDenied) as denied:
            authorize(principal, action, resource)
        message = str(denied.value)
        if scenario == "foreign":
            assert message.startswith("tenant isolation:")
        else:
            assert f"role {role} may" in message


def test_the_matrix_covers_every_action_and_every_command():
    actions = [a for a, _ in MATRIX]
    assert len(actions) == len(set(actions))
    assert set(actions) == set(policy.ACTIONS)
    # the commands, found independently of policy.py
    command_names = {name for name, obj in inspect.getmembers(commands, inspect.isclass)
                     if dataclasses.is_dataclass(obj) and obj.__module__ == commands.__name__}
    assert len(command_names) == 35  # 20 of the method, 15 of the directory
    assert command_names <= set(actions)
    assert command_names == set(policy.COMMANDS)


def test_the_rules_table():
    assert list(policy.RULES) == list(ROLES) == ROLE_ORDER
    for role, rules in policy.RULES.items():
        assert rules, role
        for rule in rules:
            assert rule.actions <= policy.ACTIONS, (role, rule.name)
            assert rule.scope in {policy.TENANT, policy.TEAM, policy.OWN, policy.DELEGATED}
            assert rule.text
    # nobody but admin touches a cycle; nobody but admin and auditor audits; no
    # role other than admin both streams and reads
    for role, rules in policy.RULES.items():
        granted = set().union(*(r.actions for r in rules))
        if role != "admin":
            assert not granted & policy.CYCLE_COMMANDS, role
        if role not in ("admin", "auditor"):
            assert not granted & policy.AUDIT, role
        if role in ("viewer", "auditor"):
            assert not granted & policy.COMMANDS, role


@pytest.mark.parametrize("principal, action, resource, message", [
    (PRINCIPALS["member"], "RecordCheckIn", SCENARIOS["other"],
     "role member may only write their own key results, initiatives and check-ins (owner is bob)"),
    (PRINCIPALS["lead"], "AdjustKeyResult", SCENARIOS["other"],
     "role lead may only write objectives, key results, initiatives and check-ins of the teams they lead "
     "(team is t9) or write their own key results, initiatives and check-ins (owner is bob)"),
    (PRINCIPALS["service"], "RecordCheckIn", SCENARIOS["other"],
     "role service may only record check-ins on the key results delegated to them "
     "(key result kr-bob is not delegated to them)"),
    (PRINCIPALS["viewer"], "RecordCheckIn", SCENARIOS["own"], "role viewer may not RecordCheckIn (viewers only read)"),
    (PRINCIPALS["lead"], "PlanCycle", Resource("acme"), "role lead may not PlanCycle (leads read the tenant"),
    (PRINCIPALS["service"], "GetBoard", Resource("acme"), "role service may not GetBoard"),
    (PRINCIPALS["admin"], "GetBoard", Resource("globex"),
     "tenant isolation: alice belongs to tenant acme, not globex"),
    (PRINCIPALS["admin"], "DropDatabase", Resource("acme"), "unknown action 'DropDatabase'"),
])
def test_denials_name_the_rule(principal, action, resource, message):
    with pytest.raises(PermissionDenied) as denied:
        authorize(principal, action, resource)
    assert message in str(denied.value)


def test_missing_facts_never_match():
    """An item without an owner or team, or a check-in without a key result id, is not
    anyone's own / any team's / delegated."""
    bare = Resource("acme")
    for role in ("lead", "member", "service"):
        with pytest.raises(PermissionDenied):
            authorize(PRINCIPALS[role], "RecordCheckIn", bare)
    with pytest.raises(PermissionDenied):
        authorize(Principal("acme", "", "member"), "RecordCheckIn", Resource("acme", owner=""))
    # a service with nothing delegated may only stream
    streams_only = Principal("acme", "svc-feed", "service")
    assert authorize(streams_only, "StreamEvents", bare).name == "stream-events"
    with pytest.raises(PermissionDenied):
        authorize(streams_only, "RecordCheckIn", Resource("acme", key_result_id="kr-alice"))
    # an unknown role may do nothing
    with pytest.raises(PermissionDenied, match="unknown role"):
        authorize(Principal("acme", "alice", "root"), "GetBoard", bare)
    assert policy.allowed(PRINCIPALS["viewer"], "GetBoard", bare) is True
    assert policy.allowed(PRINCIPALS["viewer"], "RecordCheckIn", bare) is False


@pytest.mark.parametrize("role", ["lead", "member"])
@pytest.mark.parametrize("fields, denied", [
    (set(), None),
    ({"display_name"}, None),
    ({"display_name", "time_zone", "language"}, None),
    ({"email"}, "email"),
    ({"display_name", "user_name"}, "user_name"),
    ({"external_id", "email"}, "email"),  # the first in name order
])
def test_own_details_are_the_only_fields_a_person_may_change(role, fields, denied):
    own = Resource("acme", owner="alice", fields=frozenset(fields))
    if denied is None:
        assert authorize(PRINCIPALS[role], "UpdatePerson", own).name == "own-details"
        return
    with pytest.raises(policy.FieldDenied) as refused:
        authorize(PRINCIPALS[role], "UpdatePerson", own)
    assert refused.value.field == denied
    assert str(refused.value) == (f"{denied}: role {role} may only change the display name, time zone and "
                                  "language of their own person (display_name, language, time_zone) [own-details]")


def test_an_admin_sets_any_field_and_nobody_sets_fields_of_someone_else():
    every = frozenset({"display_name", "email", "time_zone", "language", "user_name", "external_id"})
    assert authorize(PRINCIPALS["admin"], "UpdatePerson", Resource("acme", owner="bob", fields=every)).name \
        == "admin-everything"
    with pytest.raises(PermissionDenied) as denied:  # another's person: the owner, not the field, is at fault
        authorize(PRINCIPALS["member"], "UpdatePerson", Resource("acme", owner="bob", fields=frozenset({"email"})))
    assert not isinstance(denied.value, policy.FieldDenied)
    assert "(owner is bob)" in str(denied.value)


@pytest.mark.parametrize("teams, from_team, to_team, allowed", [
    (("t1", "t2"), "t1", "t2", True),
    (("t1",), "t1", "t2", False),  # may take them out of t1, not put them into t2
    (("t2",), "t1", "t2", False),
    (("t1",), "t1", "t1", True),
])
def test_a_move_is_allowed_when_each_of_its_parts_is(teams, from_team, to_team, allowed):
    lead = Principal("acme", "alice", "lead", teams=teams)
    request = {"person_id": "bob", "from_team_id": from_team, "to_team_id": to_team, "command_id": "m-1"}
    parts = policy.composite_parts("MovePersonToTeam", "acme", request)
    assert parts == [("RemoveTeamMember", Resource("acme", team_id=from_team)),
                     ("AddTeamMember", Resource("acme", team_id=to_team))]
    assert all(policy.allowed(lead, command, resource) for command, resource in parts) is allowed
    assert "MovePersonToTeam" not in policy.ACTIONS  # no action of its own: only its parts


def test_the_directory_beyond_members_and_own_details_is_admin_only():
    for role, rules in policy.RULES.items():
        granted = set().union(*(r.actions for r in rules)) & policy.DIRECTORY_COMMANDS
        if role == "admin":
            assert granted == policy.DIRECTORY_COMMANDS
        elif role == "lead":
            assert granted == {"AddTeamMember", "RemoveTeamMember", "UpdatePerson"}
        elif role == "member":
            assert granted == {"UpdatePerson"}
        else:
            assert not granted, role


@pytest.mark.parametrize("action, request_fields, resource", [
    ("UpdatePerson", {"person_id": "alice", "display_name": "Alice", "email": "", "command_id": "c"},
     Resource("acme", owner="alice", fields=frozenset({"display_name", "email"}))),
    ("UpdatePerson", {"person_id": "alice"}, Resource("acme", owner="alice")),
    ("AddPerson", {"person_id": "", "display_name": "New"},  # an id to be generated is nobody yet
     Resource("acme", owner=None, fields=frozenset({"display_name"}))),
    ("GrantRole", {"person_id": "bob", "role": "ADMIN"}, Resource("acme", owner="bob", fields=frozenset({"role"}))),
    ("AddTeamMember", {"team_id": "t1", "person_id": "bob"}, Resource("acme", team_id="t1")),
    ("CreateTeam", {"team_id": "", "name": "New"}, Resource("acme", team_id=None)),
])
def test_a_directory_commands_resource_comes_from_its_request(action, request_fields, resource):
    assert policy.directory_resource("acme", action, request_fields) == resource
