"""``okr import`` and ``okr export --cycle`` against a real gateway, services, RabbitMQ
and event store (SQLite and PostgreSQL): a good file shows up on the board, a dry run or
a file with errors stores nothing (the store's head does not move), each problem is one
line with its line number, and the export's figures follow docs/scoring.md.
Each CLI call runs in its own plain process (test_cli_api.okr)."""

# ruff: noqa: F811

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from .gateway_fixtures import ROOT, world  # noqa: F401 - fixture
from okr.v1 import events_pb2, goal_pb2, progress_pb2, reporting_pb2
from okr_shared.domain import scoring
from .test_cli_api import ok, okr, one_error_line
from .test_gateway import ok as answered
from .test_gateway import refused

EXAMPLE = Path(ROOT) / "examples" / "okr-import.csv"
HEADER = "type,ref,parent,cycle,level,team,owner,title,kind,start_value,target_value,unit,start_date,due_date\n"


@pytest.fixture(scope="module")
def cycles(world):
    g = world.stub("goal")
    for cycle_id, start, end in (("2026-q3", "2026-07-01", "2026-09-30"), ("2026-q4", "2026-10-01", "2026-12-31"),
                                 ("2026-q2", "2026-04-01", "2026-06-30")):
        answered(world.call(g.PlanCycle, goal_pb2.PlanCycleRequest(
            cycle_id=cycle_id, cadence=events_pb2.CADENCE_QUARTERLY, name=cycle_id, start_date=start, end_date=end)))
    # people who own something already: the tenant's known owners
    answered(world.call(g.CreateObjective, goal_pb2.CreateObjectiveRequest(
        objective_id="o-existing", cycle_id="2026-q2", level=events_pb2.OBJECTIVE_LEVEL_COMPANY,
        title="Last quarter", owner="ceo@acme.example")))
    answered(world.call(g.CreateObjective, goal_pb2.CreateObjectiveRequest(
        objective_id="o-existing-team", cycle_id="2026-q2", level=events_pb2.OBJECTIVE_LEVEL_TEAM,
        title="Team thing", owner="lena@acme.example", team_id="growth")))
    return world


def write(tmp_path, text: str, name: str = "plan.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_dry_run_checks_everything_and_stores_nothing(cycles):
    head = cycles.store.head_position()
    out = ok(okr(cycles, "import", str(EXAMPLE), "--dry-run"))
    assert "dry run: okr-import.csv is valid" in out and "3 objectives, 4 key results, 2 initiatives" in out
    assert cycles.store.head_position() == head


def test_a_good_import_shows_up_on_the_board_and_a_rerun_stores_nothing(cycles):
    w = cycles
    head = w.store.head_position()
    data = json.loads(ok(okr(w, "import", str(EXAMPLE), "--json")))
    assert data["committed"] and not data["errors"]
    assert (data["objectives"], data["key_results"], data["initiatives"], data["people"]) == (3, 4, 2, 1)
    assert int(data["first_position"]) == head + 1 and int(data["last_position"]) == head + 9
    ids = {i["ref"]: i["id"] for i in data["items"]}
    kr = answered(w.call(w.stub("goal").GetKeyResult, goal_pb2.GetKeyResultRequest(key_result_id=ids["signups"])))
    assert (kr.owner, kr.start_value, kr.target_value, kr.weight, kr.objective_id) == (
        "jo@acme.example", 400, 1000, 2, ids["growth-funnel"])
    child = answered(w.call(w.stub("goal").GetObjective, goal_pb2.GetObjectiveRequest(objective_id=ids["jo-learning"])))
    assert child.parent_key_result_id == ids["signups"]
    w.reporting_caught_up()
    board = answered(w.call(w.stub("reporting").GetBoard, reporting_pb2.GetBoardRequest(cycle_id="2026-q3"),
                            role="viewer"))
    assert {c.id for col in board.key_results for c in col.cards} == {ids[r] for r in ("signups", "churn", "sso", "mrr")}
    assert {c.id for col in board.initiatives for c in col.cards} == {ids["referral"], ids["onboarding"]}
    assert w.store.verify("acme").ok
    again = okr(w, "import", str(EXAMPLE))
    assert "already imported" in ok(again) and w.store.head_position() == head + 9


def test_errors_on_lines_3_and_7_are_both_reported_and_nothing_is_stored(cycles, tmp_path):
    text = (HEADER
            + "objective,o1,,2026-q3,team,ops,ceo@acme.example,Run smoothly,,,,,,\n"
            + "key_result,k1,o1,,,,ceo@acme.example,Uptime,stay_at_or_above,99,99.9,%,,2026-10-15\n"  # line 3
            + "key_result,k2,o1,,,,ceo@acme.example,Tickets,decrease_to,50,20,tickets,,2026-09-30\n"
            + "key_result,k3,o1,,,,ceo@acme.example,Pages,decrease_to,10,5,pages,,2026-09-30\n"
            + "initiative,i1,k2,,,,ceo@acme.example,Triage bot,,,,,2026-07-01,2026-08-01\n"
            + "initiative,i2,k3,,,,ceo@acme.example,Runbooks,,,,,2026-08-01,2026-07-01\n")  # line 7
    head = cycles.store.head_position()
    done = okr(cycles, "import", write(tmp_path, text))
    assert done.returncode == 5, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("error: plan.csv line ") and " — " in line for line in lines)
    assert "line 3 (due_date): must lie inside cycle '2026-q3'" in lines[0]
    assert "line 7 (due_date): must not be before start_date (2026-08-01)" in lines[1]
    assert "nothing was imported" in lines[1] and "Traceback" not in done.stderr
    assert cycles.store.head_position() == head


