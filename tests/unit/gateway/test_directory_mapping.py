"""DirectoryService through the gateway's real handler table (Gateway.handlers) with an
in-process RPC client that records each call and answers as the nameko ``directory``
service would: which service and method a call reaches with which keyword arguments, how
its reply becomes the response, what is refused before anything is forwarded (the role
matrix, a person's own details, page sizes), and WhoAmI from the principal and its person."""

from __future__ import annotations

from types import SimpleNamespace

import grpc
import pytest

from okr.v1 import directory_pb2 as d, events_pb2
from okr_services.gateway.auth import Principal
from okr_services.gateway.config import GatewayConfig
from okr_services.gateway.rpc_client import RemoteError
from okr_services.gateway.server import Gateway

ADMIN = Principal("acme", "ada", "admin")
MEMBER = Principal("acme", "bob", "member")
LEAD = Principal("acme", "lin", "lead", teams=("sales", "sales-east"))
VIEWER = Principal("acme", "vic", "viewer")
SERVICE = Principal("acme", "feed", "service", via="jwt")

REPLY = {"stream_id": "person-p1", "version": 1, "positions": [7], "event_types": ["okr.v1.PersonAdded"],
         "aggregate_id": "p1", "person_id": "p1"}
PERSON = {"person_id": "bob", "display_name": "Bob", "email": "bob@acme.example", "active": True,
          "team_ids": ["sales"], "lead_of_team_ids": [], "roles": ["AUDITOR"], "version": 4,
          "created_at": "2026-12-01T09:00:00+00:00", "updated_at": "2026-12-02T09:00:00+00:00"}


#: The nameko directory service's RPC of each command (written out, not derived).
NAMES = {"AddPerson": "add_person", "UpdatePerson": "update_person", "AssignManager": "assign_manager",
         "DeactivatePerson": "deactivate_person", "ReactivatePerson": "reactivate_person", "GrantRole": "grant_role",
         "RevokeRole": "revoke_role", "CreateTeam": "create_team", "RenameTeam": "rename_team",
         "MoveTeam": "move_team", "ArchiveTeam": "archive_team", "AddTeamMember": "add_team_member",
         "RemoveTeamMember": "remove_team_member", "MovePersonToTeam": "move_person_to_team",
         "AssignTeamLead": "assign_team_lead", "RemoveTeamLead": "remove_team_lead"}


class Rpc:
    """Answers ``(service, method) -> reply`` (a value, or an exception to raise) and keeps
    every call as (service, method, kwargs, context data)."""

    def __init__(self, replies=None):
        self.replies = dict(replies or {})
        self.calls: list[tuple[str, str, dict, dict]] = []

    def call(self, service, method, kwargs, context_data=None, timeout=None):
        self.calls.append((service, method, dict(kwargs), dict(context_data or {})))
        reply = self.replies.get((service, method), REPLY)
        if isinstance(reply, BaseException):
            raise reply
        return reply


class Refused(Exception):
    pass


class Context:
    """The part of a grpc ServicerContext the handlers use."""

    def __init__(self):
        self.code = grpc.StatusCode.OK
        self.details = ""
        self.trailers: dict[str, str] = {}

    def invocation_metadata(self):
        return ()

    def time_remaining(self):
        return None

    def set_trailing_metadata(self, metadata):
        self.trailers = dict(metadata)

    def abort(self, code, details):
        self.code, self.details = code, details
        raise Refused(code)


def _handlers(gateway: Gateway) -> dict[str, object]:
    out = {}
    for generic in gateway.handlers():
        for method in d.DESCRIPTOR.services_by_name["DirectoryService"].methods:
            handler = generic.service(SimpleNamespace(method=f"/okr.v1.DirectoryService/{method.name}"))
            if handler is not None:
                out[method.name] = handler
    return out


def call(rpc: Rpc, principal: Principal, method: str, request):
    """(response or None, context) of ``method`` called by ``principal``."""
    gateway = Gateway(GatewayConfig(), rpc=rpc, jwt_config=None, keys_engine=None)
    gateway._principal = lambda context: principal
    context = Context()
    handler = _handlers(gateway)[method]
    try:
        return handler.unary_unary(request.SerializeToString(), context), context
    except Refused:
        return None, context


