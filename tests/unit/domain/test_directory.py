"""The directory's rules as the domain model enforces them: people, their managers and
roles, teams, their parents, leads and members (docs/adr/0033; no I/O)."""

from __future__ import annotations

import json

import pytest

from okr.v1 import events_pb2
from okr_shared.domain import (
    STATE_TYPES,
    NotFound,
    Person,
    PreconditionFailed,
    Team,
    ValidationError,
    evolve,
    fold,
    target_stream,
)
from okr_shared.domain import commands as c
from okr_shared.domain.deciders import MAX_CHAIN, ROLES

from .world import World, refused


def directory() -> World:
    """Ana (admin) manages Ben; Cleo left; teams company > growth, growth led by Ana
    with Ben as a member."""
    w = World()
    w.run(c.AddPerson("ana", "Ana López", email="Ana@Example.com", time_zone="Europe/Madrid", language="en"))
    w.run(c.AddPerson("ben", "Ben", email="ben@example.com", manager_id="ana"))
    w.run(c.AddPerson("cleo", "李娜", language="zh-CN", time_zone="Asia/Shanghai"))
    w.run(c.DeactivatePerson("cleo", "left"))
    w.run(c.GrantRole("ana", "ADMIN"))
    w.run(c.CreateTeam("company", "Company"))
    w.run(c.CreateTeam("growth", "Growth", parent_team_id="company", external_id="okta-42"))
    w.run(c.AssignTeamLead("growth", "ana"))
    w.run(c.AddTeamMember("growth", "ben"))
    return w


def person(w: World, person_id: str) -> Person:
    return w.get(f"person-{person_id}")


def team(w: World, team_id: str) -> Team:
    return w.get(f"team-{team_id}")


# ------------------------------------------------------------------------ streams


@pytest.mark.parametrize("command,stream", [
    (c.AddPerson("p1", "P"), "person-p1"),
    (c.UpdatePerson("p1"), "person-p1"),
    (c.AssignManager("p1", "p2"), "person-p1"),
    (c.DeactivatePerson("p1"), "person-p1"),
    (c.ReactivatePerson("p1"), "person-p1"),
    (c.GrantRole("p1", "ADMIN"), "person-p1"),
    (c.RevokeRole("p1", "ADMIN"), "person-p1"),
    (c.CreateTeam("t1", "T"), "team-t1"),
    (c.RenameTeam("t1", "T"), "team-t1"),
    (c.MoveTeam("t1", "t2"), "team-t1"),
    (c.ArchiveTeam("t1"), "team-t1"),
    (c.AddTeamMember("t1", "p1"), "team-t1"),
    (c.RemoveTeamMember("t1", "p1"), "team-t1"),
    (c.AssignTeamLead("t1", "p1"), "team-t1"),
    (c.RemoveTeamLead("t1", "p1"), "team-t1"),
])
def test_every_directory_command_goes_to_its_person_or_team_stream(command, stream):
    assert target_stream(command) == stream


def test_a_stream_id_is_checked_like_every_id():
    with pytest.raises(ValidationError, match="person_id: must be an id"):
        target_stream(c.AddPerson("ana lópez", "Ana"))


# ------------------------------------------------------------------------- people


def test_a_person_joins_with_their_details_normalised():
    w = directory()
    assert person(w, "ana") == Person("ana", "Ana López", "ana@example.com", "", "Europe/Madrid", "en", "", "",
                                      active=True, roles=["ADMIN"], version=2)
    assert person(w, "ben").manager_id == "ana"
    assert (person(w, "cleo").display_name, person(w, "cleo").active) == ("李娜", False)