@pytest.mark.parametrize("row, words", [
    ("objective,o1,,2026-q3,company,,anna@acme.example,Win,,,,,,\n",
     ("line 2 (owner)", "unknown person 'anna@acme.example'", "person row")),
    ("objective,o1,,2026-q3,company,,ceo@acme.example,Win,,,,,,\n"
     "key_result,k1,o1,,,,ceo@acme.example,More,increase_to,1,2,,,2026-09-31\n",
     ("line 3 (due_date)", "'2026-09-31' is not a date YYYY-MM-DD")),
    ("objective,o1,,2026-q3,company,,ceo@acme.example,Win,,,,,,\n"
     "objective,o2,,2026-q3,company,,ceo@acme.example,  win ,,,,,,\n",
     ("line 3 (title)", "duplicates line 2")),
    ("objective,o1,,2026-q2,company,,ceo@acme.example,Last quarter,,,,,,\n",
     ("line 2 (title)", "already has this objective ('o-existing'")),
    ("key_result,k1,nope,,,,ceo@acme.example,More,increase_to,1,2,,,2026-09-30\n",
     ("line 2 (parent)", "unknown parent 'nope'")),
    ("objective,o1,,2027-q1,company,,ceo@acme.example,Win,,,,,,\n",
     ("line 2 (cycle)", "cycle '2027-q1' not found")),
], ids=["unknown-owner", "bad-date", "duplicate-row", "duplicate-of-existing", "unknown-parent", "unknown-cycle"])
def test_each_bad_file_is_one_line_a_non_zero_exit_and_nothing_stored(cycles, tmp_path, row, words):
    head = cycles.store.head_position()
    one_error_line(okr(cycles, "import", write(tmp_path, HEADER + row)), 5, *words)
    assert cycles.store.head_position() == head


def test_an_unknown_owner_gets_a_did_you_mean(cycles, tmp_path):
    line = one_error_line(okr(cycles, "import", write(tmp_path, HEADER + "objective,o1,,2026-q3,company,,"
                                                                        "cee@acme.example,Win,,,,,,\n")), 5)
    assert "did you mean 'ceo@acme.example'?" in line


def test_unknown_columns_and_non_utf8_files_are_refused_before_sending(cycles, tmp_path):
    one_error_line(okr(cycles, "import", write(tmp_path, "type,ref,title,ownr\nobjective,o1,x,y\n")), 5,
                   "line 1 (ownr)", "did you mean 'owner'")
    path = tmp_path / "latin.csv"
    path.write_bytes((HEADER + "objective,o1,,2026-q3,company,,ceo,Caf\xe9,,,,,,\n").encode("latin-1"))
    one_error_line(okr(cycles, "import", str(path)), 5, "line 2", "not UTF-8")


def test_a_lead_imports_only_for_the_teams_they_lead(cycles, tmp_path):
    w = cycles
    mine = write(tmp_path, HEADER + "objective,o-lead,,2026-q3,team,growth,lena@acme.example,Lead's plan,,,,,,\n"
                 + "key_result,k-lead,o-existing-team,,,,lena@acme.example,More,increase_to,1,2,,,2026-06-30\n",
                 "mine.csv")
    assert "imported 1 objectives, 1 key results" in ok(okr(w, "import", mine, role="lead"))
    other = write(tmp_path, HEADER + "objective,o-x,,2026-q3,team,ops,lena@acme.example,Not mine,,,,,,\n", "other.csv")
    one_error_line(okr(w, "import", other, role="lead"), 3, "not allowed", "lead-team-import")
    one_error_line(okr(w, "import", mine, "--dry-run", role="member"), 3, "not allowed")
    request = goal_pb2.ImportPlanRequest(dry_run=True)
    request.rows.add(type=goal_pb2.IMPORT_ITEM_TYPE_PERSON, owner="x")
    refused(w.call(w.stub("goal").ImportPlan, request, role="lead"), __import__("grpc").StatusCode.PERMISSION_DENIED)


def test_too_many_rows_is_refused_naming_the_limit(cycles):
    request = goal_pb2.ImportPlanRequest(dry_run=True)
    for i in range(501):
        request.rows.add(type=goal_pb2.IMPORT_ITEM_TYPE_PERSON, owner=f"p{i}")
    e = refused(cycles.call(cycles.stub("goal").ImportPlan, request), __import__("grpc").StatusCode.INVALID_ARGUMENT)
    assert "501 rows exceed the limit of 500" in e.details()