def test_every_rpc_of_the_directory_has_a_handler():
    names = {m.name for m in d.DESCRIPTOR.services_by_name["DirectoryService"].methods}
    gateway = Gateway(GatewayConfig(), rpc=Rpc(), jwt_config=None, keys_engine=None)
    assert set(_handlers(gateway)) == names
    assert "okr.v1.DirectoryService" in gateway.service_names()


@pytest.mark.parametrize("method, request_, kwargs", [
    ("AddPerson", d.AddPersonRequest(person_id="p1", display_name="Ana", email="ana@acme.example",
                                     time_zone="Asia/Shanghai", command_id="c-1"),
     {"person_id": "p1", "display_name": "Ana", "email": "ana@acme.example", "manager_id": "",
      "time_zone": "Asia/Shanghai", "language": "", "user_name": "", "external_id": "", "command_id": "c-1"}),
    # unset optional details are left out (kept as they are); one set to "" is a value
    ("UpdatePerson", d.UpdatePersonRequest(person_id="p1", email=""), {"person_id": "p1", "email": ""}),
    ("AssignManager", d.AssignManagerRequest(person_id="p1", manager_id="ada"),
     {"person_id": "p1", "manager_id": "ada"}),
    ("DeactivatePerson", d.DeactivatePersonRequest(person_id="p1", reason="left"),
     {"person_id": "p1", "reason": "left"}),
    ("ReactivatePerson", d.ReactivatePersonRequest(person_id="p1"), {"person_id": "p1", "reason": ""}),
    ("GrantRole", d.GrantRoleRequest(person_id="p1", role=events_pb2.DIRECTORY_ROLE_AUDITOR),
     {"person_id": "p1", "role": "AUDITOR"}),
    # the unspecified role is "not given": the service's missing argument names it
    ("RevokeRole", d.RevokeRoleRequest(person_id="p1"), {"person_id": "p1"}),
    ("CreateTeam", d.CreateTeamRequest(name="Sales"),
     {"team_id": "", "name": "Sales", "parent_team_id": "", "external_id": ""}),
    ("RenameTeam", d.RenameTeamRequest(team_id="sales", name="Sales EMEA"), {"team_id": "sales", "name": "Sales EMEA"}),
    ("MoveTeam", d.MoveTeamRequest(team_id="sales-east"), {"team_id": "sales-east", "parent_team_id": ""}),
    ("ArchiveTeam", d.ArchiveTeamRequest(team_id="sales"), {"team_id": "sales", "reason": ""}),
    ("AddTeamMember", d.AddTeamMemberRequest(team_id="sales", person_id="p1"), {"team_id": "sales", "person_id": "p1"}),
    ("RemoveTeamMember", d.RemoveTeamMemberRequest(team_id="sales", person_id="p1"),
     {"team_id": "sales", "person_id": "p1"}),
    ("MovePersonToTeam", d.MovePersonToTeamRequest(person_id="p1", from_team_id="sales", to_team_id="ops",
                                                   command_id="m-1"),
     {"person_id": "p1", "from_team_id": "sales", "to_team_id": "ops", "command_id": "m-1"}),
    ("AssignTeamLead", d.AssignTeamLeadRequest(team_id="sales", person_id="p1"), {"team_id": "sales", "person_id": "p1"}),
    ("RemoveTeamLead", d.RemoveTeamLeadRequest(team_id="sales", person_id="p1"), {"team_id": "sales", "person_id": "p1"}),
])
def test_each_command_reaches_the_directory_service_under_its_snake_case_name(method, request_, kwargs):
    rpc = Rpc()
    response, context = call(rpc, ADMIN, method, request_)
    assert context.code == grpc.StatusCode.OK, context.details
    ((service, name, sent, data),) = rpc.calls
    assert (service, name, sent) == ("directory", NAMES[method], kwargs)
    assert (data["tenant_id"], data["actor"], data["role"]) == ("acme", "ada", "admin")
    assert response.stream_id == "person-p1" and response.stream_version == 1 and response.first_position == 7
    assert response.created_id == "p1" and list(response.event_types) == ["okr.v1.PersonAdded"]


