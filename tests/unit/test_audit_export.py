"""The audit export and its standalone verifier (docs/audit-format.md).

The verifier runs as a subprocess with ``-I -S`` (no site-packages, so the project is
not importable) to prove it needs nothing from the project, against real exports of a
SQLite store, intact and tampered with in every way the issue names.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from okr_shared.eventstore import NO_STREAM, EventStore, NewEvent, export_jsonl, make_engine, migrate
from okr_shared.eventstore.canonical import GENESIS_HASH, canonical_bytes, chain_hash

ROOT = Path(__file__).resolve().parents[2]
VERIFIER = ROOT / "examples" / "verify_export.py"
DOC = ROOT / "docs" / "audit-format.md"


def run_verifier(path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-I", "-S", str(VERIFIER), str(path), *args],
        capture_output=True, text=True, encoding="utf-8", timeout=60,
    )


def output(proc) -> str:
    return proc.stdout + proc.stderr


@pytest.fixture
def store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/es.db")
    migrate(engine)
    yield EventStore(engine)
    engine.dispose()


def build_history(store: EventStore) -> None:
    """Two tenants, several streams, interleaved so acme's positions have gaps."""

    def ev(tenant, event_type, **data):
        return NewEvent(event_type, data, tenant_id=tenant, metadata={"actor": "alice"})

    store.append("obj-1", NO_STREAM, [ev("acme", "okr.ObjectiveDefined", title="Grow — café ☕", n=1)])
    store.append("g-obj-1", NO_STREAM, [ev("globex", "okr.ObjectiveDefined", title="Other", n=1)])
    store.append("kr-1", NO_STREAM, [ev("acme", "okr.KeyResultDefined", target=100, n=2),
                                     ev("acme", "okr.ProgressReported", value=10, n=3)])
    store.append("g-obj-1", 1, [ev("globex", "okr.ObjectiveRenamed", title="Other 2", n=2)])
    store.append("kr-2", NO_STREAM, [ev("acme", "okr.KeyResultDefined", target=5, n=4)])
    store.append("kr-1", 2, [ev("acme", "okr.ProgressReported", value=40, n=5)])
    store.append("obj-1", 1, [ev("acme", "okr.ObjectiveRenamed", title="Grow\u2028line sep", n=6)])


def export(store, tenant, path: Path) -> list[str]:
    with open(path, "w", encoding="utf-8") as f:
        export_jsonl(store, tenant, f)
    return path.read_bytes().decode("utf-8").split("\n")[:-1]


def write(path: Path, lines: list[str]) -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    return path


def where(line_no: int, line: str) -> str:
    ev = json.loads(line)
    return f"line {line_no} (position {ev['position']}, event {ev['event_id']})"


def broken(tmp_path, lines: list[str]) -> str:
    """The verifier's report on the file of ``lines``, after checking that it says the
    file is tampered with (exit 1)."""
    proc = run_verifier(write(tmp_path / "t.jsonl", lines))
    assert proc.returncode == 1, output(proc)
    return proc.stdout


@pytest.fixture
def exported(store, tmp_path):
    build_history(store)
    lines = export(store, "acme", tmp_path / "acme.jsonl")
    assert len(lines) == 1 + 6 + 1  # header, six acme events, trailer
    return lines


# ------------------------------------------------------------------- intact exports


def test_intact_export_verifies(store, exported, tmp_path):
    proc = run_verifier(tmp_path / "acme.jsonl")
    head = store.chain_head("acme")
    assert proc.returncode == 0, output(proc)
    assert proc.stdout.strip() == (
        f"OK: tenant acme: 6 events, last position {head['last_position']}, head {head['last_hash']}"
    )
    assert store.verify().ok  # the store agrees


def test_other_tenant_and_empty_tenant_verify(store, exported, tmp_path):
    globex = run_verifier(write(tmp_path / "g.jsonl", export(store, "globex", tmp_path / "g.jsonl")))
    assert globex.returncode == 0 and "2 events" in globex.stdout, output(globex)
    empty = run_verifier(write(tmp_path / "e.jsonl", export(store, "nobody", tmp_path / "e.jsonl")))
    assert empty.returncode == 0 and "0 events, last position 0, head None" in empty.stdout, output(empty)


