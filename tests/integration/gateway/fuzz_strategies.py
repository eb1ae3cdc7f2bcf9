"""Hypothesis strategies for okr.v1 requests, derived from the protobuf descriptors.

``requests_for(descriptor)`` walks a message descriptor and builds a strategy of that
message: every scalar from a mix of realistic values (the ids of the seeded data, plausible
dates, numbers) and hostile ones (empty, long, odd unicode, control characters, NaN/inf,
integer extremes, malformed dates, path and SQL-ish text); enums including numbers outside
the defined range (proto3 enums are open); a oneof with none or one member set; proto3
``optional`` fields set or not; nested messages (``okr.v1.Instant``, ``Struct`` with random
JSON, ``Timestamp``) and repeated fields.

Choices are kept cheap for hypothesis (a long string is a short piece repeated), so a
batch of many requests fits one example.
"""

from __future__ import annotations

import math
import string

from google.protobuf import message_factory, struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

# ------------------------------------------------------------------ value pools

#: The ids of the seeded data (test_gateway.seed: acme plain, globex with "-gx"), ids the
#: fuzz itself may create, and ids that exist nowhere.
IDS = {
    "cycle": ["q1", "q1-gx", "q2", "fz-c1", "fz-c2"],
    "objective": ["o-growth", "o-ops", "o-growth-gx", "o-ops-gx", "fz-o1", "fz-o2"],
    "key_result": ["kr-max", "kr-other", "kr-delegated", "kr-max-gx", "kr-other-gx", "fz-k1", "fz-k2"],
    "initiative": ["i-other", "i-other-gx", "fz-i1", "fz-i2"],
    "check_in": ["fz-ci1", "fz-ci2", "fz-ci3"],
    "stream": ["kr-kr-max", "kr-kr-other", "kr-kr-max-gx", "cycle-q1", "objective-o-growth", "kr-fz-k1",
               "initiative-i-other"],
}
PEOPLE = ["max", "lena", "oscar", "olga", "ada", "svc-crm", "vic"]
TEAMS = ["growth", "ops", "fz-team"]
DATES = ["2026-01-01", "2026-01-05", "2026-01-20", "2026-01-21", "2026-02-01", "2026-02-15", "2026-03-31",
         "2026-04-01", "2026-06-30", "2025-12-31", "2027-01-01"]
BAD_DATES = ["2026-13-45", "2026-02-30", "2026-00-10", "20260120", "2026-1-2", "0000-00-00", "9999-12-31",
             "0001-01-01", " 2026-01-20", "2026-01-20T00:00:00", "2026-01-20\x00", "yesterday", "-2026-01-01",
             "２０２６-０１-２０", "2026/01/20"]
WORDS = ["Grow", "Run", "Q1", "Automate", "bigger market", "budget cut", "EUR", "USD", "%", "users", "0 → 100",
         "okr.v1.CheckInRecorded", "okr.v1.ObjectiveCreated", "okr.v1.KeyResultDefined", "okr.v1.CycleActivated"]
HOSTILE = ["", " ", "\x00", "a\x00b", "\x01\x02\x1b[31m\x7f", "\t\n\r", "../../etc/passwd", "..\\..\\boot.ini",
           "'; DROP TABLE events; --", "\" OR 1=1 --", "%s%s%n%x", "{}", "[]", "null", "None", "NaN", "-0",
           "🙂", "\u202eevil", "e\u0301\u0301\u0301", "\ufeffbom", "\uffff", "\U0010ffff", "Ω≈ç√∫", "日本語",
           "a" * 201, "kr-", "kr-kr-max", "okr_000000000000_xxx", "$where", "<script>alert(1)</script>",
           "\\", "'", '"', "\u2028\u2029", "ﷺ", "\x85"]
#: Long strings: a short piece repeated up to ~5,000 characters.
LONG = st.builds(lambda piece, n: (piece * n)[:5000], st.sampled_from(["x", "ab", "é", "🙂", "\x01", "kr-", "'"]),
                 st.integers(256, 5000))
