"""The ``okr`` API commands (services/okr_cli/) against a real gateway (both
backends): each command runs in its own plain process (this test process is
eventlet-patched; grpc is never called in it), configured by OKR_API_URL / OKR_API_KEY."""

# ruff: noqa: F811

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


from .gateway_fixtures import ROOT, world  # noqa: F401 - fixture
from .test_gateway import seeded  # noqa: F401 - fixture: acme and globex seeded


def okr(world, *args, role: str = "admin", tenant: str = "acme", key: str | None = None, timeout: float = 60):
    env = dict(os.environ)
    env.update(OKR_API_URL=world.address, OKR_API_KEY=key if key is not None else world.keys[(tenant, role)],
               PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "shared"), os.path.join(ROOT, "services")]))
    return subprocess.run([sys.executable, "-m", "okr_cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def ok(done):
    assert done.returncode == 0, f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done.stdout


def one_error_line(done, code: int, *words: str):
    assert done.returncode == code, f"expected exit {code}, got {done.returncode}: {done.stdout} {done.stderr}"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and " — " in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_board_text_and_json(seeded):
    out = ok(okr(seeded, "board", "--cycle", "q1", "--today", "2026-01-21", role="viewer"))
    assert {"kr-max", "kr-other", "kr-delegated", "max", "oscar", "[ON_TRACK]"} <= set(out.split())
    assert "KEY RESULTS" in out and "INITIATIVES" in out and "i-other" in out
    board = json.loads(ok(okr(seeded, "board", "--json", "--cycle", "q1", "--today", "2026-01-21", role="viewer")))
    cards = {c["id"] for column in board["key_results"] for c in column.get("cards", [])}
    assert cards == {"kr-max", "kr-other", "kr-delegated"}


def test_checkin_then_history_shows_who(seeded):
    out = ok(okr(seeded, "checkin", "kr-max", "20", "--confidence", "7", "--date", "2026-01-20",
                 "--comment", "first week", "--command-id", "cli-1", role="member"))
    assert "recorded on kr-max" in out
    again = json.loads(ok(okr(seeded, "checkin", "kr-max", "20", "--confidence", "7", "--date", "2026-01-20",
                              "--comment", "first week", "--command-id", "cli-1", "--json", role="member")))
    assert again["already_stored"] is True and again["event_types"] == ["okr.v1.CheckInRecorded"]
    other = okr(seeded, "checkin", "kr-max", "20", "--confidence", "7", "--date", "2026-01-20",
                "--command-id", "cli-1", role="member")  # not the same request: the comment is left out
    one_error_line(other, 5, "[command_id_reused]", "was already used for a different request", "new --command-id")
    history = ok(okr(seeded, "history", "kr-max", "--page-size", "1", role="auditor"))  # paged one by one
    assert "history of kr-kr-max" in history and " check_in " in history and " max " in history
    assert "value 20, confidence 7" in history
    data = json.loads(ok(okr(seeded, "history", "kr-max", "--json", role="auditor")))
    entries = data["entries"]
    assert len(entries) == 2 and entries[-1]["actor"] == "max"
    assert [e["event_type"] for e in entries] == ["okr.v1.KeyResultDefined", "okr.v1.CheckInRecorded"]


def test_replay_and_diff_answer(seeded):
    head = seeded.store.head_position()
    out = ok(okr(seeded, "replay", "--as-of", str(head), "--today", "2026-02-01", role="auditor"))
    assert f"board as of {head}" in out and "kr-other" in out
    replay = json.loads(ok(okr(seeded, "replay", "--as-of", "1", "--json", role="auditor")))
    assert replay["read_model"] == "board" and replay["position"] == 1
    diff = ok(okr(seeded, "diff", "--since", "1", role="auditor"))
    assert "new key results: " in diff and "check-ins: " in diff
    data = json.loads(ok(okr(seeded, "diff", "--since", "1", "--until", str(head), "--json", role="auditor")))
    assert {kr["key_result_id"] for kr in data["new_key_results"]} >= {"kr-other", "kr-delegated"}


def test_audit_verify_and_export_verifiable_offline(seeded, tmp_path):
    out = ok(okr(seeded, "audit", "verify", role="auditor"))
    assert out.startswith("chain ok:")
    verified = json.loads(ok(okr(seeded, "audit", "verify", "--json", role="auditor")))
    head = verified["chain_head"]["last_hash"]
    target = tmp_path / "export.jsonl"
    out = ok(okr(seeded, "audit", "export", str(target), "--chunk-bytes", "1024", role="auditor"))
    assert f"chain head: {head}" in out and "examples/verify_export.py" in out
    check = subprocess.run([sys.executable, f"{ROOT}/examples/verify_export.py", str(target), "--expect-head", head],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    not_anchored = okr(seeded, "audit", "verify", "--expected-head", "0" * 64, role="auditor")
    assert not_anchored.returncode == 1 and "BROKEN" in not_anchored.stdout


def test_events_tail_no_follow_text_and_json_lines(seeded):
    out = ok(okr(seeded, "events", "tail", "--no-follow"))
    assert "okr.v1.CyclePlanned" in out and "kr-kr-max" in out
    lines = ok(okr(seeded, "events", "tail", "--no-follow", "--json", "--type", "KeyResultDefined")).splitlines()
    events = [json.loads(line) for line in lines]
    assert len(events) == 3 and {e["event_type"] for e in events} == {"okr.v1.KeyResultDefined"}
    assert {e["tenant_id"] for e in events} == {"acme"}


def test_events_tail_follow_ends_cleanly_on_ctrl_c(seeded):
    import signal

    env = dict(os.environ, OKR_API_URL=seeded.address, OKR_API_KEY=seeded.keys[("acme", "admin")])
    process = subprocess.Popen([sys.executable, "-m", "okr_cli", "events", "tail", "--follow"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    first = process.stdout.readline()  # caught up and printing: now Ctrl-C
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert "okr.v1.CyclePlanned" in first + stdout and "Traceback" not in stderr


def test_errors_are_one_line_with_exit_codes(seeded):
    one_error_line(okr(seeded, "board", key="okr_000000000000_" + "x" * 43), 3, "API key was refused",
                   "okr keys create")
    one_error_line(okr(seeded, "audit", "verify", role="member"), 3, "not allowed")
    started = time.monotonic()
    done = okr(seeded, "board", "--api", "127.0.0.1:1")
    one_error_line(done, 6, "cannot reach the API at 127.0.0.1:1", "OKR_API_URL")
    assert time.monotonic() - started < 8
    one_error_line(okr(seeded, "board", "--no-such-option"), 2, "no such option '--no-such-option'",
                   "okr board --help")
    one_error_line(okr(seeded, "history", "kr-nope", role="auditor"), 4, "not found")
    one_error_line(okr(seeded, "checkin", "kr-max", "30", "--confidence", "11", "--date", "2026-01-21",
                       role="member"), 5, "invalid argument", "confidence")
    done = okr(seeded, "replay", "--as-of", "yesterday-ish")
    assert done.returncode == 2 and "Traceback" not in done.stderr
