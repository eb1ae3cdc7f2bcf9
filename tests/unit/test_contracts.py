"""The okr.v1 event contracts: every event the issue names exists, is registered and
documented, and payloads survive the trips store JSON → message → envelope → message."""

import json
import re
import subprocess
import sys
from datetime import timezone
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.timestamp_pb2 import Timestamp

from okr.v1 import events_pb2
from okr_shared import contracts
from okr_shared.eventstore import NO_STREAM, EventStore, NewEvent, RecordedEvent, make_engine, migrate
from okr_shared.eventstore.canonical import dumps

ROOT = Path(__file__).resolve().parents[2]
PROTO = "okr/v1/events.proto"

# The issue's list, spelled as event types.
EVENTS_OF_THE_ISSUE = [
    "okr.v1.CyclePlanned",
    "okr.v1.CycleActivated",
    "okr.v1.CycleMovedToReview",
    "okr.v1.CycleClosed",
    "okr.v1.ObjectiveCreated",
    "okr.v1.ObjectiveAligned",
    "okr.v1.ObjectiveRealigned",
    "okr.v1.ObjectiveArchived",
    "okr.v1.KeyResultDefined",
    "okr.v1.KeyResultTargetAdjusted",
    "okr.v1.KeyResultOwnerAssigned",
    "okr.v1.KeyResultArchived",
    "okr.v1.InitiativeCreated",
    "okr.v1.InitiativeStarted",
    "okr.v1.InitiativeCompleted",
    "okr.v1.InitiativeDropped",
    "okr.v1.InitiativeSlipped",
    "okr.v1.CheckInRecorded",
    "okr.v1.CheckInCorrected",
]
# Added later, additively (the domain issue: restating an objective while planning).
LATER_EVENTS = ["okr.v1.ObjectiveRestated"]
# The directory (issue 20, ADR 0033): people and teams.
DIRECTORY_EVENTS = [
    "okr.v1.PersonAdded",
    "okr.v1.PersonDetailsChanged",
    "okr.v1.PersonManagerAssigned",
    "okr.v1.PersonDeactivated",
    "okr.v1.PersonReactivated",
    "okr.v1.RoleGranted",
    "okr.v1.RoleRevoked",
    "okr.v1.TeamCreated",
    "okr.v1.TeamRenamed",
    "okr.v1.TeamMoved",
    "okr.v1.TeamMemberAdded",
    "okr.v1.TeamMemberRemoved",
    "okr.v1.TeamLeadAssigned",
    "okr.v1.TeamLeadRemoved",
    "okr.v1.TeamArchived",
]

F = FieldDescriptor
ENVELOPE_FIELDS = {
    "event_id": F.TYPE_STRING,
    "event_type": F.TYPE_STRING,
    "schema_version": F.TYPE_UINT32,
    "tenant_id": F.TYPE_STRING,
    "stream_id": F.TYPE_STRING,
    "stream_version": F.TYPE_UINT64,
    "position": F.TYPE_UINT64,
    "recorded_at": "google.protobuf.Timestamp",
    "actor": F.TYPE_STRING,
    "correlation_id": F.TYPE_STRING,
    "causation_id": F.TYPE_STRING,
    "reason": F.TYPE_STRING,
    "hash": F.TYPE_STRING,
    "payload": "google.protobuf.Any",
}

# Fields the issue asks for by name, beyond the routing ids.
REQUIRED_FIELDS = {
    "okr.v1.KeyResultTargetAdjusted": {
        "old_target_value", "new_target_value", "old_due_date", "new_due_date",
        "old_weight", "new_weight", "reason",
    },
    "okr.v1.KeyResultOwnerAssigned": {"old_owner", "new_owner", "reason"},
    "okr.v1.KeyResultArchived": {"reason"},
    "okr.v1.ObjectiveArchived": {"reason"},
    "okr.v1.InitiativeSlipped": {"old_due_date", "new_due_date", "reason"},
    "okr.v1.InitiativeDropped": {"reason"},
    "okr.v1.InitiativeCompleted": {"completed_on", "reason"},
    "okr.v1.CheckInRecorded": {
        "check_in_id", "value", "confidence", "comment", "author", "effective_date",
    },
    "okr.v1.CheckInCorrected": {
        "check_in_id", "corrects_check_in_id", "value", "confidence", "comment",
        "author", "effective_date", "reason",
    },
}

