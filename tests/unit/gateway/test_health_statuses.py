"""The gateway's health statuses from its dependencies (okr_services.gateway.health), and
the grpc.reflection.v1 file it derives from v1alpha (reflection_v1.py). The statuses a
client sees through the network, with the broker and the store really cut off, are
tested in tests/integration/gateway/test_health_outages.py and tests/contract/test_ops_health.py."""

from __future__ import annotations

import threading

import pytest
from grpc_health.v1 import health_pb2
from sqlalchemy import text

from okr_services.gateway import health, reflection_v1
from okr_services.gateway.config import health_interval
from okr_shared.eventstore import make_engine

SERVICES = ["okr.v1.GoalService", "okr.v1.ProgressService", "okr.v1.ReportingService", "okr.v1.AuditService",
            "okr.v1.EventStream"]
S, N = health.SERVING, health.NOT_SERVING


class Switch:
    """A probe that fails while ``down`` is set."""

    def __init__(self):
        self.down = False
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.down:
            raise ConnectionError("cut off")


def statuses(servicer) -> dict[str, int]:
    return {name: r.status for name, r in servicer.List(health_pb2.HealthListRequest(), None).statuses.items()}


@pytest.fixture
def checker():
    servicer = health.HealthServicer()
    broker, store = Switch(), Switch()
    c = health.DependencyChecker(servicer, {health.BROKER: broker, health.STORE: store}, SERVICES, interval=0.5)
    yield c, broker, store
    c.stop()


def test_list_answers_every_registered_service_with_its_status():
    servicer = health.HealthServicer()
    assert statuses(servicer) == {"": S}  # the library's default overall status
    servicer.set("okr.v1.GoalService", N)
    servicer.set("", S)
    assert statuses(servicer) == {"": S, "okr.v1.GoalService": N}


def test_statuses_follow_the_dependencies_each_service_needs(checker):
    c, broker, store = checker
    assert c.check_once() == {"broker": True, "store": True}
    assert statuses(c.servicer) == {name: S for name in SERVICES + [""]}

    broker.down = True
    c.check_once()
    assert statuses(c.servicer) == {"okr.v1.GoalService": N, "okr.v1.ProgressService": N,
                                    "okr.v1.ReportingService": N, "okr.v1.AuditService": N,
                                    "okr.v1.EventStream": N, "": N}
    broker.down, store.down = False, True
    c.check_once()
    assert statuses(c.servicer) == {"okr.v1.GoalService": S, "okr.v1.ProgressService": S,
                                    "okr.v1.ReportingService": S, "okr.v1.AuditService": N,
                                    "okr.v1.EventStream": N, "": N}
    store.down = False
    c.check_once()
    assert statuses(c.servicer) == {name: S for name in SERVICES + [""]}


def test_a_gateway_without_a_store_is_judged_by_the_broker_alone():
    servicer = health.HealthServicer()
    broker = Switch()
    c = health.DependencyChecker(servicer, {health.BROKER: broker}, SERVICES, interval=0.5)
    c.check_once()
    assert set(statuses(servicer).values()) == {S}
    broker.down = True
    c.check_once()
    assert set(statuses(servicer).values()) == {N}


def test_a_probe_that_hangs_is_down_and_is_not_started_again_while_it_hangs():
    release = threading.Event()
    calls = []

    def hanging():
        calls.append(1)
        release.wait(10)

    servicer = health.HealthServicer()
    c = health.DependencyChecker(servicer, {health.STORE: hanging}, ["okr.v1.AuditService"], interval=0.2)
    try:
        assert c.check_once() == {"store": False}
        assert c.check_once() == {"store": False}
        assert len(calls) == 1
        assert servicer.status("okr.v1.AuditService") == N
        release.set()
        assert c.check_once() == {"store": True}  # the hanging one finished: fine now
        assert servicer.status("okr.v1.AuditService") == S
    finally:
        release.set()
        c.stop()


