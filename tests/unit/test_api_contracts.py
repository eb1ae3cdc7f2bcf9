"""The public gRPC API contracts (protos/okr/v1/{common,goal,progress,reporting,audit,
stream,directory}.proto): the generated code imports, every domain command has exactly one write
RPC whose request mirrors it, the services of the issue exist with their RPC names and
streaming kinds, and every service, RPC, message, field, oneof, enum and enum value
carries a leading doc comment. Run ``make proto`` first."""

from __future__ import annotations

import dataclasses
import importlib
import re
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor

from okr_shared.domain import commands

ROOT = Path(__file__).resolve().parents[2]
API_PROTOS = ["common", "goal", "progress", "reporting", "audit", "stream", "directory"]
PROTO_FILES = [f"okr/v1/{name}.proto" for name in API_PROTOS]

F = FieldDescriptor


# --- compiling the .proto files with their source info ------------------------------------


def _protoc(*args, files=PROTO_FILES):
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", "protos", *args, *files],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def file_protos(tmp_path_factory) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """name -> FileDescriptorProto (with source info) of each API file."""
    out = tmp_path_factory.mktemp("api") / "api.pb"
    _protoc("--include_source_info", f"--descriptor_set_out={out}")
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return {f.name: f for f in files}


def _module(name: str, suffix: str = "_pb2"):
    return importlib.import_module(f"okr.v1.{name}{suffix}")


def _services() -> dict:
    """service name -> ServiceDescriptor over every API file."""
    result = {}
    for name in API_PROTOS:
        result.update(_module(name).DESCRIPTOR.services_by_name)
    return result


# --- generated code --------------------------------------------------------------------


@pytest.mark.parametrize("name", API_PROTOS)
def test_the_generated_modules_import(name):
    module = _module(name)
    grpc_module = _module(name, "_pb2_grpc")
    assert module.DESCRIPTOR.package == "okr.v1"
    for service in module.DESCRIPTOR.services_by_name:
        assert hasattr(grpc_module, f"{service}Stub"), service
        assert hasattr(grpc_module, f"{service}Servicer"), service
        assert hasattr(grpc_module, f"add_{service}Servicer_to_server"), service


@pytest.mark.parametrize("name", API_PROTOS)
def test_generated_code_is_not_stale(name, tmp_path):
    _protoc(f"--python_out={tmp_path}", files=[f"okr/v1/{name}.proto"])
    fresh = (tmp_path / "okr" / "v1" / f"{name}_pb2.py").read_bytes()
    generated = ROOT / "shared" / "okr" / "v1" / f"{name}_pb2.py"
    assert generated.exists() and fresh == generated.read_bytes(), f"{generated} is stale: run `make proto`"


# --- the services of the issue -----------------------------------------------------------

ISSUE_RPCS = {
    "GoalService": {"GetCycle", "GetObjective", "GetKeyResult"},
    "ProgressService": {"GetKeyResult"},
    "ReportingService": {
        "GetBoard", "GetTeamDashboard", "GetPersonDashboard", "GetScorecard", "GetKeyResultStatus",
        "ListKeyResultStatuses", "GetObjectiveRollup", "GetAlignmentTree", "GetDiff",
    },
    "AuditService": {"GetHistory", "ReplayAsOf", "VerifyChain", "ExportBundle"},
    "EventStream": {"StreamEvents"},
}
SERVER_STREAMING = {("AuditService", "ExportBundle"), ("EventStream", "StreamEvents")}


def test_the_services_of_the_issue_exist_with_their_rpcs():
    services = _services()
    assert set(ISSUE_RPCS) <= set(services)
    for service, rpcs in ISSUE_RPCS.items():
        missing = rpcs - set(services[service].methods_by_name)
        assert not missing, f"{service} lacks {sorted(missing)}"


def test_only_stream_events_and_export_bundle_stream_and_no_rpc_takes_a_stream(file_protos):
    streaming = set()
    for proto in file_protos.values():
        for service in proto.service:
            for method in service.method:
                assert not method.client_streaming, f"{service.name}.{method.name}"
                if method.server_streaming:
                    streaming.add((service.name, method.name))
    assert streaming == SERVER_STREAMING


def test_stream_events_sends_event_envelopes_and_takes_the_issues_filters():
    method = _services()["EventStream"].methods_by_name["StreamEvents"]
    assert method.output_type.full_name == "okr.v1.EventEnvelope"
    fields = method.input_type.fields_by_name
    assert fields["from_position"].type == F.TYPE_UINT64
    assert fields["event_types"].is_repeated and fields["event_types"].type == F.TYPE_STRING
    assert fields["follow"].type == F.TYPE_BOOL


def test_no_request_carries_a_tenant():
    """The tenant is the caller's (authentication), never a request field."""
    offenders = []
    for service in _services().values():
        for method in service.methods:
            stack = [method.input_type]
            seen = set()
            while stack:
                message = stack.pop()
                if message.full_name in seen:
                    continue
                seen.add(message.full_name)
                for field in message.fields:
                    if "tenant" in field.name:
                        offenders.append(f"{message.full_name}.{field.name}")
                    if field.message_type is not None and field.message_type.full_name.startswith("okr."):
                        stack.append(field.message_type)
    assert not offenders