#: Short arbitrary text, surrogates left out (a protobuf string is valid UTF-8).
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=24)

HUGE_FLOATS = [math.nan, math.inf, -math.inf, 1.7976931348623157e308, -1.7976931348623157e308, 5e-324, -0.0,
               1e20, -1e20, 2.0 ** 53 + 1]
INT32 = (-(2 ** 31), 2 ** 31 - 1)
INT64 = (-(2 ** 63), 2 ** 63 - 1)
UINT32_MAX, UINT64_MAX = 2 ** 32 - 1, 2 ** 64 - 1


def hostile_text() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(HOSTILE), LONG, ANY_TEXT)


#: Per-message pools: the fuzz never ends acme's seeded cycle (a cycle in review or closed
#: refuses every write, and the rest of the run would only see refusals); globex's may end.
OVERRIDES = {("okr.v1.MoveCycleToReviewRequest", "cycle_id"): ["q1-gx", "q2", "fz-c1", "fz-c2"],
             ("okr.v1.CloseCycleRequest", "cycle_id"): ["q1-gx", "q2", "fz-c1", "fz-c2"],
             # nor archives acme's seeded objectives and most key results (writes to them
             # would be refused from then on)
             ("okr.v1.ArchiveObjectiveRequest", "objective_id"): ["o-ops-gx", "fz-o1", "fz-o2"],
             ("okr.v1.ArchiveKeyResultRequest", "key_result_id"): ["kr-delegated", "kr-max-gx", "fz-k1", "fz-k2"]}


def _realistic_text(name: str, message: str = "") -> st.SearchStrategy[str]:
    if (message, name) in OVERRIDES:
        return st.sampled_from(OVERRIDES[(message, name)])
    for kind, ids in IDS.items():
        if name == f"{kind}_id" and kind != "stream":  # also a fresh id: a creation that succeeds
            return st.one_of(st.sampled_from(ids), st.sampled_from(ids),
                             st.integers(0, 10 ** 9).map(lambda n, k=kind: f"fz-{k}-{n}"))
        if name in (f"parent_{kind}_id", f"corrects_{kind}_id", f"{kind}_id"):
            return st.sampled_from(ids)
    if name in ("owner", "assignee", "person"):
        return st.sampled_from(PEOPLE)
    if name == "team_id":
        return st.sampled_from(TEAMS)
    if name.endswith("date") or name.endswith("_on") or name == "today":
        return st.sampled_from(DATES)
    if name == "command_id":
        return st.one_of(st.sampled_from(["fz-cmd-1", "fz-cmd-2", "fz-cmd-3"]),
                         st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=40))
    if name == "page_token":
        return st.integers(0, 50).map(str)
    if name == "expected_head":
        return st.one_of(st.text("0123456789abcdef", min_size=64, max_size=64), st.just(""))
    if name == "currency_code":
        return st.sampled_from(["EUR", "USD", "eur", "XXXX", "€"])
    if name == "event_types":
        return st.sampled_from([w for w in WORDS if w.startswith("okr.v1.")])
    return st.sampled_from(WORDS)


def text_for(field: FieldDescriptor, hostile: bool = True) -> st.SearchStrategy[str]:
    name = field.name
    realistic = _realistic_text(name, field.containing_type.full_name)
    if not hostile:
        if name == "command_id":  # a fresh one, or none (a reused one is refused on another stream)
            return st.one_of(st.just(""), st.uuids().map(str))
        # acme's ids only (ids_for_tenant maps them onto globex's)
        return realistic.filter(lambda v: not v.endswith("-gx"))
    bad = st.sampled_from(BAD_DATES) if ("date" in name or name.endswith("_on") or name == "today") else st.nothing()
    return st.one_of(realistic, realistic, realistic, hostile_text(), bad)