@pytest.mark.parametrize("kwargs,match", [
    ({"display_name": "  "}, "display_name: must not be empty"),
    ({"display_name": "x" * 201}, "display_name: must be at most 200"),
    ({"email": "ana"}, "email: must be an e-mail address"),
    ({"email": "ana@localhost"}, "email: must be an e-mail address"),
    ({"email": "a b@example.com"}, "email: must be an e-mail address"),
    ({"email": "a" * 250 + "@x.io"}, "email: must be at most 254"),
    ({"time_zone": "Mars/Olympus"}, "time_zone: must be an IANA time zone"),
    ({"time_zone": "../../etc/passwd"}, "time_zone: must be an IANA time zone"),
    ({"language": "fr"}, "language: must be one of en, zh-CN"),
    ({"manager_id": "no such id"}, "manager_id: must be an id"),
    ({"user_name": "x" * 201}, "user_name: must be at most 200"),
    ({"external_id": "x\x00"}, "external_id: must not contain control characters"),
])
def test_a_new_persons_fields_are_validated(kwargs, match):
    refused(directory(), c.AddPerson(**{"person_id": "dan", "display_name": "Dan", **kwargs}),
            ValidationError, match)


@pytest.mark.parametrize("command,error,match", [
    (c.AddPerson("ana", "Ana again"), PreconditionFailed, "person_exists"),
    (c.AddPerson("dan", "Dan", manager_id="zoe"), NotFound, "person 'zoe' not found"),
    (c.AddPerson("dan", "Dan", manager_id="cleo"), PreconditionFailed, "manager_inactive"),
    (c.AddPerson("dan", "Dan", manager_id="dan"), ValidationError, "manager_id: .* own manager"),
    (c.UpdatePerson("zoe", display_name="Zoe"), NotFound, "person 'zoe' not found"),
    (c.UpdatePerson("ben", email="ben@"), ValidationError, "email"),
    (c.AssignManager("zoe", "ana"), NotFound, "person 'zoe' not found"),
    (c.AssignManager("ana", "zoe"), NotFound, "person 'zoe' not found"),
    (c.AssignManager("ana", "ana"), ValidationError, "manager_id: .* own manager"),
    (c.AssignManager("ana", "cleo"), PreconditionFailed, "manager_inactive"),
    (c.AssignManager("ana", "ben"), PreconditionFailed, "manager_cycle"),
    (c.DeactivatePerson("cleo"), PreconditionFailed, "person_inactive"),
    (c.DeactivatePerson("zoe"), NotFound, "person 'zoe' not found"),
    (c.ReactivatePerson("ana"), PreconditionFailed, "person_active"),
    (c.GrantRole("ben", "OWNER"), ValidationError, "role: must be one of ADMIN, AUDITOR, OBSERVER"),
    (c.GrantRole("cleo", "AUDITOR"), PreconditionFailed, "person_inactive"),
    (c.GrantRole("zoe", "AUDITOR"), NotFound, "person 'zoe' not found"),
    (c.RevokeRole("ben", "ADMIN"), PreconditionFailed, "role_not_held"),
    (c.RevokeRole("ben", "admin"), ValidationError, "role: must be one of"),
])
def test_people_commands_are_refused_when_a_rule_forbids_them(command, error, match):
    refused(directory(), command, error, match)


def test_updating_a_person_changes_the_given_details_and_records_them_all():
    w = directory()
    (event,) = w.run(c.UpdatePerson("ben", display_name=" Ben Okafor ", email="BEN.O@example.com",
                                    time_zone="Africa/Lagos"))
    assert (event.display_name, event.email, event.time_zone, event.language) == (
        "Ben Okafor", "ben.o@example.com", "Africa/Lagos", "")
    w.run(c.UpdatePerson("ben", language="zh-CN", user_name="bokafor", external_id="00u1"))
    ben = person(w, "ben")
    assert (ben.display_name, ben.email, ben.language, ben.user_name, ben.external_id, ben.manager_id) == (
        "Ben Okafor", "ben.o@example.com", "zh-CN", "bokafor", "00u1", "ana")
    w.run(c.UpdatePerson("ben", time_zone="", email=""))  # empty: the tenant's zone, no address
    assert (person(w, "ben").time_zone, person(w, "ben").email) == ("", "")


def test_a_deactivated_persons_details_may_still_change():
    w = directory()
    w.run(c.UpdatePerson("cleo", email="cleo@example.com"))
    assert person(w, "cleo").email == "cleo@example.com"


