"""``okr events tail --follow`` ends cleanly on Ctrl-C whatever moment of the stream's
set-up the SIGINT lands in (issue 19): the gateway is replaced by a stand-in server
(tail_stub_server.py, its own plain process) that holds the stream at a known moment
and says so, so that each SIGINT is sent exactly then, not after a guessed delay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


@pytest.fixture
def stub_server(request):
    servers = []

    def start(mode: str):
        server = subprocess.Popen([sys.executable, str(HERE / "tail_stub_server.py"), mode],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        servers.append(server)
        line = server.stdout.readline()
        assert line.startswith("port "), line + server.stderr.read()
        return server, int(line.split()[1])

    yield start
    for server in servers:
        server.kill()
        server.communicate()


@pytest.mark.parametrize("moment", ["before-headers", "after-headers", "after-first"])
def test_ctrl_c_at_each_moment_of_the_stream_set_up_ends_the_command(stub_server, moment):
    server, port = stub_server(moment)
    env = dict(os.environ, OKR_API_URL=f"127.0.0.1:{port}", OKR_API_KEY="okr_test_key")
    tail = subprocess.Popen([sys.executable, "-m", "okr_cli", "events", "tail", "--follow"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout.readline() == "call\n"  # the command is setting its stream up
        assert server.stdout.readline() == "held\n"
        first = tail.stdout.readline() if moment == "after-first" else ""
        tail.send_signal(signal.SIGINT)
        stdout, stderr = tail.communicate(timeout=20)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.communicate()
    assert tail.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert ("okr.v1.CyclePlanned" in first + stdout) == (moment == "after-first")