def test_the_sqlite_store_is_unreachable_when_its_file_is_gone(tmp_path):
    path = tmp_path / "events.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    probe = health.store_probe(engine)
    try:
        probe()
        moved = path.rename(tmp_path / "elsewhere.db")
        with pytest.raises(FileNotFoundError, match="events.db"):
            probe()
        assert not path.exists()  # the probe did not create an empty database in its place
        moved.rename(path)
        probe()
    finally:
        engine.dispose()


def test_the_postgresql_store_is_unreachable_on_a_closed_port():
    from tests.waiting import free_port

    engine = make_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/test")
    try:
        with pytest.raises(Exception, match="(?i)connect"):
            health.store_probe(engine)()
    finally:
        engine.dispose()


@pytest.mark.parametrize("raw", ["0", "-1", "soon", "nan", "inf"])
def test_a_bad_interval_is_refused_naming_the_variable(raw):
    with pytest.raises(ValueError, match="OKR_GATEWAY_HEALTH_INTERVAL_S"):
        health_interval({"OKR_GATEWAY_HEALTH_INTERVAL_S": raw})


def test_the_interval_defaults_to_two_seconds():
    assert health_interval({}) == 2.0
    assert health_interval({"OKR_GATEWAY_HEALTH_INTERVAL_S": "0.25"}) == 0.25


# --------------------------------------------------------------- reflection v1

#: upstream grpc/reflection/v1/reflection.proto (grpc/grpc-proto): message -> fields
#: (name, number, protobuf type), read from the published file, not from v1alpha.
UPSTREAM_V1 = {
    "ServerReflectionRequest": [("host", 1, "string"), ("file_by_filename", 3, "string"),
                                ("file_containing_symbol", 4, "string"),
                                ("file_containing_extension", 5, ".grpc.reflection.v1.ExtensionRequest"),
                                ("all_extension_numbers_of_type", 6, "string"), ("list_services", 7, "string")],
    "ExtensionRequest": [("containing_type", 1, "string"), ("extension_number", 2, "int32")],
    "ServerReflectionResponse": [("valid_host", 1, "string"),
                                 ("original_request", 2, ".grpc.reflection.v1.ServerReflectionRequest"),
                                 ("file_descriptor_response", 4, ".grpc.reflection.v1.FileDescriptorResponse"),
                                 ("all_extension_numbers_response", 5, ".grpc.reflection.v1.ExtensionNumberResponse"),
                                 ("list_services_response", 6, ".grpc.reflection.v1.ListServiceResponse"),
                                 ("error_response", 7, ".grpc.reflection.v1.ErrorResponse")],
    "FileDescriptorResponse": [("file_descriptor_proto", 1, "repeated bytes")],
    "ExtensionNumberResponse": [("base_type_name", 1, "string"), ("extension_number", 2, "repeated int32")],
    "ListServiceResponse": [("service", 1, "repeated .grpc.reflection.v1.ServiceResponse")],
    "ServiceResponse": [("name", 1, "string")],
    "ErrorResponse": [("error_code", 1, "int32"), ("error_message", 2, "string")],
}


def test_the_derived_v1_file_is_upstreams_v1_on_the_wire():
    from google.protobuf import descriptor_pb2

    names = {descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string",
             descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "int32",
             descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: "bytes"}
    file = reflection_v1.v1_file_proto()
    assert (file.name, file.package) == ("grpc/reflection/v1/reflection.proto", "grpc.reflection.v1")
    repeated = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED

    def kind(f):
        return ("repeated " if f.label == repeated else "") + names.get(f.type, f.type_name)

    got = {m.name: [(f.name, f.number, kind(f)) for f in m.field] for m in file.message_type}
    assert got == UPSTREAM_V1
    [service] = file.service
    [method] = service.method
    assert (service.name, method.name, method.input_type, method.output_type,
            method.client_streaming, method.server_streaming) == (
        "ServerReflection", "ServerReflectionInfo", ".grpc.reflection.v1.ServerReflectionRequest",
        ".grpc.reflection.v1.ServerReflectionResponse", True, True)