CHECK_IN = {
    "check_in_id": "ci-1",
    "key_result_id": "kr-7",
    "objective_id": "obj-3",
    "value": 42.5,
    "confidence": 7,
    "comment": "two big deals closed",
    "author": "person-9",
    "effective_date": "2025-07-04",
}


def recorded(event_type="okr.v1.CheckInRecorded", data=CHECK_IN, metadata=None, **kw):
    fields = dict(
        position=12,
        tenant_id="acme",
        stream_id="kr-kr-7",
        stream_version=3,
        event_id="0b9f4c1e-2f43-4b8e-9a53-5d1c6e7f8a90",
        event_type=event_type,
        schema_version=1,
        data_json=dumps(data),
        metadata_json=dumps(
            metadata
            if metadata is not None
            else {"actor": "person-9", "correlation_id": "corr-1", "causation_id": "cmd-1"}
        ),
        recorded_at_us=1_751_630_400_123_456,
        hash="ab" * 32,
    )
    fields.update(kw)
    return RecordedEvent(**fields)


# --- the catalogue ----------------------------------------------------------------------


@pytest.mark.parametrize("event_type", EVENTS_OF_THE_ISSUE + DIRECTORY_EVENTS)
def test_every_event_of_the_issue_is_a_generated_message_in_the_registry(event_type):
    name = event_type.removeprefix("okr.v1.")
    assert name in events_pb2.DESCRIPTOR.message_types_by_name
    assert contracts.message_class(event_type) is getattr(events_pb2, name)


def test_the_registry_holds_exactly_the_domain_events():
    assert sorted(contracts.EVENT_TYPES) == sorted(EVENTS_OF_THE_ISSUE + LATER_EVENTS + DIRECTORY_EVENTS)
    assert "okr.v1.EventEnvelope" not in contracts.EVENT_TYPES


def test_event_type_is_the_fully_qualified_message_name():
    for event_type, cls in contracts.EVENT_TYPES.items():
        assert contracts.event_type_of(cls()) == event_type == cls.DESCRIPTOR.full_name


@pytest.mark.parametrize("event_type", sorted(REQUIRED_FIELDS))
def test_events_carry_the_fields_the_issue_names(event_type):
    fields = set(contracts.message_class(event_type).DESCRIPTOR.fields_by_name)
    assert REQUIRED_FIELDS[event_type] <= fields


def test_every_event_carries_the_ids_a_consumer_routes_by():
    routing = {
        "Cycle": {"cycle_id"},
        "Objective": {"objective_id", "cycle_id"},
        "KeyResult": {"key_result_id", "objective_id"},
        "Initiative": {"initiative_id", "key_result_id", "objective_id"},
        "CheckIn": {"check_in_id", "key_result_id", "objective_id"},
        "Person": {"person_id"},
        "Role": {"person_id"},
        "Team": {"team_id"},
    }
    for event_type, cls in contracts.EVENT_TYPES.items():
        name = event_type.removeprefix("okr.v1.")
        (ids,) = [ids for prefix, ids in routing.items() if name.startswith(prefix)]
        assert ids <= set(cls.DESCRIPTOR.fields_by_name), event_type


def test_check_in_corrected_points_at_the_check_in_it_corrects():
    field = events_pb2.CheckInCorrected.DESCRIPTOR.fields_by_name["corrects_check_in_id"]
    assert field.type == F.TYPE_STRING


def test_objective_alignment_is_a_parent_objective_or_a_parent_key_result():
    oneof = events_pb2.ObjectiveCreated.DESCRIPTOR.oneofs_by_name["parent"]
    assert {f.name for f in oneof.fields} == {"parent_objective_id", "parent_key_result"}


def test_every_enum_starts_with_an_unspecified_zero_value():
    for enum in events_pb2.DESCRIPTOR.enum_types_by_name.values():
        assert enum.values_by_number[0].name == f"{_upper_snake(enum.name)}_UNSPECIFIED"


