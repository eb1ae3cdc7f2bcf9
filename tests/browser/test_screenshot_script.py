"""``make screenshot`` (scripts/screenshot_board.py): the README's board picture is taken
from the real suite (``python -m okr_services.run`` on a temporary folder, the tests'
RabbitMQ) in Debian's Chromium, and the script stops everything it started.

Like tests/integration/run/test_make_run.py, the suite it starts uses the platform's own
queue and exchange names on the tests' broker.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from tests.infra import require_broker
from tests.waiting import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "screenshot_board.py"


def run_script(*args: str, amqp_uri: str, timeout: float = 420) -> subprocess.CompletedProcess:
    env = dict(os.environ, AMQP_URI=amqp_uri,
               PYTHONPATH=os.pathsep.join([str(ROOT / "shared"), str(ROOT / "services")]))
    for name in ("OKR_DATA_DIR", "OKR_DATABASE_URL", "OKR_GATEWAY_ADDRESS", "WEB_SERVER_ADDRESS", "OKR_DEMO_TENANT"):
        env.pop(name, None)
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def suite_processes(marker: str) -> list[str]:
    """Command lines of live processes whose environment names the script's data folder."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_the_script_photographs_the_demo_board_and_stops_the_suite(browser, tmp_path):
    """``browser`` only for its skip-or-fail rule when Chromium is missing (conftest)."""
    amqp_uri = require_broker()
    out = tmp_path / "img" / "board.png"
    result = run_script("--out", str(out), "--width", "1280", "--height", "800", "--web-port", str(free_port()),
                        amqp_uri=amqp_uri)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"-> {out}" in result.stdout
    assert png_size(out) == (1280, 800)
    assert 10_000 < out.stat().st_size < 300_000, out.stat().st_size  # a real page, light enough for a README
    data_dir = result.stdout.split("(data ", 1)[1].split(",", 1)[0]
    assert not Path(data_dir).exists(), "the temporary data folder was left behind"
    assert suite_processes(data_dir) == [], "the suite's processes outlived the script"


def test_no_broker_fails_at_once_naming_it(tmp_path):
    out = tmp_path / "board.png"
    result = run_script("--out", str(out), amqp_uri=f"amqp://guest:guest@127.0.0.1:{free_port()}/", timeout=120)
    if "Chromium not found" in result.stderr:
        pytest.skip("no Chromium here: the script stops before starting the suite")
    log = Path(result.stderr.split("suite log: ", 1)[1].split(",", 1)[0]) if "suite log: " in result.stderr else None
    if log is not None:
        shutil.rmtree(log.parent, ignore_errors=True)  # kept by the script for the user to read
    assert result.returncode == 1
    assert "no RabbitMQ answers at" in result.stderr, result.stderr
    assert log is not None and log.name == "run.log", result.stderr
    assert not out.exists()


def test_bad_arguments_are_refused():
    result = run_script("--width", "10", amqp_uri="amqp://unused/", timeout=60)
    assert result.returncode == 2
    assert "--width must be at least 320" in result.stderr
