"""The public gRPC API end to end: a real gateway process in front of the real services,
RabbitMQ and the event store (SQLite and PostgreSQL). Fixtures: gateway_fixtures.py."""

# ruff: noqa: F811

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

import grpc
import pytest

from .gateway_fixtures import PRINCIPALS, ROOT, world  # noqa: F401 - fixture
from okr.v1 import audit_pb2, common_pb2, directory_pb2, events_pb2, goal_pb2, progress_pb2, reporting_pb2, stream_pb2
from okr_services.gateway import policy
from okr_services.gateway.auth import Principal
from tests.waiting import wait_until

S = grpc.StatusCode


def trailing(error) -> dict:
    return dict(error.trailing_metadata() or ())


def ok(result):
    response, error = result
    assert error is None, f"{error.code()}: {error.details()}"
    return response


def refused(result, code):
    response, error = result
    assert error is not None, f"expected {code}, got {response}"
    assert error.code() == code, f"expected {code}, got {error.code()}: {error.details()}"
    return error


def seed(world, tenant: str = "acme", suffix: str = ""):
    """A cycle, an objective of team growth owned by the lead, KRs owned by the member, by
    someone else, and the one delegated to the service key."""
    g = world.stub("goal")
    admin = {"tenant": tenant, "role": "admin"}
    ok(world.call(g.PlanCycle, goal_pb2.PlanCycleRequest(
        cycle_id=f"q1{suffix}", cadence=events_pb2.CADENCE_QUARTERLY, name="Q1", start_date="2026-01-01",
        end_date="2026-03-31"), **admin))
    ok(world.call(g.CreateObjective, goal_pb2.CreateObjectiveRequest(
        objective_id=f"o-growth{suffix}", cycle_id=f"q1{suffix}", level=events_pb2.OBJECTIVE_LEVEL_TEAM,
        title="Grow", owner="lena", team_id="growth"), **admin))
    ok(world.call(g.CreateObjective, goal_pb2.CreateObjectiveRequest(
        objective_id=f"o-ops{suffix}", cycle_id=f"q1{suffix}", level=events_pb2.OBJECTIVE_LEVEL_TEAM,
        title="Run", owner="olga", team_id="ops"), **admin))
    for kr, objective, owner in ((f"kr-max{suffix}", f"o-growth{suffix}", "max"),
                                 (f"kr-other{suffix}", f"o-ops{suffix}", "oscar"),
                                 (f"kr-delegated{suffix}", f"o-ops{suffix}", "oscar")):
        ok(world.call(g.DefineKeyResult, goal_pb2.DefineKeyResultRequest(
            key_result_id=kr, objective_id=objective, title=f"{kr} 0 → 100", kind=events_pb2.KEY_RESULT_KIND_INCREASE_TO,
            start_value=0, target_value=100, owner=owner, due_date="2026-03-31"), **admin))
    ok(world.call(g.CreateInitiative, goal_pb2.CreateInitiativeRequest(
        initiative_id=f"i-other{suffix}", key_result_id=f"kr-other{suffix}", title="Automate", assignee="oscar",
        start_date="2026-01-05", due_date="2026-02-15"), **admin))
    ok(world.call(g.ActivateCycle, goal_pb2.ActivateCycleRequest(cycle_id=f"q1{suffix}"), **admin))


@pytest.fixture(scope="module")
def seeded(world):
    seed(world, "acme")
    seed(world, "globex", suffix="-gx")
    world.reporting_caught_up()
    return world


# ------------------------------------------------------------------ the happy path


