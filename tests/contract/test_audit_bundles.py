"""The edge cases of the okr.export.v1 format (docs/audit-format.md, section 5), as an
auditor meets them: the offline verifier, run as ``python examples/verify_export.py
FILE``, gives every bundle under tests/contract/bundles/ the verdict (exit status) and
message its manifest.json states.

The bundles are derived by bundles/make_bundles.py from bundles/base.jsonl, an export
of the running suite (a tenant written by ``write_history`` below). To take a new one:
``OKR_WRITE_BUNDLES=1 pytest tests/contract/test_audit_bundles.py`` (then review the
diff of manifest.json).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from .contract_suite import export
from .contract_suite import ROOT, auth
from okr.v1 import events_pb2, goal_pb2, goal_pb2_grpc

BUNDLES = Path(__file__).resolve().parent / "bundles"
MAKE_BUNDLES = BUNDLES / "make_bundles.py"
VERIFIER = ROOT / "examples" / "verify_export.py"
MANIFEST = json.loads((BUNDLES / "manifest.json").read_text(encoding="ascii"))


def run_verifier(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(VERIFIER), str(path), *args], capture_output=True, text=True,
                          encoding="utf-8", timeout=60)


def derive(base: Path, out: Path) -> list[dict]:
    done = subprocess.run([sys.executable, str(MAKE_BUNDLES), str(base), str(out)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads((out / "manifest.json").read_text(encoding="ascii"))


def assert_verdict(folder: Path, case: dict) -> None:
    proc = run_verifier(folder / case["bundle"], *case["args"])
    said = (proc.stderr if case["exit"] == 2 else proc.stdout).strip()
    assert proc.returncode == case["exit"], (case["case"], proc.stdout, proc.stderr)
    assert said == case["output"] if case["match"] == "exact" else said.startswith(case["output"]), \
        (case["case"], said, case["output"])
    assert "\n" not in said and (proc.stdout if case["exit"] == 2 else proc.stderr) == ""


@pytest.mark.parametrize("case", MANIFEST, ids=[c["case"] for c in MANIFEST])
def test_each_bundle_gets_the_verdict_the_format_gives(case):
    assert_verdict(BUNDLES, case)


def test_the_manifest_covers_every_verdict_and_each_rule_once():
    assert {c["exit"] for c in MANIFEST} == {0, 1, 2}
    names = [c["case"] for c in MANIFEST]
    assert len(names) == len(set(names))
    for rule in ("unknown-key-event", "truncated-final-newline", "unknown-key-trailer", "empty-line", "crlf", "bom",
                 "duplicate-key", "valid-key-order", "number-fraction", "number-exponent", "unknown-key-header",
                 "valid-raw-utf8", "lone-surrogate", "anchor-older"):
        assert rule in names, rule


def test_the_committed_bundles_are_the_cases_derived_from_the_committed_export(tmp_path):
    manifest = derive(BUNDLES / "base.jsonl", tmp_path)
    assert manifest == MANIFEST
    made = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    committed = {p.name: p.read_bytes() for p in BUNDLES.iterdir() if p.suffix in (".jsonl", ".json")}
    assert made == committed


def write_history(suite, key: str) -> None:
    """A small history with non-ASCII text (accents, a euro sign, a character outside
    the BMP, a U+2028 line separator) in its payloads."""
    goals = goal_pb2_grpc.GoalServiceStub(suite.channel)
    q1, grow = f"q1-{uuid.uuid4().hex[:8]}", f"grow-{uuid.uuid4().hex[:8]}"  # ids unique in the suite
    goals.PlanCycle(goal_pb2.PlanCycleRequest(cycle_id=q1, cadence=events_pb2.CADENCE_QUARTERLY,
                                              name="Q1 — café €", start_date="2026-01-01", end_date="2026-03-31"),
                    metadata=auth(key), timeout=30)
    goals.CreateObjective(goal_pb2.CreateObjectiveRequest(
        objective_id=grow, cycle_id=q1, level=events_pb2.OBJECTIVE_LEVEL_COMPANY, title="Grow \U0001F680",
        owner="zoë", description="naïve\u2028second line"), metadata=auth(key), timeout=30)
    goals.ActivateCycle(goal_pb2.ActivateCycleRequest(cycle_id=q1), metadata=auth(key), timeout=30)


def test_a_fresh_export_of_the_running_suite_gets_the_same_verdicts(suite, tenant, tmp_path):
    _, key = tenant
    write_history(suite, key)
    base = tmp_path / "export.jsonl"
    base.write_bytes(b"".join(c.data for c in export(suite.gateway, key)))
    assert run_verifier(base).returncode == 0
    manifest = derive(base, tmp_path / "cases")
    assert [(c["case"], c["exit"], c["match"]) for c in manifest] == \
        [(c["case"], c["exit"], c["match"]) for c in MANIFEST]
    for case in manifest:
        assert_verdict(tmp_path / "cases", case)
    if os.environ.get("OKR_WRITE_BUNDLES") == "1":  # take this export as the committed one
        for old in BUNDLES.glob("*.json*"):
            old.unlink()
        derive(base, BUNDLES)