@pytest.mark.parametrize("command", [
    c.UpdatePerson("ana"),
    c.UpdatePerson("ana", display_name=" Ana López ", email="ANA@example.com", language="en"),
    c.AssignManager("ben", "ana"),
    c.AssignManager("ana", ""),
    c.GrantRole("ana", "ADMIN"),
    c.RenameTeam("growth", " Growth "),
    c.MoveTeam("growth", "company"),
    c.MoveTeam("company", ""),
    c.AddTeamMember("growth", "ben"),
    c.AssignTeamLead("growth", "ana"),
])
def test_a_directory_command_that_changes_nothing_stores_nothing(command):
    """Idempotent: no events; the executor then stores nothing and answers OK."""
    w = directory()
    before = w.snapshot()
    assert w.run(command) == []
    assert w.snapshot() == before


def test_a_manager_is_assigned_changed_and_removed_with_the_old_one_recorded():
    w = directory()
    w.run(c.AddPerson("dan", "Dan"))
    (event,) = w.run(c.AssignManager("ben", "dan"))
    assert (event.old_manager_id, event.new_manager_id) == ("ana", "dan")
    (event,) = w.run(c.AssignManager("ben"))
    assert (event.old_manager_id, event.new_manager_id) == ("dan", "")
    assert person(w, "ben").manager_id == ""


def test_the_manager_chain_never_closes_a_circle():
    w = World()
    for name in ("a", "b", "c", "d"):
        w.run(c.AddPerson(name, name.upper()))
    w.run(c.AssignManager("b", "a"))
    w.run(c.AssignManager("c", "b"))
    w.run(c.AssignManager("d", "c"))
    error = refused(w, c.AssignManager("a", "d"), PreconditionFailed, "manager_cycle")
    assert "'d' reports (through their managers) to 'a'" in str(error)
    w.run(c.AssignManager("d", "a"))  # a shortcut, no circle
    assert person(w, "d").manager_id == "a"


@pytest.mark.parametrize("add,attach,rule", [
    (lambda i, up: c.AddPerson(i, i.upper(), manager_id=up), c.AssignManager, "manager_chain_too_long"),
    (lambda i, up: c.CreateTeam(i, i.upper(), parent_team_id=up), c.MoveTeam, "team_chain_too_long"),
])
def test_a_manager_or_parent_chain_is_walked_a_bounded_number_of_levels(add, attach, rule):
    w = World()
    w.run(add("n0", ""))
    for i in range(1, MAX_CHAIN + 1):  # n<i> is below n<i-1>: n100 has 100 levels above and up to it
        w.run(add(f"n{i}", f"n{i - 1}"))
    w.run(add("new", ""))
    refused(w, attach("new", f"n{MAX_CHAIN}"), PreconditionFailed, rule)
    w.run(attach("new", f"n{MAX_CHAIN - 1}"))


def test_a_person_leaves_and_comes_back_with_their_roles():
    w = directory()
    w.run(c.GrantRole("ana", "AUDITOR"))
    (event,) = w.run(c.DeactivatePerson("ana", reason="sabbatical"))
    assert event.reason == "sabbatical"
    assert (person(w, "ana").active, person(w, "ana").roles) == (False, ["ADMIN", "AUDITOR"])
    w.run(c.ReactivatePerson("ana"))
    assert person(w, "ana").active


def test_roles_are_granted_and_revoked_by_their_full_enum_names():
    w = directory()
    (event,) = w.run(c.GrantRole("ben", "OBSERVER"))
    assert event.role == 3  # DIRECTORY_ROLE_OBSERVER
    assert w.streams["person-ben"][-1] == ("okr.v1.RoleGranted", {"person_id": "ben",
                                                                 "role": "DIRECTORY_ROLE_OBSERVER"})
    w.run(c.GrantRole("ben", "AUDITOR"))
    assert person(w, "ben").roles == ["AUDITOR", "OBSERVER"]
    w.run(c.RevokeRole("ben", "OBSERVER"))
    assert person(w, "ben").roles == ["AUDITOR"]


