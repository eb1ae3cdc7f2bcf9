"""The directory CSV format (okr_shared/directory_csv.py): every kind of problem of a
people and teams file with the line a spreadsheet shows (header = line 1) and its column,
the problems that need the tenant's directory, and the calls an import sends, in
dependency order, with command ids that a re-run of the same file repeats."""

from __future__ import annotations

from pathlib import Path

import pytest

from okr_shared.directory_csv import (COLUMNS, Existing, file_digest, is_directory_csv, parse_directory,
                                      plan_directory)

ROOT = Path(__file__).resolve().parents[2]
HEADER = ",".join(COLUMNS) + "\n"


def line(record, id="", name="", email="", manager="", time_zone="", language="", user_name="", external_id="",
         parent="", team="", person="", role="") -> str:
    return ",".join([record, id, name, email, manager, time_zone, language, user_name, external_id, parent, team,
                     person, role]) + "\n"


def parse(*lines: str):
    return parse_directory((HEADER + "".join(lines)).encode("utf-8"))


def found(*lines: str):
    return [(p.line, p.column) for p in parse(*lines)[1]]


def test_a_good_file_becomes_rows_with_their_lines_and_normalised_cells():
    rows, problems = parse(line("team", "growth", "Growth  team"),
                           "\n",  # an empty line is skipped, but counted
                           line("Person", "ana", "Ana López", email="Ana@Acme.example", time_zone="Europe/Madrid",
                                language="zh-cn"),
                           line("member", team="growth", person="ana"), line("role", person="ana", role="Admin"))
    assert problems == []
    assert [(r.line, r.record) for r in rows] == [(2, "team"), (4, "person"), (5, "member"), (6, "role")]
    assert rows[0].cells == {"id": "growth", "name": "Growth team"}
    assert rows[1].cells == {"id": "ana", "name": "Ana López", "email": "ana@acme.example",
                             "time_zone": "Europe/Madrid", "language": "zh-CN"}
    assert rows[3].key == ("role", "ana", "admin")


@pytest.mark.parametrize("cells, column, words", [
    (dict(record="persona", id="x", name="X"), "record", "did you mean 'person'"),
    (dict(record="", id="x", name="X"), "record", "is empty"),
    (dict(record="person", name="X"), "id", "a person row needs id and name"),
    (dict(record="team", id="t"), "name", "a team row needs id and name"),
    (dict(record="member", team="t"), "person", "needs team and person"),
    (dict(record="role", person="p"), "role", "needs person and role"),
    (dict(record="team", id="t", name="T", email="a@b.example"), "email", "is not used by a team row"),
    (dict(record="member", team="t", person="p", name="X"), "name", "is not used by a member row"),
    (dict(record="person", id="a b", name="X"), "id", "is not an id"),
    (dict(record="person", id="p", name="X" * 201), "name", "at most 200"),
    (dict(record="person", id="p", name="X", email="ana.acme.example"), "email", "not an e-mail address"),
    (dict(record="person", id="p", name="X", email="ana@acme"), "email", "not an e-mail address"),
    (dict(record="person", id="p", name="X", time_zone="Europe/Madird"), "time_zone", "did you mean 'Europe/Madrid'"),
    (dict(record="person", id="p", name="X", language="de"), "language", "use en or zh-CN"),
    (dict(record="role", person="p", role="lead"), "role", "a lead is a lead row"),
    (dict(record="team", id="t", name="T", parent="x y"), "parent", "is not an id"),
])
def test_each_bad_cell_is_named_with_its_line_and_column(cells, column, words):
    rows, problems = parse(line(**cells))
    assert rows == [] and [(p.line, p.column) for p in problems] == [(2, column)]
    assert words in problems[0].message


def test_duplicates_shared_emails_and_user_names_name_the_first_line():
    _, problems = parse(line("team", "t", "T"), line("team", "t", "Other"),
                        line("person", "a", "A", email="x@acme.example", user_name="ax"),
                        line("person", "b", "B", email="X@acme.example", user_name="AX"),
                        line("member", team="t", person="a"), line("member", team="t", person="a"))
    assert [(p.line, p.column) for p in problems] == [(3, "id"), (5, "email"), (5, "user_name"), (7, "")]
    assert "team 't' appears twice (line 2 first)" in problems[0].message
    assert "also the email of line 4" in problems[1].message


