"""ExportBundle's max_chunk_bytes (audit.proto ExportBundleRequest): never refused — a
value below 1 KiB is served as 1024, one above 4 MiB − 1 KiB as 4193280, so that every
chunk fits a default client's 4 MiB message limit; a chunk holds as many whole lines as
fit, and a line longer than the chunk size travels alone in a chunk of its own."""

from __future__ import annotations

import json
import uuid

import pytest

from .contract_suite import export
from .contract_suite import auth
from okr.v1 import audit_pb2, events_pb2, goal_pb2, goal_pb2_grpc

CAP = 4 * 1024 * 1024 - 1024
MINIMUM = 1024
# Each objective line: 4000 characters outside the BMP, each written as a 12-byte
# surrogate-pair escape in the ASCII export line (docs/audit-format.md section 4).
DESCRIPTION = "\U0001F600" * 4000
OBJECTIVES = 4 * 1024 * 1024 // 48_000 + 4  # enough lines for more than 4 MiB


@pytest.fixture(scope="module")
def big_tenant(suite):
    """A tenant whose export is larger than the cap: ~90 lines of ~48 KB each."""
    _, key = suite.new_tenant("admin")
    goals = goal_pb2_grpc.GoalServiceStub(suite.channel)
    cycle, prefix = f"q1-{uuid.uuid4().hex[:8]}", f"o-{uuid.uuid4().hex[:8]}"  # ids unique in the suite
    goals.PlanCycle(goal_pb2.PlanCycleRequest(cycle_id=cycle, cadence=events_pb2.CADENCE_QUARTERLY, name="Q1",
                                              start_date="2026-01-01", end_date="2026-03-31"),
                    metadata=auth(key), timeout=30)
    for i in range(OBJECTIVES):
        goals.CreateObjective(goal_pb2.CreateObjectiveRequest(
            objective_id=f"{prefix}-{i}", cycle_id=cycle, level=events_pb2.OBJECTIVE_LEVEL_COMPANY, title=f"Objective {i}",
            owner="ada", description=DESCRIPTION), metadata=auth(key), timeout=60)
    return key


def lines_of(chunk: audit_pb2.ExportChunk) -> list[bytes]:
    assert chunk.data.endswith(b"\n"), "a chunk holds whole lines"
    return chunk.data.split(b"\n")[:-1]


def assert_packed(chunks: list[audit_pb2.ExportChunk], size: int) -> None:
    """Sequence 0, 1, …; the chain head on the last chunk only; every chunk at most
    ``size`` bytes unless it is one line; no chunk could have taken the next line."""
    assert [c.sequence for c in chunks] == list(range(len(chunks)))
    assert [c.HasField("chain_head") for c in chunks] == [False] * (len(chunks) - 1) + [True]
    for chunk, following in zip(chunks, chunks[1:] + [None]):
        lines = lines_of(chunk)
        assert len(chunk.data) <= size or len(lines) == 1, (len(chunk.data), len(lines))
        if following is not None:
            assert len(chunk.data) + len(lines_of(following)[0]) + 1 > size


def test_a_chunk_size_above_the_cap_is_served_at_the_cap(suite, big_tenant):
    whole = b"".join(c.data for c in export(suite.gateway, big_tenant, 0))
    assert len(whole) > 4 * 1024 * 1024
    for requested in (CAP + 1, 4 * 1024 * 1024, 2**32 - 1):
        # the driver's channel has gRPC's default 4 MiB receive limit: it takes every chunk
        chunks = export(suite.gateway, big_tenant, requested)
        assert len(chunks) >= 2 and max(len(c.data) for c in chunks) <= CAP, requested
        assert_packed(chunks, CAP)
        assert b"".join(c.data for c in chunks) == whole
    at_cap = export(suite.gateway, big_tenant, CAP)
    assert [c.data for c in at_cap] == [c.data for c in chunks]


def test_the_default_chunk_size_is_one_mebibyte(suite, big_tenant):
    chunks = export(suite.gateway, big_tenant, 0)
    assert len(chunks) > 4 and max(len(c.data) for c in chunks) <= 1 << 20
    assert_packed(chunks, 1 << 20)


def test_a_chunk_size_below_the_minimum_is_served_at_the_minimum(suite, big_tenant):
    at_minimum = export(suite.gateway, big_tenant, MINIMUM)
    for requested in (1, MINIMUM - 1):
        assert [c.data for c in export(suite.gateway, big_tenant, requested)] == [c.data for c in at_minimum]
    assert_packed(at_minimum, MINIMUM)
    # the objective lines are longer than the chunk size: each travels alone
    long_lines = [c for c in at_minimum if len(c.data) > MINIMUM]
    assert len(long_lines) == OBJECTIVES
    for chunk in long_lines:
        (line,) = lines_of(chunk)
        assert json.loads(line)["event_type"].endswith("ObjectiveCreated")
    # the short lines (header, the cycle's event, trailer) share chunks as they fit
    assert len(at_minimum) < OBJECTIVES + 3