def test_commands_and_reads_round_trip_typed(seeded):
    w = seeded
    result = ok(w.call(w.stub("progress").RecordCheckIn, progress_pb2.RecordCheckInRequest(
        key_result_id="kr-max", value=20, confidence=7, effective_date="2026-01-20"), role="member"))
    assert isinstance(result, common_pb2.CommandResult)
    assert result.stream_id == "kr-kr-max" and result.first_position >= 1 and result.created_id
    assert list(result.event_types) == ["okr.v1.CheckInRecorded"]
    kr = ok(w.call(w.stub("goal").GetKeyResult, goal_pb2.GetKeyResultRequest(key_result_id="kr-max"), role="viewer"))
    assert kr.owner == "max" and kr.kind == events_pb2.KEY_RESULT_KIND_INCREASE_TO and kr.target_value == 100
    assert [c.value for c in kr.check_ins] == [20]
    w.reporting_caught_up()
    board = ok(w.call(w.stub("reporting").GetBoard, reporting_pb2.GetBoardRequest(cycle_id="q1", today="2026-01-21"),
                      role="viewer"))
    cards = {card.id: column.status for column in board.key_results for card in column.cards}
    assert set(cards) == {"kr-max", "kr-other", "kr-delegated"}
    statuses = ok(w.call(w.stub("reporting").ListKeyResultStatuses,
                         reporting_pb2.ListKeyResultStatusesRequest(cycle_id="q1", today="2026-01-21")))
    assert {s.key_result_id for s in statuses.statuses} == set(cards)


def test_the_correlation_id_travels_from_the_call_to_the_events(seeded):
    w = seeded
    result = ok(w.call(w.stub("progress").RecordCheckIn, progress_pb2.RecordCheckInRequest(
        key_result_id="kr-max", value=22, confidence=7, effective_date="2026-01-22"), role="member",
        metadata=(("okr-correlation-id", "corr-123"),)))
    (event,) = list(w.store.read_all(result.first_position, to_position=result.first_position))
    assert event.metadata["correlation_id"] == "corr-123" and event.metadata["actor"] == "max"


def test_idempotent_retry_with_a_command_id(seeded):
    w = seeded
    request = progress_pb2.RecordCheckInRequest(key_result_id="kr-max", value=25, confidence=7,
                                                effective_date="2026-01-27", command_id="retry-1")
    first = ok(w.call(w.stub("progress").RecordCheckIn, request, role="member"))
    again = ok(w.call(w.stub("progress").RecordCheckIn, request, role="member"))
    assert again.already_stored and again.last_position == first.last_position


# ------------------------------------------------------------------ errors, mapped


def test_domain_refusals_map_to_status_codes_with_details(seeded):
    w = seeded
    g = w.stub("goal")
    e = refused(w.call(g.PlanCycle, goal_pb2.PlanCycleRequest(
        cycle_id="bad", cadence=events_pb2.CADENCE_QUARTERLY, name="x", start_date="2026-04-01",
        end_date="2026-03-01")), S.INVALID_ARGUMENT)
    assert trailing(e).get("okr-field") in ("end_date", "start_date")
    e = refused(w.call(g.GetObjective, goal_pb2.GetObjectiveRequest(objective_id="nope")), S.NOT_FOUND)
    assert trailing(e)["okr-kind"] == "not_found" and trailing(e).get("okr-id") == "nope"
    e = refused(w.call(g.RestateObjective, goal_pb2.RestateObjectiveRequest(
        objective_id="o-growth", title="Grow more")), S.FAILED_PRECONDITION)
    assert trailing(e).get("okr-rule")
    e = refused(w.call(g.PlanCycle, goal_pb2.PlanCycleRequest(cycle_id="x2", name="x", start_date="2026-04-01",
                                                              end_date="2026-06-30")), S.INVALID_ARGUMENT)
    assert trailing(e).get("okr-field") == "cadence" and trailing(e)["okr-kind"] == "invalid_argument"


def test_unauthenticated_calls_are_refused(seeded):
    w = seeded
    request = goal_pb2.GetCycleRequest(cycle_id="q1")
    e = refused(w.call(w.stub("goal").GetCycle, request, key=""), S.UNAUTHENTICATED)
    assert "missing credentials" in e.details()
    refused(w.call(w.stub("goal").GetCycle, request, key="okr_000000000000_" + "x" * 43), S.UNAUTHENTICATED)
    refused(w.call(w.stub("goal").GetCycle, request, key="garbage"), S.UNAUTHENTICATED)


