"""`make run` (python -m okr_services.run): the whole suite from one command on SQLite
files under one data folder, with the real RabbitMQ, the `okr demo` company seeded on a
new data folder; Ctrl-C stops it cleanly and a second run resumes from the same data (and
finishes a seeding that was cut short)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from okr_shared.clock import utc_today
from okr_shared.demo.company import DEFAULT_SEED, plan_company
from tests.waiting import free_port, wait_until

ROOT = Path(__file__).resolve().parents[3]
AMQP_URI = os.environ.get("OKR_TEST_AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")


def start(data_dir: Path, gateway: str, web: str, metrics_port: int = 0) -> tuple[subprocess.Popen, Path]:
    log = data_dir.parent / f"run-{time.monotonic_ns()}.log"
    env = dict(os.environ, OKR_DATA_DIR=str(data_dir), AMQP_URI=AMQP_URI, OKR_GATEWAY_ADDRESS=gateway,
               WEB_SERVER_ADDRESS=web, PYTHONPATH=os.pathsep.join([str(ROOT / "shared"), str(ROOT / "services")]),
               OKR_METRICS_PORT=str(metrics_port))
    for name in ("OKR_DATABASE_URL", "OKR_REPORTING_DATABASE_URL", "OKR_NOTIFICATION_DATABASE_URL",
                 "OKR_GATEWAY_DATABASE_URL"):
        env.pop(name, None)
    return subprocess.Popen([sys.executable, "-m", "okr_services.run"], env=env, cwd=ROOT,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT), log


def okr(*args, gateway: str, key: str):
    env = dict(os.environ, OKR_API_URL=gateway, OKR_API_KEY=key,
               PYTHONPATH=os.pathsep.join([str(ROOT / "shared"), str(ROOT / "services")]))
    return subprocess.run([sys.executable, "-m", "okr_cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    for _ in range(300):
        if process.poll() is not None:
            return process.returncode
        time.sleep(0.1)
    process.kill()
    raise AssertionError("okr run did not stop within 30 s of Ctrl-C")


def test_one_command_runs_the_suite_seeds_once_stops_cleanly_and_resumes(tmp_path):
    data = tmp_path / "data"
    gateway, web = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    metrics_port = three_free_ports()
    process, log = start(data, gateway, web, metrics_port)
    try:
        wait_until(lambda: "ready" in log.read_text() or process.poll() is not None, timeout=120,
                   message="okr run ready")
        assert process.poll() is None, log.read_text()
        text = log.read_text()
        assert "seeding the demo company" in text and gateway in text and "/board/demo" in text
        assert "seeding: " in text and "(100 %)" in text and "seeded tenant demo in " in text  # progress, time
        check_metrics_and_logs(data, metrics_port, text)
        key = (data / "admin.key").read_text().strip()
        assert oct((data / "admin.key").stat().st_mode & 0o777) == "0o600"
        board = okr("board", "--json", gateway=gateway, key=key)
        assert board.returncode == 0, board.stderr
        assert "kr-signups" in board.stdout and "kr-uptime" in board.stdout

        def every_column_has_cards():  # the okr demo company: the read models catch up within moments
            done = okr("board", "--json", "--cycle", "quarter", gateway=gateway, key=key)
            lanes = json.loads(done.stdout) if done.returncode == 0 else {}
            columns = lanes.get("key_results", []) + lanes.get("initiatives", [])
            return len(columns) == 11 and all(column.get("cards") for column in columns)

        wait_until(every_column_has_cards, timeout=30, message="every board column populated")
    finally:
        code = stop(process)
    assert code == 0, log.read_text()
    assert "stopped" in log.read_text()
    head = okr_store_head(data)
    # a second run resumes: no new seeding, the same data
    process, log = start(data, gateway, web)
    try:
        wait_until(lambda: "ready" in log.read_text() or process.poll() is not None, timeout=120,
                   message="okr run ready again")
        assert process.poll() is None, log.read_text()
        assert "seeding" not in log.read_text()
        history = okr("history", "kr-signups", "--json", gateway=gateway, key=key)
        assert history.returncode == 0, history.stderr
        assert okr_store_head(data) == head
    finally:
        assert stop(process) == 0
    # a run that died while seeding left data/demo.seeding (seed and day): the next run
    # finishes that plan; what was stored is recognised by its command ids, nothing doubles
    assert not (data / "demo.seeding").exists()
    (data / "demo.seeding").write_text(f"{DEFAULT_SEED} {utc_today().isoformat()}\n")
    process, log = start(data, gateway, web)
    try:
        wait_until(lambda: "ready" in log.read_text() or process.poll() is not None, timeout=120,
                   message="okr run ready after resuming the seeding")
        assert process.poll() is None, log.read_text()
        text = log.read_text()
        assert "resuming an interrupted seeding of the demo company" in text, text
        calls = plan_company(DEFAULT_SEED, utc_today()).counts()["calls"]
        assert f"({calls} calls, {calls} calls were already done)" in text, text
        assert okr_store_head(data) == head and not (data / "demo.seeding").exists()
    finally:
        assert stop(process) == 0


def three_free_ports() -> int:
    """The first of three consecutive free ports (make run's services, relay, gateway)."""
    import socket

    for _ in range(50):
        base = free_port()
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", base + 1))
                b.bind(("127.0.0.1", base + 2))
            return base
        except OSError:
            continue
    raise AssertionError("no three consecutive free ports")


def check_metrics_and_logs(data: Path, base: int, text: str) -> None:
    """Each of the three processes serves /metrics; the seeding's check-ins show in
    the services' and the gateway's counters; the relay has nothing left to publish; the
    services' log lines are JSON with the correlation id of the call."""
    import json
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    def scrape(port):
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(body) for s in f.samples}

    assert f"http://127.0.0.1:{base}/metrics" in text and f"http://127.0.0.1:{base + 2}/metrics" in text
    checkins = plan_company(DEFAULT_SEED, utc_today()).counts()["check_ins"]  # what the seeding recorded
    services = scrape(base)
    rpc = (("entrypoint", "record_check_in"), ("kind", "rpc"), ("outcome", "ok"), ("service", "progress"))
    assert services[("okr_entrypoint_duration_seconds_count", rpc)] == checkins
    assert services[("okr_events_appended_total", (("event_type", "okr.v1.CheckInRecorded"),))] == checkins
    grpc_ok = (("grpc_code", "OK"), ("grpc_method", "RecordCheckIn"), ("grpc_service", "okr.v1.ProgressService"))
    assert scrape(base + 2)[("okr_grpc_server_duration_seconds_count", grpc_ok)] == checkins
    wait_until(lambda: scrape(base + 1).get(("okr_relay_lag_events", (("relay", "okr.events"),))) == 0,
               timeout=20, message="the relay's lag at 0")
    lines = [json.loads(x) for x in (data / "logs" / "services.log").read_text().splitlines() if x.startswith("{")]
    assert any(x.get("service") == "progress" and x.get("entrypoint") == "record_check_in" and x.get("correlation_id")
               and x.get("tenant_id") == "demo" for x in lines)


def okr_store_head(data: Path) -> int:
    import sqlite3

    with sqlite3.connect(data / "okr.db") as conn:
        return conn.execute("SELECT last_position FROM es_head").fetchone()[0]


def test_without_a_broker_it_stops_at_once_saying_how_to_get_one(tmp_path):
    env = dict(os.environ, OKR_DATA_DIR=str(tmp_path / "data"), AMQP_URI=f"amqp://guest:guest@127.0.0.1:{free_port()}/",
               PATH="/usr/bin:/bin", PYTHONPATH=os.pathsep.join([str(ROOT / "shared"), str(ROOT / "services")]))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "okr_services.run"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and time.monotonic() - started < 20
    assert "no RabbitMQ answers" in done.stderr + done.stdout and "docker compose up -d rabbitmq" in done.stderr
