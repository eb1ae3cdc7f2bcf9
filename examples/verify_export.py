#!/usr/bin/env python3
"""Re-verify an exported tenant history (okr.export.v1, see docs/audit-format.md).

Standalone: Python 3 standard library only, nothing from the OKR project.

    python verify_export.py EXPORT.jsonl [--expect-head HASH [--expect-position N]]

Exit 0: the history is intact (one-line summary); 1: it is not (the first problem,
naming the line); 2: the file is unreadable or malformed. Every rule applied here is
one of docs/audit-format.md, section 5.
"""
import argparse
import hashlib
import json
import re
import struct
import sys

FIELDS = ("position", "tenant_id", "stream_id", "stream_version", "event_id", "event_type",
          "schema_version", "recorded_at_us", "data_json", "metadata_json")
EVENT_KEYS = frozenset(FIELDS + ("hash",))
HEADER_KEYS = frozenset(("format", "canonical", "tenant_id"))
HEAD_KEYS = frozenset(("last_position", "last_hash", "event_count"))
MINIMUM = {"position": 1, "stream_version": 1, "schema_version": 1, "recorded_at_us": 0}
INT64_MAX = 2**63 - 1
HASH = re.compile(r"[0-9a-f]{64}")


class Broken(Exception):     # the history was altered (or cut short): exit 1
    pass


class Malformed(Exception):  # not a readable okr.export.v1 file: exit 2
    pass


def canonical(ev):
    """Each field as UTF-8 (integers in decimal), after its 4-byte big-endian length."""
    parts = [b"okr.event.v1"] + [str(ev[f]).encode("utf-8") for f in FIELDS]
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def no_duplicate_keys(pairs):
    if len({k for k, _ in pairs}) != len(pairs):
        raise ValueError("duplicate key")
    return dict(pairs)


def plain_integer(text):
    """JSON integers only in plain form: digits, no sign (the grammar already forbids
    leading zeros), within int64."""
    if text.startswith("-") or int(text) > INT64_MAX:
        raise ValueError(f"number {text} is not an integer 0 .. 2^63-1")
    return int(text)


def no_fraction(text):
    raise ValueError(f"number {text} is not a plain integer (no fraction, no exponent)")


def no_constant(text):
    raise ValueError(f"{text} is not JSON")


