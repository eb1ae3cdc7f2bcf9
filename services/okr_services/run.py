"""``make run`` / ``python -m okr_services.run``: the whole suite on one machine.

Starts, with SQLite files under one data folder (``OKR_DATA_DIR``, default ``./data``;
no PostgreSQL needed): the event store migration, the goal, progress, reporting,
notification and directory services (one ``nameko run`` process), the outbox relay and the gRPC
gateway; on a new data folder it creates an admin API key (``<data>/admin.key``, mode
0600) and the demo company of ``okr demo`` through the API (a seeding cut short is
finished by the next run: ``<data>/demo.seeding``); then prints where the API and the
board are. Ctrl-C (or SIGTERM) stops everything cleanly; a second run resumes from the
same data.

The bus stays real: RabbitMQ at ``AMQP_URI`` (default ``amqp://guest:guest@localhost:5672/``).
If none answers and Docker is available, ``docker compose up -d rabbitmq`` starts the
one of docker-compose.yml; otherwise the run stops at once saying how to get one.

Metrics: `OKR_METRICS_PORT` (default 9464) is the first of three consecutive ports —
services, relay, gateway — on `OKR_METRICS_HOST` (default 127.0.0.1 here); 0 turns them off.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from .run_config import RunConfig

ROOT = Path(__file__).resolve().parents[2]


def _say(text: str) -> None:
    print(f"okr run: {text}", flush=True)


def _broker_answers(amqp_uri: str, timeout: float = 3.0) -> bool:
    u = urlparse(amqp_uri)
    try:
        with socket.create_connection((u.hostname or "localhost", u.port or 5672), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_broker(amqp_uri: str) -> None:
    if _broker_answers(amqp_uri):
        return
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        _say(f"no RabbitMQ at {amqp_uri}; starting the one of docker-compose.yml")
        subprocess.run([docker, "compose", "up", "-d", "rabbitmq"], cwd=ROOT, check=True)
        for _ in range(60):
            if _broker_answers(amqp_uri):
                return
            time.sleep(1)
    raise SystemExit(
        f"okr run: no RabbitMQ answers at {amqp_uri}. Start one (`docker compose up -d rabbitmq`, or "
        "`rabbitmq-server -detached` where it is installed) or point AMQP_URI at one, then run again.")


def _serving(address: str, timeout: float = 1.0) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
            return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False


SERVICES = ("goal", "progress", "reporting", "notification", "directory")  # the nameko services of `make run`


def _not_listening(amqp_uri: str, services=SERVICES) -> list[str]:
    """The services whose RPC queue (``rpc-<name>``) has no consumer yet: the gateway
    serves before the services' consumers are up, and a call to one that is not yet
    listening is refused ("no service ... is listening")."""
    from amqp.exceptions import NotFound
    from kombu import Connection

    missing = []
    with Connection(amqp_uri, connect_timeout=3) as conn:
        for name in services:
            channel = conn.channel()
            try:
                _, _, consumers = channel.queue_declare(f"rpc-{name}", passive=True)
            except NotFound:  # not declared yet (the broker closed the channel)
                consumers = 0
            else:
                channel.close()
            if not consumers:
                missing.append(name)
    return missing


def seed_demo(address: str, key: str, tenant: str, marker: Path | None = None) -> None:
    """The demo company of ``okr demo`` (okr_shared.demo, default seed, today) through
    the public API, with a progress line every 10 %. ``marker`` (a file) holds the seed
    and day while seeding: a run that died half-way resumes the same plan next time (its
    command ids make the calls already made no-ops); it is removed once done."""
    from datetime import date

    from okr_shared.demo.company import DEFAULT_SEED, plan_company
    from okr_shared.demo.seeding import SeedError, seed_company

    seed, today = DEFAULT_SEED, None
    if marker is not None and marker.exists():
        seed_text, _, day = marker.read_text().strip().partition(" ")
        seed, today = int(seed_text), date.fromisoformat(day)
    plan = plan_company(seed, today)
    if marker is not None:
        marker.write_text(f"{plan.seed} {plan.today.isoformat()}\n")
    counts = plan.counts()
    shown = [0]

    def progress(done: int, total: int) -> None:
        tenth = done * 10 // total
        if tenth > shown[0]:
            shown[0] = tenth
            _say(f"seeding: {done}/{total} calls ({tenth * 10} %)")

    try:
        result = seed_company(address, key, plan, progress=progress)
    except SeedError as e:
        raise SystemExit(f"okr run: seeding the demo company failed at {e.step.label if e.step else '?'}: {e} — "
                         "see the services' logs (data folder, logs/); the next `make run` resumes it") from None
    if marker is not None:
        marker.unlink()
    resumed = f", {result.already_stored} calls were already done" if result.already_stored else ""
    _say(f"seeded tenant {tenant} in {result.seconds:.1f} s: {counts['cycles']} cycles, {counts['objectives']} "
         f"objectives, {counts['key_results']} key results, {counts['initiatives']} initiatives, "
         f"{counts['check_ins']} check-ins ({result.calls} calls{resumed})")


class Suite:
    def __init__(self, data_dir: Path, env: dict):
        self.data_dir = data_dir
        self.env = env
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.logs = data_dir / "logs"

    def start(self, name: str, command: list[str]) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "a")
        self.procs.append((name, subprocess.Popen(command, env=self.env, cwd=ROOT, stdout=log,
                                                  stderr=subprocess.STDOUT, start_new_session=True)))

    def dead(self) -> list[str]:
        return [name for name, p in self.procs if p.poll() is not None]

    def stop(self) -> None:
        for _, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main() -> int:
    settings = RunConfig.from_env()
    data_dir, amqp_uri, gateway, web, tenant, metrics = (settings.data_dir, settings.amqp_uri, settings.gateway,
                                                         settings.web, settings.tenant, settings.metrics)
    ensure_broker(amqp_uri)
    new = not (data_dir / "okr.db").exists()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = settings.child_environment(ROOT)
    from okr_shared.eventstore import make_engine, migrate

    engine = make_engine(env["OKR_DATABASE_URL"])
    migrate(engine)
    engine.dispose()
    python = sys.executable
    suite = Suite(data_dir, env)
    stopping = {"now": False}

    def stop(*_):
        stopping["now"] = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        suite.env = dict(env, OKR_METRICS_PORT=str(metrics["services"]))
        suite.start("services", [python, "-m", "nameko", "run", "--config", str(ROOT / "services" / "config.yaml"),
                                 *(f"okr_services.{name}.service" for name in SERVICES)])
        suite.env = dict(env, OKR_METRICS_PORT=str(metrics["relay"]))
        suite.start("relay", [python, "-m", "okr_services.relay"])
        suite.env = dict(env, OKR_METRICS_PORT=str(metrics["gateway"]))
        suite.start("gateway", [python, "-m", "okr_services.gateway"])
        suite.env = env
        deadline = time.monotonic() + 60
        while not _serving(gateway):
            if stopping["now"] or suite.dead() or time.monotonic() > deadline:
                raise SystemExit(f"okr run: the suite did not start ({', '.join(suite.dead()) or 'timeout'}); "
                                 f"see {suite.logs}/*.log")
            time.sleep(0.3)
        key_file = data_dir / "admin.key"
        if new or not key_file.exists():
            from okr_services.gateway import auth
            from okr_shared.db import migrate as migrate_keys

            keys = make_engine(env["OKR_GATEWAY_DATABASE_URL"])
            migrate_keys(keys, "gateway_keys")
            key, _ = auth.create_key(keys, tenant, "admin", "admin", description="make run")
            keys.dispose()
            key_file.write_text(key + "\n")
            key_file.chmod(0o600)
        key = key_file.read_text().strip()
        marker = data_dir / "demo.seeding"  # there while the demo company is being seeded
        if new or marker.exists():
            what = "seeding" if new else "resuming an interrupted seeding of"
            _say(f"{'new ' if new else ''}data folder {data_dir}: {what} the demo company (tenant {tenant}) through "
                 "the API")
            deadline = time.monotonic() + 60
            while missing := _not_listening(amqp_uri):
                if stopping["now"] or suite.dead() or time.monotonic() > deadline:
                    raise SystemExit(f"okr run: the {', '.join(missing)} service(s) did not start listening "
                                     f"({', '.join(suite.dead()) or 'timeout'}); see {suite.logs}/services.log")
                time.sleep(0.2)
            seed_demo(gateway, key, tenant, marker)
        host, _, port = web.rpartition(":")
        _say(f"ready — gRPC API on {gateway} (admin key: {key_file}); board: http://{host or 'localhost'}:{port}"
             f"/board/{tenant}; logs in {suite.logs}; Ctrl-C stops")
        if metrics["services"]:
            _say("metrics: " + ", ".join(f"{name} http://{env['OKR_METRICS_HOST']}:{port}/metrics"
                                         for name, port in metrics.items()))
        _say(f"try: OKR_API_URL={gateway} OKR_API_KEY=$(cat {key_file}) .venv/bin/okr board")
        while not stopping["now"]:
            dead = suite.dead()
            if dead:
                _say(f"{', '.join(dead)} stopped unexpectedly; see {suite.logs}; stopping the rest")
                return 1
            time.sleep(0.5)
        return 0
    finally:
        _say("stopping")
        suite.stop()
        _say("stopped; run again to resume from the same data")


if __name__ == "__main__":
    sys.exit(main())