def test_command_result_reports_stream_version_positions_and_idempotency():
    fields = _module("common").CommandResult.DESCRIPTOR.fields_by_name
    expected = {"stream_id": F.TYPE_STRING, "stream_version": F.TYPE_UINT64, "first_position": F.TYPE_UINT64,
                "last_position": F.TYPE_UINT64, "already_stored": F.TYPE_BOOL}
    assert {name: fields[name].type for name in expected} == expected


def test_instant_is_a_oneof_of_position_time_and_date():
    descriptor = _module("common").Instant.DESCRIPTOR
    (oneof,) = descriptor.oneofs
    assert {f.name for f in oneof.fields} == {"position", "time", "date"}
    assert descriptor.fields_by_name["time"].message_type.full_name == "google.protobuf.Timestamp"
    diff = _services()["ReportingService"].methods_by_name["GetDiff"].input_type.fields_by_name
    assert diff["since"].message_type is descriptor and diff["until"].message_type is descriptor


def test_audit_rpcs_carry_the_issues_fields():
    audit = _services()["AuditService"].methods_by_name
    verify = audit["VerifyChain"].output_type.fields_by_name
    assert {"ok", "events_checked", "first_bad_position", "reason"} <= set(verify)
    entry = audit["GetHistory"].output_type.fields_by_name["entries"].message_type.fields_by_name
    assert {"actor", "recorded_at", "reason", "what", "position", "event_type", "payload"} <= set(entry)
    assert entry["payload"].message_type.full_name == "google.protobuf.Struct"
    request = audit["GetHistory"].input_type.fields_by_name
    assert request["key_result_id"].containing_oneof is request["stream_id"].containing_oneof is not None
    replay = audit["ReplayAsOf"].input_type.fields_by_name
    assert replay["at"].message_type.full_name == "okr.v1.Instant"
    chunk = audit["ExportBundle"].output_type.fields_by_name
    assert chunk["data"].type == F.TYPE_BYTES
    assert chunk["chain_head"].message_type.full_name == "okr.v1.ChainHead"


def test_every_replayable_read_model_of_the_reporting_service_is_in_the_read_model_enum():
    reporting = pytest.importorskip("okr_services.reporting.service")
    names = {v.name.removeprefix("READ_MODEL_").lower() for v in _module("audit").ReadModel.DESCRIPTOR.values
             if v.number}
    assert names == set(reporting.READ_MODELS)


# --- one write RPC per domain command ------------------------------------------------------

COMMANDS = sorted(
    (cls for _, cls in vars(commands).items()
     if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == commands.__name__),
    key=lambda cls: cls.__name__,
)
WRITE_SERVICES = ("GoalService", "ProgressService", "DirectoryService")
# Enums of events.proto a command's string field may use (the value without its prefix).
ENUM_FIELD_TYPES = {"okr.v1.Cadence", "okr.v1.ObjectiveLevel", "okr.v1.KeyResultKind", "okr.v1.DirectoryRole"}
# Write RPCs made of several commands, each sent as its own command by the service (so
# none is a command of its own): RPC -> the commands it runs. ImportPlan answers
# ImportPlanResult, not CommandResult, so it is no write RPC in this sense.
COMPOSITE_WRITES = {"MovePersonToTeam": ("RemoveTeamMember", "AddTeamMember")}


def test_the_command_list_is_not_empty():
    assert len(COMMANDS) >= 20


def _rpcs_named(name: str) -> list[tuple[str, object]]:
    services = _services()
    return [(s, services[s].methods_by_name[name]) for s in WRITE_SERVICES if name in services[s].methods_by_name]