def test_the_roles_are_the_contracts_directory_roles():
    names = {v.name.removeprefix("DIRECTORY_ROLE_") for v in events_pb2.DirectoryRole.DESCRIPTOR.values}
    assert names - {"UNSPECIFIED"} == set(ROLES)


# ------------------------------------------------------------------------- teams


def test_a_team_has_a_name_a_parent_leads_and_members():
    w = directory()
    assert team(w, "growth") == Team("growth", "Growth", "company", "okta-42", active=True, leads=["ana"],
                                     members=["ben"], version=3)
    assert team(w, "company").parent_team_id == ""


@pytest.mark.parametrize("command,error,match", [
    (c.CreateTeam("growth", "Growth 2"), PreconditionFailed, "team_exists"),
    (c.CreateTeam("t", " "), ValidationError, "name: must not be empty"),
    (c.CreateTeam("t", "x" * 201), ValidationError, "name: must be at most 200"),
    (c.CreateTeam("t", "T", parent_team_id="nowhere"), NotFound, "team 'nowhere' not found"),
    (c.CreateTeam("t", "T", parent_team_id="t"), ValidationError, "parent_team_id: .* own parent"),
    (c.CreateTeam("t", "T", parent_team_id="a b"), ValidationError, "parent_team_id: must be an id"),
    (c.RenameTeam("nowhere", "X"), NotFound, "team 'nowhere' not found"),
    (c.RenameTeam("growth", ""), ValidationError, "name: must not be empty"),
    (c.MoveTeam("company", "growth"), PreconditionFailed, "team_cycle"),
    (c.MoveTeam("growth", "growth"), ValidationError, "parent_team_id: .* own parent"),
    (c.MoveTeam("growth", "nowhere"), NotFound, "team 'nowhere' not found"),
    (c.ArchiveTeam("nowhere"), NotFound, "team 'nowhere' not found"),
    (c.AddTeamMember("growth", "zoe"), NotFound, "person 'zoe' not found"),
    (c.AddTeamMember("growth", "cleo"), PreconditionFailed, "person_inactive"),
    (c.AddTeamMember("nowhere", "ben"), NotFound, "team 'nowhere' not found"),
    (c.AssignTeamLead("growth", "cleo"), PreconditionFailed, "person_inactive"),
    (c.AssignTeamLead("growth", "zoe"), NotFound, "person 'zoe' not found"),
    (c.RemoveTeamMember("growth", "ana"), PreconditionFailed, "not_a_member"),
    (c.RemoveTeamLead("growth", "ben"), PreconditionFailed, "not_a_lead"),
    (c.RemoveTeamMember("growth", "a b"), ValidationError, "person_id: must be an id"),
])
def test_team_commands_are_refused_when_a_rule_forbids_them(command, error, match):
    refused(directory(), command, error, match)


def test_a_team_is_renamed_and_moved_with_the_old_values_recorded():
    w = directory()
    (renamed,) = w.run(c.RenameTeam("growth", "Growth & Retention"))
    assert (renamed.old_name, renamed.new_name, renamed.external_id) == ("Growth", "Growth & Retention", "okta-42")
    w.run(c.CreateTeam("sales", "Sales"))
    (moved,) = w.run(c.MoveTeam("growth", "sales"))
    assert (moved.old_parent_team_id, moved.new_parent_team_id) == ("company", "sales")
    (moved,) = w.run(c.MoveTeam("growth"))
    assert (moved.old_parent_team_id, moved.new_parent_team_id) == ("sales", "")
    assert (team(w, "growth").name, team(w, "growth").parent_team_id) == ("Growth & Retention", "")


def test_the_team_tree_never_closes_a_circle():
    w = World()
    w.run(c.CreateTeam("a", "A"))
    w.run(c.CreateTeam("b", "B", parent_team_id="a"))
    w.run(c.CreateTeam("c", "C", parent_team_id="b"))
    error = refused(w, c.MoveTeam("a", "c"), PreconditionFailed, "team_cycle")
    assert "'c' is below 'a'" in str(error)
    w.run(c.MoveTeam("c", "a"))
    assert team(w, "c").parent_team_id == "a"