def test_reads_become_their_messages():
    rpc = Rpc({("directory", "get_person"): PERSON,
               ("directory", "list_people"): {"people": [PERSON], "next_page_token": "tok-2", "total_size": 3},
               ("directory", "get_team"): {"team_id": "sales", "name": "Sales", "lead_ids": ["lin"],
                                           "member_ids": ["bob"], "active": True, "version": 2},
               ("directory", "list_teams"): {"teams": [], "next_page_token": "", "total_size": 0}})
    person, _ = call(rpc, VIEWER, "GetPerson", d.GetPersonRequest(person_id="bob"))
    assert person.display_name == "Bob" and list(person.roles) == [events_pb2.DIRECTORY_ROLE_AUDITOR]
    assert person.version == 4 and list(person.team_ids) == ["sales"]
    page, _ = call(rpc, MEMBER, "ListPeople", d.ListPeopleRequest(query="bo", page_size=2, page_token="tok-1"))
    assert [p.person_id for p in page.people] == ["bob"] and page.next_page_token == "tok-2" and page.total_size == 3
    team, _ = call(rpc, LEAD, "GetTeam", d.GetTeamRequest(team_id="sales"))
    assert list(team.lead_ids) == ["lin"] and list(team.member_ids) == ["bob"]
    teams, _ = call(rpc, ADMIN, "ListTeams", d.ListTeamsRequest(include_archived=True))
    assert list(teams.teams) == []
    assert [(m, k) for _, m, k, _ in rpc.calls] == [
        ("get_person", {"person_id": "bob"}),
        ("list_people", {"query": "bo", "page_size": 2, "page_token": "tok-1"}),
        ("get_team", {"team_id": "sales"}),
        ("list_teams", {"include_archived": True}),
    ]


@pytest.mark.parametrize("method, request_, entity, id_", [
    ("GetPerson", d.GetPersonRequest(person_id="ghost"), "person", "ghost"),
    ("GetTeam", d.GetTeamRequest(team_id="ghost"), "team", "ghost"),
])
def test_a_read_of_nothing_is_not_found(method, request_, entity, id_):
    rpc = Rpc({("directory", "get_person"): None, ("directory", "get_team"): None})
    _, context = call(rpc, MEMBER, method, request_)
    assert context.code == grpc.StatusCode.NOT_FOUND
    assert context.details == f"{entity} '{id_}' not found"
    assert context.trailers == {"okr-kind": "not_found", "okr-entity": entity, "okr-id": id_}


def test_the_services_refusals_keep_their_details():
    rpc = Rpc({("directory", "add_person"): RemoteError(
        "ValidationError", "email: not an e-mail address", details={"code": "invalid_argument", "field": "email"})})
    _, context = call(rpc, ADMIN, "AddPerson", d.AddPersonRequest(display_name="Ana", email="nope"))
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT
    assert context.trailers == {"okr-kind": "invalid_argument", "okr-field": "email"}


@pytest.mark.parametrize("principal, method, request_", [
    (MEMBER, "AddPerson", d.AddPersonRequest(display_name="Ana")),
    (LEAD, "CreateTeam", d.CreateTeamRequest(name="New")),
    (LEAD, "AssignTeamLead", d.AssignTeamLeadRequest(team_id="sales", person_id="bob")),
    (LEAD, "AddTeamMember", d.AddTeamMemberRequest(team_id="ops", person_id="bob")),
    # a move needs both teams: out of one the lead leads, into one they do not
    (LEAD, "MovePersonToTeam", d.MovePersonToTeamRequest(person_id="bob", from_team_id="sales", to_team_id="ops")),
    (LEAD, "MovePersonToTeam", d.MovePersonToTeamRequest(person_id="bob", from_team_id="ops", to_team_id="sales")),
    (MEMBER, "UpdatePerson", d.UpdatePersonRequest(person_id="ada", display_name="Ada")),  # someone else
    (VIEWER, "UpdatePerson", d.UpdatePersonRequest(person_id="vic", display_name="Vic")),  # viewers never write
    (SERVICE, "GetPerson", d.GetPersonRequest(person_id="bob")),
    (SERVICE, "ListTeams", d.ListTeamsRequest()),
])
def test_what_the_role_matrix_refuses_is_never_forwarded(principal, method, request_):
    rpc = Rpc()
    _, context = call(rpc, principal, method, request_)
    assert context.code == grpc.StatusCode.PERMISSION_DENIED, context.details
    assert rpc.calls == []


