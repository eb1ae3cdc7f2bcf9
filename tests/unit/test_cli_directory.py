"""``okr people``, ``okr teams`` and ``okr import`` of a people and teams file
(services/okr_cli/people.py, teams.py, directory_import.py) against a fake
DirectoryService stub: the requests the arguments make, a command id on every write,
the tables and the JSON, the server's refusals as one line with the field or rule and
its exit code, and an import that stops at a refusal and finishes on a re-run."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from okr.v1 import common_pb2, directory_pb2, events_pb2
from okr_cli import api as api_module
from okr_cli.main import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "directory-import.csv"


class Refusal(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str, **metadata):
        self._code, self._details, self._metadata = code, details, tuple(metadata.items())

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._metadata


class FakeDirectory:
    """Records every call (rpc name, request); answers from ``answers`` (rpc → a message,
    an exception, or a function of the request), else an empty CommandResult that
    stored one event."""

    def __init__(self):
        self.calls: list[tuple[str, object]] = []
        self.answers: dict = {}

    def __getattr__(self, rpc: str):
        def call(request, metadata=(), timeout=None):
            self.calls.append((rpc, request))
            answer = self.answers.get(rpc)
            if callable(answer) and not isinstance(answer, BaseException):
                answer = answer(request)
            if isinstance(answer, BaseException):
                raise answer
            return answer if answer is not None else common_pb2.CommandResult(last_position=1, first_position=1)

        return call

    def writes(self):
        return [(rpc, r) for rpc, r in self.calls if not rpc.startswith(("List", "Get"))]


@pytest.fixture
def fake(monkeypatch):
    stub = FakeDirectory()
    monkeypatch.setattr(api_module.Api, "stub", lambda self, name: stub if name == "directory" else None)
    return stub


def okr(*args):
    return CliRunner().invoke(main, list(args), prog_name="okr")


@pytest.mark.parametrize("args, rpc, fields", [
    (["people", "add", "--id", "ana", "--name", "Ana López", "--email", "ana@acme.example", "--manager", "ceo",
      "--time-zone", "Europe/Madrid", "--language", "zh-CN", "--user-name", "ana", "--external-id", "x1"],
     "AddPerson", dict(person_id="ana", display_name="Ana López", email="ana@acme.example", manager_id="ceo",
                       time_zone="Europe/Madrid", language="zh-CN", user_name="ana", external_id="x1")),
    (["people", "update", "ana", "--name", "Ana", "--email", ""], "UpdatePerson",
     dict(person_id="ana", display_name="Ana", email="")),
    (["people", "set-manager", "ana", "ceo"], "AssignManager", dict(person_id="ana", manager_id="ceo")),
    (["people", "set-manager", "ana", "--none"], "AssignManager", dict(person_id="ana", manager_id="")),
    (["people", "deactivate", "ana", "--reason", "left"], "DeactivatePerson", dict(person_id="ana", reason="left")),
    (["people", "reactivate", "ana"], "ReactivatePerson", dict(person_id="ana")),
    (["people", "grant", "ana", "Auditor"], "GrantRole", dict(person_id="ana", role=events_pb2.DIRECTORY_ROLE_AUDITOR)),
    (["people", "revoke", "ana", "admin"], "RevokeRole", dict(person_id="ana", role=events_pb2.DIRECTORY_ROLE_ADMIN)),
    (["people", "move", "ana", "--from", "growth", "--to", "platform"], "MovePersonToTeam",
     dict(person_id="ana", from_team_id="growth", to_team_id="platform")),
    (["teams", "create", "--id", "growth", "--name", "Growth", "--parent", "product", "--external-id", "g1"],
     "CreateTeam", dict(team_id="growth", name="Growth", parent_team_id="product", external_id="g1")),
    (["teams", "rename", "growth", "Growth & Retention"], "RenameTeam", dict(team_id="growth", name="Growth & Retention")),
    (["teams", "move", "growth", "--parent", "sales"], "MoveTeam", dict(team_id="growth", parent_team_id="sales")),
    (["teams", "move", "growth", "--top-level"], "MoveTeam", dict(team_id="growth", parent_team_id="")),
    (["teams", "archive", "growth", "--reason", "merged"], "ArchiveTeam", dict(team_id="growth", reason="merged")),
    (["teams", "add-member", "growth", "ana"], "AddTeamMember", dict(team_id="growth", person_id="ana")),
    (["teams", "remove-member", "growth", "ana"], "RemoveTeamMember", dict(team_id="growth", person_id="ana")),
    (["teams", "add-lead", "growth", "ana"], "AssignTeamLead", dict(team_id="growth", person_id="ana")),
    (["teams", "remove-lead", "growth", "ana"], "RemoveTeamLead", dict(team_id="growth", person_id="ana")),
])
def test_each_write_sends_its_request_with_a_new_command_id(fake, args, rpc, fields):
    first = okr(*args)
    assert first.exit_code == 0, first.output
    okr(*args)
    (rpc1, request1), (rpc2, request2) = fake.calls
    assert rpc1 == rpc2 == rpc
    expected = getattr(directory_pb2, f"{rpc}Request")(**fields, command_id=request1.command_id)
    assert request1 == expected
    assert request1.command_id.startswith("cli-") and request1.command_id != request2.command_id
    if rpc == "UpdatePerson":  # the options left out stay unset (they keep their value)
        assert not request1.HasField("time_zone") and request1.HasField("email")


def test_a_given_command_id_is_sent_and_a_retry_says_it_was_already_stored(fake):
    fake.answers["AddTeamMember"] = common_pb2.CommandResult(already_stored=True, last_position=7)
    done = okr("teams", "add-member", "growth", "ana", "--command-id", "mine-1")
    assert done.exit_code == 0
    assert done.stdout == "ana is a member of growth (already stored by an earlier call with this --command-id)\n"
    assert fake.calls[0][1].command_id == "mine-1"
    data = json.loads(okr("teams", "add-member", "growth", "ana", "--command-id", "mine-1", "--json").stdout)
    assert data["already_stored"] is True and data["command_id"] == "mine-1"


@pytest.mark.parametrize("args, message", [
    (["people", "update", "ana"], "give at least one of --name"),
    (["people", "set-manager", "ana"], "give a MANAGER or --none"),
    (["people", "set-manager", "ana", "ceo", "--none"], "give a MANAGER or --none"),
    (["teams", "move", "growth"], "give --parent P or --top-level"),
    (["people", "grant", "ana", "lead"], "'lead' is not one of 'admin', 'auditor', 'observer'"),
    (["people", "add", "--id", "ana"], "missing option '--name'"),
    (["people", "add", "--id", "ana", "--name", "A", "--language", "fr"], "'fr' is not one of 'en', 'zh-CN'"),
])
def test_usage_errors_are_one_line_and_send_nothing(fake, args, message):
    done = okr(*args)
    assert done.exit_code == 2 and fake.calls == []
    assert len(done.stderr.splitlines()) == 1 and message in done.stderr, done.stderr


@pytest.mark.parametrize("error, code, words", [
    (Refusal(grpc.StatusCode.FAILED_PRECONDITION, "ana manages ceo", **{"okr-rule": "manager_cycle"}), 5,
     ["refused [manager_cycle]: ana manages ceo", "okr people show"]),
    (Refusal(grpc.StatusCode.INVALID_ARGUMENT, "not an e-mail address", **{"okr-field": "email"}), 5,
     ["invalid argument (email): not an e-mail address"]),
    (Refusal(grpc.StatusCode.NOT_FOUND, "no such person", **{"okr-entity": "person", "okr-id": "ceo"}), 4,
     ["not found: person 'ceo'"]),
    (Refusal(grpc.StatusCode.PERMISSION_DENIED, "admins only"), 3, ["not allowed (PERMISSION_DENIED: admins only)"]),
    (Refusal(grpc.StatusCode.DEADLINE_EXCEEDED, ""), 6, ["outcome is unknown", "--command-id cli-"]),
    (Refusal(grpc.StatusCode.UNAVAILABLE, "directory down"), 6, ["outcome is unknown", "--command-id cli-"]),
])
def test_a_refusal_is_one_line_with_the_field_or_rule_and_its_exit_code(fake, error, code, words):
    fake.answers["AssignManager"] = error
    done = okr("people", "set-manager", "ana", "ceo")
    assert done.exit_code == code and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and " — " in lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    if code == 6:  # the id to run it again with is the one that was sent
        assert fake.calls[0][1].command_id in lines[0]


def person(pid, name, **kw):
    return directory_pb2.Person(person_id=pid, display_name=name, active=kw.pop("active", True), **kw)


def test_people_list_shows_a_table_and_pages_with_all(fake):
    pages = {"": directory_pb2.ListPeopleResponse(
        people=[person("ana", "Ana", email="ana@acme.example", team_ids=["growth"],
                       roles=[events_pb2.DIRECTORY_ROLE_ADMIN])], next_page_token="p2", total_size=2),
             "p2": directory_pb2.ListPeopleResponse(people=[person("bo", "Bo", active=False)], total_size=2)}
    fake.answers["ListPeople"] = lambda request: pages[request.page_token]
    first = okr("people", "list", "--query", "a", "--team", "growth", "--include-inactive", "--page-size", "1")
    assert first.exit_code == 0
    assert first.stdout.splitlines() == [
        "id   name  email             manager  teams   roles  active",
        "ana  Ana   ana@acme.example  -        growth  admin  yes",
        "1 of 2 people; next page: --page-token p2 (or --all)"]
    request = fake.calls[0][1]
    assert (request.query, request.team_id, request.include_inactive, request.page_size) == ("a", "growth", True, 1)
    everything = json.loads(okr("people", "list", "--all", "--json").stdout)
    assert [p["person_id"] for p in everything["people"]] == ["ana", "bo"]
    assert everything["people"][0]["roles"] == ["admin"] and everything["people"][1]["active"] is False


def test_show_prints_a_person_and_a_team(fake):
    fake.answers["GetPerson"] = person("ana", "Ana", manager_id="ceo", lead_of_team_ids=["growth"],
                                       roles=[events_pb2.DIRECTORY_ROLE_OBSERVER])
    fake.answers["GetTeam"] = directory_pb2.Team(team_id="growth", name="Growth", lead_ids=["ana"],
                                                 member_ids=["ana", "jo"], child_team_ids=["seo"], active=True)
    shown = okr("people", "show", "ana").stdout
    assert shown.startswith("ana: Ana\n") and "manager:     ceo" in shown and "roles:       observer" in shown
    team = okr("teams", "show", "growth").stdout
    assert "members:     ana, jo" in team and "below:       seo" in team
    assert json.loads(okr("teams", "show", "growth", "--json").stdout)["lead_ids"] == ["ana"]


def test_teams_list_table(fake):
    fake.answers["ListTeams"] = directory_pb2.ListTeamsResponse(teams=[directory_pb2.Team(
        team_id="growth", name="Growth", parent_team_id="product", lead_ids=["ana"], member_ids=["ana", "jo"],
        active=True)], total_size=1)
    done = okr("teams", "list", "--parent", "product", "--include-archived")
    assert done.stdout.splitlines()[1:] == ["growth  Growth  product  ana    2        yes", "1 of 1 teams"]
    assert fake.calls[0][1].include_archived is True and fake.calls[0][1].parent_team_id == "product"


# ---------------------------------------------------------------------------- import


def empty_directory(fake):
    fake.answers["ListPeople"] = directory_pb2.ListPeopleResponse()
    fake.answers["ListTeams"] = directory_pb2.ListTeamsResponse()


def test_import_dry_run_checks_against_the_directory_and_sends_nothing(fake):
    empty_directory(fake)
    done = okr("import", str(EXAMPLE), "--dry-run")
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("dry run: directory-import.csv is valid — an import would create 4 teams, "
                                  "4 people, 4 memberships, 2 leads, 1 role grants; 0 row(s) already")
    assert fake.writes() == []
    assert {rpc for rpc, _ in fake.calls} == {"ListPeople", "ListTeams"}


def test_import_sends_in_dependency_order_with_ids_a_rerun_repeats(fake):
    empty_directory(fake)
    done = okr("import", str(EXAMPLE))
    assert done.exit_code == 0, done.output
    assert "imported directory-import.csv: 4 teams, 4 people, 4 memberships, 2 leads, 1 role grants" in done.stdout
    writes = fake.writes()
    order = [rpc for rpc, _ in writes]
    assert order == ["CreateTeam"] * 4 + ["AddPerson"] * 4 + ["AddTeamMember"] * 4 + ["AssignTeamLead"] * 2 + \
        ["GrantRole"]
    assert writes[-1][1].role == events_pb2.DIRECTORY_ROLE_ADMIN
    ids = [r.command_id for _, r in writes]
    fake.calls.clear()
    okr("import", str(EXAMPLE))
    assert [r.command_id for _, r in fake.writes()] == ids and len(set(ids)) == len(ids)


def test_an_import_refused_midway_names_the_line_and_a_rerun_sends_only_what_is_missing(fake, tmp_path):
    empty_directory(fake)
    fake.answers["AddPerson"] = lambda r: Refusal(grpc.StatusCode.FAILED_PRECONDITION, "e-mail taken",
                                                  **{"okr-rule": "email_taken"}) if r.person_id == "li-na" else None
    done = okr("import", str(EXAMPLE))
    assert done.exit_code == 5
    line = done.stderr.strip()
    assert line.startswith("error: directory-import.csv line 8: refused [email_taken]: e-mail taken — 6 of 15 calls "
                           "were stored (4 teams, 2 people)") and "import the file again" in line
    # the re-run: the directory now has what was stored, the rest is sent
    teams = [directory_pb2.Team(team_id=t, name=n, parent_team_id=p, active=True) for t, n, p in (
        ("company", "Acme", ""), ("product", "Product", "company"), ("growth", "Growth", "product"),
        ("platform", "Platform", "product"))]
    teams[2].external_id = "grp-growth"
    fake.answers["ListTeams"] = directory_pb2.ListTeamsResponse(teams=teams)
    fake.answers["ListPeople"] = directory_pb2.ListPeopleResponse(people=[
        person("ceo", "Carmen Ortega", email="ceo@acme.example", time_zone="Europe/Madrid", language="en"),
        person("lena", "Lena Fischer", email="lena@acme.example", manager_id="ceo", time_zone="Europe/Berlin",
               language="en")])
    fake.answers["AddPerson"] = None
    fake.calls.clear()
    again = okr("import", str(EXAMPLE))
    assert again.exit_code == 0, again.output
    assert [(rpc, getattr(r, "person_id", "")) for rpc, r in fake.writes()][:2] == [("AddPerson", "li-na"),
                                                                                   ("AddPerson", "jo")]
    assert "6 row(s) were already in the directory" in again.stdout


def test_an_import_with_problems_prints_each_with_its_line_and_sends_nothing(fake, tmp_path):
    empty_directory(fake)
    bad = tmp_path / "people.csv"
    bad.write_text("record,id,name,email,manager\nperson,ana,Ana,ana@,\nperson,bo,Bo,,nobody\n", encoding="utf-8")
    done = okr("import", str(bad))
    assert done.exit_code == 5 and fake.calls == []  # the file alone: nothing is even read
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: people.csv line 2 (email): 'ana@' is not an e-mail")
    bad.write_text("record,id,name,email,manager\nperson,bo,Bo,,nobody\nmember,,,,\n", encoding="utf-8")
    done = okr("import", str(bad))
    assert done.exit_code == 5 and fake.calls == []
    assert [line.split(":")[0] for line in done.stderr.splitlines()] == ["error"] * 2
    assert "people.csv line 3 (team)" in done.stderr
    bad.write_text("record,id,name,email,manager\nperson,bo,Bo,,nobody\n", encoding="utf-8")
    done = okr("import", str(bad))
    assert done.exit_code == 5 and fake.writes() == []
    assert "line 2 (manager): unknown person 'nobody'" in done.stderr and "(nothing was imported)" in done.stderr


def test_cycle_is_refused_for_a_directory_file(fake):
    done = okr("import", str(EXAMPLE), "--cycle", "q3")
    assert done.exit_code == 2 and "--cycle is for plan files" in done.stderr and fake.calls == []