def floats_for(field: FieldDescriptor, hostile: bool = True) -> st.SearchStrategy[float]:
    realistic = st.one_of(st.sampled_from([0.0, 1.0, 5.0, 20.0, 50.0, 80.0, 100.0, 120.0, 0.5, -5.0]),
                          st.floats(-1e6, 1e6, allow_nan=False))
    if not hostile:
        return st.sampled_from([0.0, 1.0, 5.0, 20.0, 35.5, 50.0, 80.0, 100.0, 120.0, 0.5])
    return st.one_of(realistic, realistic, st.sampled_from(HUGE_FLOATS), st.floats())


def ints_for(field: FieldDescriptor, hostile: bool = True) -> st.SearchStrategy[int]:
    t = field.type
    if not hostile:
        return st.integers(0, 10) if field.name != "page_size" else st.integers(1, 50)
    if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        lo, hi = INT32
    elif t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        lo, hi = 0, UINT32_MAX
    elif t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        lo, hi = 0, UINT64_MAX
    else:
        lo, hi = INT64
    small = st.integers(max(lo, -3), min(hi, 12))  # confidence 0..10, page sizes, positions
    medium = st.integers(max(lo, -1000), min(hi, 5000))
    extremes = st.sampled_from(sorted({lo, hi, max(lo, -1), 0, 1, min(hi, 1001), min(hi, 2 ** 31),
                                       min(hi, 4 << 20), min(hi, (4 << 20) + 1), min(hi, 1023)}))
    return st.one_of(small, small, medium, extremes, st.integers(lo, hi))


def enums_for(field: FieldDescriptor, hostile: bool = True) -> st.SearchStrategy[int]:
    numbers = [v.number for v in field.enum_type.values]
    if not hostile:
        return st.sampled_from([n for n in numbers if n != 0] or numbers)
    return st.one_of(st.sampled_from(numbers), st.sampled_from(numbers),
                     st.integers(INT32[0], INT32[1]).filter(lambda n: n not in numbers),
                     st.sampled_from([max(numbers) + 1, -1]))


def json_values(max_leaves: int = 8) -> st.SearchStrategy:
    leaves = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
                       st.integers(-(2 ** 53), 2 ** 53), ANY_TEXT, st.sampled_from(IDS["cycle"] + IDS["key_result"]
                                                                                       + DATES + BAD_DATES))
    return st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(ANY_TEXT, inner, max_size=3)),
                        max_leaves=max_leaves)


#: Realistic and hostile ``params`` for ReplayAsOf (the reporting read models' filters).
PARAM_KEYS = ["cycle_id", "team_id", "owner", "person", "key_result_id", "objective_id", "include_children",
              "child_weight", "today", "read_model", "position", "time", "tenant_id", "since", "until"]


def structs(hostile: bool = True) -> st.SearchStrategy[struct_pb2.Struct]:
    realistic = st.dictionaries(st.sampled_from(PARAM_KEYS), json_values(4), max_size=3)
    random = st.dictionaries(ANY_TEXT, json_values(), max_size=4)
    if not hostile:
        return st.sampled_from([{}, {"cycle_id": "q1"}, {"team_id": "growth"}, {"owner": "max"},
                                {"key_result_id": "kr-max"}, {"objective_id": "o-growth"}]).map(_struct)

    @st.composite
    def build(draw):
        s = struct_pb2.Struct()
        s.update(draw(st.one_of(realistic, realistic, random)))
        if draw(st.integers(0, 9)) == 0:  # not JSON: NaN or infinity as a number
            s[draw(st.sampled_from(PARAM_KEYS))] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        return s

    return build()


def _scalar(field: FieldDescriptor, hostile: bool) -> st.SearchStrategy:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return text_for(field, hostile)
    if t == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return floats_for(field, hostile)
    if t == FieldDescriptor.TYPE_ENUM:
        return enums_for(field, hostile)
    return ints_for(field, hostile)


