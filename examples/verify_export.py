#!/usr/bin/env python3
"""Re-verify an exported tenant history (okr.export.v1, see docs/audit-format.md).

Standalone: Python 3 standard library only, nothing from the OKR project.

    python verify_export.py EXPORT.jsonl [--expect-head HASH]

Exit 0: the history is intact (one-line summary); 1: it is not (the first problem,
naming the line); 2: the file is unreadable or malformed.
"""
import argparse
import hashlib
import json
import re
import struct
import sys

FIELDS = ("position", "tenant_id", "stream_id", "stream_version", "event_id", "event_type",
          "schema_version", "recorded_at_us", "data_json", "metadata_json")
INTS = {"position", "stream_version", "schema_version", "recorded_at_us"}


class Broken(Exception):     # the history was altered: exit 1
    pass


class Malformed(Exception):  # not a readable export: exit 2
    pass


def canonical(ev):
    """Each field as UTF-8 (integers in decimal), after its 4-byte big-endian length."""
    parts = [b"okr.event.v1"] + [str(ev[f]).encode("utf-8") for f in FIELDS]
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def no_duplicate_keys(pairs):
    if len({k for k, _ in pairs}) != len(pairs):
        raise ValueError("duplicate key")
    return dict(pairs)


def parse(n, raw):
    try:
        obj = json.loads(raw, object_pairs_hook=no_duplicate_keys)
    except ValueError as e:  # also invalid UTF-8
        raise Malformed(f"line {n}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise Malformed(f"line {n}: not a JSON object")
    return obj


def verify(path, anchor=None):
    try:
        with open(path, "rb") as f:  # binary lines split on b"\n" only, as JSON lines must be
            return check_lines(f, anchor.lower() if anchor else None)
    except OSError as e:
        raise Malformed(f"cannot read {path}: {e.strerror}") from None


def check_lines(f, anchor):
    header = parse(1, f.readline())
    tenant = header.get("tenant_id")
    if header.get("format") != "okr.export.v1" or header.get("canonical") != "okr.event.v1" \
            or not isinstance(tenant, str):
        raise Malformed("line 1: not an okr.export.v1 header (canonical okr.event.v1)")
    prev, last_pos, count, n, trailer, found = bytes(32), 0, 0, 1, None, None
    for n, raw in enumerate(f, start=2):
        if trailer is not None:
            raise Broken(f"line {n}: content after the trailer on line {n - 1}")
        ev = parse(n, raw)
        if "chain_head" in ev:
            trailer = ev["chain_head"]
            continue
        for key in FIELDS + ("hash",):
            if type(ev.get(key)) is not (int if key in INTS else str):
                raise Malformed(f"line {n}: field {key!r} is missing or of the wrong type")
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
        if digest.hex() == anchor:
            found = (last_pos, count)
    if trailer is None:
        raise Broken(f"no trailer after line {n}: the file is truncated")
    head = prev.hex() if count else None
    want = {"last_position": last_pos, "last_hash": head, "event_count": count}
    if trailer != want:
        raise Broken(f"line {n} (trailer): says {json.dumps(trailer)} but the lines hold "
                     f"{json.dumps(want)} (event lines dropped at the end, or trailer edited)")
    note = ""
    if anchor and not found:
        raise Broken(f"the expected head {anchor} is not in this chain (final hash {head}): "
                     "the history was rewritten, or the anchor is another tenant's")
    if anchor:
        note = ", matches the expected head" if found[1] == count else \
            f", expected head found at position {found[0]} ({count - found[1]} later event(s))"
    return f"OK: tenant {tenant}: {count} events, last position {last_pos}, head {head}{note}"


def main(argv=None):
    ap = argparse.ArgumentParser(description="Verify an okr.export.v1 tenant history.")
    ap.add_argument("export", help="the exported .jsonl file")
    ap.add_argument("--expect-head", metavar="HASH", help="chain head hash you recorded earlier")
    args = ap.parse_args(argv)
    if args.expect_head and not re.fullmatch(r"[0-9a-fA-F]{64}", args.expect_head):
        ap.error("--expect-head must be 64 hex digits")
    try:
        print(verify(args.export, args.expect_head))
        return 0
    except Broken as e:
        print(f"BROKEN: {e}")
        return 1
    except Malformed as e:
        print(f"MALFORMED: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
