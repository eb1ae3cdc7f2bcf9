"""End to end: check-ins through the gRPC gateway until they are visible on the board.

    make bench-e2e                                        # SQLite, 200 check-ins/s for 60 s
    .venv/bin/python bench/e2e.py --quick                 # 50/s for 10 s, a smoke test
    .venv/bin/python bench/e2e.py --backend postgres      # or sqlite,postgres
    .venv/bin/python bench/e2e.py --layout single         # the three services in one nameko process

Everything runs on this machine as separate processes, as deployed, in a temp data dir:

* the event store (SQLite file ``okr.db`` in the temp dir, migrated; or a PostgreSQL
  schema of its own in OKR_BENCH_POSTGRES_URL's database, dropped afterwards), the
  reporting database and the gateway's key database beside it;
* the goal, progress and reporting services: ``nameko run --config services/config.yaml``
  over a generated module that gives them names of this run's own (``goal-<hex>``, ...:
  concurrent runs and tests share the broker's one vhost), the reporting consumer a
  queue ``reporting.read-models-<hex>`` on an exchange ``okr.events.bench-<hex>`` (and
  its dead-letter exchange) of its own. ``--layout split`` (default): one nameko
  process per service, as docker compose and Kubernetes deploy them; ``single``: the
  three in one process, as ``make run`` does;
* the outbox relay (``python -m okr_services.relay --exchange okr.events.bench-<hex>``,
  its defaults: poll 2 ms after a published window doubling to 10 ms when idle, window 500);
* the gateway (``python -m okr_services.gateway``, its defaults: 32 workers, API key
  cache 5 s; ``OKR_GATEWAY_SERVICES`` maps the logical names);
* a bare grpcio echo server (bench/echo_server.py: one generic unary method on raw
  bytes, the same server construction as the gateway).

An admin API key is created with ``auth.create_key`` in the gateway's key database; a
cycle (quarterly, started 40 days ago), an objective and ``--krs`` (50) key results are
seeded through the gateway and the cycle activated.

Load (open loop): a scheduler thread starts one RecordCheckIn every 1/rate s (round
robin over the key results, increasing values, effective dates from the cycle's start
to yesterday, never decreasing per key result) as a gRPC future on ``--senders`` (4)
client channels in turn; replies complete on grpcio's thread. A stalled stack thus
never delays the sends behind it (no coordinated omission) and no thread waits per
call. ``--threaded-senders``: the earlier load, a queue served by that many threads
making blocking calls (busy threads delay the next sends; their "send lag" is reported).
This process is a plain one (not eventlet-patched).

Per check-in: t0 = the send (the scheduled moment, give or take the scheduler's
wake-up: see "send lag"); the call latency is the reply minus t0; the CommandResult's ``last_position`` is the check-in's event; it is
*visible on the board* when the reporting consumer's offset (``storage.offset_of`` on the
reporting database: it commits with the read-model rows in one transaction) reaches that
position — a watcher process polls it every ~1 ms on one long-lived connection and notes
when it moves (a process of its own: as a thread here its clock readings waited for the
senders' GIL). Check-in → board = that moment − t0. With ``--probe`` a queue bound to
the run's exchange (a thread of this process) notes when the relay's message for each
position arrives, which splits the path into call, commit → broker (relay) and broker →
board (reporting); it is off by default because it is load of its own (a second queue
the broker routes every event to, a consumer in this process). Errors: any call that
does not return OK, and any check-in not visible within 30 s after the run.

Echo, in the same run: 500 sequential calls before the load (idle baseline), then an
echo phase of ``--echo-seconds`` (15, at most the load's length) at the same rate, with the same senders, request
bytes and metadata, just before the check-in load — its own phase, so that the
baseline's calls are not load on the machine while the check-ins are measured (run
side by side they were ~0.9 ms of CPU per check-in between the echo server and this
process). **Ratio = gateway RecordCheckIn call p50 ÷ echo call p50 at the same rate**
(how many bare gRPC round trips a check-in call costs); overhead = the difference of
the p50s (auth, policy, nameko RPC to the progress service, its command handling and
the event store append).

Targets (issue): check-in → board p50 <= 20 ms, p99 <= 100 ms at 200/s; zero errors.
The last line printed is one JSON object with every figure and setting. Exit status 1 on
errors or missed targets (2 if the stack would not start).
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import platform
import queue
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT / "shared", ROOT / "services"):
    sys.path.insert(0, str(p))

import warnings  # noqa: E402

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from kombu import Connection  # noqa: E402

from okr.v1 import events_pb2, goal_pb2, goal_pb2_grpc, progress_pb2, progress_pb2_grpc  # noqa: E402

from common import Schemas  # noqa: E402

AMQP_URI = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
PG_URL = os.environ.get("OKR_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
TARGET_P50_MS, TARGET_P99_MS = 20.0, 100.0
ECHO_METHOD = "/bench.Echo/Echo"
SETTLE_S = 30.0


_PORTS_GIVEN: set[int] = set()


def free_port() -> int:
    """A free port not handed out before in this run: the OS may hand the same free
    port to two bind(0) calls in a row, and eventlet's listener and grpcio both set
    SO_REUSEPORT by default — the stack's reporting web server and gateway once shared
    a port and the gateway's readiness probe reached the web server."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def ms(ns):
    return None if ns is None else round(ns / 1e6, 2)