def test_permission_denied_names_the_rule(seeded):
    w = seeded
    e = refused(w.call(w.stub("progress").RecordCheckIn, progress_pb2.RecordCheckInRequest(
        key_result_id="kr-other", value=1, confidence=5, effective_date="2026-01-20"), role="member"),
        S.PERMISSION_DENIED)
    assert "own" in e.details()
    refused(w.call(w.stub("goal").PlanCycle, goal_pb2.PlanCycleRequest(
        cycle_id="q9", cadence=events_pb2.CADENCE_QUARTERLY, name="x", start_date="2026-04-01",
        end_date="2026-06-30"), role="viewer"), S.PERMISSION_DENIED)
    ok(w.call(w.stub("progress").RecordCheckIn, progress_pb2.RecordCheckInRequest(
        key_result_id="kr-delegated", value=5, confidence=5, effective_date="2026-01-20"), role="service"))
    refused(w.call(w.stub("progress").RecordCheckIn, progress_pb2.RecordCheckInRequest(
        key_result_id="kr-other", value=5, confidence=5, effective_date="2026-01-20"), role="service"),
        S.PERMISSION_DENIED)
    ok(w.call(w.stub("goal").AdjustKeyResult, goal_pb2.AdjustKeyResultRequest(
        key_result_id="kr-max", target_value=120, reason="bigger market"), role="lead"))  # lena leads growth
    refused(w.call(w.stub("goal").AdjustKeyResult, goal_pb2.AdjustKeyResultRequest(
        key_result_id="kr-other", target_value=120, reason="x"), role="lead"), S.PERMISSION_DENIED)


# ------------------------------------------------------------- tenant isolation


def test_tenants_are_isolated_in_reads_writes_history_exports_and_streams(seeded):
    w = seeded
    gx = {"tenant": "globex", "role": "admin"}
    refused(w.call(w.stub("goal").GetKeyResult, goal_pb2.GetKeyResultRequest(key_result_id="kr-max"), **gx),
            S.NOT_FOUND)
    _, error = w.call(w.stub("progress").RecordCheckIn, progress_pb2.RecordCheckInRequest(
        key_result_id="kr-max", value=99, confidence=1, effective_date="2026-01-20"), **gx)
    assert error is not None and error.code() in (S.NOT_FOUND, S.PERMISSION_DENIED)
    refused(w.call(w.stub("audit").GetHistory, audit_pb2.GetHistoryRequest(key_result_id="kr-max"), **gx), S.NOT_FOUND)
    chunks, error = w.stream("/okr.v1.AuditService/ExportBundle", audit_pb2.ExportBundleRequest(), **gx,
                             response_cls=audit_pb2.ExportChunk)
    assert error is None
    lines = b"".join(c.data for c in chunks).decode().splitlines()
    assert lines and all(json.loads(line).get("tenant_id", "globex") == "globex" for line in lines)
    assert '"kr-kr-max"' not in "".join(lines) and '"kr-kr-max-gx"' in "".join(lines)
    events, error = w.stream("/okr.v1.EventStream/StreamEvents", stream_pb2.StreamEventsRequest(follow=False), **gx,
                             response_cls=events_pb2.EventEnvelope)
    assert error is None and events and {e.tenant_id for e in events} == {"globex"}
    board = ok(w.call(w.stub("reporting").GetBoard, reporting_pb2.GetBoardRequest(), **gx))
    assert "kr-max" not in {card.id for column in board.key_results for card in column.cards}
    assert ok(w.call(w.stub("audit").VerifyChain, audit_pb2.VerifyChainRequest(), **gx)).ok


# ---------------------------------------------------------------------- audit