def test_expect_head(store, exported, tmp_path):
    path = tmp_path / "acme.jsonl"
    head = store.chain_head("acme")["last_hash"]
    ok = run_verifier(path, "--expect-head", head.upper())
    assert ok.returncode == 0 and "matches the expected head" in ok.stdout, output(ok)

    wrong = run_verifier(path, "--expect-head", "ab" * 32)
    assert wrong.returncode == 1, output(wrong)
    assert f"expected head {'ab' * 32} is not in this chain (final hash {head})" in wrong.stdout

    other_tenant = run_verifier(path, "--expect-head", store.chain_head("globex")["last_hash"])
    assert other_tenant.returncode == 1, output(other_tenant)

    # An anchor from an earlier export still holds after more events were appended...
    anchor_position = store.chain_head("acme")["last_position"]
    store.append("kr-2", 1, [NewEvent("okr.ProgressReported", {"value": 1}, tenant_id="acme"),
                             NewEvent("okr.ProgressReported", {"value": 2}, tenant_id="acme")])
    later = tmp_path / "later.jsonl"
    export(store, "acme", later)
    extended = run_verifier(later, "--expect-head", head)
    assert extended.returncode == 0, output(extended)
    assert f"expected head found at position {anchor_position} (2 later event(s))" in extended.stdout

    # ...but not once the history before it is rewritten (here: the whole chain recomputed).
    lines = later.read_text(encoding="utf-8").split("\n")[:-1]
    rewritten = write(tmp_path / "rewritten.jsonl", rechain(lines, edit_line=2))
    assert run_verifier(rewritten).returncode == 0  # consistent on its own: the chain's limit
    anchored = run_verifier(rewritten, "--expect-head", head)
    assert anchored.returncode == 1 and "is not in this chain" in anchored.stdout, output(anchored)

    bad_arg = run_verifier(path, "--expect-head", "xyz")
    assert bad_arg.returncode == 2 and "64 hex digits" in bad_arg.stderr


def rechain(lines: list[str], edit_line: int) -> list[str]:
    """An attacker with write access: edit one event and recompute every hash after it."""
    out, prev = [lines[0]], GENESIS_HASH
    for n, line in enumerate(lines[1:-1], start=2):
        ev = json.loads(line)
        if n == edit_line:
            ev["data_json"] = ev["data_json"].replace("Grow", "Shrink")
        fields = {k: v for k, v in ev.items() if k != "hash"}
        prev = chain_hash(prev, canonical_bytes(**fields))
        ev["hash"] = prev.hex()
        out.append(json.dumps(ev, ensure_ascii=False))
    head = json.loads(lines[-1])
    head["chain_head"]["last_hash"] = prev.hex()
    return out + [json.dumps(head)]


# ------------------------------------------------------------------- tampering: exit 1


def test_edited_payload_byte(exported, tmp_path):
    lines = list(exported)
    assert '\\"value\\":10' in lines[3]
    lines[3] = lines[3].replace('\\"value\\":10', '\\"value\\":19')  # one byte of data_json
    stdout = broken(tmp_path, lines)
    assert stdout.startswith(f"BROKEN: {where(4, lines[3])}: hash ")


def test_edited_metadata_and_timestamp(exported, tmp_path):
    for key, value in (("metadata_json", '{"actor":"mallory"}'), ("recorded_at_us", 1), ("event_type", "okr.X")):
        lines = list(exported)
        ev = json.loads(lines[5])
        ev[key] = value
        lines[5] = json.dumps(ev, ensure_ascii=False)
        proc = run_verifier(write(tmp_path / "t.jsonl", lines))
        assert proc.returncode == 1, (key, output(proc))
        assert proc.stdout.startswith(f"BROKEN: {where(6, lines[5])}: hash "), key


def test_edited_hash(exported, tmp_path):
    lines = list(exported)
    ev = json.loads(lines[2])
    ev["hash"] = ev["hash"][:-1] + ("0" if ev["hash"][-1] != "0" else "1")
    lines[2] = json.dumps(ev, ensure_ascii=False)
    stdout = broken(tmp_path, lines)
    assert stdout.startswith(f"BROKEN: {where(3, lines[2])}: hash {ev['hash']} does not match")


