"""Protobuf messages ⇄ the plain dicts the nameko services speak.

- ``to_kwargs(request)``: the fields the caller set (proto3 presence: a scalar left at
  its default is absent, an ``optional`` one is present when set) as keyword
  arguments: enums by their short name (``CADENCE_QUARTERLY`` → ``QUARTERLY``; the
  ``…_UNSPECIFIED`` zero is "not given"), ``Instant`` as the reporting service's instant
  (a position, ``{"us": µs}`` or an ISO date), ``Struct`` as a dict, a oneof by the
  member set.
- ``to_message(data, cls)``: a service's dict into a typed message; keys the message
  does not have are left out, enums accept the short name, ``Struct``/``Value``
  fields take any JSON value.
- ``command_result(reply)``: a command's reply (``stream_id``, ``version``,
  ``positions``, …, and the created id) as ``okr.v1.CommandResult``.
"""

from __future__ import annotations

import math
from datetime import timezone
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from okr.v1 import common_pb2

_STRUCT = "google.protobuf.Struct"
_VALUE = "google.protobuf.Value"
_TIMESTAMP = "google.protobuf.Timestamp"
_INSTANT = "okr.v1.Instant"


def _enum_prefix(enum: EnumDescriptor) -> str:
    zero = enum.values_by_number.get(0)
    if zero is not None and zero.name.endswith("UNSPECIFIED"):
        return zero.name[: -len("UNSPECIFIED")]
    return ""


def enum_short(enum: EnumDescriptor, number: int) -> str | None:
    """``CADENCE_QUARTERLY`` → ``QUARTERLY``; None for the unspecified zero or an
    unknown number."""
    value = enum.values_by_number.get(number)
    if value is None or (number == 0 and value.name.endswith("UNSPECIFIED")):
        return None
    prefix = _enum_prefix(enum)
    return value.name[len(prefix):] if prefix and value.name.startswith(prefix) else value.name


def enum_number(enum: EnumDescriptor, name: Any) -> int | None:
    if not isinstance(name, str):
        return None
    for candidate in (name, _enum_prefix(enum) + name, _enum_prefix(enum) + name.upper()):
        value = enum.values_by_name.get(candidate)
        if value is not None:
            return value.number
    return None


def instant(message) -> Any:
    """An ``okr.v1.Instant`` as the reporting service reads it; None when unset."""
    which = message.WhichOneof("at")
    if which == "position":
        return int(message.position)
    if which == "time":
        return {"us": message.time.seconds * 1_000_000 + message.time.nanos // 1000}
    if which == "date":
        return message.date
    return None


def _plain(field: FieldDescriptor, value) -> Any:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return enum_short(field.enum_type, value)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        name = field.message_type.full_name
        if name in (_STRUCT, _VALUE):
            return json_format.MessageToDict(value)
        if name == _TIMESTAMP:
            return value.ToDatetime(tzinfo=timezone.utc).isoformat()
        if name == _INSTANT:
            return instant(value)
        return to_kwargs(value)
    return value


def to_kwargs(message: Message, skip: tuple[str, ...] = (), every_field: bool = False) -> dict:
    """The fields set on ``message`` as plain keyword arguments (see the module doc).
    ``every_field``: also the scalars without presence left at their default (a
    command's ``start_value=0`` is a value, not "not given"); fields with presence
    (``optional``, oneof members, messages) still only when set."""
    out: dict[str, Any] = {}
    if every_field:
        for field in message.DESCRIPTOR.fields:
            if field.name in skip or field.is_repeated or field.has_presence:
                continue
            if field.type in (FieldDescriptor.TYPE_ENUM, FieldDescriptor.TYPE_MESSAGE):
                continue
            out[field.name] = getattr(message, field.name)
    for field, value in message.ListFields():
        if field.name in skip:
            continue
        if field.is_repeated:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                out[field.name] = dict(value)
            else:
                out[field.name] = [_plain(field, v) for v in value]
        else:
            plain = _plain(field, value)
            if plain is not None:
                out[field.name] = plain
    return out


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    t = field.type
    if t == FieldDescriptor.TYPE_ENUM:
        number = enum_number(field.enum_type, value)
        return 0 if number is None else number
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        value = float(value)
        return value if math.isfinite(value) else 0.0
    if t == FieldDescriptor.TYPE_BOOL:
        return bool(value)
    if t == FieldDescriptor.TYPE_STRING:
        return value if isinstance(value, str) else str(value)
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED32,
             FieldDescriptor.TYPE_FIXED64):
        return max(0, int(value))
    return int(value)


def fill(message: Message, data: dict) -> Message:
    """Copy ``data`` into ``message`` field by field (see the module doc)."""
    fields = message.DESCRIPTOR.fields_by_name
    for key, value in data.items():
        field = fields.get(key)
        if field is None or value is None:
            continue
        target_type = field.message_type.full_name if field.message_type is not None else None
        if field.is_repeated:
            container = getattr(message, key)
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                value_field = field.message_type.fields_by_name["value"]
                for k, v in (value or {}).items():
                    if value_field.message_type is not None:
                        fill(container[k], v)
                    else:
                        container[k] = _scalar(value_field, v)
            elif target_type in (_STRUCT, _VALUE):
                for item in value:
                    json_format.ParseDict(item, container.add())
            elif target_type is not None:
                for item in value:
                    if isinstance(item, dict):
                        fill(container.add(), item)
            else:
                container.extend(_scalar(field, v) for v in value)
        elif target_type == _STRUCT:
            if isinstance(value, dict):
                getattr(message, key).update(value)
        elif target_type == _VALUE:
            json_format.ParseDict(value, getattr(message, key))
        elif target_type is not None:
            if isinstance(value, dict):
                fill(getattr(message, key), value)
        else:
            setattr(message, key, _scalar(field, value))
    return message


def to_message(data: Any, cls) -> Message:
    message = cls()
    if isinstance(data, dict):
        fill(message, data)
    return message


def to_value(data: Any) -> struct_pb2.Value:
    value = struct_pb2.Value()
    json_format.ParseDict(data, value)
    return value


_REPLY_KEYS = {"stream_id", "aggregate_id", "version", "positions", "event_types", "already_stored"}


def command_result(reply: dict) -> common_pb2.CommandResult:
    positions = reply.get("positions") or []
    created = [v for k, v in reply.items() if k not in _REPLY_KEYS and k.endswith("_id") and isinstance(v, str)]
    return common_pb2.CommandResult(
        stream_id=reply.get("stream_id", ""), stream_version=int(reply.get("version", 0)),
        first_position=int(positions[0]) if positions else 0, last_position=int(positions[-1]) if positions else 0,
        already_stored=bool(reply.get("already_stored")), aggregate_id=reply.get("aggregate_id", ""),
        event_types=list(reply.get("event_types") or []), created_id=created[0] if created else "")
