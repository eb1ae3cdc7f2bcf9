"""The plan CSV format (okr_shared/plan_csv.py): reading an import file — every kind of
problem reported with the line a spreadsheet shows (header = line 1) and what to do —
and writing a cycle's export that imports again."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from okr_shared.plan_csv import COLUMNS, SCORE_COLUMNS, parse_plan, to_csv, to_json

ROOT = Path(__file__).resolve().parents[2]
HEADER = "type,ref,parent,cycle,level,team,owner,title,kind,start_value,target_value,unit,weight,start_date,due_date\n"


def parse(text: str, **kw):
    return parse_plan(text.encode("utf-8"), **kw)


def problems_of(text: str, **kw):
    rows, problems = parse(text, **kw)
    return [(p.line, p.column) for p in problems], problems


def test_a_good_file_becomes_rows_with_lines_fields_and_typed_values():
    rows, problems = parse(HEADER
                           + "objective,o1,,q3,Team,growth,lena,Grow,,,,,,,\n"
                           + "key_result,k1,o1,,,,max,Signups,increase_to,100,400.5,signups,2,,2026-09-30\n"
                           + "\n"  # an empty line is skipped, but counted
                           + "initiative,i1,k1,,,,max,\"Launch, then iterate\",,,,,,2026-07-01,2026-08-01\n"
                           + "person,,,,,,newbie,,,,,,,,\n")
    assert problems == []
    assert rows[0] == {"line": 2, "type": "OBJECTIVE", "ref": "o1", "cycle_id": "q3", "level": "TEAM",
                       "team_id": "growth", "owner": "lena", "title": "Grow"}
    assert rows[1] == {"line": 3, "type": "KEY_RESULT", "ref": "k1", "parent_ref": "o1", "owner": "max",
                       "title": "Signups", "kind": "INCREASE_TO", "start_value": 100.0, "target_value": 400.5,
                       "unit": "signups", "weight": 2.0, "due_date": "2026-09-30"}
    assert rows[2]["line"] == 5 and rows[2]["title"] == "Launch, then iterate" and rows[2]["type"] == "INITIATIVE"
    assert rows[3] == {"line": 6, "type": "PERSON", "owner": "newbie"}


def test_cycle_option_replaces_the_cycle_of_objective_rows():
    rows, _ = parse(HEADER + "objective,o1,,q3,company,,ceo,Win,,,,,,,\n"
                    + "key_result,k1,o1,q3,,,ceo,X,milestone,0,1,,,,2026-09-30\n", cycle="q4")
    assert rows[0]["cycle_id"] == "q4" and rows[1]["cycle_id"] == "q3"


def test_a_byte_order_mark_and_crlf_line_ends_are_fine():
    data = ("\ufeff" + HEADER + "objective,o1,,q3,company,,ceo,Win,,,,,,,\n").replace("\n", "\r\n")
    rows, problems = parse_plan(data.encode("utf-8"))
    assert problems == [] and rows[0]["ref"] == "o1"


def test_unknown_duplicate_and_missing_columns_are_named_on_line_1():
    found, problems = problems_of("type,ref,titel,owner,owner\nobjective,o1,x,y,y\n")
    assert found == [(1, "titel"), (1, "owner"), (1, "")]
    assert "did you mean 'title'" in problems[0].message
    assert "appears twice" in problems[1].message
    assert "missing column title" in problems[2].message


def test_bad_dates_numbers_and_enums_are_reported_with_their_lines():
    found, problems = problems_of(HEADER
                                  + "objective,o1,,q3,squad,,ceo,Win,,,,,,,\n"
                                  + "key_result,k1,o1,,,,ceo,X,increase,1.000,\"1,5\",,x,,2026-02-30\n"
                                  + "initiative,i1,k1,,,,ceo,Y,,,,,,31/01/2026,2026-13-01\n"
                                  + "kr,k2,o1,,,,ceo,Z,,,,,,,\n")
    assert found == [(2, "level"), (3, "kind"), (3, "target_value"), (3, "weight"), (3, "due_date"),
                     (4, "start_date"), (4, "due_date"), (5, "type")]
    text = [str(p) for p in problems]
    assert "line 3 (kind): 'increase' is not a kind (did you mean 'increase_to'?)" in text[1]
    assert "not a number" in text[2] and "not a date YYYY-MM-DD" in text[4]


def test_wrong_cell_count_is_reported_per_line():
    found, problems = problems_of(HEADER + "objective,o1,,q3,company,,ceo,Win\n"
                                  + "objective,o2,,q3,company,,ceo,Win,,,,,,,\n"
                                  + "objective,o3,,q3,company,,ceo,Win, again,,,,,,,\n")
    assert found == [(2, ""), (4, "")]
    assert "8 cells, but the header has 15 columns" in problems[0].message


def test_bad_quoting_is_reported_with_its_line():
    found, problems = problems_of(HEADER + "objective,o1,,q3,company,,ceo,Win,,,,,,,\n"
                                  + 'objective,o2,,q3,company,,ceo,"Win "big",,,,,,,\n')
    assert found == [(3, "")] and "quoting" in problems[0].message


def test_a_file_that_is_not_utf8_names_the_line():
    data = (HEADER + "objective,o1,,q3,company,,ceo,Win,,,,,,,\n").encode() + "objective,o2,,q3,company,,ceo,Caf\xe9,,,,,,,\n".encode("latin-1")
    rows, problems = parse_plan(data)
    assert rows == [] and [(p.line, p.column) for p in problems] == [(3, "")]
    assert "not UTF-8 (byte 0xe9" in problems[0].message and "UTF-8" in problems[0].message


def test_empty_files_headers_without_rows_and_too_many_rows():
    assert [str(p) for p in parse("")[1]] == ["the file: the file is empty — it needs a header line and at least "
                                              "one row"]
    assert "no rows" in str(parse(HEADER)[1][0])
    many = HEADER + "".join(f"objective,o{i},,q3,company,,ceo,Win {i},,,,,,,\n" for i in range(4))
    assert "4 rows exceed the limit of 3" in str(parse(many, max_rows=3)[1][0])


def test_every_problem_of_the_file_is_reported_not_just_the_first():
    _, problems = parse(HEADER + "objective,o1,,q3,company,,ceo,Win,,,,,,,\n"
                        + "key_result,k1,o1,,,,ceo,X,increase_to,0,10,,,,2026-9-1\n"
                        + "objective,o2,,q3,company,,ceo,Win,,,,,,,\n"
                        + "objective,o3,,q3,company,,ceo,Win,,,,,,,\n"
                        + "objective,o4,,q3,company,,ceo,Win,,,,,,,\n"
                        + "key_result,k2,o1,,,,ceo,X,increase_to,zero,10,,,,2026-09-01\n")
    assert [p.line for p in problems] == [3, 7]


def test_the_example_file_parses_cleanly():
    rows, problems = parse_plan((ROOT / "examples" / "okr-import.csv").read_bytes())
    assert problems == [] and {r["type"] for r in rows} == {"OBJECTIVE", "KEY_RESULT", "INITIATIVE", "PERSON"}


PLAN = {
    "cycle": {"cycle_id": "q3", "name": "Q3", "state": "ACTIVE", "start_date": "2026-07-01",
              "end_date": "2026-09-30"},
    "today": "2026-08-15",
    "objectives": [{
        "objective_id": "o1", "title": "Grow", "description": "", "level": "TEAM", "team_id": "growth",
        "owner": "lena", "parent": "", "score": 0.5, "grade": "progressing",
        "key_results": [{
            "key_result_id": "k1", "title": "Signups", "kind": "INCREASE_TO", "start_value": 100.0,
            "target_value": 300.0, "unit": "signups", "currency_code": "", "weight": 1.0, "owner": "max",
            "due_date": "2026-09-30", "current_value": 200.0, "progress": 0.5, "score": 0.5, "grade": "progressing",
            "status": "ON_TRACK", "confidence": 7,
            "initiatives": [{"initiative_id": "i1", "title": "Referral", "assignee": "max",
                             "start_date": "2026-07-01", "due_date": "2026-08-01", "state": "doing",
                             "status": "ON_TRACK"}]}]}],
}


def test_the_export_csv_has_the_import_columns_plus_scores_and_imports_again():
    text = to_csv(PLAN)
    table = list(csv.DictReader(io.StringIO(text)))
    assert list(table[0]) == list(COLUMNS) + list(SCORE_COLUMNS)
    assert [(r["type"], r["ref"], r["parent"]) for r in table] == [
        ("objective", "o1", ""), ("key_result", "k1", "o1"), ("initiative", "i1", "k1")]
    kr = table[1]
    assert (kr["kind"], kr["start_value"], kr["target_value"], kr["current_value"], kr["score"], kr["grade"],
            kr["status"], kr["confidence"]) == ("increase_to", "100", "300", "200", "0.5", "progressing",
                                                "ON_TRACK", "7")
    rows, problems = parse_plan(text.encode(), cycle="q4")
    assert problems == [] and rows[0]["cycle_id"] == "q4" and rows[1]["kind"] == "INCREASE_TO"
    assert "score" not in rows[1] and rows[2]["parent_ref"] == "k1"


def test_the_export_json_is_nested():
    data = json.loads(to_json(PLAN))
    assert data["objectives"][0]["key_results"][0]["initiatives"][0]["initiative_id"] == "i1"


@pytest.mark.parametrize("value", ["1e400", "nan", "inf"])
def test_non_finite_numbers_are_refused(value):
    _, problems = parse(HEADER + f"key_result,k1,o1,,,,ceo,X,increase_to,{value},10,,,,2026-09-01\n")
    assert [(p.line, p.column) for p in problems] == [(2, "start_value")]