@pytest.mark.parametrize("principal, method, request_", [
    (LEAD, "AddTeamMember", d.AddTeamMemberRequest(team_id="sales-east", person_id="bob")),
    (LEAD, "RemoveTeamMember", d.RemoveTeamMemberRequest(team_id="sales", person_id="bob")),
    (LEAD, "MovePersonToTeam", d.MovePersonToTeamRequest(person_id="bob", from_team_id="sales",
                                                         to_team_id="sales-east")),
    (MEMBER, "UpdatePerson", d.UpdatePersonRequest(person_id="bob", display_name="Bobby", time_zone="Europe/Madrid",
                                                   language="en")),
    (LEAD, "UpdatePerson", d.UpdatePersonRequest(person_id="lin", language="zh-CN")),
])
def test_what_the_role_matrix_allows_is_forwarded(principal, method, request_):
    rpc = Rpc()
    _, context = call(rpc, principal, method, request_)
    assert context.code == grpc.StatusCode.OK, context.details
    assert len(rpc.calls) == 1


@pytest.mark.parametrize("field, value", [("email", "b@acme.example"), ("user_name", "bobby"), ("external_id", "x"),
                                          ("email", "")])
def test_a_person_setting_a_detail_that_is_the_admins_is_refused_naming_it(field, value):
    rpc = Rpc()
    request = d.UpdatePersonRequest(person_id="bob", display_name="Bobby")
    setattr(request, field, value)
    _, context = call(rpc, MEMBER, "UpdatePerson", request)
    assert context.code == grpc.StatusCode.PERMISSION_DENIED
    assert context.details.startswith(f"{field}: role member may only change the display name, time zone")
    assert context.trailers == {"okr-kind": "permission_denied", "okr-field": field}
    assert rpc.calls == []
    request.person_id = "ada"  # an admin may set it, on anyone
    _, context = call(rpc, ADMIN, "UpdatePerson", request)
    assert context.code == grpc.StatusCode.OK


@pytest.mark.parametrize("method, request_cls", [("ListPeople", d.ListPeopleRequest),
                                                 ("ListTeams", d.ListTeamsRequest)])
def test_a_query_too_long_is_refused_before_it_is_forwarded(method, request_cls):
    rpc = Rpc()
    _, context = call(rpc, ADMIN, method, request_cls(query="q" * 201))
    assert (context.code, context.details) == (grpc.StatusCode.INVALID_ARGUMENT, "query: at most 200 characters")
    assert context.trailers["okr-field"] == "query"
    assert rpc.calls == []
    _, context = call(rpc, ADMIN, method, request_cls(query="q" * 200, page_size=501, page_token="?"))
    assert context.code == grpc.StatusCode.OK  # the page is the directory service's to check
    assert rpc.calls[0][2] == {"query": "q" * 200, "page_size": 501, "page_token": "?"}


def test_who_am_i_is_the_principal_and_their_person():
    rpc = Rpc({("directory", "get_person"): PERSON})
    response, _ = call(rpc, Principal("acme", "bob", "lead", teams=("sales", "sales-east"), via="jwt"), "WhoAmI",
                       d.WhoAmIRequest())
    assert (response.tenant_id, response.subject, response.via, response.role) == ("acme", "bob", "jwt", "lead")
    assert list(response.teams) == ["sales", "sales-east"]
    assert response.HasField("person") and response.person.display_name == "Bob"
    assert [(s, m, k) for s, m, k, _ in rpc.calls] == [("directory", "get_person", {"person_id": "bob"})]


@pytest.mark.parametrize("answer", [
    None,
    RemoteError("NotFound", "person 'feed' not found", details={"code": "not_found", "kind": "person", "id": "feed"}),
    RemoteError("ValidationError", "person_id: not an id", details={"code": "invalid_argument",
                                                                    "field": "person_id"}),
])
def test_who_am_i_of_a_subject_that_is_no_person_has_no_person(answer):
    rpc = Rpc({("directory", "get_person"): answer})
    response, context = call(rpc, SERVICE, "WhoAmI", d.WhoAmIRequest())  # services may ask too
    assert context.code == grpc.StatusCode.OK
    assert (response.subject, response.role, response.via) == ("feed", "service", "jwt")
    assert not response.HasField("person")


def test_who_am_i_says_when_the_directory_does_not_answer():
    rpc = Rpc({("directory", "get_person"): RemoteError("RuntimeError", "boom")})
    _, context = call(rpc, MEMBER, "WhoAmI", d.WhoAmIRequest())
    assert context.code == grpc.StatusCode.INTERNAL