def test_members_and_leads_come_and_go():
    w = directory()
    w.run(c.AddPerson("dan", "Dan"))
    w.run(c.AddTeamMember("growth", "dan"))
    w.run(c.AddTeamMember("growth", "ana"))
    w.run(c.AssignTeamLead("growth", "dan"))
    assert (team(w, "growth").members, team(w, "growth").leads) == (["ana", "ben", "dan"], ["ana", "dan"])
    w.run(c.RemoveTeamMember("growth", "ben"))
    w.run(c.RemoveTeamLead("growth", "ana"))
    assert (team(w, "growth").members, team(w, "growth").leads) == (["ana", "dan"], ["dan"])
    w.run(c.DeactivatePerson("dan"))
    w.run(c.RemoveTeamMember("growth", "dan"))  # a leaver can still be taken off a team
    assert team(w, "growth").members == ["ana"]


def test_archiving_a_team_removes_its_leads_and_members_first_then_freezes_it():
    w = directory()
    events = w.run(c.ArchiveTeam("growth", reason="merged into sales"))
    assert [type(e).__name__ for e in events] == ["TeamLeadRemoved", "TeamMemberRemoved", "TeamArchived"]
    assert events[-1].reason == "merged into sales"
    growth = team(w, "growth")
    assert (growth.active, growth.leads, growth.members) == (False, [], [])
    for command in (c.ArchiveTeam("growth"), c.RenameTeam("growth", "X"), c.MoveTeam("growth", ""),
                    c.AddTeamMember("growth", "ben"), c.AssignTeamLead("growth", "ben"),
                    c.RemoveTeamMember("growth", "ben"), c.RemoveTeamLead("growth", "ana")):
        refused(w, command, PreconditionFailed, "team_archived")
    refused(w, c.CreateTeam("sub", "Sub", parent_team_id="growth"), PreconditionFailed, "team_archived")
    refused(w, c.MoveTeam("company", "growth"), PreconditionFailed, "team_archived")


# ------------------------------------------------------------------ folds, snapshots


def test_only_person_added_and_team_created_start_a_directory_stream():
    with pytest.raises(ValueError, match="TeamMemberAdded cannot apply to no state"):
        fold([("okr.v1.TeamMemberAdded", {"team_id": "t", "person_id": "p"})])
    ana = fold([("okr.v1.PersonAdded", {"person_id": "ana", "display_name": "Ana"})])
    with pytest.raises(ValueError, match="PersonAdded cannot apply to Person"):
        fold([("okr.v1.PersonAdded", {"person_id": "ana", "display_name": "Ana"})], ana)


def test_directory_states_round_trip_through_their_snapshot_dicts():
    w = directory()
    w.run(c.GrantRole("ben", "AUDITOR"))
    assert {"person", "team"} <= set(STATE_TYPES)
    for stream in w.streams:
        state = w.get(stream)
        assert isinstance(state, STATE_TYPES[stream.partition("-")[0]])
        d = state.to_dict()
        assert type(state).from_dict(d) == state
        assert type(state).from_dict(json.loads(json.dumps(d))) == state


def test_evolve_leaves_the_given_directory_state_untouched():
    w = directory()
    growth, ana = team(w, "growth"), person(w, "ana")
    after = evolve(growth, "okr.v1.TeamMemberAdded", {"team_id": "growth", "person_id": "zed"})
    assert (after.members, growth.members) == (["ben", "zed"], ["ben"])
    after = evolve(ana, "okr.v1.RoleRevoked", {"person_id": "ana", "role": "DIRECTORY_ROLE_ADMIN"})
    assert (after.roles, ana.roles, after.version) == ([], ["ADMIN"], ana.version + 1)


def test_folding_each_stream_event_by_event_gives_the_state_the_deciders_saw():
    w = directory()
    for stream, events in w.streams.items():
        state = None
        for event_type, data in events:
            state = evolve(state, event_type, data)
        assert state == fold(events) and state.version == len(events)
