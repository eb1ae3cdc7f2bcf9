"""VerifyChain with an anchor (audit.proto, docs/audit-format.md section 1): an auditor's
saved chain head — the latest or an older one — is proven by the server exactly as the
offline verifier proves it; an anchor that is not in the tenant's chain is ok = false,
whatever tenant's position it names; a malformed one is INVALID_ARGUMENT."""

from __future__ import annotations

import subprocess
import sys
import uuid

import grpc
import pytest

from .contract_suite import export
from .contract_suite import ROOT, auth, refusal, trailers
from okr.v1 import audit_pb2, audit_pb2_grpc, events_pb2, goal_pb2, goal_pb2_grpc


def plan_cycle(suite, key: str) -> None:
    goals = goal_pb2_grpc.GoalServiceStub(suite.channel)
    goals.PlanCycle(goal_pb2.PlanCycleRequest(
        cycle_id=f"c-{uuid.uuid4().hex[:8]}", cadence=events_pb2.CADENCE_QUARTERLY, name="Q",
        start_date="2026-01-01", end_date="2026-03-31"), metadata=auth(key), timeout=30)


def verify(suite, key: str, expected_head: str = "", position: int = 0) -> audit_pb2.VerifyChainResponse:
    audit = audit_pb2_grpc.AuditServiceStub(suite.channel)
    return audit.VerifyChain(audit_pb2.VerifyChainRequest(expected_head=expected_head,
                                                          expected_head_position=position),
                             metadata=auth(key), timeout=30)


@pytest.fixture
def anchored(suite, tenant):
    """A tenant whose head was anchored after its first event; two events followed."""
    _, key = tenant
    plan_cycle(suite, key)
    first = verify(suite, key)
    assert first.ok and first.chain_head.event_count == 1
    plan_cycle(suite, key)
    plan_cycle(suite, key)
    return key, first.chain_head


def test_an_older_anchor_verifies_and_the_answer_says_what_was_checked(suite, anchored):
    key, old = anchored
    for position in (old.last_position, 0):  # with its position, and the hash alone
        answer = verify(suite, key, old.last_hash, position)
        assert answer.ok and answer.reason == "", answer
        assert answer.anchor_matched and answer.expected_head_position == old.last_position
        assert answer.anchor_event_count == 1 and answer.events_after_anchor == 2
        assert answer.events_checked == 3 and answer.chain_head.event_count == 3
    upper = verify(suite, key, old.last_hash.upper(), old.last_position)
    assert upper.ok and upper.anchor_matched

    current = verify(suite, key).chain_head
    latest = verify(suite, key, current.last_hash, current.last_position)
    assert latest.ok and latest.anchor_matched and latest.events_after_anchor == 0
    assert latest.anchor_event_count == 3 and latest.expected_head_position == current.last_position


def test_the_offline_verifier_and_the_server_agree_on_an_older_anchor(suite, anchored, tmp_path):
    key, old = anchored
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"".join(c.data for c in export(suite.gateway, key)))
    offline = subprocess.run([sys.executable, str(ROOT / "examples" / "verify_export.py"), str(path),
                              "--expect-head", old.last_hash], capture_output=True, text=True, timeout=60)
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert f"expected head found at position {old.last_position} (2 later event(s))" in offline.stdout
    online = verify(suite, key, old.last_hash, old.last_position)
    assert online.ok and online.expected_head_position == old.last_position and online.events_after_anchor == 2

    cli = suite.okr("audit", "verify", "--expected-head", old.last_hash, "--expected-position",
                    str(old.last_position), "--api", suite.gateway, "--key", key)
    assert cli.returncode == 0, cli.stderr
    assert f"expected head matched at position {old.last_position} (2 later event(s) verified)" in cli.stdout


def test_a_wrong_hash_at_the_anchors_position_is_a_mismatch(suite, anchored):
    key, old = anchored
    later = verify(suite, key).chain_head  # a real hash of the chain, but not at old's position
    for wrong in ("ab" * 32, later.last_hash):
        answer = verify(suite, key, wrong, old.last_position)
        assert not answer.ok and not answer.anchor_matched, answer
        assert answer.reason.startswith(f"expected head does not match: this tenant's event at position "
                                        f"{old.last_position} has another hash")
        assert (answer.expected_head_position, answer.anchor_event_count, answer.events_after_anchor) == (0, 0, 0)
        assert answer.first_bad_position == 0 and answer.events_checked == 3
    missing = verify(suite, key, "ab" * 32)
    assert not missing.ok and missing.reason.startswith("expected head is not in this tenant's chain")


def test_another_tenants_position_answers_like_a_position_beyond_the_head(suite, anchored):
    key, old = anchored
    _, other_key = suite.new_tenant("admin")
    plan_cycle(suite, other_key)
    other = verify(suite, other_key).chain_head  # the other tenant's event, its position and hash
    assert other.last_position > old.last_position

    def shape(answer, position):
        return (answer.ok, answer.anchor_matched, answer.events_checked, answer.first_bad_position,
                answer.first_bad_event_id, answer.expected_head_position, answer.chain_head.SerializeToString(),
                answer.reason.replace(str(position), "N"))

    foreign = verify(suite, key, other.last_hash, other.last_position)
    beyond = verify(suite, key, other.last_hash, 10**15)
    assert not foreign.ok and foreign.reason.startswith(
        f"expected head not found: this tenant's chain has no event at position {other.last_position}")
    assert shape(foreign, other.last_position) == shape(beyond, 10**15)
    # the other tenant's head without a position: like any hash that is not in the chain
    alone, random = verify(suite, key, other.last_hash), verify(suite, key, "cd" * 32)
    assert not alone.ok and shape(alone, 0) == shape(random, 0)


@pytest.mark.parametrize("expected_head, position", [
    ("xyz", 0), ("a" * 63, 0), ("a" * 65, 0), ("g" * 64, 0), (" " + "a" * 63, 5), ("", 5)])
def test_a_malformed_anchor_is_invalid_argument_naming_the_field(suite, tenant, expected_head, position):
    _, key = tenant
    audit = audit_pb2_grpc.AuditServiceStub(suite.channel)
    error = refusal(audit.VerifyChain, audit_pb2.VerifyChainRequest(
        expected_head=expected_head, expected_head_position=position), metadata=auth(key), timeout=30)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailers(error)["okr-field"] == "expected_head" and error.details().startswith("expected_head: ")