def test_key_result_kinds_are_the_methods_metric_kinds():
    kinds = {v.name.removeprefix("KEY_RESULT_KIND_") for v in events_pb2.KeyResultKind.DESCRIPTOR.values}
    assert kinds == {
        "UNSPECIFIED", "INCREASE_TO", "DECREASE_TO", "STAY_AT_OR_ABOVE", "STAY_AT_OR_BELOW",
        "MILESTONE", "PERCENTAGE", "CURRENCY",
    }


def _upper_snake(name):
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(name)).upper()


# --- the envelope -----------------------------------------------------------------------


def test_the_envelope_has_every_field_the_issue_lists_with_its_type():
    fields = events_pb2.EventEnvelope.DESCRIPTOR.fields_by_name
    assert set(fields) == set(ENVELOPE_FIELDS)
    for name, expected in ENVELOPE_FIELDS.items():
        field = fields[name]
        actual = field.message_type.full_name if field.type == F.TYPE_MESSAGE else field.type
        assert actual == expected, name


def test_envelope_from_recorded_survives_the_wire_and_unpacks_to_the_stored_payload():
    event = recorded(
        metadata={"actor": "svc-progress", "correlation_id": "c-1", "causation_id": "m-1", "reason": "typo"}
    )
    wire = contracts.envelope_from_recorded(event).SerializeToString()
    envelope = events_pb2.EventEnvelope.FromString(wire)

    assert (envelope.event_id, envelope.event_type, envelope.schema_version) == (
        event.event_id, "okr.v1.CheckInRecorded", 1,
    )
    assert (envelope.tenant_id, envelope.stream_id, envelope.stream_version, envelope.position) == (
        "acme", "kr-kr-7", 3, 12,
    )
    assert (envelope.actor, envelope.correlation_id, envelope.causation_id, envelope.reason) == (
        "svc-progress", "c-1", "m-1", "typo",
    )
    assert envelope.hash == "ab" * 32
    assert envelope.payload.type_url == "type.googleapis.com/okr.v1.CheckInRecorded"

    payload = events_pb2.CheckInRecorded()
    assert envelope.payload.Unpack(payload)
    assert contracts.payload_to_dict(payload) == CHECK_IN
    assert contracts.unpack_payload(envelope) == payload


def test_envelope_recorded_at_is_the_stored_microsecond():
    event = recorded(recorded_at_us=1_751_630_400_123_457)
    envelope = events_pb2.EventEnvelope.FromString(
        contracts.envelope_from_recorded(event).SerializeToString()
    )
    assert envelope.recorded_at.ToMicroseconds() == 1_751_630_400_123_457
    assert envelope.recorded_at.ToDatetime(tzinfo=timezone.utc) == event.recorded_at
    assert envelope.recorded_at == Timestamp(seconds=1_751_630_400, nanos=123_457_000)


def test_envelope_leaves_metadata_fields_that_are_absent_empty():
    envelope = contracts.envelope_from_recorded(recorded(metadata={"actor": "person-9"}))
    assert (envelope.actor, envelope.correlation_id, envelope.causation_id, envelope.reason) == (
        "person-9", "", "", "",
    )


def test_envelope_of_an_event_read_back_from_the_store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/store.db")
    migrate(engine)
    try:
        store = EventStore(engine)
        adjusted = events_pb2.KeyResultTargetAdjusted(
            key_result_id="kr-7", objective_id="obj-3",
            old_target_value=100, new_target_value=80, reason="market shrank",
        )
        stream = contracts.stream_id_for(adjusted)
        store.append(stream, NO_STREAM, [NewEvent(
            contracts.event_type_of(adjusted), contracts.payload_to_dict(adjusted), tenant_id="acme",
            metadata={"actor": "person-1", "correlation_id": "c-9", "reason": adjusted.reason},
        )])
        (event,) = store.read_stream(stream, tenant_id="acme")
    finally:
        engine.dispose()

    envelope = contracts.envelope_from_recorded(event)
    assert envelope.stream_id == "kr-kr-7" and envelope.position == 1 and envelope.stream_version == 1
    assert envelope.hash == event.hash and envelope.reason == "market shrank"
    assert envelope.recorded_at.ToMicroseconds() == event.recorded_at_us
    unpacked = contracts.unpack_payload(envelope)
    assert unpacked == adjusted
    assert not unpacked.HasField("old_due_date")  # only what changed is set


