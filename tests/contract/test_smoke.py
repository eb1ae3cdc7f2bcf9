"""The contract suite reaches the suite `make run` starts: a key from `okr keys create`
authenticates, a call without a credential does not."""

from __future__ import annotations

import grpc

from .contract_suite import auth, refusal
from okr.v1 import goal_pb2, goal_pb2_grpc


def test_a_tenant_key_made_with_the_cli_reads_and_no_credential_is_unauthenticated(suite, tenant):
    _, key = tenant
    goals = goal_pb2_grpc.GoalServiceStub(suite.channel)
    error = refusal(goals.GetCycle, goal_pb2.GetCycleRequest(cycle_id="nope"), metadata=auth(key), timeout=10)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = refusal(goals.GetCycle, goal_pb2.GetCycleRequest(cycle_id="nope"), timeout=10)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
