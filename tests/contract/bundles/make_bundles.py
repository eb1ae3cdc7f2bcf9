#!/usr/bin/env python3
"""Derive the edge-case bundles of docs/audit-format.md (section 5) from one real export.

    python make_bundles.py BASE.jsonl OUTDIR

writes ``OUTDIR/base.jsonl`` (BASE as it is), ``OUTDIR/<case>.jsonl`` for every case
below that changes it, and ``OUTDIR/manifest.json``: for each case its bundle, the
verifier's extra arguments and the verdict the specification gives —
the exit status (0 intact, 1 broken, 2 malformed) and the message
(examples/verify_export.py's wording; ``"match": "prefix"`` where the rest of the
message is the verifier's own detail, e.g. a recomputed hash or a JSON parser's text).
BASE is an export of a tenant with at least three events and non-ASCII text in its
payloads (``base.jsonl`` here is one, taken from the running suite; the contract test
test_audit_bundles.py also derives the cases from a fresh export). Standard library
only, like the verifier.
"""
import json
import sys
from pathlib import Path

TRUNCATED = "no line feed at its end: the file is truncated"
REWRITTEN = "the history was rewritten, or the anchor is another tenant's"


def dumps(obj, **kw):
    return json.dumps(obj, **kw).encode("ascii" if kw.get("ensure_ascii", True) else "utf-8")


