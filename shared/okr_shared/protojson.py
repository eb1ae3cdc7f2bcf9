"""Protobuf's JSON mapping for the event payloads, compiled per message type.

``json_format.MessageToDict`` and ``ParseDict`` walk the descriptor in pure Python for
every message; on the path of every check-in (the executor stores the payload as JSON,
the relay packs it back into a message, the reporting consumer unpacks it again) that
was ~20 % of the relay's CPU and ~5 % of the reporting consumer's. ``Codec`` reads the
descriptor once and converts with a few dictionary lookups, giving exactly what
json_format gives (same values, same key order), for the options the contracts use:

- ``to_dict(message)`` = ``MessageToDict(message, preserving_proto_field_name=True,
  always_print_fields_with_no_presence=True)``;
- ``from_dict(cls, data)`` = ``ParseDict(data, cls(), ignore_unknown_fields=True)``.

Only the well-formed common case is converted here: a message type with a field kind
outside the simple set (repeated, map, bytes, 64-bit integers, float, well-known types,
enums with JSON options) always goes through json_format, and so does any input that is
not exactly what the fast path expects (a key that is not a proto field name, a value
of another Python type, an unknown enum name, ``None``, a non-finite float, two members
of one oneof): json_format then decides — including the ``ParseError`` for a bad payload.
tests/unit/test_protojson.py checks the equivalence on generated messages and inputs.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

F = FieldDescriptor
_INT32 = frozenset({F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32, F.TYPE_UINT32, F.TYPE_FIXED32})
_INT32_RANGE = {F.TYPE_INT32: (-2**31, 2**31 - 1), F.TYPE_SINT32: (-2**31, 2**31 - 1),
                F.TYPE_SFIXED32: (-2**31, 2**31 - 1), F.TYPE_UINT32: (0, 2**32 - 1),
                F.TYPE_FIXED32: (0, 2**32 - 1)}

# field kinds of the fast path
_STRING, _BOOL, _INT, _DOUBLE, _ENUM, _MESSAGE = range(6)


class _Unsupported(Exception):
    """The message type has a field kind the fast path does not convert."""


class _Fast:
    """One message type's compiled conversion."""

    __slots__ = ("cls", "fields", "defaults", "oneofs", "by_number")

    def __init__(self, descriptor: Descriptor, cls: type[Message], compile_nested: Callable):
        self.cls = cls
        # name -> (kind, extra, oneof name or None); extra: enum names->numbers, int range or nested _Fast
        self.fields: dict[str, tuple[int, Any, str | None]] = {}
        # field (descriptor) -> (name, kind, extra): the to_dict side, by descriptor
        self.by_number: dict[int, tuple[str, int, Any]] = {}
        defaults = []
        for field in descriptor.fields:
            if field.is_repeated:
                raise _Unsupported(field.full_name)
            kind, extra, to_json = self._kind(field, compile_nested)
            oneof = field.containing_oneof.name if field.containing_oneof is not None else None
            self.fields[field.name] = (kind, extra, oneof)
            self.by_number[field.number] = (field.name, kind, to_json)
            if not field.has_presence:
                defaults.append((field.name, to_json(field.default_value) if to_json else field.default_value))
        self.defaults = tuple(defaults)
        self.oneofs = any(f[2] is not None for f in self.fields.values())

    @staticmethod
    def _kind(field: FieldDescriptor, compile_nested: Callable):
        t = field.type
        if t == F.TYPE_STRING:
            return _STRING, None, None
        if t == F.TYPE_BOOL:
            return _BOOL, None, None
        if t in _INT32:
            return _INT, _INT32_RANGE[t], None
        if t == F.TYPE_DOUBLE:
            return _DOUBLE, None, _double_to_json
        if t == F.TYPE_ENUM:
            enum = field.enum_type
            if enum.full_name == "google.protobuf.NullValue" or enum.is_closed:
                raise _Unsupported(field.full_name)
            for value in enum.values:
                if value.GetOptions().ListFields():  # e.g. a JSON name option
                    raise _Unsupported(field.full_name)
            names = {value.name: value.number for value in enum.values}
            numbers = {value.number: value.name for value in enum.values}
            return _ENUM, names, lambda number, _n=numbers: _n.get(number, number)
        if t == F.TYPE_MESSAGE:
            if field.message_type.full_name.startswith("google.protobuf."):
                raise _Unsupported(field.full_name)
            nested = compile_nested(field.message_type)
            if nested is None:
                raise _Unsupported(field.full_name)
            return _MESSAGE, nested, nested.to_dict
        raise _Unsupported(field.full_name)

    def to_dict(self, message: Message) -> dict[str, Any]:
        out: dict[str, Any] = {}
        by_number = self.by_number
        for field, value in message.ListFields():
            name, _, to_json = by_number[field.number]
            out[name] = to_json(value) if to_json is not None else value
        for name, default in self.defaults:
            if name not in out:
                out[name] = default
        return out

    def kwargs(self, data: dict) -> dict[str, Any] | None:
        """The constructor arguments for ``data``, or None when json_format must decide."""
        fields = self.fields
        out: dict[str, Any] = {}
        seen_oneofs: set[str] | None = set() if self.oneofs else None
        for key, value in data.items():
            spec = fields.get(key)
            if spec is None:
                return None
            kind, extra, oneof = spec
            vt = type(value)
            if kind == _STRING:
                if vt is not str:
                    return None
            elif kind == _DOUBLE:
                if vt is float:
                    if not math.isfinite(value):
                        return None
                elif vt is int:
                    value = float(value)
                else:
                    return None
            elif kind == _INT:
                if vt is not int or not extra[0] <= value <= extra[1]:
                    return None
            elif kind == _ENUM:
                if vt is not str:
                    return None
                value = extra.get(value)
                if value is None:
                    return None
            elif kind == _BOOL:
                if vt is not bool:
                    return None
            else:  # _MESSAGE
                if vt is not dict:
                    return None
                nested = extra.kwargs(value)
                if nested is None:
                    return None
                value = extra.cls(**nested)
            if oneof is not None:
                if oneof in seen_oneofs:
                    return None
                seen_oneofs.add(oneof)
            out[key] = value
        return out


def _double_to_json(value: float):
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "-Infinity" if value < 0 else "Infinity"


class Codec:
    """The compiled conversions of a set of message classes (compiled on first use)."""

    def __init__(self):
        self._fast: dict[str, _Fast | None] = {}

    def _compile(self, descriptor: Descriptor, cls: type[Message] | None = None) -> _Fast | None:
        name = descriptor.full_name
        if name in self._fast:
            return self._fast[name]
        self._fast[name] = None  # a recursive type stays on json_format
        if cls is None:
            cls = descriptor._concrete_class
        try:
            fast = _Fast(descriptor, cls, self._compile)
        except _Unsupported:
            fast = None
        self._fast[name] = fast
        return fast

    def fast(self, cls: type[Message]) -> _Fast | None:
        found = self._fast.get(cls.DESCRIPTOR.full_name, False)
        if found is False:
            found = self._compile(cls.DESCRIPTOR, cls)
        return found

    def to_dict(self, message: Message) -> dict[str, Any]:
        fast = self.fast(type(message))
        if fast is None:
            return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                             always_print_fields_with_no_presence=True)
        return fast.to_dict(message)

    def from_dict(self, cls: type[Message], data) -> Message:
        fast = self.fast(cls)
        if fast is not None and type(data) is dict:
            kwargs = fast.kwargs(data)
            if kwargs is not None:
                return cls(**kwargs)
        message = cls()
        json_format.ParseDict(dict(data), message, ignore_unknown_fields=True)
        return message
