"""The `okr` command line: the event store demo (`okr store-demo`, make demo), verify and export exit codes,
one-line usage errors."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from okr_cli.main import main

OKR = [sys.executable, "-m", "okr_cli"]


def run(*args, env=None, cwd=None):
    return subprocess.run([*OKR, *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


def test_demo_appends_reads_back_verifies_and_exports(tmp_path):
    first = run("store-demo", "--data-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "appended 13 events" in first.stdout
    assert "chain intact: 13 events" in first.stdout
    # a second run resumes on the same data
    second = run("store-demo", "--data-dir", str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert "head at position 13" in second.stdout
    assert "chain intact: 26 events" in second.stdout
    lines = (tmp_path / "export-demo.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["format"] == "okr.export.v1"
    assert json.loads(lines[-1])["chain_head"]["event_count"] == 26
    assert len(lines) == 28
    verifier = Path(__file__).parents[2] / "examples" / "verify_export.py"
    check = subprocess.run([sys.executable, str(verifier), str(tmp_path / "export-demo.jsonl")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "26 events" in check.stdout, check.stdout + check.stderr


def test_verify_exits_1_and_names_the_tampered_event(tmp_path):
    assert run("store-demo", "--data-dir", str(tmp_path)).returncode == 0
    url = f"sqlite:///{tmp_path / 'okr.db'}"
    assert run("verify", "--database-url", url).returncode == 0
    with sqlite3.connect(tmp_path / "okr.db") as db:
        db.execute("UPDATE es_events SET data = replace(data, 'week 3', 'week 8') WHERE position = 4")
    result = run("verify", "--database-url", url)
    assert result.returncode == 1
    assert "BROKEN at position 4" in result.stdout


def test_migrate_creates_the_schema_at_the_configured_url(tmp_path):
    db = tmp_path / "sub" / "okr.db"
    result = run("migrate", "--database-url", f"sqlite:///{db}")
    assert result.returncode == 0, result.stderr
    tables = {r[0] for r in sqlite3.connect(db).execute("select name from sqlite_master where type='table'")}
    assert {"es_events", "es_head", "es_chain_heads", "alembic_version_eventstore"} <= tables


@pytest.mark.parametrize("args, expected", [
    (["board", "--foo"], "error: no such option '--foo' — see `okr board --help`"),
    (["boardd"], "error: no such command 'boardd'. Did you mean 'board'? — see `okr --help`"),
    (["checkin", "kr-1", "abc", "--confidence", "3"],
     "error: invalid value for 'VALUE': 'abc' is not a valid float — see `okr checkin --help`"),
    (["import"], "error: missing argument 'FILE' — see `okr import --help`"),
    (["projections", "rebuild", "--bogus"], "error: no such option '--bogus' — see `okr projections rebuild --help`"),
])
def test_a_usage_error_is_one_line_naming_the_problem_and_the_help(args, expected):
    result = CliRunner().invoke(main, args, prog_name="okr")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [expected] and result.stdout == ""


def test_help_and_a_bare_group_still_show_the_help():
    assert CliRunner().invoke(main, ["--help"], prog_name="okr").exit_code == 0
    bare = CliRunner().invoke(main, ["keys"], prog_name="okr")
    assert bare.exit_code == 2 and "create" in bare.stderr and "revoke" in bare.stderr