def cases(base: bytes):
    """(name, file content, arguments, exit status, message, match) for each case."""
    lines = base.split(b"\n")
    assert lines[-1] == b"" and len(lines) >= 6, "an export with at least three events"
    lines = lines[:-1]
    header, events, trailer = json.loads(lines[0]), [json.loads(x) for x in lines[1:-1]], json.loads(lines[-1])
    head = trailer["chain_head"]
    tenant, n, last = header["tenant_id"], len(lines), len(events)
    assert any(ord(c) > 127 for e in events for c in e["data_json"]), "non-ASCII text in a payload"
    e0, e1 = events[0], events[1]

    def join(*parts):
        return b"".join(p + b"\n" for p in parts)

    def where(line_no, ev):
        return f"line {line_no} (position {ev['position']}, event {ev['event_id']})"

    def event_line(ev, **changes):
        return dumps({**ev, **changes})

    def with_event(i, raw):  # the base with event i's line replaced by ``raw``
        return join(*lines[: i + 1], raw, *lines[i + 2:])

    def edit_text(i, old, new):  # event i's line with one piece of its text replaced
        assert lines[i + 1].count(old) == 1, old
        return with_event(i, lines[i + 1].replace(old, new))

    intact = (f"OK: tenant {tenant}: {last} events, last position {head['last_position']}, "
              f"head {head['last_hash']}")
    ok, broken, malformed = 0, 1, 2

    # ---- intact (exit 0)
    yield "intact", base, [], ok, intact, "exact"
    yield "valid-key-order", join(*(dumps(dict(reversed(json.loads(x).items()))) for x in lines)), [], ok, intact, \
        "exact"
    spaced = b'{ "format" :\t"okr.export.v1" ,"canonical":"okr.event.v1",  "tenant_id": ' + dumps(tenant) + b" }"
    yield "valid-whitespace", join(spaced, *(dumps(e, separators=(",", ":")) for e in events), lines[-1]), [], ok, \
        intact, "exact"
    yield "valid-raw-utf8", join(*(dumps(json.loads(x), ensure_ascii=False) for x in lines)), [], ok, intact, \
        "exact"
    escaped = '"' + "".join(f"\\u{ord(c):04x}" for c in e0["stream_id"]) + '"'
    yield "valid-escaped-ascii", edit_text(0, dumps(e0["stream_id"]), escaped.encode()), [], ok, intact, "exact"
    yield "valid-empty-tenant", join(lines[0], dumps({"chain_head": {
        "last_position": 0, "last_hash": None, "event_count": 0}})), [], ok, \
        f"OK: tenant {tenant}: 0 events, last position 0, head None", "exact"
    prefix_head = {"last_position": e1["position"], "last_hash": e1["hash"], "event_count": 2}
    yield "valid-earlier-export", join(*lines[:3], dumps({"chain_head": prefix_head})), [], ok, \
        f"OK: tenant {tenant}: 2 events, last position {e1['position']}, head {e1['hash']}", "exact"
    yield "anchor-latest", base, ["--expect-head", head["last_hash"]], ok, \
        intact + ", matches the expected head", "exact"
    older = intact + f", expected head found at position {e0['position']} ({last - 1} later event(s))"
    yield "anchor-older", base, ["--expect-head", e0["hash"], "--expect-position", str(e0["position"])], ok, \
        older, "exact"
    yield "anchor-older-hash-only", base, ["--expect-head", e0["hash"].upper()], ok, older, "exact"

    # ---- broken (exit 1)
    yield "truncated-final-newline", base[:-1], [], broken, f"BROKEN: line {n}: {TRUNCATED}", "exact"
    yield "truncated-mid-line", join(*lines[:2]) + lines[2][:40], [], broken, f"BROKEN: line 3: {TRUNCATED}", \
        "exact"
    yield "truncated-no-trailer", join(*lines[:-1]), [], broken, \
        f"BROKEN: no trailer after line {n - 1}: the file is truncated", "exact"
    after = f"BROKEN: line {n + 1}: content after the trailer on line {n}"
    yield "empty-line-after-trailer", base + b"\n", [], broken, after, "exact"
    yield "event-after-trailer", base + join(lines[1]), [], broken, after, "exact"
    yield "edited-payload", with_event(1, event_line(e1, data_json=e1["data_json"][:-1] + " }")), [], broken, \
        f"BROKEN: {where(3, e1)}: hash {e1['hash']} does not match the recomputed ", "prefix"
    yield "reordered", join(lines[0], lines[2], lines[1], *lines[3:]), [], broken, \
        f"BROKEN: {where(2, e1)}: hash {e1['hash']} does not match the recomputed ", "prefix"
    yield "repeated", join(*lines[:3], lines[2], *lines[3:]), [], broken, \
        f"BROKEN: {where(4, e1)}: position is not after the previous line's {e1['position']} " \
        "(lines reordered or repeated)", "exact"
    yield "other-tenant-header", join(dumps({**header, "tenant_id": "someone-else"}), *lines[1:]), [], broken, \
        f"BROKEN: {where(2, e0)}: tenant {tenant!r} is not the header's 'someone-else'", "exact"
    counted = {"chain_head": {**head, "event_count": head["event_count"] + 1}}
    want = {"last_position": head["last_position"], "last_hash": head["last_hash"], "event_count": last}
    yield "trailer-count-edited", join(*lines[:-1], dumps(counted)), [], broken, \
        f"BROKEN: line {n} (trailer): says {json.dumps(counted['chain_head'])} but the lines hold " \
        f"{json.dumps(want)} (event lines dropped at the end, or trailer edited)", "exact"
    yield "anchor-mismatch", base, ["--expect-head", e1["hash"], "--expect-position", str(e0["position"])], \
        broken, f"BROKEN: the expected head {e1['hash']} does not match the event at position {e0['position']} " \
        f"(its hash is {e0['hash']}): the history up to it was rewritten, or the anchor is another tenant's", "exact"
    beyond = head["last_position"] + 1
    yield "anchor-no-event-there", base, ["--expect-head", e0["hash"], "--expect-position", str(beyond)], broken, \
        f"BROKEN: the expected head {e0['hash']} is not in this chain: it has no event at position {beyond}", \
        "exact"
    yield "anchor-absent", base, ["--expect-head", "ab" * 32], broken, \
        f"BROKEN: the expected head {'ab' * 32} is not in this chain (final hash {head['last_hash']}): {REWRITTEN}", \
        "exact"

    # ---- malformed (exit 2)
    def bad(message, match="exact"):
        return malformed, f"MALFORMED: {message}", match

    yield ("empty-file", b"", [], *bad("line 1: the file is empty (no header)"))
    yield ("header-without-newline", lines[0], [], *bad("line 1: not a complete header line (no line feed after it)"))
    yield ("bom", b"\xef\xbb\xbf" + base, [], *bad("line 1: starts with a byte order mark (the file is ASCII, no BOM)"))
    yield ("crlf", b"".join(x + b"\r\n" for x in lines), [],
           *bad(f"line 1: a CR (0x0d) at column {len(lines[0]) + 1} (lines end in LF alone, not CRLF)"))
    yield ("empty-line", join(*lines[:2], b"", *lines[2:]), [], *bad("line 3: empty line"))
    key = b'"stream_id": "'
    yield ("not-utf8", edit_text(0, key, key + b"\xe9"), [],
           *bad(f"line 2: not valid JSON (not UTF-8: byte 0xe9 at column {lines[1].index(key) + len(key) + 1})"))
    yield ("unknown-key-event", with_event(1, event_line(e1, note="x")), [],
           *bad("line 3: event line: unknown key(s) 'note'"))
    yield ("unknown-key-header", join(dumps({**header, "exported_at": "2026-01-01"}), *lines[1:]), [],
           *bad("line 1: header: unknown key(s) 'exported_at'"))
    yield ("unknown-key-trailer", join(*lines[:-1], dumps({**trailer, "signature": "x"})), [],
           *bad(f"line {n}: trailer: unknown key(s) 'signature'"))
    yield ("unknown-key-chain-head", join(*lines[:-1], dumps({"chain_head": {**head, "tenant_id": tenant}})), [],
           *bad(f"line {n}: trailer's chain_head: unknown key(s) 'tenant_id'"))
    yield ("missing-key", with_event(0, dumps({k: v for k, v in e0.items() if k != "metadata_json"})), [],
           *bad("line 2: event line: missing key(s) 'metadata_json'"))
    yield ("duplicate-key", with_event(0, lines[1][:-1] + b', "position": ' + str(e0["position"]).encode() + b"}"),
           [], *bad("line 2: not valid JSON (duplicate key)", "prefix"))
    yield ("duplicate-key-chain-head", join(*lines[:-1], lines[-1][:-2] + b', "event_count": 0}}'), [],
           *bad(f"line {n}: not valid JSON (duplicate key)", "prefix"))

    def number(i, field, text):
        old = f'"{field}": {events[i][field]}'.encode()
        return edit_text(i, old, f'"{field}": {text}'.encode())

    p0 = e0["position"]
    yield ("number-fraction", number(0, "position", f"{p0}.0"), [],
           *bad(f"line 2: not valid JSON (number {p0}.0 is not a plain integer (no fraction, no exponent))", "prefix"))
    yield ("number-exponent", number(0, "schema_version", "1e0"), [],
           *bad("line 2: not valid JSON (number 1e0 is not a plain integer (no fraction, no exponent))", "prefix"))
    yield ("number-negative-zero", number(0, "stream_version", "-0"), [],
           *bad("line 2: not valid JSON (number -0 is not an integer 0 .. 2^63-1)", "prefix"))
    yield ("number-leading-zero", number(0, "position", f"0{p0}"), [], *bad("line 2: not valid JSON (", "prefix"))
    yield ("number-nan", number(0, "recorded_at_us", "NaN"), [],
           *bad("line 2: not valid JSON (NaN is not JSON)", "prefix"))
    yield ("number-beyond-int64", number(0, "recorded_at_us", str(2**63)), [],
           *bad(f"line 2: not valid JSON (number {2**63} is not an integer 0 .. 2^63-1)", "prefix"))
    yield ("integer-as-string", with_event(0, event_line(e0, position=str(p0))), [],
           *bad("line 2: field 'position' is of the wrong type (not an integer)"))
    yield ("integer-as-boolean", with_event(0, event_line(e0, schema_version=True)), [],
           *bad("line 2: field 'schema_version' is of the wrong type (not an integer)"))
    yield ("position-zero", with_event(0, event_line(e0, position=0)), [], *bad("line 2: field 'position' is below 1"))
    yield ("hash-uppercase", with_event(0, event_line(e0, hash=e0["hash"].upper())), [],
           *bad("line 2: field 'hash' is not 64 lowercase hex characters"))
    yield ("lone-surrogate", edit_text(0, key, key + b"\\ud800"), [],
           *bad("line 2: a string holds an unpaired surrogate escape (not UTF-8 text)"))
    yield ("not-an-object", join(*lines[:2], b"[]", *lines[2:]), [], *bad("line 3: not a JSON object"))
    yield ("other-format", join(dumps({**header, "format": "okr.export.v2"}), *lines[1:]), [],
           *bad("line 1: not an okr.export.v1 header (canonical okr.event.v1)"))
    yield ("trailer-hash-uppercase", join(*lines[:-1], dumps({"chain_head": {**head,
                                                                             "last_hash": head["last_hash"].upper()}})),
           [], *bad(f"line {n}: trailer's chain_head: 'last_hash' is neither null nor 64 lowercase hex characters"))
    yield ("trailer-not-an-object", join(*lines[:-1], b'{"chain_head": 5}'), [],
           *bad(f"line {n}: trailer: chain_head is not an object"))


def main(argv):
    base_path, out = Path(argv[1]), Path(argv[2])
    out.mkdir(parents=True, exist_ok=True)
    base = base_path.read_bytes()
    (out / "base.jsonl").write_bytes(base)
    manifest = []
    for name, content, args, status, message, match in cases(base):
        bundle = "base.jsonl" if content == base else f"{name}.jsonl"  # the cases on the export as it is
        if bundle != "base.jsonl":
            (out / bundle).write_bytes(content)
        manifest.append({"case": name, "bundle": bundle, "args": args, "exit": status, "output": message,
                         "match": match})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=True) + "\n", encoding="ascii")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