def summary(values_ns) -> dict:
    if not values_ns:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    return {"n": len(values_ns), "p50_ms": ms(statistics.median(values_ns)), "p90_ms": ms(pct(values_ns, 90)),
            "p99_ms": ms(pct(values_ns, 99)), "max_ms": ms(max(values_ns))}


# ------------------------------------------------------------------ the stack


SERVICE_MODULES = {
    "goal": """
        import okr_services.goal.service as _goal

        class GoalService(_goal.GoalService):
            name = {name!r}
    """,
    "progress": """
        import okr_services.progress.service as _progress

        class ProgressService(_progress.ProgressService):
            name = {name!r}
    """,
    "reporting": """
        import okr_services.reporting.service as _reporting

        ReportingService = _reporting.make_service({name!r}, queue={queue!r}, exchange={exchange!r},
                                                   dead_letter_exchange={dlx!r})
    """,
}


class Stack:
    """Every process of the suite, in a temp dir; ``close()`` ends them (each by its
    own pid) and removes what the run created in the databases and on the broker."""

    def __init__(self, backend: str, layout: str, tmp: Path):
        self.backend, self.layout, self.tmp = backend, layout, tmp
        suffix = uuid.uuid4().hex[:8]
        self.suffix = suffix
        self.names = {"goal": f"goal-{suffix}", "progress": f"progress-{suffix}", "reporting": f"reporting-{suffix}"}
        self.queue = f"reporting.read-models-{suffix}"
        self.exchange, self.dlx = f"okr.events.bench-{suffix}", f"okr.events.dlx.bench-{suffix}"
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.schemas = Schemas(PG_URL)
        self.gateway_address = self.echo_address = None
        self.api_key = None

    # -------------------------------------------------------------- databases

    def _databases(self) -> None:
        from okr_shared.eventstore import make_engine, migrate

        if self.backend == "sqlite":
            self.store_url = f"sqlite:///{self.tmp}/okr.db"
            self.reporting_url = f"sqlite:///{self.tmp}/reporting.db"
            self.keys_url = f"sqlite:///{self.tmp}/gateway.db"
        else:
            self.store_url, self.reporting_url, self.keys_url = (self.schemas.new("bench_e2e") for _ in range(3))
        engine = make_engine(self.store_url)
        migrate(engine)
        engine.dispose()

        from okr_services.gateway import auth
        from okr_shared.db import migrate as db_migrate

        keys = make_engine(self.keys_url)
        db_migrate(keys, "gateway_keys")
        self.api_key, _ = auth.create_key(keys, "acme", "bench-admin", "admin", description="bench/e2e.py")
        keys.dispose()

    # -------------------------------------------------------------- processes

    def env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_JWT_", "OKR_GATEWAY_"))}
        env.update(AMQP_URI=AMQP_URI, OKR_DATA_DIR=str(self.tmp), OKR_DATABASE_URL=self.store_url,
                   OKR_REPORTING_DATABASE_URL=self.reporting_url, OKR_GATEWAY_DATABASE_URL=self.keys_url,
                   PYTHONPATH=os.pathsep.join([str(self.tmp), str(ROOT / "shared"), str(ROOT / "services"),
                                               os.environ.get("PYTHONPATH", "")]),
                   PYTHONUNBUFFERED="1",
                   # each process its own /metrics port (they all serve one, as deployed)
                   OKR_METRICS_HOST="127.0.0.1", OKR_METRICS_PORT=str(free_port()))
        env.update(extra)
        return env

    def spawn(self, name: str, argv: list[str], **env) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, env=self.env(**env), stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT),
                                start_new_session=True)
        log.close()
        self.procs.append((name, proc))
        return proc

    def start(self) -> None:
        self._databases()
        modules = {}
        for logical, template in SERVICE_MODULES.items():
            module = f"bench_e2e_{logical}_{self.suffix}"
            (self.tmp / f"{module}.py").write_text(textwrap.dedent(template).format(
                name=self.names[logical], queue=self.queue, exchange=self.exchange, dlx=self.dlx))
            modules[logical] = module
        nameko = [str(Path(sys.executable).with_name("nameko")), "run", "--config", str(ROOT / "services/config.yaml")]
        if self.layout == "single":
            self.spawn("services", nameko + list(modules.values()), WEB_SERVER_ADDRESS=f"127.0.0.1:{free_port()}")
        else:
            for logical, module in modules.items():
                self.spawn(logical, nameko + [module], WEB_SERVER_ADDRESS=f"127.0.0.1:{free_port()}")
        self.spawn("relay", [sys.executable, "-m", "okr_services.relay", "--exchange", self.exchange,
                             "--log-level", "WARNING"])
        port = free_port()
        self.gateway_address = f"127.0.0.1:{port}"
        self.spawn("gateway", [sys.executable, "-m", "okr_services.gateway"], OKR_GATEWAY_ADDRESS=self.gateway_address,
                   OKR_GATEWAY_SERVICES=",".join(f"{k}={v}" for k, v in self.names.items()))
        echo_port = free_port()
        self.echo_address = f"127.0.0.1:{echo_port}"
        self.spawn("echo", [sys.executable, str(Path(__file__).with_name("echo_server.py")), self.echo_address])
        self._wait_ready()

    def _check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, chars: int = 3000) -> str:
        try:
            return (self.tmp / f"{name}.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        queues = [f"rpc-{self.names['goal']}", f"rpc-{self.names['progress']}", f"rpc-{self.names['reporting']}",
                  self.queue]
        with Connection(AMQP_URI) as conn:
            for q in queues:
                while True:
                    self._check_alive()
                    try:
                        _, _, consumers = conn.channel().queue_declare(q, passive=True)
                        if consumers:
                            break
                    except Exception:
                        conn.close()
                        conn = Connection(AMQP_URI)
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"queue {q} has no consumer after {timeout:.0f} s")
                    time.sleep(0.2)
        for address in (self.gateway_address, self.echo_address):
            channel = grpc.insecure_channel(address)
            try:
                while True:
                    self._check_alive()
                    try:
                        if address == self.echo_address:
                            channel.unary_unary(ECHO_METHOD)(b"ping", timeout=1)
                            break
                        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                        if status.status == health_pb2.HealthCheckResponse.SERVING:
                            break
                    except grpc.RpcError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{address} not serving after {timeout:.0f} s")
                    time.sleep(0.2)
            finally:
                channel.close()

    def close(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for name, proc in reversed(self.procs):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()
        try:
            from okr_shared.bus.consumer import dead_letter_queue_name

            with Connection(AMQP_URI) as conn:
                channel = conn.channel()
                for q in [self.queue, dead_letter_queue_name(self.queue)] + [f"rpc-{n}" for n in self.names.values()]:
                    try:
                        channel.queue_delete(q)
                    except Exception:
                        channel = conn.channel()
                for x in (self.exchange, self.dlx):
                    try:
                        channel.exchange_delete(x)
                    except Exception:
                        channel = conn.channel()
        except Exception as e:  # pragma: no cover - best effort
            print(f"warning: broker clean-up failed: {e}", file=sys.stderr)
        self.schemas.drop()


# ------------------------------------------------------------------ observers


class OffsetWatcher(threading.Thread):
    """Polls the reporting consumer's offset every ``interval`` s on one connection;
    keeps (monotonic ns, offset) at every change.

    The poll is one prepared statement on a raw DBAPI connection in autocommit mode
    (each SELECT sees the latest commit): at 1,000 polls/s the watcher must cost the
    machine little, since it shares the 2 cores with the stack it measures (through
    SQLAlchemy Core with a rollback per poll it took ~1.6 ms of CPU per check-in at
    100/s, more than the gateway)."""

    def __init__(self, url: str, consumer: str, interval: float = 0.001):
        super().__init__(daemon=True, name="offset-watcher")
        from sqlalchemy import make_url

        from okr_shared.bus.consumer import offsets

        self.url = make_url(url)
        self.consumer, self.interval = consumer, interval
        self.sql = f"SELECT last_position FROM {offsets.name} WHERE consumer = " + (
            "?" if self.url.get_backend_name() == "sqlite" else "%s")
        self.times: list[int] = []
        self.offsets: list[int] = []
        self.polls = 0
        self.stop_event = threading.Event()

    @property
    def offset(self) -> int:
        return self.offsets[-1] if self.offsets else 0

    def _connect(self):
        if self.url.get_backend_name() == "sqlite":
            import sqlite3

            return sqlite3.connect(self.url.database, isolation_level=None, check_same_thread=False)
        from okr_shared.eventstore import make_engine

        engine = make_engine(self.url.render_as_string(hide_password=False))
        raw = engine.raw_connection()
        raw.driver_connection.autocommit = True
        return raw

    def run(self) -> None:
        last = -1
        conn = self._connect()
        try:
            cursor = conn.cursor()
            sql, params, sleep, clock = self.sql, (self.consumer,), time.sleep, time.monotonic_ns
            while not self.stop_event.is_set():
                try:
                    cursor.execute(sql, params)
                    row = cursor.fetchone()
                    value = row[0] if row else 0
                except Exception:  # the table is created at the service's start
                    value = 0
                now = clock()
                self.polls += 1
                if value != last:
                    self._changed(now, value)
                    last = value
                sleep(self.interval)
        finally:
            conn.close()

    def _changed(self, now: int, value: int) -> None:
        self.times.append(now)
        self.offsets.append(value)

    def visible_at(self, position: int) -> int | None:
        i = bisect.bisect_left(self.offsets, position)
        return self.times[i] if i < len(self.offsets) else None

    def wait_for(self, position: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.offset < position:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


class _PrintingWatcher(OffsetWatcher):
    def _changed(self, now: int, value: int) -> None:
        sys.stdout.write(f"{now} {value}\n")
        sys.stdout.flush()


def watch_main(url: str, consumer: str, interval: float) -> None:
    """``e2e.py --watch-process URL CONSUMER INTERVAL``: an OffsetWatcher printing
    "<monotonic ns> <offset>" per change until its stdin closes, then "polls <n>"."""
    watcher = _PrintingWatcher(url, consumer, interval)
    watcher.start()
    sys.stdin.read()
    watcher.stop_event.set()
    watcher.join(5)
    sys.stdout.write(f"polls {watcher.polls}\n")
    sys.stdout.flush()


class WatcherProcess(threading.Thread):
    """The OffsetWatcher in a process of its own (same interface): its clock readings
    are not delayed by this process's threads (16 senders share one GIL, whose switch
    interval is 5 ms). CLOCK_MONOTONIC is one clock for every process of the machine,
    so its times compare with the senders'. A thread here mirrors the changes."""

    def __init__(self, url: str, consumer: str, interval: float = 0.001):
        super().__init__(daemon=True, name="offset-watcher-reader")
        self.times: list[int] = []
        self.offsets: list[int] = []
        self.polls = 0
        self.stop_event = threading.Event()
        self.proc = subprocess.Popen([sys.executable, __file__, "--watch-process", url, consumer, repr(interval)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    offset = OffsetWatcher.offset
    visible_at = OffsetWatcher.visible_at
    wait_for = OffsetWatcher.wait_for

    def run(self) -> None:
        for line in self.proc.stdout:
            first, second = line.split()
            if first == "polls":
                self.polls = int(second)
            else:
                self.times.append(int(first))
                self.offsets.append(int(second))

    def join(self, timeout: float | None = None) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        super().join(timeout)


class BrokerProbe(threading.Thread):
    """A private queue bound to the run's exchange: when each position's message (as the
    relay published it) arrives at a consumer."""

    def __init__(self, exchange: str):
        super().__init__(daemon=True, name="broker-probe")
        from okr_shared.bus import wire

        self.header = wire.HEADER_POSITION
        self.arrivals: dict[int, int] = {}
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.conn = Connection(AMQP_URI)
        channel = self.conn.channel()
        channel.exchange_declare(exchange, "topic", durable=True, auto_delete=False)
        self.queue = channel.queue_declare("", exclusive=True, auto_delete=True).queue
        channel.queue_bind(self.queue, exchange, "#")
        channel.basic_consume(self.queue, no_ack=True, callback=self._on_message)

    def _on_message(self, message) -> None:
        now = time.monotonic_ns()
        position = (message.properties.get("application_headers") or {}).get(self.header)
        if position is not None:
            self.arrivals.setdefault(int(position), now)

    def run(self) -> None:
        self.ready.set()
        while not self.stop_event.is_set():
            try:
                self.conn.drain_events(timeout=0.2)
            except (TimeoutError, socket.timeout):
                pass
        self.conn.close()


# ------------------------------------------------------------------ load


class Client:
    """Channels and stubs of one thread (gateway and echo)."""

    def __init__(self, stack: Stack):
        self.gateway = grpc.insecure_channel(stack.gateway_address)
        self.echo_channel = grpc.insecure_channel(stack.echo_address)
        self.progress = progress_pb2_grpc.ProgressServiceStub(self.gateway)
        self.goal = goal_pb2_grpc.GoalServiceStub(self.gateway)
        self.echo = self.echo_channel.unary_unary(ECHO_METHOD)
        self.metadata = (("authorization", f"ApiKey {stack.api_key}"),)

    def close(self) -> None:
        self.gateway.close()
        self.echo_channel.close()


class Workload:
    def __init__(self, krs: int, today: date):
        self.start = today - timedelta(days=40)
        self.end = self.start + timedelta(days=89)  # a quarterly cycle (84-92 days)
        self.days = (today - timedelta(days=1) - self.start).days
        self.krs = [f"kr-bench-{i:03d}" for i in range(krs)]
        self.per_kr_expected = 1

    def seed(self, client: Client) -> None:
        m, c = client.metadata, "bench-q"
        client.goal.PlanCycle(goal_pb2.PlanCycleRequest(
            cycle_id=c, cadence=events_pb2.CADENCE_QUARTERLY, name="Bench quarter", start_date=self.start.isoformat(),
            end_date=self.end.isoformat()), metadata=m, timeout=30)
        client.goal.CreateObjective(goal_pb2.CreateObjectiveRequest(
            objective_id="o-bench", cycle_id=c, level=events_pb2.OBJECTIVE_LEVEL_TEAM, title="Ship the bench",
            owner="lena", team_id="growth"), metadata=m, timeout=30)
        for kr in self.krs:
            client.goal.DefineKeyResult(goal_pb2.DefineKeyResultRequest(
                key_result_id=kr, objective_id="o-bench", title=f"{kr} 0 → 1,000,000",
                kind=events_pb2.KEY_RESULT_KIND_INCREASE_TO, start_value=0, target_value=1_000_000, owner="max",
                due_date=self.end.isoformat()), metadata=m, timeout=30)
        client.goal.ActivateCycle(goal_pb2.ActivateCycleRequest(cycle_id=c), metadata=m, timeout=30)

    def check_in(self, i: int) -> progress_pb2.RecordCheckInRequest:
        k = len(self.krs)
        n = i // k  # the n-th check-in of this key result
        day = self.start + timedelta(days=min(self.days, n * self.days // max(1, self.per_kr_expected)))
        return progress_pb2.RecordCheckInRequest(
            key_result_id=self.krs[i % k], value=float(n + 1), confidence=7, effective_date=day.isoformat(),
            comment="Two enterprise pilots converted, third one slipped to next quarter.")


def run_load(stack: Stack, workload: Workload, rate: float, seconds: float, senders: int, first_index: int,
             kind: str = "c", threaded: bool = False) -> dict:
    """Open loop at ``rate`` for ``seconds``: RecordCheckIn calls to the gateway
    (``kind`` "c") or, in a phase of its own, echo calls to the bare grpcio server with
    the same request bytes and metadata ("e")."""
    n = int(rate * seconds)
    if kind == "c":
        workload.per_kr_expected = max(1, (first_index + n) // len(workload.krs) + 1)
    jobs: queue.Queue = queue.Queue()
    # per call: [sched, send, reply, last_position, error]
    rows = [[0, 0, 0, 0, None] for _ in range(n)]
    requests = [workload.check_in(first_index + i) for i in range(n)]
    if kind == "e":
        requests = [r.SerializeToString() for r in requests]

    def sender():
        client = Client(stack)
        call = client.progress.RecordCheckIn if kind == "c" else client.echo
        try:
            while True:
                i = jobs.get()
                if i is None:
                    return
                row = rows[i]
                row[1] = time.monotonic_ns()
                try:
                    result = call(requests[i], metadata=client.metadata, timeout=10)
                    row[2] = time.monotonic_ns()
                    if kind == "c":
                        row[3] = result.last_position
                except grpc.RpcError as e:
                    row[2] = time.monotonic_ns()
                    row[4] = f"{e.code().name}: {e.details()}"
        finally:
            client.close()

    interval_ns = int(1e9 / rate)
    if not threaded:
        return _run_open_loop(stack, rows, requests, n, interval_ns, senders, kind)
    threads = [threading.Thread(target=sender, daemon=True, name=f"sender-{k}") for k in range(senders)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # channels connect
    started = time.monotonic_ns()
    for i in range(n):
        at = started + i * interval_ns
        pause = at - time.monotonic_ns()
        if pause > 0:
            time.sleep(pause / 1e9)
        rows[i][0] = at
        jobs.put(i)
    scheduled_s = (time.monotonic_ns() - started) / 1e9
    for _ in threads:
        jobs.put(None)
    for t in threads:
        t.join(60)
    elapsed_s = (max(r[2] for r in rows) - started) / 1e9
    return {"n": n, "rows": rows, "started": started, "scheduled_s": scheduled_s, "elapsed_s": elapsed_s}


def _run_open_loop(stack: Stack, rows: list, requests: list, n: int, interval_ns: int, clients: int,
                   kind: str) -> dict:
    """The default load: each call is started at its scheduled time as a gRPC future (on
    ``clients`` channels in turn) and completes on grpcio's own thread, so a slow reply
    never delays the next send (no coordinated omission: latency is measured from the
    schedule even when the stack stalls) and no sender thread waits per call."""
    channels = [Client(stack) for _ in range(clients)]
    calls = [c.progress.RecordCheckIn if kind == "c" else c.echo for c in channels]
    metadata = channels[0].metadata
    pending = threading.Semaphore(0)
    clock = time.monotonic_ns

    def done(i: int, future) -> None:
        row = rows[i]
        row[2] = clock()
        error = future.exception()
        if error is None:
            if kind == "c":
                row[3] = future.result().last_position
        else:
            row[4] = f"{error.code().name}: {error.details()}"
        pending.release()

    try:
        for c in channels:  # connected before the clock starts
            grpc.channel_ready_future(c.gateway if kind == "c" else c.echo_channel).result(timeout=30)
        started = clock()
        sleep = time.sleep
        for i in range(n):
            at = started + i * interval_ns
            pause = at - clock()
            if pause > 0:
                sleep(pause / 1e9)
            row = rows[i]
            row[0] = at
            row[1] = clock()
            calls[i % clients].future(requests[i], metadata=metadata, timeout=10).add_done_callback(
                lambda future, i=i: done(i, future))
        scheduled_s = (clock() - started) / 1e9
        for _ in range(n):
            pending.acquire(timeout=60)
    finally:
        for c in channels:
            c.close()
    elapsed_s = (max(r[2] for r in rows) - started) / 1e9
    return {"n": n, "rows": rows, "started": started, "scheduled_s": scheduled_s, "elapsed_s": elapsed_s}


def sequential(client: Client, workload: Workload, count: int, first_index: int, echo: bool) -> list[int]:
    out = []
    for i in range(count):
        request = workload.check_in(first_index + i)
        t0 = time.monotonic_ns()
        if echo:
            client.echo(request.SerializeToString(), metadata=client.metadata, timeout=10)
        else:
            client.progress.RecordCheckIn(request, metadata=client.metadata, timeout=10)
        out.append(time.monotonic_ns() - t0)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (and its waited-for children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def broker_pid() -> int | None:
    """The local RabbitMQ's Erlang VM (beam.smp), when exactly one runs on this machine
    (its CPU is counted in "total all processes": every check-in costs the broker four
    messages — the request, its reply, the event and its delivery)."""
    try:
        found = subprocess.run(["pgrep", "-x", "beam.smp"], capture_output=True, text=True, timeout=5).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return int(found[0]) if len(found) == 1 else None


def cpu_per_checkin(cpu_used: dict, sent: int) -> dict:
    """CPU milliseconds per check-in sent, by process, and totals: the whole stack
    (gateway, services, relay; not the echo server nor this process) and everything.
    Process CPU time, unlike wall-clock latency, hardly moves with other load on the
    machine."""
    if not sent:
        return {}
    out = {name: round(1000 * s / sent, 2) for name, s in cpu_used.items()}
    stack = sum(s for name, s in cpu_used.items()
                if name not in ("echo", "bench (this process)", "bench watcher", "RabbitMQ"))
    out["total stack (gateway, services, relay)"] = round(1000 * stack / sent, 2)
    out["total all processes"] = round(1000 * sum(cpu_used.values()) / sent, 2)
    return out


# ------------------------------------------------------------------ one backend


def bench_backend(backend: str, args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="okr-bench-e2e-"))
    stack = Stack(backend, args.layout, tmp)
    watcher = probe = None
    try:
        t_start = time.monotonic()
        try:
            stack.start()
        except Exception as e:
            for name, _ in stack.procs:
                print(f"--- {name} log ---\n{stack.log_tail(name)}", file=sys.stderr)
            raise RuntimeError(f"the stack did not start: {e}") from e
        startup_s = time.monotonic() - t_start
        watcher = WatcherProcess(stack.reporting_url, stack.queue, args.poll_ms / 1000)
        watcher.start()
        if args.probe:
            probe = BrokerProbe(stack.exchange)
            probe.start()
        workload = Workload(args.krs, date.today())
        client = Client(stack)
        try:
            t = time.monotonic()
            workload.seed(client)
            seed_s = time.monotonic() - t
            workload.per_kr_expected = max(1, int(args.rate * args.seconds + args.warmup) // args.krs + 1)
            warm = sequential(client, workload, args.warmup, 0, echo=False)
            echo_idle = sequential(client, workload, 500, 0, echo=True)
        finally:
            client.close()
        # the reporting consumer has applied everything so far
        from okr_shared.eventstore import EventStore, make_engine

        engine = make_engine(stack.store_url)
        store = EventStore(engine)
        head = store.head_position()
        if not watcher.wait_for(head, 60):
            raise RuntimeError(f"the reporting consumer did not reach {head} (at {watcher.offset})")
        print(f"  [{backend}] stack up in {startup_s:.1f} s ({args.layout} nameko process"
              f"{'es' if args.layout == 'split' else ''}); seeded {len(workload.krs)} key results in {seed_s:.1f} s; "
              f"store head {head}; sequential idle: check-in call p50 {ms(statistics.median(warm))} ms, "
              f"echo p50 {ms(statistics.median(echo_idle))} ms", flush=True)
        echo_load = run_load(stack, workload, args.rate, args.echo_seconds, args.senders, args.warmup, kind="e",
                             threaded=args.threaded_senders)
        time.sleep(1)
        pids = {name: proc.pid for name, proc in stack.procs}
        pids["bench watcher"] = watcher.proc.pid
        broker = broker_pid()
        if broker is not None:
            pids["RabbitMQ"] = broker
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        cpu_self_before = time.process_time()
        load = run_load(stack, workload, args.rate, args.seconds, args.senders, args.warmup,
                        threaded=args.threaded_senders)
        cpu_used = {name: round(cpu_seconds(pid) - cpu_before[name], 2) for name, pid in pids.items()}
        cpu_used["bench (this process)"] = round(time.process_time() - cpu_self_before, 2)
        checkins = load["rows"]
        last = max((r[3] for r in checkins if r[4] is None), default=0)
        settled = watcher.wait_for(last, SETTLE_S)
        if probe is not None:
            time.sleep(0.3)  # the probe's last arrivals
        store.close()
        engine.dispose()
        loadavg = os.getloadavg()
    finally:
        for thread in (watcher, probe):
            if thread is not None:
                thread.stop_event.set()
                thread.join(5)
        logs = {name: stack.log_tail(name, 1500) for name, _ in stack.procs}
        stack.close()
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)

    call, board, to_broker, broker_to_board, reply_to_broker, send_lag, errors, invisible = [], [], [], [], [], [], [], 0
    worst = []
    for sched, send, reply, position, error in checkins:
        send_lag.append(send - sched)
        if error is not None:
            errors.append(error)
            continue
        call.append(reply - send)
        visible = watcher.visible_at(position)
        if visible is None:
            invisible += 1
            continue
        board.append(visible - send)
        worst.append(((send - load["started"]) / 1e9, visible - send, reply - send, position))
        arrived = probe.arrivals.get(position) if probe is not None else None
        if arrived is not None:
            to_broker.append(arrived - send)
            reply_to_broker.append(arrived - reply)
            broker_to_board.append(visible - arrived)
    echo_errors = [r[4] for r in echo_load["rows"] if r[4] is not None]
    echo_at_rate = [r[2] - r[1] for r in echo_load["rows"] if r[4] is None]
    ok_count = len(call)
    call_s, board_s, echo_s = summary(call), summary(board), summary(echo_at_rate)
    ratio = round(call_s["p50_ms"] / echo_s["p50_ms"], 1) if call_s["p50_ms"] and echo_s["p50_ms"] else None
    worst.sort(key=lambda w: -w[1])
    result = {
        "backend": backend, "layout": args.layout, "target_rate_per_s": args.rate, "seconds": args.seconds,
        "senders": args.senders, "key_results": args.krs, "watcher_poll_ms": args.poll_ms,
        "sent": len(checkins), "ok": ok_count, "errors": len(errors) + invisible, "call_errors": len(errors),
        "not_visible_after_s": {"count": invisible, "settle_s": SETTLE_S}, "settled": settled,
        "error_samples": sorted(set(errors))[:5],
        "achieved_rate_per_s": round(len(checkins) / load["elapsed_s"], 1),
        "schedule_seconds": round(load["scheduled_s"], 2),
        "send_lag": summary(send_lag),
        "call": call_s, "board": board_s,
        "send_to_broker": summary(to_broker), "reply_to_broker": summary(reply_to_broker),
        "broker_to_board": summary(broker_to_board), "probe_arrivals": len(probe.arrivals) if probe is not None else None,
        "echo_at_rate": {**echo_s, "errors": len(echo_errors), "seconds": args.echo_seconds},
        "echo_idle_sequential": summary(echo_idle),
        "checkin_idle_sequential": summary(warm),
        "gateway_overhead_p50_ms": round(call_s["p50_ms"] - echo_s["p50_ms"], 2) if ratio else None,
        "ratio_call_p50_over_echo_p50": ratio,
        "worst_board_ms": [(round(at, 2), ms(lat), ms(c), p) for at, lat, c, p in worst[:5]],
        "cpu_seconds_during_load": cpu_used, "cpu_ms_per_checkin": cpu_per_checkin(cpu_used, len(checkins)),
        "load_average_after": [round(x, 2) for x in loadavg],
        "startup_s": round(startup_s, 1), "seed_s": round(seed_s, 1), "watcher_polls": watcher.polls,
    }
    met = {
        "board_p50_le_20ms": board_s["p50_ms"] is not None and board_s["p50_ms"] <= TARGET_P50_MS,
        "board_p99_le_100ms": board_s["p99_ms"] is not None and board_s["p99_ms"] <= TARGET_P99_MS,
        "zero_errors": result["errors"] == 0 and settled,
        "rate_achieved": result["achieved_rate_per_s"] >= 0.97 * args.rate,
    }
    result["targets"] = met
    if result["errors"]:
        result["logs_tail"] = logs
    return result


def report(r: dict) -> None:
    def row(label, s):
        return (f"  {label:<34} p50 {s['p50_ms']!s:>7} ms   p90 {s['p90_ms']!s:>7} ms   p99 {s['p99_ms']!s:>7} ms"
                f"   max {s['max_ms']!s:>8} ms   (n={s['n']})")

    print(f"  [{r['backend']}] check-ins sent {r['sent']:,}, OK {r['ok']:,}, errors {r['errors']} "
          f"(calls {r['call_errors']}, not visible within {SETTLE_S:.0f} s {r['not_visible_after_s']['count']}); "
          f"achieved {r['achieved_rate_per_s']}/s of {r['target_rate_per_s']:.0f}/s", flush=True)
    probed = (("  send → relay's message at broker", "send_to_broker"),
              ("  reply → relay's message at broker", "reply_to_broker"),
              ("  broker → board (reporting)", "broker_to_board")) if r["probe_arrivals"] is not None else ()
    for label, key in (("RecordCheckIn call (gateway)", "call"), ("check-in → board", "board"), *probed,
                       ("echo call at the same rate", "echo_at_rate"), ("echo call, sequential idle", "echo_idle_sequential"),
                       ("check-in call, sequential idle", "checkin_idle_sequential"),
                       ("send lag (scheduled → sent)", "send_lag")):
        print(row(label, r[key]))
    print(f"  gateway overhead (call p50 − echo p50 at rate) {r['gateway_overhead_p50_ms']} ms; ratio call p50 / echo p50 "
          f"= {r['ratio_call_p50_over_echo_p50']}× (a check-in call costs that many bare gRPC round trips)")
    print(f"  CPU seconds during the load: {r['cpu_seconds_during_load']}; load average after {r['load_average_after']}")
    print(f"  CPU ms per check-in: {r['cpu_ms_per_checkin']}")
    print(f"  worst check-in → board (at s, board ms, call ms, position): {r['worst_board_ms']}")
    print("  targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in r["targets"].items()), flush=True)
    if r["error_samples"]:
        print(f"  errors seen: {r['error_samples']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=None, help="check-ins per second (200)")
    p.add_argument("--seconds", type=float, default=None, help="length of the load (60)")
    p.add_argument("--backend", default="sqlite", help="sqlite, postgres or sqlite,postgres")
    p.add_argument("--quick", action="store_true", help="50 check-ins/s for 10 s")
    p.add_argument("--layout", choices=("single", "split"), default="split",
                   help="one nameko process per service (split, as compose and Kubernetes deploy them) "
                        "or the three in one (single, as make run does)")
    p.add_argument("--krs", type=int, default=50, help="key results checked in round robin")
    p.add_argument("--senders", type=int, default=4,
                   help="client channels the calls take in turn (with --threaded-senders: sender threads)")
    p.add_argument("--threaded-senders", action="store_true",
                   help="the earlier load: --senders threads each making blocking calls from a queue (a stalled "
                        "stack delays the sends behind it; latency is measured from the send)")
    p.add_argument("--warmup", type=int, default=100, help="sequential check-ins before the load (idle figures)")
    p.add_argument("--poll-ms", type=float, default=1.0, help="offset watcher's poll interval")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, SQLite files)")
    p.add_argument("--echo-seconds", type=float, default=None,
                   help="length of the echo phase at the same rate, before the check-in load (15, at most --seconds)")
    p.add_argument("--probe", action="store_true",
                   help="split check-in → board at the broker (a queue of this process on the run's exchange; "
                        "it adds a consumer's work to the broker and to this process)")
    args = p.parse_args(argv)
    args.rate = args.rate or (50.0 if args.quick else 200.0)
    args.seconds = args.seconds or (10.0 if args.quick else 60.0)
    args.echo_seconds = args.echo_seconds or min(15.0, args.seconds)
    backends = [b for b in args.backend.split(",") if b]
    if any(b not in ("sqlite", "postgres") for b in backends):
        p.error("--backend: sqlite, postgres or both")

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    print(f"end-to-end benchmark: check-in (gRPC) → board at {args.rate:.0f}/s for {args.seconds:.0f} s; "
          f"backends {backends}, layout {args.layout}, {args.krs} key results, {args.senders} senders; Python "
          f"{platform.python_version()}, grpcio {grpc.__version__}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    results, failed = {}, []
    for backend in backends:
        try:
            results[backend] = r = bench_backend(backend, args)
            report(r)
        except KeyboardInterrupt:
            print("interrupted; processes stopped", file=sys.stderr)
            return 130
        except Exception as e:
            failed.append(f"{backend}: {e}")
            print(f"  [{backend}] FAILED: {e}", file=sys.stderr, flush=True)
    print(json.dumps({"bench": "e2e", "python": platform.python_version(), "grpcio": grpc.__version__,
                      "cpus": os.cpu_count(), "rate": args.rate, "seconds": args.seconds, "layout": args.layout,
                      "targets_ms": {"p50": TARGET_P50_MS, "p99": TARGET_P99_MS},
                      "ratio_means": "gateway RecordCheckIn call p50 / bare grpcio echo call p50, same rate, same run",
                      "results": results, "failed": failed}, separators=(",", ":"), default=str))
    if failed:
        return 2
    return 0 if all(all(r["targets"].values()) for r in results.values()) else 1


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--watch-process":
        watch_main(sys.argv[2], sys.argv[3], float(sys.argv[4]))
        sys.exit(0)
    sys.exit(main())
