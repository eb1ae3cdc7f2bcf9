"""Times, dates and ranges (docs/api.md, "Instant" and "Limits"): a
google.protobuf.Timestamp with nanos outside 0..999,999,999 or seconds outside
0001-01-01 .. 9999-12-31 is INVALID_ARGUMENT naming its path (``since.time``); a date is
exactly ``YYYY-MM-DD`` (an ISO week date such as ``2026-W49-1`` is INVALID_ARGUMENT
naming the field); GetDiff's ``since`` after its ``until`` is INVALID_ARGUMENT naming
``since``."""

from __future__ import annotations

import time
from datetime import date, timedelta

import grpc
import pytest
from google.protobuf import timestamp_pb2

from .contract_suite import auth, refusal, trailers
from okr.v1 import (audit_pb2, audit_pb2_grpc, common_pb2, events_pb2, goal_pb2, progress_pb2, progress_pb2_grpc,
                    reporting_pb2)
from .validation_world import make_plan, stubs
from tests.waiting import wait_until

WEEK_DATE = "2026-W49-1"  # Monday of ISO week 49 of 2026: Python's date.fromisoformat takes it
BAD_TIMESTAMPS = {
    "negative-nanos": (1_700_000_000, -1),
    "nanos-of-a-second": (1_700_000_000, 1_000_000_000),
    "after-9999": (253_402_300_800, 0),
    "before-0001": (-62_135_596_801, 0),
}


@pytest.fixture(scope="module")
def plan(suite):
    """The plan, and two seconds after its last event: the times below (now - 1 s) are
    after the tenant's first event."""
    _, key = suite.new_tenant("admin")
    made = make_plan(suite, key)
    stored = time.time()
    wait_until(lambda: time.time() > stored + 2, timeout=10, interval=0.1, message="two seconds")
    return made


def _refused_naming(error: grpc.RpcError, field: str) -> str:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    assert trailers(error)["okr-field"] == field, (trailers(error), error.details())
    return error.details()


def _time(seconds: int, nanos: int) -> common_pb2.Instant:
    return common_pb2.Instant(time=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos))


@pytest.mark.parametrize("seconds,nanos", BAD_TIMESTAMPS.values(), ids=BAD_TIMESTAMPS.keys())
def test_an_invalid_timestamp_is_invalid_argument_naming_its_path(suite, plan, seconds, nanos):
    _, reports = stubs(suite.channel)
    error = refusal(reports.GetDiff, reporting_pb2.GetDiffRequest(since=_time(seconds, nanos)),
                    metadata=auth(plan.key), timeout=30)
    _refused_naming(error, "since.time")
    audit = audit_pb2_grpc.AuditServiceStub(suite.channel)
    error = refusal(audit.ReplayAsOf, audit_pb2.ReplayAsOfRequest(
        read_model=audit_pb2.READ_MODEL_BOARD, at=_time(seconds, nanos)), metadata=auth(plan.key), timeout=30)
    _refused_naming(error, "at.time")


def test_a_timestamp_with_the_largest_nanos_is_accepted(suite, plan):
    audit = audit_pb2_grpc.AuditServiceStub(suite.channel)
    reply = audit.ReplayAsOf(audit_pb2.ReplayAsOfRequest(
        read_model=audit_pb2.READ_MODEL_BOARD, at=_time(int(time.time()) - 1, 999_999_999)),
        metadata=auth(plan.key), timeout=30)
    assert reply.read_model == audit_pb2.READ_MODEL_BOARD


def test_a_week_date_as_an_instant_is_invalid_argument(suite, plan):
    _, reports = stubs(suite.channel)
    error = refusal(reports.GetDiff, reporting_pb2.GetDiffRequest(since=common_pb2.Instant(date=WEEK_DATE)),
                    metadata=auth(plan.key), timeout=30)
    assert "YYYY-MM-DD" in _refused_naming(error, "since")


def test_a_week_date_as_a_read_day_is_invalid_argument(suite, plan):
    _, reports = stubs(suite.channel)
    error = refusal(reports.GetBoard, reporting_pb2.GetBoardRequest(today=WEEK_DATE), metadata=auth(plan.key),
                    timeout=30)
    _refused_naming(error, "today")


def test_a_week_date_in_a_command_is_invalid_argument(suite, plan):
    goals, _ = stubs(suite.channel)
    error = refusal(goals.PlanCycle, goal_pb2.PlanCycleRequest(
        cadence=events_pb2.CADENCE_MONTHLY, name="Week dated", start_date=WEEK_DATE, end_date="2026-12-31"),
        metadata=auth(plan.key), timeout=30)
    _refused_naming(error, "start_date")
    progress = progress_pb2_grpc.ProgressServiceStub(suite.channel)
    monday = date.today() - timedelta(days=date.today().weekday())
    iso = monday.isocalendar()
    error = refusal(progress.RecordCheckIn, progress_pb2.RecordCheckInRequest(
        key_result_id=plan.child_kr_id, value=1, confidence=5, effective_date=f"{iso.year}-W{iso.week:02d}-1"),
        metadata=auth(plan.key), timeout=30)
    _refused_naming(error, "effective_date")


def test_a_calendar_date_is_accepted_where_a_week_date_is_not(suite, plan):
    progress = progress_pb2_grpc.ProgressServiceStub(suite.channel)
    reply = progress.RecordCheckIn(progress_pb2.RecordCheckInRequest(
        key_result_id=plan.child_kr_id, value=1, confidence=5, effective_date=date.today().isoformat()),
        metadata=auth(plan.key), timeout=30)
    assert reply.last_position > 0


def test_a_diff_whose_since_is_after_its_until_is_invalid_argument_naming_since(suite, plan):
    _, reports = stubs(suite.channel)
    today, yesterday = date.today().isoformat(), (date.today() - timedelta(days=1)).isoformat()
    error = refusal(reports.GetDiff, reporting_pb2.GetDiffRequest(
        since=common_pb2.Instant(date=today), until=common_pb2.Instant(date=yesterday)),
        metadata=auth(plan.key), timeout=30)
    assert "after until" in _refused_naming(error, "since")
    error = refusal(reports.GetDiff, reporting_pb2.GetDiffRequest(
        since=common_pb2.Instant(position=10 ** 9 + 1), until=common_pb2.Instant(position=10 ** 9)),
        metadata=auth(plan.key), timeout=30)
    assert "after until" in _refused_naming(error, "since")
    now = int(time.time())
    error = refusal(reports.GetDiff, reporting_pb2.GetDiffRequest(since=_time(now - 1, 1000), until=_time(now - 1, 0)),
                    metadata=auth(plan.key), timeout=30)
    assert "after until" in _refused_naming(error, "since")


def test_a_diff_of_an_empty_range_is_answered(suite, plan):
    _, reports = stubs(suite.channel)
    at = _time(int(time.time()) - 1, 0)
    diff = reports.GetDiff(reporting_pb2.GetDiffRequest(since=at, until=at), metadata=auth(plan.key), timeout=30)
    assert list(diff.check_ins) == []