def _compatible(annotation, field) -> bool:
    """Whether a proto field can carry a dataclass field of this annotation."""
    if field.is_repeated:
        return False
    args = set(typing.get_args(annotation)) if isinstance(annotation, types.UnionType) else {annotation}
    optional = type(None) in args
    args.discard(type(None))
    if optional and not field.has_presence:  # None ("unchanged") must be told from a value
        return False
    if args == {str}:
        if field.type == F.TYPE_ENUM:
            return field.enum_type.full_name in ENUM_FIELD_TYPES
        return field.type == F.TYPE_STRING
    if args == {float} or args == {float, bool}:
        return field.type == F.TYPE_DOUBLE
    if args == {int}:
        return field.type in (F.TYPE_INT32, F.TYPE_INT64, F.TYPE_SINT32, F.TYPE_SINT64)
    if args == {bool}:
        return field.type == F.TYPE_BOOL
    return False


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.__name__)
def test_every_command_has_exactly_one_rpc_whose_request_mirrors_it(command):
    rpcs = _rpcs_named(command.__name__)
    assert len(rpcs) == 1, f"{command.__name__}: {len(rpcs)} RPCs in {WRITE_SERVICES}"
    (_, method), = rpcs
    assert method.output_type.full_name == "okr.v1.CommandResult"
    request = method.input_type
    assert request.name == f"{command.__name__}Request"
    hints = typing.get_type_hints(command)
    for field in dataclasses.fields(command):
        proto_field = request.fields_by_name.get(field.name)
        assert proto_field is not None, f"{request.name} lacks {field.name}"
        assert _compatible(hints[field.name], proto_field), (
            f"{request.name}.{field.name}: proto type {proto_field.type} cannot carry {hints[field.name]}")
    command_id = request.fields_by_name.get("command_id")
    assert command_id is not None and command_id.type == F.TYPE_STRING, f"{request.name} lacks command_id"
    extra = set(request.fields_by_name) - {f.name for f in dataclasses.fields(command)} - {"command_id"}
    assert not extra, f"{request.name} has fields the command does not: {sorted(extra)}"


def test_enum_fields_of_commands_cover_the_values_the_commands_name():
    """A command's enum string ("QUARTERLY") is the proto enum value without its prefix."""
    documented = {
        ("PlanCycleRequest", "cadence"): {"MONTHLY", "QUARTERLY", "ANNUAL"},
        ("CreateObjectiveRequest", "level"): {"COMPANY", "TEAM", "INDIVIDUAL"},
        ("DefineKeyResultRequest", "kind"): {"INCREASE_TO", "DECREASE_TO", "STAY_AT_OR_ABOVE", "STAY_AT_OR_BELOW",
                                             "MILESTONE", "PERCENTAGE", "CURRENCY"},
        ("GrantRoleRequest", "role"): {"ADMIN", "AUDITOR", "OBSERVER"},
        ("RevokeRoleRequest", "role"): {"ADMIN", "AUDITOR", "OBSERVER"},
    }
    requests = {m.input_type.name: m.input_type for s in _services().values() for m in s.methods}
    for (message, field), values in documented.items():
        enum = requests[message].fields_by_name[field].enum_type
        prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"
        names = {v.name.removeprefix(prefix) for v in enum.values if v.number}
        assert names == values, (message, field)


def test_every_write_rpc_is_a_command():
    """No write RPC without a command: the RPCs returning CommandResult are exactly the
    commands, and the composite writes (COMPOSITE_WRITES), each made of commands."""
    services = _services()
    writes = {m.name for s in WRITE_SERVICES for m in services[s].methods
              if m.output_type.full_name == "okr.v1.CommandResult"}
    names = {c.__name__ for c in COMMANDS}
    assert writes - set(COMPOSITE_WRITES) == names
    assert set(COMPOSITE_WRITES) <= writes and not set(COMPOSITE_WRITES) & names
    for rpc, parts in COMPOSITE_WRITES.items():
        assert set(parts) <= names, rpc


def test_move_person_to_team_names_the_person_and_both_teams():
    """MovePersonToTeam's request carries what its two commands need (the person, the team
    left, the team joined) and a command id from which both of theirs are derived."""
    request = _services()["DirectoryService"].methods_by_name["MovePersonToTeam"].input_type
    fields = {f.name: f.type for f in request.fields}
    assert fields == {"person_id": F.TYPE_STRING, "from_team_id": F.TYPE_STRING, "to_team_id": F.TYPE_STRING,
                      "command_id": F.TYPE_STRING}
    for part in COMPOSITE_WRITES["MovePersonToTeam"]:
        assert {f.name for f in dataclasses.fields(getattr(commands, part))} == {"team_id", "person_id"}


def test_adjust_key_result_tells_unchanged_from_zero():
    fields = _module("goal").AdjustKeyResultRequest.DESCRIPTOR.fields_by_name
    for name in ("target_value", "due_date", "weight"):
        assert fields[name].has_presence, name


# --- doc comments --------------------------------------------------------------------------


