"""`okr demo` (services/okr_cli/demo.py) against a real gateway, real services and RabbitMQ: the
company arrives through the public API and the API shows it — nested cycles, 20 owners,
3 teams, the alignment tree, every kind of key result, every board column, corrections
and adjustments with reasons in a key result's history, initiatives in every state; a
re-run is recognised, an interrupted run finishes without duplicates, another tenant
seeds the same ids (ids are per tenant); bad keys, roles and addresses give one-line errors with the documented
exit codes. The CLI runs in its own plain process (this test process is eventlet-patched)."""

# ruff: noqa: F811

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from .gateway_fixtures import ROOT, world  # noqa: F401 - fixture
from tests.infra import BACKENDS
from okr.v1 import audit_pb2, events_pb2, goal_pb2, reporting_pb2
from okr_shared.demo.company import PEOPLE, plan_company
from tests.waiting import wait_until

TODAY = datetime.now(timezone.utc).date()


def _env(world, tenant: str, role: str, key: str | None):
    env = dict(os.environ)
    env.update(OKR_API_URL=world.address, OKR_API_KEY=key if key is not None else world.keys[(tenant, role)],
               PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "shared"), os.path.join(ROOT, "services")]))
    return env


def okr(world, *args, tenant="acme", role="admin", key=None, timeout=240):
    return subprocess.run([sys.executable, "-m", "okr_cli", *args], env=_env(world, tenant, role, key),
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def ok(done):
    assert done.returncode == 0, f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done.stdout


def one_error_line(done, code: int, *words: str) -> str:
    assert done.returncode == code, f"expected exit {code}, got {done.returncode}: {done.stdout} {done.stderr}"
    lines = [line for line in done.stderr.strip().splitlines() if not line.startswith("seeding the demo company")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and " — " in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def answer(world, method, request, **kw):
    reply, error = world.call(method, request, **kw)
    assert error is None, f"{error.code()}: {error.details()}"
    return reply


@pytest.fixture(scope="module")
def seeded(world):
    """acme seeded by `okr demo --json` (timed), the read models caught up."""
    started = time.monotonic()
    summary = json.loads(ok(okr(world, "demo", "--today", TODAY.isoformat(), "--json")))
    summary["wall_seconds"] = time.monotonic() - started
    world.reporting_caught_up(timeout=60)
    print(f"\nokr demo on {world.backend}: {summary['calls']} calls in {summary['seconds']:.1f} s "
          f"(CLI wall {summary['wall_seconds']:.1f} s)")
    return world, summary


@pytest.mark.parametrize("world", BACKENDS, indirect=True)
def test_the_company_arrives_through_the_api(seeded):
    world, summary = seeded
    plan = plan_company(2026, TODAY)
    assert summary["calls"] == summary["stored"] == plan.counts()["calls"] and summary["already_stored"] == 0
    assert summary["look"] == "okr board --cycle quarter"
    goal, reporting = world.stub("goal"), world.stub("reporting")

    # cycles nested year ⊃ quarter ⊃ month, the quarter started 12 weeks ago, month 1 closed
    cycle = {cid: answer(world, goal.GetCycle, goal_pb2.GetCycleRequest(cycle_id=cid))
             for cid in ("year", "quarter", "month-1", "month-3", "next-quarter")}
    assert cycle["quarter"].parent_cycle_id == "year" and cycle["month-3"].parent_cycle_id == "quarter"
    assert cycle["year"].start_date <= cycle["quarter"].start_date <= cycle["month-3"].start_date
    assert cycle["month-3"].end_date <= cycle["quarter"].end_date <= cycle["year"].end_date
    assert (TODAY - datetime.fromisoformat(cycle["quarter"].start_date).date()).days == 83
    assert cycle["month-3"].start_date <= TODAY.isoformat() <= cycle["month-3"].end_date
    states = {cid: goal_pb2.CycleState.Name(c.state) for cid, c in cycle.items()}
    assert states == {"year": "CYCLE_STATE_ACTIVE", "quarter": "CYCLE_STATE_ACTIVE", "month-1": "CYCLE_STATE_CLOSED",
                      "month-3": "CYCLE_STATE_ACTIVE", "next-quarter": "CYCLE_STATE_PLANNING"}

    # every board column populated, the designed behaviours where they belong
    board = answer(world, reporting.GetBoard, reporting_pb2.GetBoardRequest(cycle_id="quarter"), role="viewer")
    krs = {col.status: [c.id for c in col.cards] for col in board.key_results}
    initiatives = {col.status: [c.id for c in col.cards] for col in board.initiatives}
    assert [s for s, cards in krs.items() if not cards] == [], krs
    assert [s for s, cards in initiatives.items() if not cards] == [], initiatives
    assert {"kr-cac", "kr-onboarding", "kr-p95"} <= set(krs["STALLED"])  # stalled: no progress for weeks
    assert {"kr-churn", "kr-qbrs"} <= set(krs["OFF_TRACK"])  # slipping
    assert {"kr-signups", "kr-pg16", "kr-pilot"} <= set(krs["DONE"])

    # every kind; ~20 distinct owners; 3 teams
    statuses = answer(world, reporting.ListKeyResultStatuses, reporting_pb2.ListKeyResultStatusesRequest(),
                      role="viewer").statuses
    kinds = {events_pb2.KeyResultKind.Name(s.kind) for s in statuses}
    assert len(kinds) == 7 and "KEY_RESULT_KIND_UNSPECIFIED" not in kinds, kinds
    assert {s.team_id for s in statuses} - {""} == {"growth", "platform", "success"}
    tree = answer(world, reporting.GetAlignmentTree, reporting_pb2.GetAlignmentTreeRequest(), role="viewer")
    owners = {s.owner for s in statuses}

    def walk(nodes, depth=1):
        deepest = 0
        for node in nodes:
            owners.add(node.owner)
            deepest = max(deepest, depth, walk(node.children, depth + 1))
        return deepest

    assert walk(tree.roots) >= 4  # year company → quarter company → team → individual
    assert len(owners) >= 19 and owners <= set(PEOPLE)

    # a corrected (twice) and adjusted key result, its reasons in its history
    kr = answer(world, goal.GetKeyResult, goal_pb2.GetKeyResultRequest(key_result_id="kr-conversion"))
    assert kr.target_value == 12 and sum(1 for ci in kr.check_ins if ci.corrects) == 2
    history = json.loads(ok(okr(world, "history", "kr-conversion", "--json", role="auditor")))["entries"]
    whats = {(e["event_type"].rsplit(".", 1)[-1], e.get("reason", "")) for e in history}
    assert ("KeyResultTargetAdjusted", "Pricing change delayed to the next quarter") in whats
    assert ("CheckInCorrected", "Confidence was too optimistic") in whats
    text = ok(okr(world, "history", "kr-conversion", role="auditor"))  # who, what, why, and the day it is about
    first = min(ci.effective_date for ci in kr.check_ins)
    assert f", for {first}" in text and "Pricing change delayed" in text and " correction " in text
    owner_change = answer(world, goal.GetKeyResult, goal_pb2.GetKeyResultRequest(key_result_id="kr-onboarding"))
    assert owner_change.owner == "wen"
    slipped = answer(world, goal.GetInitiative, goal_pb2.GetInitiativeRequest(initiative_id="in-kr-conversion-1"))
    assert slipped.due_date > TODAY.isoformat() and goal_pb2.InitiativeState.Name(slipped.state) == \
        "INITIATIVE_STATE_DOING"


@pytest.mark.parametrize("world", ["sqlite"], indirect=True)
def test_a_rerun_is_recognised_and_another_seed_is_refused(seeded):
    world, summary = seeded
    head = world.store.head_position()
    again = json.loads(ok(okr(world, "demo", "--today", TODAY.isoformat(), "--json")))
    assert again["already_stored"] == again["calls"] == summary["calls"] and again["stored"] == 0
    text = ok(okr(world, "demo", "--today", TODAY.isoformat()))
    assert "already complete: nothing new stored" in text and "okr board --cycle quarter" in text
    other = okr(world, "demo", "--seed", "7", "--today", TODAY.isoformat())
    one_error_line(other, 5, "already has a demo company", f"okr demo --seed 2026 --today {TODAY}", "--prefix")
    assert world.store.head_position() == head  # nothing was stored by any of them


@pytest.mark.parametrize("world", ["sqlite"], indirect=True)
def test_an_interrupted_run_finishes_without_duplicates_and_another_tenant_uses_the_same_ids(seeded):
    world, _ = seeded
    args = ["demo", "--prefix", "gx", "--seed", "3", "--today", TODAY.isoformat()]
    start = world.store.head_position()
    # Ctrl-C must reach it as KeyboardInterrupt even where this process ignores SIGINT
    with_ctrl_c = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                   f"sys.argv = ['okr', *{args!r}]; runpy.run_module('okr_cli', run_name='__main__')")
    process = subprocess.Popen([sys.executable, "-c", with_ctrl_c], env=_env(world, "globex", "admin", None),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    wait_until(lambda: world.store.head_position() > start + 150 or process.poll() is not None, timeout=120,
               interval=0.05, message="the demo half-way")
    process.send_signal(signal.SIGINT)  # Ctrl-C
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stdout + stderr
    assert "interrupted — run `okr demo --seed 3 --today" in stderr and "--prefix gx` to finish" in stderr
    assert "Traceback" not in stderr
    stored = world.store.head_position() - start
    plan = plan_company(3, TODAY, prefix="gx")
    assert 0 < stored < plan.counts()["calls"]

    finished = ok(okr(world, *args, tenant="globex"))
    assert "finished an interrupted seeding" in finished
    verified = json.loads(ok(okr(world, "audit", "verify", "--json", tenant="globex", role="auditor")))
    assert verified["ok"] is True
    # one event per planned call: nothing stored twice, nothing missing
    assert int(verified["events_checked"]) == plan.counts()["calls"]
    world.reporting_caught_up(timeout=60)
    board = answer(world, world.stub("reporting").GetBoard, reporting_pb2.GetBoardRequest(cycle_id="gx-quarter"),
                   tenant="globex", role="viewer")
    assert all(col.cards for col in board.key_results) and all(col.cards for col in board.initiatives)
    history, error = world.call(world.stub("audit").GetHistory, audit_pb2.GetHistoryRequest(key_result_id="kr-cac"),
                                tenant="globex", role="auditor")
    assert error is not None and error.code().name == "NOT_FOUND"  # acme's key results stay acme's

    # ids are per tenant (docs/api.md): acme's company, ids and all, seeds in globex too,
    # and each tenant's kr-cac is its own stream
    ok(okr(world, "demo", "--today", TODAY.isoformat(), tenant="globex"))
    mine = answer(world, world.stub("audit").GetHistory, audit_pb2.GetHistoryRequest(key_result_id="kr-cac"),
                  tenant="globex", role="auditor")
    theirs = answer(world, world.stub("audit").GetHistory, audit_pb2.GetHistoryRequest(key_result_id="kr-cac"),
                    tenant="acme", role="auditor")
    assert mine.entries and theirs.entries
    assert not {e.event_id for e in mine.entries} & {e.event_id for e in theirs.entries}


@pytest.mark.parametrize("world", ["sqlite"], indirect=True)
def test_errors_are_one_line_with_exit_codes(world):
    one_error_line(okr(world, "demo", role="viewer", tenant="globex"), 3, "may not seed", "--role admin")
    one_error_line(okr(world, "demo", role="lead", tenant="globex"), 3, "may not seed")
    one_error_line(okr(world, "demo", key="okr_000000000000_" + "x" * 43), 3, "API key was refused")
    one_error_line(okr(world, "demo", key=""), 3, "no API key")
    started = time.monotonic()
    one_error_line(okr(world, "demo", "--api", "127.0.0.1:1"), 6, "cannot reach the API at 127.0.0.1:1")
    assert time.monotonic() - started < 10
    for bad in (["--today", "2999-01-01"], ["--today", "soon"], ["--prefix", "a b"], ["--seed", "-1"]):
        done = okr(world, "demo", *bad)
        assert done.returncode == 2 and "Traceback" not in done.stderr and "invalid value" in done.stderr, bad
