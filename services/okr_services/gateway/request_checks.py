"""What every request gets checked for before its handler runs (docs/api.md, "Limits";
docs/adr/0021).

Generic, from the request message's descriptor, so a new RPC or field is covered
without a line here:

- ``decode(cls, data)``: the request's bytes as its message; bytes that are not a
  valid encoding of it are a ``RequestError`` (INVALID_ARGUMENT), never grpcio's
  INTERNAL "Exception deserializing request!".
- ``check(message)``: every ``double``/``float`` field (also nested, repeated, and the
  numbers inside ``google.protobuf.Struct``/``Value``) is finite; every
  ``google.protobuf.Timestamp`` is a valid one (nanos 0..999,999,999, seconds within
  0001-01-01 .. 9999-12-31 UTC); every string has at most ``MAX_STRING`` characters and
  every repeated field (and Struct list) at most ``MAX_REPEATED`` entries. The first
  problem found is a ``RequestError`` naming the field by its path in the request
  (``rows[3].target_value``, ``since.time``, ``params.child_weight``).

The services check the values' meaning (ids, titles, dates, …) and name the field too.
"""

from __future__ import annotations

import math

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

#: Characters in any string of a request (and in a Struct's strings); the services'
#: own limits (title 200, comment 4,000, …) are tighter where they exist.
MAX_STRING = 10_000
#: Entries of any repeated field of a request (and of a Struct list); ImportPlan's
#: ``rows`` have the importer's tighter limit (500).
MAX_REPEATED = 1_000
#: google.protobuf.Timestamp's documented range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799

_FLOATS = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)
_TIMESTAMP = "google.protobuf.Timestamp"
_STRUCT = "google.protobuf.Struct"
_VALUE = "google.protobuf.Value"
_LIST_VALUE = "google.protobuf.ListValue"


class RequestError(ValueError):
    """A request refused before its handler: ``field`` (its path; "" when the whole
    request is at fault) and the reason."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


def decode(cls, data: bytes) -> Message:
    """``cls.FromString(data)``, or RequestError when the bytes are not a valid
    encoding of ``cls`` (a truncated message, a wrong wire type, a string that is not
    UTF-8, …)."""
    try:
        return cls.FromString(data)
    except (DecodeError, ValueError, RuntimeError) as e:  # upb raises DecodeError; others a ValueError
        why = str(e).rpartition(": ")[2] or "malformed"  # upb's text repeats the type's name first
        raise RequestError("", f"the request does not decode as {cls.DESCRIPTOR.full_name}: {why}") from None


def check(message: Message, path: str = "") -> None:
    """RequestError for the first field of ``message`` that breaks a rule of the module doc."""
    for field, value in message.ListFields():
        name = f"{path}{field.name}"
        if field.is_repeated:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                _count(name, len(value))
                value_field = field.message_type.fields_by_name["value"]
                for key, item in value.items():
                    if isinstance(key, str):
                        _string(f"{name}[{key!r}]", key)
                    _one(value_field, item, f"{name}[{key!r}]")
                continue
            _count(name, len(value))
            for i, item in enumerate(value):
                _one(field, item, f"{name}[{i}]")
        else:
            _one(field, value, name)


def _one(field: FieldDescriptor, value, name: str) -> None:
    if field.type in _FLOATS:
        _finite(name, value)
    elif field.type == FieldDescriptor.TYPE_STRING:
        _string(name, value)
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        kind = field.message_type.full_name
        if kind == _TIMESTAMP:
            _timestamp(name, value)
        elif kind == _STRUCT:
            _struct(name, value)
        elif kind == _VALUE:
            _value(name, value)
        elif kind == _LIST_VALUE:
            _list(name, value)
        else:
            check(value, f"{name}.")


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise RequestError(name, f"must be a finite number, not {value}")


def _string(name: str, value: str) -> None:
    if len(value) > MAX_STRING:
        raise RequestError(name, f"must be at most {MAX_STRING} characters (got {len(value)})")


def _count(name: str, n: int) -> None:
    if n > MAX_REPEATED:
        raise RequestError(name, f"at most {MAX_REPEATED} entries (got {n})")


def _timestamp(name: str, value) -> None:
    if not 0 <= value.nanos <= 999_999_999:
        raise RequestError(name, f"nanos must be 0 to 999999999, not {value.nanos}")
    if not MIN_TIMESTAMP_SECONDS <= value.seconds <= MAX_TIMESTAMP_SECONDS:
        raise RequestError(name, f"seconds must be within 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z "
                                 f"({MIN_TIMESTAMP_SECONDS} .. {MAX_TIMESTAMP_SECONDS}), not {value.seconds}")


def _struct(name: str, value) -> None:
    _count(name, len(value.fields))
    for key, item in value.fields.items():
        _string(f"{name}.{key}", key)
        _value(f"{name}.{key}", item)


def _list(name: str, value) -> None:
    _count(name, len(value.values))
    for i, item in enumerate(value.values):
        _value(f"{name}[{i}]", item)


def _value(name: str, value) -> None:
    which = value.WhichOneof("kind")
    if which == "number_value":
        _finite(name, value.number_value)
    elif which == "string_value":
        _string(name, value.string_value)
    elif which == "struct_value":
        _struct(name, value.struct_value)
    elif which == "list_value":
        _list(name, value.list_value)
