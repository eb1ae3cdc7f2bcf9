"""DirectoryService as an integrator sees it (docs/api.md "DirectoryService"): an admin
builds a small organisation — people, teams, a manager, a lead, members — and reads it
back, searching and paging; the other roles are refused what the role matrix refuses
them; another tenant's person answers exactly like one that does not exist; bad input is
INVALID_ARGUMENT naming the field and stores nothing.

Directory reads come from a read model fed from the bus: a test that reads its write
waits for it (``eventually``), as docs/api.md tells a client to."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest

from .contract_suite import auth, code_of, refusal, trailers
from okr.v1 import directory_pb2 as d, directory_pb2_grpc, events_pb2
from tests.waiting import wait_until

ADMIN_ROLE = events_pb2.DIRECTORY_ROLE_ADMIN


def eventually(read, check, message: str):
    """``read()`` once ``check`` holds for its answer (a NOT_FOUND meanwhile: not yet)."""
    def attempt():
        try:
            answer = read()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return None
        return answer if check(answer) else None
    return wait_until(attempt, timeout=30, interval=0.05, message=message)


@dataclass
class Org:
    stub: directory_pb2_grpc.DirectoryServiceStub
    tenant: str
    admin: str
    keys: dict


@pytest.fixture(scope="module")
def org(suite) -> Org:
    """Tenant of an admin with: ceo; ana (managed by ceo, lead of sales); bob and cy
    (members of sales-east, below sales); ops, a team of its own; keys for bob (member),
    ana (lead of sales and sales-east), vic (viewer) and a service."""
    tenant, admin = suite.new_tenant("admin")
    stub = directory_pb2_grpc.DirectoryServiceStub(suite.channel)
    md = auth(admin)
    people = [("ceo", "Chief Executive", "ceo@acme.example"), ("ana", "Ana López", "ana@acme.example"),
              ("bob", "Bob Stone", "bob@acme.example"), ("cy", "Cy Twombly", ""), ("vic", "Vic Viewer", "")]
    for person_id, name, email in people:
        stub.AddPerson(d.AddPersonRequest(person_id=person_id, display_name=name, email=email,
                                          time_zone="Europe/Madrid", language="en"), metadata=md, timeout=30)
    stub.AssignManager(d.AssignManagerRequest(person_id="ana", manager_id="ceo"), metadata=md, timeout=30)
    stub.CreateTeam(d.CreateTeamRequest(team_id="sales", name="Sales"), metadata=md, timeout=30)
    stub.CreateTeam(d.CreateTeamRequest(team_id="sales-east", name="Sales East", parent_team_id="sales"),
                    metadata=md, timeout=30)
    stub.CreateTeam(d.CreateTeamRequest(team_id="ops", name="Operations"), metadata=md, timeout=30)
    stub.AssignTeamLead(d.AssignTeamLeadRequest(team_id="sales", person_id="ana"), metadata=md, timeout=30)
    for person_id in ("bob", "cy"):
        stub.AddTeamMember(d.AddTeamMemberRequest(team_id="sales-east", person_id=person_id), metadata=md,
                           timeout=30)
    keys = {"member": suite.key(tenant, "member", "bob"),
            "lead": suite.key(tenant, "lead", "ana", teams=("sales", "sales-east")),
            "viewer": suite.key(tenant, "viewer", "vic"),
            "service": suite.key(tenant, "service", "feed")}
    eventually(lambda: stub.GetTeam(d.GetTeamRequest(team_id="sales-east"), metadata=md, timeout=30),
               lambda team: list(team.member_ids) == ["bob", "cy"], "the organisation in the directory")
    return Org(stub, tenant, admin, keys)


# --------------------------------------------------------------------- an admin


def test_an_admin_creates_people_and_teams_and_reads_them_back(org):
    md = auth(org.admin)
    ana = eventually(lambda: org.stub.GetPerson(d.GetPersonRequest(person_id="ana"), metadata=md, timeout=30),
                     lambda p: list(p.lead_of_team_ids) == ["sales"] and p.manager_id == "ceo", "ana as lead")
    assert (ana.display_name, ana.email, ana.time_zone, ana.language, ana.active) == (
        "Ana López", "ana@acme.example", "Europe/Madrid", "en", True)
    assert ana.version >= 2 and ana.created_at and ana.updated_at
    sales = org.stub.GetTeam(d.GetTeamRequest(team_id="sales"), metadata=md, timeout=30)
    assert (sales.name, list(sales.lead_ids), list(sales.child_team_ids)) == ("Sales", ["ana"], ["sales-east"])
    east = org.stub.GetTeam(d.GetTeamRequest(team_id="sales-east"), metadata=md, timeout=30)
    assert (east.parent_team_id, list(east.member_ids)) == ("sales", ["bob", "cy"])


def test_an_admin_grants_a_role_and_a_generated_id_comes_back(org):
    md = auth(org.admin)
    created = org.stub.AddPerson(d.AddPersonRequest(display_name="Dee Generated"), metadata=md, timeout=30)
    assert created.created_id and created.stream_id == f"person-{created.created_id}"
    assert list(created.event_types) == ["okr.v1.PersonAdded"]
    granted = org.stub.GrantRole(d.GrantRoleRequest(person_id=created.created_id,
                                                    role=events_pb2.DIRECTORY_ROLE_AUDITOR), metadata=md, timeout=30)
    assert list(granted.event_types) == ["okr.v1.RoleGranted"]
    person = eventually(lambda: org.stub.GetPerson(d.GetPersonRequest(person_id=created.created_id), metadata=md,
                                                   timeout=30),
                        lambda p: list(p.roles) == [events_pb2.DIRECTORY_ROLE_AUDITOR], "the granted role")
    assert person.display_name == "Dee Generated"


def test_a_move_takes_a_person_out_of_one_team_into_another_and_a_retry_stores_nothing(org):
    md = auth(org.admin)
    org.stub.AddPerson(d.AddPersonRequest(person_id="mo", display_name="Mo Mover"), metadata=md, timeout=30)
    org.stub.AddTeamMember(d.AddTeamMemberRequest(team_id="ops", person_id="mo"), metadata=md, timeout=30)
    move = d.MovePersonToTeamRequest(person_id="mo", from_team_id="ops", to_team_id="sales", command_id="move-mo-1")
    moved = org.stub.MovePersonToTeam(move, metadata=md, timeout=30)
    assert moved.event_types == ["okr.v1.TeamMemberRemoved", "okr.v1.TeamMemberAdded"] and not moved.already_stored
    again = org.stub.MovePersonToTeam(move, metadata=md, timeout=30)
    assert again.already_stored
    mo = eventually(lambda: org.stub.GetPerson(d.GetPersonRequest(person_id="mo"), metadata=md, timeout=30),
                    lambda p: list(p.team_ids) == ["sales"], "mo in sales only")
    assert mo.active


def test_lists_search_and_page_in_a_stable_order(org):
    md = auth(org.admin)
    names = ["Pager Echo", "Pager Bravo", "Pager Delta", "Pager Alpha", "Pager Charlie"]
    for i, name in enumerate(names):
        org.stub.AddPerson(d.AddPersonRequest(person_id=f"pager-{i}", display_name=name,
                                              email=f"pager{i}@acme.example"), metadata=md, timeout=30)
    first = eventually(lambda: org.stub.ListPeople(d.ListPeopleRequest(query="pAgEr", page_size=2), metadata=md,
                                                   timeout=30),
                       lambda page: page.total_size == 5, "five people matching 'pager'")
    seen, page = [], first
    while True:
        assert page.total_size == 5 and len(page.people) <= 2
        seen += [p.person_id for p in page.people]
        if not page.next_page_token:
            break
        page = org.stub.ListPeople(d.ListPeopleRequest(query="pAgEr", page_size=2, page_token=page.next_page_token),
                                   metadata=md, timeout=30)
    assert len(seen) == len(set(seen)) == 5
    by_name = {f"pager-{i}": name for i, name in enumerate(names)}
    assert [by_name[i] for i in seen] == sorted(names)  # by display name, whatever the order they came in
    # the search covers e-mail addresses and ids too, and the team filter
    assert [p.person_id for p in org.stub.ListPeople(d.ListPeopleRequest(query="pager3@"), metadata=md,
                                                     timeout=30).people] == ["pager-3"]
    members = org.stub.ListPeople(d.ListPeopleRequest(team_id="ops", query="o"), metadata=md, timeout=30)
    assert all("ops" in p.team_ids for p in members.people) and members.total_size == len(members.people)
    teams = org.stub.ListTeams(d.ListTeamsRequest(parent_team_id="sales"), metadata=md, timeout=30)
    assert [t.team_id for t in teams.teams] == ["sales-east"]
    found = org.stub.ListTeams(d.ListTeamsRequest(query="OPERA"), metadata=md, timeout=30)
    assert [t.team_id for t in found.teams] == ["ops"] and not found.next_page_token


# ---------------------------------------------------------------- the role matrix


def _code(org, role, method, request):
    return code_of(getattr(org.stub, method), request, metadata=auth(org.keys[role]), timeout=30)


@pytest.mark.parametrize("role, method, request_, expected", [
    # a member reads, and changes only their own display name, time zone and language
    ("member", "GetPerson", d.GetPersonRequest(person_id="ana"), "OK"),
    ("member", "ListTeams", d.ListTeamsRequest(), "OK"),
    ("member", "AddPerson", d.AddPersonRequest(display_name="Nope"), "PERMISSION_DENIED"),
    ("member", "CreateTeam", d.CreateTeamRequest(name="Nope"), "PERMISSION_DENIED"),
    ("member", "AddTeamMember", d.AddTeamMemberRequest(team_id="sales-east", person_id="ana"), "PERMISSION_DENIED"),
    ("member", "UpdatePerson", d.UpdatePersonRequest(person_id="ana", display_name="Not mine"), "PERMISSION_DENIED"),
    ("member", "UpdatePerson", d.UpdatePersonRequest(person_id="bob", display_name="Bob S.", time_zone="Asia/Shanghai",
                                                     language="zh-CN"), "OK"),
    ("member", "GrantRole", d.GrantRoleRequest(person_id="bob", role=ADMIN_ROLE), "PERMISSION_DENIED"),
    # a lead adds and removes members of the teams they lead, and nothing else of the directory
    # (what a lead may do: test_a_lead_manages_the_members_of_the_teams_they_lead)
    ("lead", "AddTeamMember", d.AddTeamMemberRequest(team_id="ops", person_id="cy"), "PERMISSION_DENIED"),
    ("lead", "MovePersonToTeam", d.MovePersonToTeamRequest(person_id="cy", from_team_id="sales-east",
                                                           to_team_id="ops"), "PERMISSION_DENIED"),
    ("lead", "AssignTeamLead", d.AssignTeamLeadRequest(team_id="sales-east", person_id="bob"), "PERMISSION_DENIED"),
    ("lead", "RenameTeam", d.RenameTeamRequest(team_id="sales", name="Sales!"), "PERMISSION_DENIED"),
    ("lead", "DeactivatePerson", d.DeactivatePersonRequest(person_id="bob"), "PERMISSION_DENIED"),
    ("lead", "UpdatePerson", d.UpdatePersonRequest(person_id="bob", display_name="Bob"), "PERMISSION_DENIED"),
    # a viewer reads and writes nothing, not even their own details
    ("viewer", "ListPeople", d.ListPeopleRequest(), "OK"),
    ("viewer", "GetTeam", d.GetTeamRequest(team_id="ops"), "OK"),
    ("viewer", "UpdatePerson", d.UpdatePersonRequest(person_id="vic", display_name="Vic V."), "PERMISSION_DENIED"),
    ("viewer", "AddTeamMember", d.AddTeamMemberRequest(team_id="ops", person_id="vic"), "PERMISSION_DENIED"),
    # a machine key does not read the directory
    ("service", "GetPerson", d.GetPersonRequest(person_id="ana"), "PERMISSION_DENIED"),
    ("service", "ListPeople", d.ListPeopleRequest(), "PERMISSION_DENIED"),
    ("service", "AddPerson", d.AddPersonRequest(display_name="Bot"), "PERMISSION_DENIED"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_each_role_may_do_what_the_matrix_says(org, role, method, request_, expected):
    assert _code(org, role, method, request_).name == expected


def test_a_lead_manages_the_members_of_the_teams_they_lead(org):
    """ana leads sales (and so sales-east, below it): she takes cy out of sales-east into
    sales and back, and the directory shows each step."""
    md, lead = auth(org.admin), auth(org.keys["lead"])
    org.stub.AddPerson(d.AddPersonRequest(person_id="eve", display_name="Eve Member"), metadata=md, timeout=30)
    org.stub.AddTeamMember(d.AddTeamMemberRequest(team_id="sales", person_id="eve"), metadata=lead, timeout=30)
    moved = org.stub.MovePersonToTeam(d.MovePersonToTeamRequest(person_id="eve", from_team_id="sales",
                                                                to_team_id="sales-east"), metadata=lead, timeout=30)
    assert list(moved.event_types) == ["okr.v1.TeamMemberRemoved", "okr.v1.TeamMemberAdded"]
    eventually(lambda: org.stub.GetPerson(d.GetPersonRequest(person_id="eve"), metadata=lead, timeout=30),
               lambda p: list(p.team_ids) == ["sales-east"], "eve in sales-east")
    org.stub.RemoveTeamMember(d.RemoveTeamMemberRequest(team_id="sales-east", person_id="eve"), metadata=lead,
                              timeout=30)
    eventually(lambda: org.stub.GetPerson(d.GetPersonRequest(person_id="eve"), metadata=lead, timeout=30),
               lambda p: list(p.team_ids) == [], "eve in no team")


@pytest.mark.parametrize("field, value", [("email", "bob@elsewhere.example"), ("user_name", "bobby"),
                                          ("external_id", "idp-1")])
def test_a_person_may_not_set_the_details_that_are_the_admins(org, field, value):
    request = d.UpdatePersonRequest(person_id="bob", display_name="Bob")
    setattr(request, field, value)
    error = refusal(org.stub.UpdatePerson, request, metadata=auth(org.keys["member"]), timeout=30)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert trailers(error).get("okr-field") == field and error.details().startswith(f"{field}: ")


def test_who_am_i_answers_every_principal(org):
    me = org.stub.WhoAmI(d.WhoAmIRequest(), metadata=auth(org.keys["lead"]), timeout=30)
    assert (me.tenant_id, me.subject, me.via, me.role) == (org.tenant, "ana", "api_key", "lead")
    assert set(me.teams) == {"sales", "sales-east"}
    assert me.HasField("person") and me.person.display_name == "Ana López"
    machine = org.stub.WhoAmI(d.WhoAmIRequest(), metadata=auth(org.keys["service"]), timeout=30)
    assert (machine.subject, machine.role) == ("feed", "service") and not machine.HasField("person")


# ---------------------------------------------------------------- tenants, input


def test_another_tenants_person_answers_exactly_like_a_missing_one(suite, org):
    _, theirs = suite.new_tenant("admin")
    org.stub.AddPerson(d.AddPersonRequest(person_id="zed", display_name="Zed Elsewhere"), metadata=auth(theirs),
                       timeout=30)
    eventually(lambda: org.stub.GetPerson(d.GetPersonRequest(person_id="zed"), metadata=auth(theirs), timeout=30),
               bool, "zed in the other tenant")
    md = auth(org.admin)
    answers = {}
    for person_id in ("zed", "nobody"):
        error = refusal(org.stub.GetPerson, d.GetPersonRequest(person_id=person_id), metadata=md, timeout=30)
        answers[person_id] = (error.code(), error.details().replace(person_id, "<id>"),
                              {k: v.replace(person_id, "<id>") for k, v in trailers(error).items()
                               if k.startswith("okr-")})
    assert answers["zed"] == answers["nobody"]
    code, details, metadata = answers["zed"]
    assert code == grpc.StatusCode.NOT_FOUND and details == "person '<id>' not found"
    assert metadata == {"okr-kind": "not_found", "okr-entity": "person", "okr-id": "<id>"}
    # a command naming them too
    for manager in ("zed", "nobody"):
        error = refusal(org.stub.AssignManager, d.AssignManagerRequest(person_id="bob", manager_id=manager),
                        metadata=md, timeout=30)
        assert error.code() == grpc.StatusCode.NOT_FOUND and trailers(error).get("okr-id") == manager


@pytest.mark.parametrize("method, request_, field", [
    ("AddPerson", d.AddPersonRequest(person_id="bad-1", display_name=""), "display_name"),
    ("AddPerson", d.AddPersonRequest(person_id="bad-2", display_name="   "), "display_name"),
    ("AddPerson", d.AddPersonRequest(person_id="bad-3", display_name="X", email="not-an-address"), "email"),
    ("AddPerson", d.AddPersonRequest(person_id="bad-4", display_name="X", email="a@b@acme.example"), "email"),
    ("AddPerson", d.AddPersonRequest(person_id="bad-5", display_name="X", time_zone="Mars/Olympus_Mons"),
     "time_zone"),
    ("AddPerson", d.AddPersonRequest(person_id="bad-6", display_name="X", language="fr"), "language"),
    ("AddPerson", d.AddPersonRequest(person_id="bad-7", display_name="X" * 201), "display_name"),
    ("AddPerson", d.AddPersonRequest(person_id="bad id", display_name="X"), "person_id"),
    ("UpdatePerson", d.UpdatePersonRequest(person_id="bob", email="bob@"), "email"),
    ("UpdatePerson", d.UpdatePersonRequest(person_id="bob", display_name=""), "display_name"),
    ("GrantRole", d.GrantRoleRequest(person_id="bob"), "role"),
    ("CreateTeam", d.CreateTeamRequest(team_id="bad-team", name=""), "name"),
    ("ListPeople", d.ListPeopleRequest(page_size=501), "page_size"),
    ("ListTeams", d.ListTeamsRequest(page_size=501), "page_size"),
    ("ListPeople", d.ListPeopleRequest(page_token="not a token!"), "page_token"),
    ("ListTeams", d.ListTeamsRequest(page_token="bm90IGEgdG9rZW4"), "page_token"),
    ("ListPeople", d.ListPeopleRequest(query="q" * 201), "query"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_input_is_invalid_argument_naming_the_field_and_stores_nothing(org, method, request_, field):
    md = auth(org.admin)
    error = refusal(getattr(org.stub, method), request_, metadata=md, timeout=30)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    assert trailers(error).get("okr-field") == field, (trailers(error), error.details())
    if method == "AddPerson" and " " not in request_.person_id:
        assert code_of(org.stub.GetPerson, d.GetPersonRequest(person_id=request_.person_id), metadata=md,
                       timeout=30) == grpc.StatusCode.NOT_FOUND


def test_the_limits_hold_at_the_limit(org):
    md = auth(org.admin)
    org.stub.AddPerson(d.AddPersonRequest(person_id="long-name", display_name="N" * 200, time_zone="Asia/Shanghai",
                                          language="zh-CN", email=f"{'e' * 60}@acme.example"), metadata=md,
                       timeout=30)
    page = org.stub.ListPeople(d.ListPeopleRequest(page_size=500, query="q" * 200), metadata=md, timeout=30)
    assert page.total_size == 0 and not page.next_page_token
