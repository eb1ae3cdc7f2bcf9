"""The contract suite's client side: the running suite and call helpers.

The contract suite: what an outside client sees.

Every test here is written as an integrator would write it, from ``protos/`` and
``docs/`` alone: it talks to the whole suite started exactly as ``make run`` starts it
(``python -m okr_services.run`` on a data folder of its own, free ports, the real
RabbitMQ), through the stubs generated from ``protos/`` (the ``okr.v1`` ``*_pb2`` modules
of ``make proto``), the gRPC status codes and the documented formats. It imports nothing
of the project's own code (``okr_shared``, ``okr_services``): a test of this package
checks that (test_contract_rules.py). API keys come from the documented CLI
(``okr keys create``), as an operator would make them.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest

from tests.waiting import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
AMQP_URI = os.environ.get("OKR_TEST_AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
OKR = [sys.executable, "-m", "okr_cli"]  # the installed `okr` command of this interpreter


def _env(data_dir: Path, **extra: str) -> dict:
    """The environment of a process of the suite or of the CLI: the data folder's own
    databases (none inherited from this shell), then ``extra``."""
    env = dict(os.environ, OKR_DATA_DIR=str(data_dir), AMQP_URI=AMQP_URI,
               PYTHONPATH=os.pathsep.join([str(ROOT / "shared"), str(ROOT / "services")]))
    for name in ("OKR_DATABASE_URL", "OKR_REPORTING_DATABASE_URL", "OKR_NOTIFICATION_DATABASE_URL",
                 "OKR_GATEWAY_DATABASE_URL", "OKR_API_URL", "OKR_API_KEY"):
        env.pop(name, None)
    return {**env, **extra}  # a test's own settings win (e.g. AMQP_URI through a proxy)


class Suite:
    """The running suite: its gRPC address, its data folder and log, and API keys."""

    def __init__(self, data_dir: Path, metrics: bool = False):
        self.data_dir = data_dir
        #: With ``metrics``: the first of the three metrics ports of `make run` (services,
        #: relay, gateway: docs/observability.md); else 0 (no endpoints).
        self.metrics_port = _three_free_ports() if metrics else 0
        self.gateway = f"127.0.0.1:{free_port()}"
        self.web = f"127.0.0.1:{free_port()}"
        self.log = data_dir.parent / "run.log"
        self.process: subprocess.Popen | None = None
        self._keys: dict[tuple, str] = {}
        self.channel: grpc.Channel | None = None

    # ------------------------------------------------------------------ process
    def start(self) -> None:
        env = _env(self.data_dir, OKR_GATEWAY_ADDRESS=self.gateway, WEB_SERVER_ADDRESS=self.web,
                   OKR_METRICS_PORT=str(self.metrics_port))
        self.process = subprocess.Popen([sys.executable, "-m", "okr_services.run"], env=env, cwd=ROOT,
                                        stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        wait_until(lambda: "ready" in self.log.read_text() or self.process.poll() is not None, timeout=180,
                   interval=0.2, message="make run's suite ready")
        assert self.process.poll() is None, self.log.read_text()
        self.channel = grpc.insecure_channel(self.gateway)

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - reported by the run test
            self.process.kill()
            self.process.wait()

    def metrics(self, process: str = "gateway") -> str:
        """The Prometheus text of ``process``'s endpoint (services, relay or gateway)."""
        import urllib.request

        assert self.metrics_port, "a Suite(metrics=True) serves metrics"
        port = self.metrics_port + ("services", "relay", "gateway").index(process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            return reply.read().decode()

    # --------------------------------------------------------------------- keys
    @property
    def admin_key(self) -> str:
        """The demo tenant's admin key that `make run` wrote to data/admin.key."""
        return (self.data_dir / "admin.key").read_text().strip()

    def key(self, tenant: str, role: str = "admin", subject: str | None = None, teams: tuple[str, ...] = (),
            delegated: tuple[str, ...] = ()) -> str:
        """An API key for ``subject`` with ``role`` in ``tenant``, made with `okr keys create`."""
        subject = subject or f"{role}-{tenant}"
        cache = (tenant, role, subject, teams, delegated)
        if cache not in self._keys:
            args = [*OKR, "keys", "create", "--tenant", tenant, "--subject", subject, "--role", role]
            for team in teams:
                args += ["--team", team]
            for kr in delegated:
                args += ["--delegate-key-result", kr]
            done = subprocess.run(args, env=_env(self.data_dir), capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            self._keys[cache] = done.stdout.strip().splitlines()[-1]
        return self._keys[cache]

    def new_tenant(self, role: str = "admin") -> tuple[str, str]:
        """A tenant no other test uses, and a key of ``role`` in it."""
        tenant = f"t-{uuid.uuid4().hex[:10]}"
        return tenant, self.key(tenant, role)

    def command_env(self, **extra: str) -> dict:
        """The environment of a platform command run beside this suite (``okr keys``,
        ``python -m okr_services.relay replay``: docs/events.md), as an operator's shell
        on the suite's machine has it."""
        return _env(self.data_dir, **extra)

    def okr(self, *args: str, key: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """The `okr` command against the suite's API, with ``key`` (default: the admin key)."""
        env = _env(self.data_dir, OKR_API_URL=self.gateway, OKR_API_KEY=key or self.admin_key)
        return subprocess.run([*OKR, *args], env=env, capture_output=True, text=True, timeout=timeout)


def _three_free_ports() -> int:
    """A port p with p, p+1 and p+2 free on 127.0.0.1 right now."""
    import socket

    for _ in range(50):
        base = free_port()
        if base + 2 >= 65534:
            continue
        try:
            for port in (base + 1, base + 2):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no three consecutive free ports")


def auth(key: str) -> tuple[tuple[str, str], ...]:
    """The call metadata of docs/api.md for an API key."""
    return (("authorization", f"ApiKey {key}"),)


def code_of(call, *args, **kwargs) -> grpc.StatusCode:
    """Make the call and return its status code (OK when it succeeds)."""
    try:
        call(*args, **kwargs)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def refusal(call, *args, **kwargs) -> grpc.RpcError:
    """Make a call that must be refused; return its error (code, details, trailing metadata)."""
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


def trailers(error: grpc.RpcError) -> dict[str, str]:
    return dict(error.trailing_metadata() or ())




STREAM_DRIVER = str(Path(__file__).with_name("ops_grpc_driver.py"))


class StreamRefused(Exception):
    """A server-streaming call that ended with a status other than OK: ``code`` (a
    grpc.StatusCode name), ``details`` and the ``responses`` that came before."""

    def __init__(self, code: str, details: str, responses: list):
        super().__init__(f"{code}: {details}")
        self.code, self.details, self.responses = code, details, responses


def server_stream(address: str, method: str, request, response_cls, key: str | None = None,
                  timeout: float = 120) -> list:
    """Every response of a server-streaming call (``method`` as ``/okr.v1.Service/Method``),
    made from a plain process by ops_grpc_driver.py: grpcio's stream iterators do not
    advance in this eventlet-patched test process (tests/conftest.py). A default client's
    options apply (its 4 MiB receive limit too). StreamRefused if the stream failed."""
    args = [sys.executable, STREAM_DRIVER, address, method, "server", str(timeout)]
    if key is not None:
        args.append(f"ApiKey {key}")
    done = subprocess.run(args, input=base64.b64encode(request.SerializeToString()).decode() + "\n",
                          capture_output=True, text=True, timeout=timeout + 30)
    assert done.returncode == 0, done.stderr
    *lines, status = done.stdout.splitlines()
    responses = [response_cls.FromString(base64.b64decode(line)) for line in lines]
    _, code, *details = status.split(" ", 2)
    if code != "OK":
        raise StreamRefused(code, details[0] if details else "", responses)
    return responses


def export(gateway: str, key: str, max_chunk_bytes: int = 0) -> list:
    """Every ExportChunk of the caller's audit export (ExportBundle), in order."""
    from okr.v1 import audit_pb2

    return server_stream(gateway, "/okr.v1.AuditService/ExportBundle",
                         audit_pb2.ExportBundleRequest(max_chunk_bytes=max_chunk_bytes), audit_pb2.ExportChunk, key)