def test_dropped_middle_line(exported, tmp_path):
    lines = exported[:3] + exported[4:]  # drop the third event (file line 4)
    stdout = broken(tmp_path, lines)
    # the event that followed it, now on line 4, no longer chains
    assert stdout.startswith(f"BROKEN: {where(4, exported[4])}: hash ")


def test_dropped_first_event_line(exported, tmp_path):
    lines = exported[:1] + exported[2:]
    stdout = broken(tmp_path, lines)
    assert stdout.startswith(f"BROKEN: {where(2, exported[2])}: hash ")


def test_dropped_last_event_line(exported, tmp_path):
    lines = exported[:-2] + exported[-1:]
    stdout = broken(tmp_path, lines)
    trailer = json.loads(exported[-1])["chain_head"]
    assert stdout.startswith(f"BROKEN: line {len(lines)} (trailer): says ")
    assert f'"event_count": {trailer["event_count"]}' in stdout
    assert f'"event_count": {trailer["event_count"] - 1}' in stdout
    assert "dropped at the end" in stdout


def test_dropped_trailer(exported, tmp_path):
    stdout = broken(tmp_path, exported[:-1])
    assert stdout.strip() == f"BROKEN: no trailer after line {len(exported) - 1}: the file is truncated"


def test_dropped_last_event_and_trailer_edited(exported, tmp_path):
    """Trailer made consistent with the shortened file: only an anchor can tell."""
    lines = exported[:-2]
    dropped = json.loads(exported[-2])
    last = json.loads(lines[-1])
    lines.append(json.dumps({"chain_head": {
        "last_position": last["position"], "last_hash": last["hash"], "event_count": 5}}))
    path = write(tmp_path / "t.jsonl", lines)
    assert run_verifier(path).returncode == 0
    proc = run_verifier(path, "--expect-head", dropped["hash"])
    assert proc.returncode == 1 and "is not in this chain" in proc.stdout, output(proc)


def test_swapped_lines(exported, tmp_path):
    lines = list(exported)
    lines[3], lines[4] = lines[4], lines[3]
    stdout = broken(tmp_path, lines)
    assert stdout.startswith(f"BROKEN: {where(4, lines[3])}: hash ")


def test_swapped_lines_with_positions_swapped_back(exported, tmp_path):
    """Moving events but keeping positions increasing: the hashes still catch it."""
    lines = list(exported)
    a, b = json.loads(lines[2]), json.loads(lines[5])
    a["position"], b["position"] = b["position"], a["position"]
    lines[2], lines[5] = json.dumps(b, ensure_ascii=False), json.dumps(a, ensure_ascii=False)
    stdout = broken(tmp_path, lines)
    assert stdout.startswith(f"BROKEN: {where(3, lines[2])}: hash ")


def test_repeated_line(exported, tmp_path):
    lines = exported[:4] + exported[3:]
    stdout = broken(tmp_path, lines)
    pos = json.loads(exported[3])["position"]
    assert stdout.startswith(
        f"BROKEN: {where(5, lines[4])}: position is not after the previous line's {pos}"
    )


def test_changed_tenant_id(exported, tmp_path):
    lines = list(exported)
    lines[4] = lines[4].replace('"tenant_id": "acme"', '"tenant_id": "globex"')
    stdout = broken(tmp_path, lines)
    assert stdout.startswith(f"BROKEN: {where(5, lines[4])}: tenant 'globex' is not the header's 'acme'")


def test_changed_header_tenant(exported, tmp_path):
    lines = list(exported)
    lines[0] = lines[0].replace('"acme"', '"globex"')
    stdout = broken(tmp_path, lines)
    assert stdout.startswith(f"BROKEN: {where(2, lines[1])}: tenant 'acme' is not the header's 'globex'")


def test_changed_tenant_everywhere(exported, tmp_path):
    """Relabelling the whole history as another tenant's breaks the first hash."""
    lines = [line.replace('"tenant_id": "acme"', '"tenant_id": "globex"') for line in exported]
    stdout = broken(tmp_path, lines)
    assert stdout.startswith(f"BROKEN: {where(2, lines[1])}: hash ")