def test_team_and_manager_cycles_inside_the_file_are_refused():
    assert found(line("team", "a", "A", parent="b"), line("team", "b", "B", parent="a"),
                 line("team", "c", "C", parent="c")) == [(2, "parent"), (3, "parent"), (4, "parent")]
    _, problems = parse(line("person", "p", "P", manager="q"), line("person", "q", "Q", manager="p"))
    assert "leads back to 'p' (p → q → p)" in problems[0].message and "manage themselves" in problems[0].message


def test_header_problems_are_on_line_1():
    _, problems = parse_directory(b"record,id,nmae,id\nteam,t,T,t\n")
    assert [(p.line, p.column) for p in problems] == [(1, "nmae"), (1, "id")]
    assert "did you mean 'name'" in problems[0].message
    _, problems = parse_directory(b"id,name\nt,T\n")
    assert [(p.line, p.column) for p in problems] == [(1, "")] and "missing column record" in problems[0].message


def test_form_problems_of_the_file_as_a_whole():
    assert [str(p) for p in parse_directory(b"")[1]] == [
        "the file: the file is empty — it needs a header line and at least one row"]
    assert "no rows" in str(parse_directory(HEADER.encode())[1][0])
    assert found("team,t,T\n") == [(2, "")]  # 3 cells for 13 columns
    assert found('team,t,"T,,,,,,,,,,,\n') == [(2, "")]  # quoting
    _, problems = parse_directory(HEADER.encode() + "team,t,Caf\xe9,,,,,,,,,,\n".encode("latin-1"))
    assert [(p.line, str(p)) for p in problems][0][0] == 2 and "not UTF-8" in problems[0].message
    many = "".join(line("team", f"t{i}", "T") for i in range(3))
    assert "3 rows exceed the limit of 2" in str(parse_directory((HEADER + many).encode(), max_rows=2)[1][0])


def test_every_problem_is_reported_not_just_the_first():
    assert [p[0] for p in found(line("team", "t", "T"), line("person", "p", "P", email="bad"),
                                line("team", "u", "U"), line("person", "q", "Q", language="fr"))] == [3, 5]


def test_the_header_with_record_makes_a_directory_file_and_a_plan_file_is_not_one():
    assert is_directory_csv(("\ufeff" + HEADER).encode()) and is_directory_csv(b" Record ,id\n")
    assert not is_directory_csv((ROOT / "examples" / "okr-import.csv").read_bytes())


def test_the_example_file_is_valid_and_plans_every_kind_of_call():
    data = (ROOT / "examples" / "directory-import.csv").read_bytes()
    rows, problems = parse_directory(data)
    assert problems == []
    steps, already, problems = plan_directory(rows, Existing(), file_digest(data))
    assert problems == [] and already == []
    assert {s.rpc for s in steps} == {"CreateTeam", "AddPerson", "AddTeamMember", "AssignTeamLead", "GrantRole"}


def test_calls_go_in_dependency_order_whatever_the_order_of_the_rows():
    rows, _ = parse(line("role", person="boss", role="admin"), line("member", team="leaf", person="worker"),
                    line("person", "worker", "W", manager="mid"), line("team", "leaf", "Leaf", parent="mid-team"),
                    line("person", "mid", "M", manager="boss"), line("team", "mid-team", "Mid", parent="top"),
                    line("lead", team="top", person="boss"), line("person", "boss", "B"), line("team", "top", "Top"))
    steps, _, problems = plan_directory(rows, Existing(), "0" * 64)
    assert problems == []
    assert [(s.rpc, s.row.key[1:]) for s in steps] == [
        ("CreateTeam", ("top",)), ("CreateTeam", ("mid-team",)), ("CreateTeam", ("leaf",)),
        ("AddPerson", ("boss",)), ("AddPerson", ("mid",)), ("AddPerson", ("worker",)),
        ("AddTeamMember", ("leaf", "worker")), ("AssignTeamLead", ("top", "boss")), ("GrantRole", ("boss", "admin"))]
    assert steps[3].request == {"person_id": "boss", "display_name": "B", "email": "", "manager_id": "",
                                "time_zone": "", "language": "", "user_name": "", "external_id": "",
                                "command_id": steps[3].request["command_id"]}