def _message_strategy(descriptor: Descriptor, depth: int, hostile: bool) -> st.SearchStrategy:
    name = descriptor.full_name
    if name == "google.protobuf.Struct":
        return structs(hostile)
    if name == "google.protobuf.Value":
        return json_values().map(lambda v: struct_pb2.Value(**{"null_value": 0}) if v is None else _value(v))
    if name == "google.protobuf.Timestamp" and not hostile:
        return st.integers(1_767_225_600, 1_767_225_600 + 120 * 86400).map(  # 2026-01-01 .. spring
            lambda s: _timestamp(s))
    return requests_for(descriptor, depth=depth + 1, hostile=hostile)


def _timestamp(seconds: int):
    from google.protobuf import timestamp_pb2

    return timestamp_pb2.Timestamp(seconds=seconds)


def _struct(d: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(d)
    return s


def _value(v) -> struct_pb2.Value:
    s = struct_pb2.Struct()
    s.update({"v": v})
    return s.fields["v"]


def _field_strategy(field: FieldDescriptor, depth: int, hostile: bool) -> st.SearchStrategy:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message_strategy(field.message_type, depth, hostile)
    return _scalar(field, hostile)


_CACHE: dict[tuple[str, int, bool], st.SearchStrategy] = {}


def requests_for(descriptor: Descriptor, depth: int = 0, hostile: bool = True) -> st.SearchStrategy:
    """A strategy of messages of ``descriptor``'s type, valid and invalid (module doc).
    ``hostile=False``: realistic values only, every field set (mostly well-formed
    requests, so that commands also succeed and the store grows)."""
    key = (descriptor.full_name, depth, hostile)
    if key in _CACHE:
        return _CACHE[key]
    cls = message_factory.GetMessageClass(descriptor)
    oneofs = [o for o in descriptor.oneofs if not _synthetic(o)]
    in_oneof = {f.name for o in oneofs for f in o.fields}
    plain = [f for f in descriptor.fields if f.name not in in_oneof]
    strategies = {f.name: _field_strategy(f, depth, hostile) for f in descriptor.fields} if depth < 4 else {}

    @st.composite
    def build(draw):
        message = cls()
        if depth >= 4:
            return message
        # how full: mostly most fields, sometimes hardly any (the "required" checks)
        fill_ratio = draw(st.sampled_from([2, 7, 9, 10, 10])) if hostile else 10  # tenths
        for field in plain:
            if draw(st.integers(1, 10)) > fill_ratio:
                continue
            strategy = strategies[field.name]
            if field.is_repeated:
                if field.message_type is not None and field.message_type.GetOptions().map_entry:
                    continue  # no request has a map; nothing to fuzz
                values = draw(st.lists(strategy, max_size=4))
                container = getattr(message, field.name)
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    for v in values:
                        container.add().CopyFrom(v)
                else:
                    container.extend(values)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                getattr(message, field.name).CopyFrom(draw(strategy))
            else:
                setattr(message, field.name, draw(strategy))
        for oneof in oneofs:
            choice = draw(st.integers(-1 if hostile else 0, len(oneof.fields) - 1))  # -1: none set
            if choice < 0:
                continue
            field = oneof.fields[choice]
            value = draw(strategies[field.name])
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                getattr(message, field.name).CopyFrom(value)  # an empty message still selects the member
                if not value.ListFields():
                    getattr(message, field.name).SetInParent()
            else:
                setattr(message, field.name, value)
        return message

    strategy = build()
    _CACHE[key] = strategy
    return strategy


def _synthetic(oneof) -> bool:
    """The hidden oneof of a proto3 ``optional`` field."""
    return len(oneof.fields) == 1 and oneof.name == "_" + oneof.fields[0].name


def truncated(message, limit: int = 600) -> str:
    text = f"{type(message).__name__}({str(message)!r})"
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"


#: The seeded ids of acme; globex's are the same with "-gx".
SEEDED = {"q1", "o-growth", "o-ops", "kr-max", "kr-other", "kr-delegated", "i-other", "kr-kr-max", "kr-kr-other"}


def ids_for_tenant(message, tenant: str):
    """A well-formed request aimed at globex: the seeded ids it names as globex's."""
    if tenant != "globex":
        return message
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated and value in SEEDED:
            setattr(message, field.name, value + "-gx")
    return message
