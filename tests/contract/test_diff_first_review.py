"""Issue 18 point 4 (GetDiff): a new tenant's first weekly review works. A tenant whose
first event is today asks for the diff since last Monday (before its first event): the
answer is the diff from the beginning — everything is new — not INVALID_ARGUMENT
(docs/api.md "Instant": an instant before the tenant's first event is the empty state).
ReplayAsOf at such an instant answers the empty read model."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta, timezone

import grpc
from google.protobuf import json_format

from .contract_suite import auth, refusal
from okr.v1 import audit_pb2, audit_pb2_grpc, common_pb2, reporting_pb2, reporting_pb2_grpc
from .reads_plan import wait_for_read_models, write_plan


def last_monday() -> date:
    """The Monday of the week before this one's review: strictly before today."""
    today = date.today()
    return today - timedelta(days=today.weekday() or 7)


def everything_new(diff: reporting_pb2.Diff, plan) -> None:
    """The diff holds the plan's key result as new, its check-in, and the KR's status
    change from "not in scope" (from_status unset)."""
    answer = json_format.MessageToDict(diff, preserving_proto_field_name=True)
    assert [kr["key_result_id"] for kr in answer["new_key_results"]] == [plan.key_result_id]
    assert [(c["check_in_id"], c["what"]) for c in answer["check_ins"]] == [(plan.check_in_id, "check_in")]
    (change,) = diff.status_changes
    assert change.key_result_id == plan.key_result_id and not change.HasField("from_status") and change.to_status


def test_a_new_tenants_first_weekly_review_is_the_diff_from_the_beginning(suite):
    _, key = suite.new_tenant("admin")
    plan = write_plan(suite.channel, key, f"review-{uuid.uuid4().hex[:8]}")
    reporting = reporting_pb2_grpc.ReportingServiceStub(suite.channel)
    md = dict(metadata=auth(key), timeout=30)
    monday = last_monday()
    midnight = datetime.combine(monday, time(), timezone.utc)
    since_instants = [common_pb2.Instant(date=monday.isoformat()), common_pb2.Instant(position=0),
                      common_pb2.Instant(position=plan.positions[0] - 1)]
    since_instants.append(common_pb2.Instant())
    since_instants[-1].time.FromDatetime(midnight)
    until = common_pb2.Instant(position=plan.positions[-1])
    for since in since_instants:  # up to the plan's last event, read from the store
        diff = reporting.GetDiff(reporting_pb2.GetDiffRequest(since=since, until=until), **md)
        everything_new(diff, plan)
        assert diff.today_after == date.today().isoformat()
    # until unset: the live read model, once it has caught up with the check-in
    wait_for_read_models(suite.channel, key, plan)
    diff = reporting.GetDiff(reporting_pb2.GetDiffRequest(since=common_pb2.Instant(date=monday.isoformat())), **md)
    everything_new(diff, plan)
    assert diff.today_before == (monday - timedelta(days=1)).isoformat()  # the state at the end of Sunday


def test_a_tenant_without_events_has_an_empty_diff_and_replays_the_empty_state(suite):
    _, key = suite.new_tenant("admin")
    md = dict(metadata=auth(key), timeout=30)
    reporting = reporting_pb2_grpc.ReportingServiceStub(suite.channel)
    diff = reporting.GetDiff(reporting_pb2.GetDiffRequest(since=common_pb2.Instant(date=last_monday().isoformat())),
                             **md)
    assert not (diff.check_ins or diff.status_changes or diff.adjustments or diff.new_key_results
                or diff.slipped_initiatives)
    audit = audit_pb2_grpc.AuditServiceStub(suite.channel)
    request = audit_pb2.ReplayAsOfRequest(read_model=audit_pb2.READ_MODEL_BOARD,
                                          at=common_pb2.Instant(date=last_monday().isoformat()))
    board = json_format.MessageToDict(audit.ReplayAsOf(request, **md).result)
    assert len(board["key_results"]) == 6 and not any(column["cards"] for column in board["key_results"])
    # still refused: an instant in the future
    request = reporting_pb2.GetDiffRequest(since=common_pb2.Instant(date=(date.today() + timedelta(days=2))
                                                                    .isoformat()))
    error = refusal(reporting.GetDiff, request, **md)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and dict(error.trailing_metadata())["okr-field"] == "since"