def test_the_export_carries_the_scores_of_docs_scoring_md_and_imports_again(cycles, tmp_path):
    w = cycles
    data = json.loads(ok(okr(w, "import", str(EXAMPLE), "--json")))  # already imported above, or now
    ids = {i["ref"]: i["id"] for i in data["items"]}
    p = w.stub("progress")
    for ref, value, day in (("signups", 700, "2026-08-10"), ("churn", 3.25, "2026-08-10"), ("sso", 1, "2026-08-12")):
        answered(w.call(p.RecordCheckIn, progress_pb2.RecordCheckInRequest(
            key_result_id=ids[ref], value=value, confidence=6, effective_date=day, command_id=f"exp-{ref}")))
    w.reporting_caught_up()
    out = ok(okr(w, "export", "--cycle", "2026-q3", "--format", "json", "--today", "2026-08-15"))
    plan = json.loads(out)
    assert plan["cycle"]["cycle_id"] == "2026-q3" and plan["today"] == "2026-08-15"
    objectives = {o["objective_id"]: o for o in plan["objectives"]}
    assert ids["growth-funnel"] in objectives, (ids, [(o["objective_id"], o["title"]) for o in plan["objectives"]])
    funnel = objectives[ids["growth-funnel"]]
    krs = {k["key_result_id"]: k for k in funnel["key_results"]}
    expected = {  # docs/scoring.md: linear kinds (value − start) / (target − start); a milestone done is 1
        ids["signups"]: scoring.score("INCREASE_TO", 400, 1000, [700]),  # 0.5
        ids["churn"]: scoring.score("DECREASE_TO", 4, 2.5, [3.25]),  # 0.5
        ids["sso"]: scoring.score("MILESTONE", 0, 1, [1]),  # 1.0
    }
    assert expected == {ids["signups"]: 0.5, ids["churn"]: 0.5, ids["sso"]: 1.0}
    for kr_id, score in expected.items():
        assert krs[kr_id]["score"] == pytest.approx(score)
        assert krs[kr_id]["grade"] == str(scoring.grade(score))
    assert krs[ids["signups"]]["current_value"] == 700 and krs[ids["signups"]]["progress"] == pytest.approx(0.5)
    # weights 2, 1, 1: (2×0.5 + 0.5 + 1.0) / 4 = 0.625, healthy
    objective = scoring.objective_score([(0.5, 2.0), (0.5, 1.0), (1.0, 1.0)])
    assert objective == pytest.approx(0.625) and funnel["score"] == pytest.approx(objective)
    assert funnel["grade"] == str(scoring.grade(objective)) == "HEALTHY"
    assert objectives[ids["company-growth"]]["score"] is None  # its only KR (mrr) has no check-in yet
    assert {i["initiative_id"] for i in krs[ids["signups"]]["initiatives"]} == {ids["referral"], ids["onboarding"]}

    target = tmp_path / "q3.csv"
    done = okr(w, "export", "--cycle", "2026-q3", "--today", "2026-08-15", "-o", str(target))
    assert done.returncode == 0 and f"to {target}" in done.stderr
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    by_ref = {r["ref"]: r for r in rows}
    signups = by_ref[ids["signups"]]
    assert (signups["type"], signups["parent"], signups["kind"], signups["start_value"], signups["target_value"],
            signups["current_value"], signups["score"], signups["grade"], signups["weight"]) == (
        "key_result", ids["growth-funnel"], "increase_to", "400", "1000", "700", "0.5", "NONE", "2")
    assert by_ref[ids["growth-funnel"]]["score"] == "0.625" and by_ref[ids["growth-funnel"]]["grade"] == "HEALTHY"
    assert by_ref[ids["referral"]]["type"] == "initiative" and by_ref[ids["referral"]]["parent"] == ids["signups"]

    # the export is an import file: the same plan again, for the next quarter (new ids)
    shifted = target.read_text(encoding="utf-8").replace("2026-09-30", "2026-12-31").replace(
        "2026-08-31", "2026-11-30").replace("2026-07-", "2026-10-").replace("2026-08-", "2026-11-").replace(
        "2026-09-", "2026-12-")
    again = json.loads(ok(okr(w, "import", write(tmp_path, shifted, "q4.csv"), "--cycle", "2026-q4", "--json")))
    kinds = [r["type"] for r in rows]
    assert again["committed"] and (again["objectives"], again["key_results"], again["initiatives"]) == (
        kinds.count("objective"), kinds.count("key_result"), kinds.count("initiative"))
    assert kinds.count("key_result") == 4 and kinds.count("initiative") == 2
    new = {i["ref"]: i["id"] for i in again["items"]}
    assert new[ids["signups"]] != ids["signups"]
    o = answered(w.call(w.stub("goal").GetObjective, goal_pb2.GetObjectiveRequest(objective_id=new[ids["jo-learning"]])))
    assert o.cycle_id == "2026-q4" and o.parent_key_result_id == new[ids["signups"]]


def test_export_errors_are_one_line(cycles):
    one_error_line(okr(cycles, "export", "--cycle", "nope"), 4, "not found")
    one_error_line(okr(cycles, "export", "--cycle", "2026-q3", role="service"), 3, "not allowed")