def test_content_after_trailer(exported, tmp_path):
    stdout = broken(tmp_path, exported + [exported[1]])
    assert stdout.startswith(f"BROKEN: line {len(exported) + 1}: content after the trailer")


# ------------------------------------------------------------------- malformed: exit 2


def test_unreadable_and_malformed(exported, tmp_path):
    missing = run_verifier(tmp_path / "missing.jsonl")
    assert missing.returncode == 2 and "cannot read" in missing.stderr

    empty = run_verifier(write(tmp_path / "empty.jsonl", []))
    assert empty.returncode == 2 and "line 1" in empty.stderr

    wrong_format = [exported[0].replace("okr.export.v1", "okr.export.v2")] + exported[1:]
    proc = run_verifier(write(tmp_path / "f.jsonl", wrong_format))
    assert proc.returncode == 2 and "line 1: not an okr.export.v1 header" in proc.stderr

    cut = tmp_path / "cut.jsonl"
    cut.write_bytes((tmp_path / "acme.jsonl").read_bytes()[:-30])  # cut inside the trailer
    proc = run_verifier(cut)  # a last line without its line feed: truncated (section 5), not malformed
    assert proc.returncode == 1, output(proc)
    assert proc.stdout.strip() == f"BROKEN: line {len(exported)}: no line feed at its end: the file is truncated"

    not_json = exported[:3] + ["garbage"] + exported[4:]
    proc = run_verifier(write(tmp_path / "j.jsonl", not_json))
    assert proc.returncode == 2 and "line 4: not valid JSON" in proc.stderr

    ev = json.loads(exported[2])
    ev["position"] = str(ev["position"])  # would hash the same: rejected as malformed
    typed = exported[:2] + [json.dumps(ev, ensure_ascii=False)] + exported[3:]
    proc = run_verifier(write(tmp_path / "ty.jsonl", typed))
    assert proc.returncode == 2 and "line 3: field 'position' is of the wrong type (not an integer)" in proc.stderr

    dup = exported[:2] + [exported[2][:-1] + ', "data_json": "{}"}'] + exported[3:]
    proc = run_verifier(write(tmp_path / "d.jsonl", dup))
    assert proc.returncode == 2 and "line 3: not valid JSON (duplicate key" in proc.stderr

    (tmp_path / "latin1.jsonl").write_bytes((tmp_path / "acme.jsonl").read_bytes().replace(
        b"caf\\u00e9", "café".encode("latin-1")))
    proc = run_verifier(tmp_path / "latin1.jsonl")
    assert proc.returncode == 2 and "line 2: not valid JSON" in proc.stderr


# ------------------------------------------------------------------- the verifier itself


def test_verifier_imports_only_the_standard_library():
    tree = ast.parse(VERIFIER.read_text(encoding="utf-8"))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            modules.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            pytest.fail("dynamic import in the verifier")
    assert modules, "found no imports at all: the parser is broken"
    assert modules <= sys.stdlib_module_names, modules - sys.stdlib_module_names
    assert "okr_shared" not in VERIFIER.read_text(encoding="utf-8")


def _load_verifier():
    spec = importlib.util.spec_from_file_location("verify_export", VERIFIER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


verify_export = _load_verifier()


_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
_int = st.integers(min_value=1, max_value=2**62)


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({
    "position": _int, "tenant_id": _text, "stream_id": _text, "stream_version": _int,
    "event_id": _text, "event_type": _text, "schema_version": _int, "recorded_at_us": _int,
    "data_json": _text, "metadata_json": _text,
}))
def test_verifier_canonical_bytes_equal_the_stores(fields):
    assert verify_export.canonical(fields) == canonical_bytes(**fields)


# ------------------------------------------------------------------- the doc's test vector

_VECTOR_CLOCK = [1767225600000000, 1767225600700000, 1767225601500000]