def parse(n, raw):
    """Line ``n`` (bytes without its line feed) as a JSON object, by the rules of
    section 5: UTF-8 without BOM or CR, one object, no duplicate key, numbers plain
    integers, strings valid UTF-8 once unescaped."""
    if not raw:
        raise Malformed(f"line {n}: empty line")
    if raw.startswith(b"\xef\xbb\xbf"):
        raise Malformed(f"line {n}: starts with a byte order mark (the file is ASCII, no BOM)")
    cr = raw.find(b"\r")
    if cr >= 0:
        raise Malformed(f"line {n}: a CR (0x0d) at column {cr + 1} (lines end in LF alone, not CRLF)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Malformed(f"line {n}: not valid JSON (not UTF-8: byte 0x{raw[e.start]:02x} at column {e.start + 1})") \
            from None
    try:
        obj = json.loads(text, object_pairs_hook=no_duplicate_keys,
                         parse_int=plain_integer, parse_float=no_fraction, parse_constant=no_constant)
        if isinstance(obj, dict):
            for value in [*obj.values(), *(obj["chain_head"].values() if isinstance(obj.get("chain_head"), dict)
                                           else ())]:
                if isinstance(value, str):
                    value.encode("utf-8")  # a lone surrogate escape has no UTF-8 form
    except UnicodeEncodeError:
        raise Malformed(f"line {n}: a string holds an unpaired surrogate escape (not UTF-8 text)") from None
    except ValueError as e:
        raise Malformed(f"line {n}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise Malformed(f"line {n}: not a JSON object")
    return obj


def exact_keys(n, what, obj, keys):
    if set(obj) != keys:
        extra, missing = sorted(set(obj) - keys), sorted(keys - set(obj))
        raise Malformed(f"line {n}: {what} " + "; ".join(
            ([f"unknown key(s) {', '.join(map(repr, extra))}"] if extra else [])
            + ([f"missing key(s) {', '.join(map(repr, missing))}"] if missing else [])))


def check_event(n, ev):
    exact_keys(n, "event line:", ev, EVENT_KEYS)
    for key in FIELDS + ("hash",):
        if type(ev[key]) is not (int if key in MINIMUM else str):
            raise Malformed(f"line {n}: field {key!r} is of the wrong type "
                            f"(not {'an integer' if key in MINIMUM else 'a string'})")
        if key in MINIMUM and ev[key] < MINIMUM[key]:
            raise Malformed(f"line {n}: field {key!r} is below {MINIMUM[key]}")
    if not HASH.fullmatch(ev["hash"]):
        raise Malformed(f"line {n}: field 'hash' is not 64 lowercase hex characters")


def check_trailer(n, obj):
    exact_keys(n, "trailer:", obj, {"chain_head"})
    head = obj["chain_head"]
    if not isinstance(head, dict):
        raise Malformed(f"line {n}: trailer: chain_head is not an object")
    exact_keys(n, "trailer's chain_head:", head, HEAD_KEYS)
    for key in ("last_position", "event_count"):
        if type(head[key]) is not int:
            raise Malformed(f"line {n}: trailer's chain_head: {key!r} is not an integer")
    if head["last_hash"] is not None and not (isinstance(head["last_hash"], str) and HASH.fullmatch(head["last_hash"])):
        raise Malformed(f"line {n}: trailer's chain_head: 'last_hash' is neither null nor 64 lowercase hex characters")
    return head


def verify(path, anchor=None, anchor_position=None):
    try:
        with open(path, "rb") as f:  # binary lines split on b"\n" only, as the format says
            return check_lines(f, anchor.lower() if anchor else None, anchor_position)
    except OSError as e:
        raise Malformed(f"cannot read {path}: {e.strerror}") from None


def check_lines(f, anchor, anchor_position=None):
    first = f.readline()
    if not first:
        raise Malformed("line 1: the file is empty (no header)")
    if not first.endswith(b"\n"):
        raise Malformed("line 1: not a complete header line (no line feed after it)")
    header = parse(1, first[:-1])
    if header.get("format") != "okr.export.v1" or header.get("canonical") != "okr.event.v1":
        raise Malformed("line 1: not an okr.export.v1 header (canonical okr.event.v1)")
    exact_keys(1, "header:", header, HEADER_KEYS)
    tenant = header["tenant_id"]
    if not isinstance(tenant, str) or not tenant:
        raise Malformed("line 1: header: 'tenant_id' is not a non-empty string")
    prev, last_pos, count, n, trailer, found, at = bytes(32), 0, 0, 1, None, None, None
    for n, raw in enumerate(f, start=2):
        if trailer is not None:
            raise Broken(f"line {n}: content after the trailer on line {n - 1}")
        if not raw.endswith(b"\n"):
            raise Broken(f"line {n}: no line feed at its end: the file is truncated")
        ev = parse(n, raw[:-1])
        if "chain_head" in ev:
            trailer = check_trailer(n, ev)
            continue
        check_event(n, ev)
        where = f"line {n} (position {ev['position']}, event {ev['event_id']})"
        if ev["position"] <= last_pos:
            raise Broken(f"{where}: position is not after the previous line's {last_pos} "
                         "(lines reordered or repeated)")
        if ev["tenant_id"] != tenant:
            raise Broken(f"{where}: tenant {ev['tenant_id']!r} is not the header's {tenant!r}")
        digest = hashlib.sha256(prev + canonical(ev)).digest()
        if digest.hex() != ev["hash"]:
            raise Broken(f"{where}: hash {ev['hash']} does not match the recomputed {digest.hex()} "
                         "(this line was edited, or a line before it was dropped or moved)")
        prev, last_pos, count = digest, ev["position"], count + 1
        if digest.hex() == anchor and anchor_position in (None, last_pos):
            found = (last_pos, count)
        elif last_pos == anchor_position:
            at = digest.hex()
    if trailer is None:
        raise Broken(f"no trailer after line {n}: the file is truncated")
    head = prev.hex() if count else None
    want = {"last_position": last_pos, "last_hash": head, "event_count": count}
    if trailer != want:
        raise Broken(f"line {n} (trailer): says {json.dumps(trailer)} but the lines hold "
                     f"{json.dumps(want)} (event lines dropped at the end, or trailer edited)")
    if anchor and not found:
        if anchor_position is None:
            raise Broken(f"the expected head {anchor} is not in this chain (final hash {head}): "
                         "the history was rewritten, or the anchor is another tenant's")
        if at is not None:
            raise Broken(f"the expected head {anchor} does not match the event at position {anchor_position} "
                         f"(its hash is {at}): the history up to it was rewritten, or the anchor is another tenant's")
        raise Broken(f"the expected head {anchor} is not in this chain: it has no event at position "
                     f"{anchor_position}")
    note = ""
    if anchor:
        note = ", matches the expected head" if found[1] == count else \
            f", expected head found at position {found[0]} ({count - found[1]} later event(s))"
    return f"OK: tenant {tenant}: {count} events, last position {last_pos}, head {head}{note}"


def main(argv=None):
    ap = argparse.ArgumentParser(description="Verify an okr.export.v1 tenant history.")
    ap.add_argument("export", help="the exported .jsonl file")
    ap.add_argument("--expect-head", metavar="HASH", help="chain head hash you recorded earlier")
    ap.add_argument("--expect-position", metavar="N", type=int,
                    help="the position you recorded with that hash (the trailer's last_position)")
    args = ap.parse_args(argv)
    if args.expect_head and not re.fullmatch(r"[0-9a-fA-F]{64}", args.expect_head):
        ap.error("--expect-head must be 64 hex digits")
    if args.expect_position is not None and (args.expect_position < 1 or not args.expect_head):
        ap.error("--expect-position must be a position (1 or more) given with --expect-head")
    try:
        print(verify(args.export, args.expect_head, args.expect_position))
        return 0
    except Broken as e:
        print(f"BROKEN: {e}")
        return 1
    except Malformed as e:
        print(f"MALFORMED: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
