"""okr_shared.protojson: the compiled JSON conversion of the event payloads gives exactly
what json_format gives — same values, same key order, same errors — for generated
messages of every event type and for generated (also malformed) stored payloads."""

import json
import math

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from okr.v1 import events_pb2
from okr_shared import contracts
from okr_shared.protojson import Codec

EVENT_CLASSES = sorted(contracts.EVENT_TYPES.values(), key=lambda c: c.DESCRIPTOR.full_name)
TEXT = st.text(max_size=12)
DOUBLES = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1e308, 5e-324])
INTS = st.integers(min_value=-2**31, max_value=2**31 - 1)


def slow_to_dict(message):
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def slow_from_dict(cls, data):
    message = cls()
    json_format.ParseDict(data, message, ignore_unknown_fields=True)
    return message


def field_values(field):
    if field.type == F.TYPE_STRING:
        return TEXT
    if field.type == F.TYPE_DOUBLE:
        return DOUBLES
    if field.type == F.TYPE_ENUM:
        return st.sampled_from([v.number for v in field.enum_type.values]) | st.integers(0, 40)
    if field.type in (F.TYPE_INT32, F.TYPE_SINT32):
        return INTS
    if field.type == F.TYPE_BOOL:
        return st.booleans()
    if field.type == F.TYPE_MESSAGE:
        return messages_of(field.message_type._concrete_class)
    raise AssertionError(f"a field kind the test does not generate: {field.full_name}")


def messages_of(cls):
    """Messages of ``cls`` with any subset of fields set (a oneof: at most one member)."""
    fields = list(cls.DESCRIPTOR.fields)

    @st.composite
    def build(draw):
        message = cls()
        for field in draw(st.permutations(fields)):
            if not draw(st.booleans()):
                continue
            value = draw(field_values(field))
            if field.type == F.TYPE_MESSAGE:
                getattr(message, field.name).CopyFrom(value)
            else:
                setattr(message, field.name, value)
        return message

    return build()


ANY_MESSAGE = st.sampled_from(EVENT_CLASSES).flatmap(messages_of)


def json_values():
    scalar = (st.none() | st.booleans() | INTS | st.integers() | DOUBLES | TEXT
              | st.sampled_from(["NaN", "Infinity", "-Infinity", "12", "1.5", "1e3", "CADENCE_QUARTERLY",
                                 "KEY_RESULT_KIND_INCREASE_TO", "NOPE", ""]))
    return st.recursive(scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                        max_leaves=6)


@st.composite
def stored_payloads(draw):
    """A stored payload of an event type: its fields by proto or JSON name (or junk
    keys), each with a fitting value or any JSON value."""
    cls = draw(st.sampled_from(EVENT_CLASSES))
    data = {}
    for field in cls.DESCRIPTOR.fields:
        if not draw(st.booleans()):
            continue
        key = draw(st.sampled_from([field.name, field.name, field.json_name]))
        if draw(st.integers(0, 4)):
            value = draw(field_values(field))
            if field.type == F.TYPE_MESSAGE:
                value = slow_to_dict(value) if draw(st.booleans()) else json_format.MessageToDict(value)
            elif field.type == F.TYPE_ENUM:
                value = field.enum_type.values_by_number[value].name if value in field.enum_type.values_by_number \
                    and draw(st.integers(0, 3)) else value
        else:
            value = draw(json_values())
        data[key] = value
    if draw(st.integers(0, 5)) == 0:
        data[draw(TEXT)] = draw(json_values())
    return cls, data


def outcome(convert):
    try:
        return "ok", convert().SerializeToString(deterministic=True)
    except json_format.ParseError as e:
        return "ParseError", type(e)
    except Exception as e:  # noqa: BLE001 - the error type is the outcome compared
        return "error", type(e)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_MESSAGE)
def test_to_dict_is_message_to_dict_values_and_key_order(message):
    fast = Codec().to_dict(message)
    slow = slow_to_dict(message)
    assert fast == slow
    assert list(fast) == list(slow)
    assert json.dumps(fast) == json.dumps(slow)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_MESSAGE)
def test_from_dict_of_a_stored_payload_is_parse_dict(message):
    data = slow_to_dict(message)
    cls = type(message)
    fast = Codec().from_dict(cls, data)
    assert fast.SerializeToString(deterministic=True) == slow_from_dict(cls, data).SerializeToString(deterministic=True)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(stored_payloads())
def test_from_dict_of_any_payload_gives_what_parse_dict_gives_or_the_same_error(case):
    cls, data = case
    assert outcome(lambda: Codec().from_dict(cls, data)) == outcome(lambda: slow_from_dict(cls, data))


def test_the_fast_path_covers_every_event_type_of_the_contracts():
    codec = Codec()
    for cls in EVENT_CLASSES:
        assert codec.fast(cls) is not None, cls.DESCRIPTOR.full_name


def test_message_types_outside_the_simple_kinds_stay_on_json_format():
    codec = Codec()
    assert codec.fast(events_pb2.EventEnvelope) is None  # Timestamp, Any, 64-bit integers
    envelope = events_pb2.EventEnvelope(event_id="e", position=2**40, stream_version=3)
    envelope.recorded_at.FromMicroseconds(1_700_000_000_000_001)
    assert codec.to_dict(envelope) == slow_to_dict(envelope)
    data = slow_to_dict(envelope)
    assert codec.from_dict(events_pb2.EventEnvelope, data) == slow_from_dict(events_pb2.EventEnvelope, data)


@pytest.mark.parametrize("data, why", [
    ({"key_result_id": 5}, "a number where a string belongs"),
    ({"value": "many"}, "a string that is not a number"),
    ({"confidence": 1.5}, "a fraction where an integer belongs"),
    ({"confidence": 2**40}, "an integer beyond 32 bits"),
    ({"value": math.nan}, "an unquoted NaN (JSON has none)"),
    ({"value": -math.inf}, "an unquoted infinity"),
])
def test_a_payload_that_breaks_the_schema_is_refused_like_json_format(data, why):
    with pytest.raises(json_format.ParseError):
        contracts.payload_from_dict("okr.v1.CheckInRecorded", data)


def test_special_doubles_and_unknown_enums_round_trip_like_json_format():
    codec = Codec()
    for value in (math.inf, -math.inf, math.nan):
        message = events_pb2.CheckInRecorded(key_result_id="k", value=value)
        assert codec.to_dict(message) == slow_to_dict(message)
        back = codec.from_dict(events_pb2.CheckInRecorded, codec.to_dict(message))
        assert back.SerializeToString() == slow_from_dict(events_pb2.CheckInRecorded, slow_to_dict(message)).SerializeToString()
    planned = events_pb2.CyclePlanned(cycle_id="c", cadence=99)  # a value of a newer writer
    assert codec.to_dict(planned) == slow_to_dict(planned) and codec.to_dict(planned)["cadence"] == 99
    data = {"cycle_id": "c", "cadence": "CADENCE_FROM_THE_FUTURE"}
    assert codec.from_dict(events_pb2.CyclePlanned, data) == slow_from_dict(events_pb2.CyclePlanned, data)