def _undocumented(proto: descriptor_pb2.FileDescriptorProto) -> list[str]:
    """Every element of ``proto`` without a leading comment. Paths per descriptor.proto:
    FileDescriptorProto 4 = message_type, 5 = enum_type, 6 = service; DescriptorProto
    2 = field, 3 = nested_type, 4 = enum_type, 8 = oneof_decl; EnumDescriptorProto
    2 = value; ServiceDescriptorProto 2 = method."""
    comments = {tuple(loc.path): loc.leading_comments.strip() for loc in proto.source_code_info.location}
    missing = []

    def check(path, name):
        if not comments.get(tuple(path)):
            missing.append(f"{proto.name}: {name}")

    def enum(path, e, prefix):
        check(path, f"{prefix}{e.name}")
        for v, value in enumerate(e.value):
            check(path + [2, v], f"{prefix}{e.name}.{value.name}")

    def message(path, m, prefix):
        name = f"{prefix}{m.name}"
        check(path, name)
        for f, field in enumerate(m.field):
            check(path + [2, f], f"{name}.{field.name}")
        for o, oneof in enumerate(m.oneof_decl):
            if not oneof.name.startswith("_"):  # synthetic oneofs of `optional` fields
                check(path + [8, o], f"{name}.{oneof.name} (oneof)")
        for n, nested in enumerate(m.nested_type):
            if not nested.options.map_entry:  # map<,> entries are generated
                message(path + [3, n], nested, f"{name}.")
        for e, nested_enum in enumerate(m.enum_type):
            enum(path + [4, e], nested_enum, f"{name}.")

    for m, msg in enumerate(proto.message_type):
        message([4, m], msg, "")
    for e, en in enumerate(proto.enum_type):
        enum([5, e], en, "")
    for s, service in enumerate(proto.service):
        check([6, s], service.name)
        for r, method in enumerate(service.method):
            check([6, s, 2, r], f"{service.name}.{method.name}")
    return missing


@pytest.mark.parametrize("name", PROTO_FILES)
def test_every_service_rpc_message_field_and_enum_value_has_a_doc_comment(name, file_protos):
    assert not _undocumented(file_protos[name])


def test_the_comment_check_fails_when_a_comment_is_removed(file_protos):
    proto = descriptor_pb2.FileDescriptorProto()
    proto.CopyFrom(file_protos["okr/v1/goal.proto"])
    stripped = {(4, 0, 2, 0), (6, 0), (6, 0, 2, 0)}  # PlanCycleRequest.cycle_id, GoalService, PlanCycle
    for loc in proto.source_code_info.location:
        if tuple(loc.path) in stripped:
            loc.leading_comments = ""
    missing = _undocumented(proto)
    assert "okr/v1/goal.proto: PlanCycleRequest.cycle_id" in missing
    assert "okr/v1/goal.proto: GoalService" in missing
    assert "okr/v1/goal.proto: GoalService.PlanCycle" in missing


@pytest.mark.parametrize("service", sorted(ISSUE_RPCS))
def test_every_service_says_the_tenant_is_the_callers(service, file_protos):
    for proto in file_protos.values():
        comments = {tuple(loc.path): loc.leading_comments for loc in proto.source_code_info.location}
        for s, svc in enumerate(proto.service):
            if svc.name == service:
                text = " ".join(comments.get((6, s), "").split())
                assert "tenant is the caller's" in text, service
                return
    pytest.fail(f"no service {service}")


def test_every_rpc_documents_its_status_codes(file_protos):
    """Each RPC's comment (or its service's) names the gRPC status codes it returns."""
    codes = re.compile(r"\b(INVALID_ARGUMENT|NOT_FOUND|FAILED_PRECONDITION|UNAUTHENTICATED|UNAVAILABLE)\b")
    undocumented = []
    for proto in file_protos.values():
        comments = {tuple(loc.path): loc.leading_comments for loc in proto.source_code_info.location}
        for s, service in enumerate(proto.service):
            for r, method in enumerate(service.method):
                if not codes.search(comments.get((6, s, 2, r), "")):
                    undocumented.append(f"{service.name}.{method.name}")
            if "UNAUTHENTICATED" not in comments.get((6, s), ""):
                undocumented.append(service.name)
    assert not undocumented


def test_docs_api_lists_every_rpc():
    doc = (ROOT / "docs" / "api.md").read_text()
    missing = [f"{s.name}.{m.name}" for s in _services().values() for m in s.methods if f"`{m.name}`" not in doc]
    assert not missing
    for key in ("okr-field", "okr-rule", "okr-kind", "authorization"):
        assert key in doc, key