def test_command_ids_repeat_for_the_same_file_and_differ_for_another():
    rows, _ = parse(line("team", "t", "T"), line("person", "p", "P"))
    first = [s.request["command_id"] for s in plan_directory(rows, Existing(), "a" * 64)[0]]
    assert first == [s.request["command_id"] for s in plan_directory(rows, Existing(), "a" * 64)[0]]
    assert len(set(first)) == 2 and all(c.startswith("dirimport-aaaa") and len(c) < 80 for c in first)
    assert not set(first) & {s.request["command_id"] for s in plan_directory(rows, Existing(), "b" * 64)[0]}


EXISTING = Existing(
    people={"ana": {"person_id": "ana", "display_name": "Ana", "email": "ana@acme.example", "manager_id": "",
                    "user_name": "ana@acme.example", "active": True, "team_ids": ["growth"],
                    "lead_of_team_ids": [], "roles": ["admin"]},
            "gone": {"person_id": "gone", "display_name": "Gone", "email": "", "active": False, "team_ids": [],
                     "lead_of_team_ids": [], "roles": []}},
    teams={"growth": {"team_id": "growth", "name": "Growth", "parent_team_id": "", "active": True},
           "old": {"team_id": "old", "name": "Old", "parent_team_id": "", "active": False}})


def test_rows_already_true_send_nothing_and_references_may_be_existing():
    rows, _ = parse(line("team", "growth", "Growth"), line("person", "ana", "Ana", email="ANA@acme.example"),
                    line("member", team="growth", person="ana"), line("role", person="ana", role="admin"),
                    line("team", "sub", "Sub", parent="growth"), line("person", "new", "New", manager="ana"),
                    line("lead", team="growth", person="ana"))
    steps, already, problems = plan_directory(rows, EXISTING, "0" * 64)
    assert problems == []
    assert [r.line for r in already] == [2, 3, 4, 5]
    assert [(s.rpc, s.row.line) for s in steps] == [("CreateTeam", 6), ("AddPerson", 7), ("AssignTeamLead", 8)]


def test_problems_that_need_the_directory_name_line_and_column():
    rows, _ = parse(line("team", "growth", "Growth Team"),                      # 2: differs from the existing name
                    line("person", "ana", "Ana", email="other@acme.example"),   # 3: differs
                    line("person", "bob", "Bob", email="ana@acme.example"),     # 4: taken by ana
                    line("person", "cy", "Cy", manager="nobody"),               # 5: unknown manager
                    line("member", team="old", person="gone"),                  # 6: archived team, person left
                    line("member", team="groth", person="bob"))                 # 7: unknown team, did you mean
    steps, _, problems = plan_directory(rows, EXISTING, "0" * 64)
    assert [(p.line, p.column) for p in problems] == [
        (2, "name"), (3, "email"), (4, "email"), (5, "manager"), (6, "person"), (6, "team"), (7, "team")]
    text = [p.message for p in problems]
    assert "already exists with name 'Growth' (the file says 'Growth Team')" in text[0]
    assert "belongs to 'ana'" in text[2]
    assert "unknown person 'nobody'" in text[3]
    assert "deactivated (left)" in text[4] and "archived" in text[5]
    assert "did you mean 'growth'" in text[6]
    rows, _ = parse(line("team", "old", "Old"), line("person", "gone", "Gone"))
    _, _, problems = plan_directory(rows, EXISTING, "0" * 64)
    assert [(p.line, p.column) for p in problems] == [(2, "id"), (3, "id")]
    assert "is archived" in problems[0].message and "okr people reactivate" in problems[1].message