def test_history_says_who_when_why_and_the_export_verifies_offline(seeded):
    w = seeded
    ok(w.call(w.stub("goal").AdjustKeyResult, goal_pb2.AdjustKeyResultRequest(
        key_result_id="kr-other", target_value=80, reason="budget cut"), role="admin"))
    history = ok(w.call(w.stub("audit").GetHistory, audit_pb2.GetHistoryRequest(key_result_id="kr-other"),
                        role="auditor"))
    adjusted = [e for e in history.entries if e.event_type == "okr.v1.KeyResultTargetAdjusted"]
    assert adjusted and adjusted[-1].actor == "ada" and adjusted[-1].reason == "budget cut"
    assert adjusted[-1].what == "adjusted"  # the read models' word (audit.proto HistoryEntry.what)
    assert adjusted[-1].recorded_at.seconds > 0 and adjusted[-1].payload["new_target_value"] == 80
    refused(w.call(w.stub("audit").GetHistory, audit_pb2.GetHistoryRequest(key_result_id="kr-other"),
                   role="member"), S.PERMISSION_DENIED)
    verified = ok(w.call(w.stub("audit").VerifyChain, audit_pb2.VerifyChainRequest(), role="auditor"))
    assert verified.ok and verified.events_checked > 5 and verified.chain_head.last_hash
    chunks, error = w.stream("/okr.v1.AuditService/ExportBundle", audit_pb2.ExportBundleRequest(max_chunk_bytes=1024),
                             role="auditor", response_cls=audit_pb2.ExportChunk)
    assert error is None and len(chunks) > 1 and chunks[-1].chain_head.last_hash == verified.chain_head.last_hash
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as f:
        f.write(b"".join(c.data for c in chunks))
    check = subprocess.run([sys.executable, f"{ROOT}/examples/verify_export.py", f.name], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_weekly_diff_names_each_status_change(seeded):
    w = seeded
    w.reporting_caught_up()
    diff = ok(w.call(w.stub("reporting").GetDiff, reporting_pb2.GetDiffRequest(
        since=common_pb2.Instant(position=1)), role="viewer"))
    assert diff.status_changes and all(c.to_status and c.key_result_id for c in diff.status_changes)


def test_replay_as_of_a_position(seeded):
    w = seeded
    head = w.store.head_position()
    at = common_pb2.Instant(position=head)
    replay = ok(w.call(w.stub("audit").ReplayAsOf, audit_pb2.ReplayAsOfRequest(
        read_model=audit_pb2.READ_MODEL_BOARD, at=at, today="2026-02-01"), role="auditor"))
    cards = [c for column in replay.result.struct_value["key_results"] for c in column["cards"]]
    assert {c["id"] for c in cards} >= {"kr-max", "kr-other"}
    refused(w.call(w.stub("audit").ReplayAsOf, audit_pb2.ReplayAsOfRequest(at=at), role="auditor"),
            S.INVALID_ARGUMENT)


# ------------------------------------------------------------- every RPC, every role


def _minimal_request(method):
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(method.input_type)()


def _all_methods():
    for module in (goal_pb2, progress_pb2, reporting_pb2, audit_pb2, stream_pb2, directory_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                yield service, method


def test_every_rpc_with_every_role(seeded):
    """Each RPC with an empty request (and, for commands, aimed at another team's key
    result where it names one): a role the policy denies gets PERMISSION_DENIED; a role
    it allows gets past authorisation (any answer but PERMISSION_DENIED, and never
    UNKNOWN or INTERNAL)."""
    w = seeded
    stubs = {"okr.v1.GoalService": w.stub("goal"), "okr.v1.ProgressService": w.stub("progress"),
             "okr.v1.ReportingService": w.stub("reporting"), "okr.v1.AuditService": w.stub("audit"),
             "okr.v1.EventStream": w.stub("stream"), "okr.v1.DirectoryService": w.stub("directory")}
    checked = 0
    for service, method in _all_methods():
        for role, (subject, role_name, teams, delegated) in PRINCIPALS.items():
            request = _minimal_request(method)
            targets = {"key_result_id": "kr-other", "objective_id": "o-ops", "initiative_id": "i-other"}
            for name, value in targets.items():
                if name in request.DESCRIPTOR.fields_by_name and method.output_type.full_name == "okr.v1.CommandResult":
                    setattr(request, name, value)
            principal = Principal("acme", subject, role_name, teams, delegated)
            if method.name in policy.COMPOSITES:  # authorised as each of its parts
                allowed = all(policy.allowed(principal, part, resource)
                              for part, resource in policy.composite_parts(method.name, "acme", {}))
            elif method.name in policy.DIRECTORY_COMMANDS:
                allowed = policy.allowed(principal, method.name, policy.directory_resource("acme", method.name, {}))
            elif method.output_type.full_name == "okr.v1.CommandResult":
                resource = policy.Resource("acme", team_id="ops", owner="oscar",
                                           key_result_id=getattr(request, "key_result_id", None) or None)
                allowed = policy.allowed(principal, method.name, resource)
            else:
                allowed = policy.allowed(principal, method.name, policy.Resource("acme"))
            if method.server_streaming:
                _, error = w.stream(f"/{service.full_name}/{method.name}", request, role=role, limit=1, timeout=5)
            else:
                _, error = w.call(getattr(stubs[service.full_name], method.name), request, role=role, timeout=5)
            code = error.code() if error is not None else S.OK
            assert code not in (S.UNKNOWN, S.INTERNAL), f"{method.name} as {role}: {code} {error.details()}"
            if allowed:
                assert code != S.PERMISSION_DENIED, f"{method.name} as {role} was denied: {error.details()}"
            else:
                assert code == S.PERMISSION_DENIED, f"{method.name} as {role}: expected PERMISSION_DENIED, got {code}"
            checked += 1
    assert checked == sum(1 for _ in _all_methods()) * len(PRINCIPALS)


# ----------------------------------------------------------- health, reflection


def test_health_and_reflection_for_generic_tools(seeded):
    import eventlet.tpool
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    w = seeded

    def probe():
        health = health_pb2_grpc.HealthStub(w.channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        return health.status

    status = eventlet.tpool.execute(probe)
    # reflection is a bidirectional stream: asked from a plain process, as a generic tool would
    script = (
        "import grpc, sys\n"
        "from grpc_reflection.v1alpha import reflection_pb2 as r, reflection_pb2_grpc as g\n"
        "c = grpc.insecure_channel(sys.argv[1])\n"
        "out = g.ServerReflectionStub(c).ServerReflectionInfo(iter([r.ServerReflectionRequest(list_services='')]),"
        " timeout=5)\n"
        "print('\\n'.join(s.name for x in out for s in x.list_services_response.service))\n")
    listed = subprocess.run([sys.executable, "-c", script, w.address], capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    names = listed.stdout.split()
    assert status == health_pb2.HealthCheckResponse.SERVING
    assert {"okr.v1.GoalService", "okr.v1.ProgressService", "okr.v1.ReportingService", "okr.v1.AuditService",
            "okr.v1.EventStream", "grpc.health.v1.Health"} <= set(names)


# -------------------------------------------------- deadlines, a service that is down


def test_a_dead_service_is_unavailable_not_a_hang(seeded):
    import time

    w = seeded
    container = w.containers["progress"]
    container.stop()
    try:
        started = time.monotonic()
        refused(w.call(w.stub("progress").RecordCheckIn, progress_pb2.RecordCheckInRequest(
            key_result_id="kr-other", value=1, confidence=5, effective_date="2026-01-20"), timeout=8),
            S.UNAVAILABLE)
        assert time.monotonic() - started < 8
    finally:
        container.start()
    wait_until(lambda: w.call(w.stub("progress").GetKeyResult,
                              goal_pb2.GetKeyResultRequest(key_result_id="kr-other"))[1] is None,
               timeout=15, message="progress back")


def test_a_second_gateway_on_a_port_in_use_fails_with_a_clear_error(seeded, tmp_path):
    """grpcio shares a port with any listener that allows it (SO_REUSEPORT, eventlet's
    default too) unless told not to: a second gateway on the first one's address must
    refuse to start, not silently take half of its connections."""
    from tests.infra import AMQP_URI

    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("OKR_JWT_", "OKR_GATEWAY_"))}
    env.update(OKR_GATEWAY_ADDRESS=seeded.address, AMQP_URI=AMQP_URI, OKR_METRICS_PORT="0",
               OKR_GATEWAY_DATABASE_URL=f"sqlite:///{tmp_path}/keys.db", OKR_DATABASE_URL=f"sqlite:///{tmp_path}/es.db")
    second = subprocess.run([sys.executable, "-m", "okr_services.gateway"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 2, second.stderr
    assert f"okr gateway: cannot listen on {seeded.address}: in use by another process" in second.stderr
    assert "Traceback" not in second.stderr
    assert seeded.process.poll() is None  # the first one serves on
    assert seeded.call(seeded.stub("progress").GetKeyResult,
                       goal_pb2.GetKeyResultRequest(key_result_id="kr-other"))[1] is None


def test_the_callers_deadline_is_honoured(seeded):
    w = seeded
    _, error = w.call(w.stub("reporting").GetBoard, reporting_pb2.GetBoardRequest(), timeout=0.001)
    assert error is not None and error.code() == S.DEADLINE_EXCEEDED