def test_doc_test_vector_is_what_the_store_and_export_produce(tmp_path):
    """Recreate the doc's two events in a real store (position 2 is another tenant's),
    export them and require the doc's export block, canonical hex and hashes to be
    exactly what the project's code produces; then the verifier must accept it."""
    doc = DOC.read_text(encoding="utf-8")
    clock = iter(_VECTOR_CLOCK)
    engine = make_engine(f"sqlite:///{tmp_path}/vector.db")
    migrate(engine)
    store = EventStore(engine, clock=lambda: next(clock))
    store.append("kr-42", NO_STREAM, [NewEvent(
        "okr.v1.KeyResultDefined", {"key_result_id": "42", "title": "Café revenue €10k", "target_value": 100},
        tenant_id="acme",
        event_id="7d0e3c5a-1b2f-4c8e-9a61-2f4b8c1d0e9f", metadata={"actor": "alice"})])
    store.append("other", NO_STREAM, [NewEvent("okr.Noise", {}, tenant_id="globex")])
    store.append("kr-42", 1, [NewEvent(
        "okr.v1.CheckInRecorded", {"key_result_id": "42", "value": 40}, tenant_id="acme",
        event_id="c3a1f2de-5b6a-4e7f-8d90-a1b2c3d4e5f6", metadata={"actor": "bob"})])
    produced = export(store, "acme", tmp_path / "vector.jsonl")
    engine.dispose()

    blocks = re.findall(r"```jsonl\n(.*?)```", doc, re.S)
    assert len(blocks) == 1, "the doc must hold exactly one ```jsonl export block"
    assert blocks[0].split("\n")[:-1] == produced

    events = [json.loads(line) for line in produced[1:-1]]
    canon = [canonical_bytes(**{k: v for k, v in ev.items() if k != "hash"}) for ev in events]
    h1 = chain_hash(GENESIS_HASH, canon[0])
    h2 = chain_hash(h1, canon[1])
    assert [h1.hex(), h2.hex()] == [ev["hash"] for ev in events]

    flat = re.sub(r"\s", "", doc)
    assert canon[0].hex() in flat, "the doc's full canonical hex of event 1 is wrong"
    assert f"All {len(canon[0])} canonical bytes" in doc
    for value in [b"okr.event.v1"] + [str(events[0][f]).encode() for f in (
            "position", "tenant_id", "stream_id", "stream_version", "event_id", "event_type",
            "schema_version", "recorded_at_us", "data_json", "metadata_json")]:
        assert f"{len(value):08x} {value.hex()}" in doc, value
    for h in (h1, h2):
        assert re.search(rf"```text\n{h.hex()}\n```", doc), h.hex()

    proc = run_verifier(tmp_path / "vector.jsonl")
    assert proc.returncode == 0, output(proc)
    assert proc.stdout.strip() == f"OK: tenant acme: 2 events, last position 3, head {h2.hex()}"


# ------------------------------------------------------------------- streamed chunks


def test_chunk_size_is_brought_within_its_bounds():
    from okr_shared.eventstore.export import CHUNK_DEFAULT, CHUNK_MAX, CHUNK_MIN, chunk_size

    assert (CHUNK_DEFAULT, CHUNK_MIN, CHUNK_MAX) == (1 << 20, 1024, (4 << 20) - 1024)
    assert [chunk_size(n) for n in (0, 1, 1023, 1024, 5000, CHUNK_MAX, CHUNK_MAX + 1, 2**32 - 1)] == \
        [CHUNK_DEFAULT, 1024, 1024, 1024, 5000, CHUNK_MAX, CHUNK_MAX, CHUNK_MAX]


def test_chunks_hold_whole_lines_as_many_as_fit_and_a_long_line_alone():
    from okr_shared.eventstore.export import chunk_lines

    lines = [b"a" * 3 + b"\n", b"b" * 3 + b"\n", b"c" * 20 + b"\n", b"d\n", b"e\n"]
    assert list(chunk_lines(lines, 8)) == [lines[0] + lines[1], lines[2], lines[3] + lines[4]]
    assert list(chunk_lines(lines, 100)) == [b"".join(lines)]
    assert list(chunk_lines([], 8)) == [b""]


def test_export_chunks_concatenate_to_the_export_with_the_head_on_the_last(store, exported, tmp_path):
    from okr_shared.eventstore.export import export_chunks

    chunks = list(export_chunks(store, "acme", 1))  # served at 1024 bytes
    assert len(chunks) > 1 and all(head is None for _, head in chunks[:-1])
    assert chunks[-1][1] == store.chain_head("acme")
    assert b"".join(data for data, _ in chunks) == (tmp_path / "acme.jsonl").read_bytes()