def test_unpack_payload_rejects_a_payload_of_another_type():
    envelope = contracts.envelope_from_recorded(recorded())
    envelope.event_type = "okr.v1.CheckInCorrected"
    with pytest.raises(ValueError, match="does not match"):
        contracts.unpack_payload(envelope)


# --- payload JSON -----------------------------------------------------------------------


def test_payload_dict_round_trip_keeps_every_field():
    data = {
        "objective_id": "obj-5",
        "cycle_id": "cyc-2025-q3",
        "level": "OBJECTIVE_LEVEL_TEAM",
        "title": "Delight new customers",
        "description": "",
        "owner": "person-2",
        "team_id": "team-growth",
        "parent_key_result": {"key_result_id": "kr-1", "objective_id": "obj-1"},
    }
    message = contracts.payload_from_dict("okr.v1.ObjectiveCreated", data)
    assert message.WhichOneof("parent") == "parent_key_result"
    assert contracts.payload_to_dict(message) == data


def test_stored_json_uses_proto_field_names_enum_names_and_explicit_defaults():
    message = events_pb2.KeyResultDefined(
        key_result_id="kr-1", objective_id="obj-1", kind=events_pb2.KEY_RESULT_KIND_MILESTONE,
        target_value=1, weight=1, owner="p-1", due_date="2025-09-30",
    )
    data = contracts.payload_to_dict(message)
    assert data["kind"] == "KEY_RESULT_KIND_MILESTONE"
    assert data["start_value"] == 0 and data["unit"] == ""
    assert "keyResultId" not in data and data["key_result_id"] == "kr-1"
    json.loads(dumps(data))  # storable exactly as the event store writes JSON


def test_unknown_fields_in_stored_json_are_ignored():
    newer = dict(CHECK_IN, mood="sunny", evidence={"url": "https://example.org"})
    message = contracts.payload_from_dict("okr.v1.CheckInRecorded", newer)
    assert contracts.payload_to_dict(message) == CHECK_IN
    envelope = contracts.envelope_from_recorded(recorded(data=newer))
    assert contracts.payload_to_dict(contracts.unpack_payload(envelope)) == CHECK_IN


def test_unknown_enum_values_in_stored_json_are_ignored():
    data = {"cycle_id": "c-1", "cadence": "CADENCE_FORTNIGHTLY", "name": "Sprint"}
    message = contracts.payload_from_dict("okr.v1.CyclePlanned", data)
    assert message.cadence == events_pb2.CADENCE_UNSPECIFIED and message.name == "Sprint"


def test_a_payload_that_breaks_the_schema_is_an_error():
    with pytest.raises(json_format.ParseError):
        contracts.payload_from_dict("okr.v1.CheckInRecorded", dict(CHECK_IN, confidence="high"))


# --- unknown types ----------------------------------------------------------------------


def test_unknown_event_type_gives_a_clear_key_error():
    with pytest.raises(KeyError) as raised:
        contracts.message_class("okr.v1.KeyResultCheckedIn")
    assert isinstance(raised.value, contracts.UnknownEventType)
    assert raised.value.event_type == "okr.v1.KeyResultCheckedIn"
    assert "unknown event type 'okr.v1.KeyResultCheckedIn'" in str(raised.value)
    assert "okr.v1.CheckInRecorded" in str(raised.value)


@pytest.mark.parametrize("call", [
    lambda: contracts.payload_from_dict("okr.v1.EventEnvelope", {}),
    lambda: contracts.envelope_from_recorded(recorded(event_type="demo.Something")),
    lambda: contracts.payload_to_dict(events_pb2.EventEnvelope()),
    lambda: contracts.stream_id_for(events_pb2.KeyResultRef(key_result_id="kr-1")),
])
def test_non_events_are_refused_as_unknown_event_types(call):
    with pytest.raises(contracts.UnknownEventType):
        call()


# --- streams ----------------------------------------------------------------------------


