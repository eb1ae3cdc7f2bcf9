"""docs/api.md, "Authentication and tenant isolation": every call carries exactly one
credential. More than one `authorization` entry is UNAUTHENTICATED — always: both
orders, API key and bearer token, the same value twice, valid or not, and also after
the key has just authenticated a call (the gateway has seen it)."""

from __future__ import annotations

import itertools

import grpc
import pytest

from .contract_suite import code_of, refusal
from okr.v1 import goal_pb2, goal_pb2_grpc, stream_pb2, stream_pb2_grpc

T = 30
TWO = "more than one authorization entry"


@pytest.fixture
def credentials(suite, tenant):
    """Authorization values: two valid keys of the tenant, a key of another tenant, a
    bearer token (signed by nobody this server trusts), an unknown key and garbage."""
    name, key = tenant
    _, foreign = suite.new_tenant("member")
    return {
        "key": f"ApiKey {key}",
        "other key": f"ApiKey {suite.key(name, 'viewer')}",
        "foreign key": f"ApiKey {foreign}",
        "bearer": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJl",
        "unknown key": "ApiKey okr_000000000000_" + "x" * 43,
        "garbage": "garbage",
    }


def get_cycle(suite, metadata):
    return goal_pb2_grpc.GoalServiceStub(suite.channel).GetCycle(
        goal_pb2.GetCycleRequest(cycle_id="nope"), metadata=metadata, timeout=T)


def authenticated(suite, value) -> bool:
    """The credential alone authenticates: an unknown cycle is NOT_FOUND, not UNAUTHENTICATED."""
    return code_of(get_cycle, suite, (("authorization", value),)) == grpc.StatusCode.NOT_FOUND


def test_two_authorization_entries_are_refused_in_every_combination(suite, credentials):
    valid = [name for name, value in credentials.items() if authenticated(suite, value)]  # now seen, cached
    assert valid == ["key", "other key", "foreign key"]
    for first, second in itertools.product(credentials, repeat=2):  # both orders; also one value twice
        metadata = (("authorization", credentials[first]), ("authorization", credentials[second]))
        error = refusal(get_cycle, suite, metadata)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (first, second, error.details())
        assert TWO in error.details(), (first, second)
    assert authenticated(suite, credentials["key"])  # one entry still works


def test_an_entry_between_other_metadata_counts_too(suite, credentials):
    assert authenticated(suite, credentials["key"])
    metadata = (("authorization", credentials["key"]), ("okr-correlation-id", "c-1"),
                ("authorization", credentials["key"]))
    assert refusal(get_cycle, suite, metadata).code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_stream_with_two_credentials_is_refused(suite, credentials):
    stub = stream_pb2_grpc.EventStreamStub(suite.channel)
    one = (("authorization", credentials["key"]),)
    list(stub.StreamEvents(stream_pb2.StreamEventsRequest(follow=False), metadata=one, timeout=T))  # no error
    for second in ("key", "bearer", "other key"):
        metadata = one + (("authorization", credentials[second]),)
        with pytest.raises(grpc.RpcError) as refused:
            list(stub.StreamEvents(stream_pb2.StreamEventsRequest(follow=False), metadata=metadata, timeout=T))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED and TWO in refused.value.details()