@pytest.mark.parametrize(("message", "stream"), [
    (events_pb2.CyclePlanned(cycle_id="c1"), "cycle-c1"),
    (events_pb2.ObjectiveArchived(objective_id="o1", cycle_id="c1"), "objective-o1"),
    (events_pb2.KeyResultDefined(key_result_id="k1", objective_id="o1"), "kr-k1"),
    (events_pb2.InitiativeSlipped(initiative_id="i1", key_result_id="k1"), "initiative-i1"),
    (events_pb2.CheckInRecorded(check_in_id="ci1", key_result_id="k1"), "kr-k1"),
    (events_pb2.CheckInCorrected(check_in_id="ci2", key_result_id="k1"), "kr-k1"),
    (events_pb2.PersonAdded(person_id="p1", display_name="P"), "person-p1"),
    (events_pb2.RoleGranted(person_id="p1", role=events_pb2.DIRECTORY_ROLE_ADMIN), "person-p1"),
    (events_pb2.TeamCreated(team_id="t1", name="T"), "team-t1"),
    (events_pb2.TeamMemberAdded(team_id="t1", person_id="p1"), "team-t1"),
])
def test_each_event_names_its_stream(message, stream):
    assert contracts.stream_id_for(message) == stream


def test_an_event_without_its_stream_key_has_no_stream():
    with pytest.raises(ValueError, match="key_result_id is empty"):
        contracts.stream_id_for(events_pb2.CheckInRecorded(check_in_id="ci1"))


def test_every_event_names_a_string_stream_key_field():
    for event_type, cls in contracts.EVENT_TYPES.items():
        options = cls.DESCRIPTOR.GetOptions().Extensions[events_pb2.event]
        assert options.stream_category in {"cycle", "objective", "kr", "initiative", "person", "team"}, event_type
        field = cls.DESCRIPTOR.fields_by_name[options.stream_key_field]
        assert field.type == F.TYPE_STRING, event_type


def test_the_stream_catalogue_in_the_docs_matches_the_contracts():
    doc = (ROOT / "docs" / "contracts.md").read_text()
    for event_type, cls in contracts.EVENT_TYPES.items():
        options = cls.DESCRIPTOR.GetOptions().Extensions[events_pb2.event]
        row = f"| `{event_type}` | `{options.stream_category}-<{options.stream_key_field}>` |"
        assert row in doc, row


def test_the_history_words_in_the_api_docs_are_the_contracts_history_what():
    """docs/api.md "GetHistory" lists ``what`` of every event type, as HISTORY_WHAT says."""
    doc = (ROOT / "docs" / "api.md").read_text()
    table = doc.split("## `GetHistory`", 1)[1].split("\n\n(", 1)[0]
    rows = dict(re.findall(r"^\| `(okr\.v1\.\w+)` \| `(\w+)` \|$", table, re.MULTILINE))
    assert rows == dict(contracts.HISTORY_WHAT)
    assert set(rows) == set(contracts.EVENT_TYPES)


# --- the .proto itself ------------------------------------------------------------------


def _protoc(*args):
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", "protos", *args, PROTO],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr


def test_generated_code_is_not_stale(tmp_path):
    _protoc(f"--python_out={tmp_path}")
    fresh = (tmp_path / "okr" / "v1" / "events_pb2.py").read_bytes()
    committed = (ROOT / "shared" / "okr" / "v1" / "events_pb2.py").read_bytes()
    assert fresh == committed, "shared/okr/v1/events_pb2.py is stale: run `make proto`"


def test_every_message_field_and_enum_value_has_a_doc_comment(tmp_path):
    out = tmp_path / "events.pb"
    _protoc("--include_source_info", f"--descriptor_set_out={out}")
    (proto,) = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    comments = {
        tuple(loc.path): loc.leading_comments.strip()
        for loc in proto.source_code_info.location
    }
    # Paths per descriptor.proto: 4 = message_type, 2 = field; 5 = enum_type, 2 = value.
    undocumented = []
    for kind, declarations, members in ((4, proto.message_type, "field"), (5, proto.enum_type, "value")):
        for d, declaration in enumerate(declarations):
            if not comments.get((kind, d)):
                undocumented.append(declaration.name)
            for n, member in enumerate(getattr(declaration, members)):
                if not comments.get((kind, d, 2, n)):
                    undocumented.append(f"{declaration.name}.{member.name}")
    assert not undocumented

