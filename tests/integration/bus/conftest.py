"""Bus fixtures on the real RabbitMQ (and the event store fixtures of tests/conftest.py).

``bus_probe``: every test gets an exchange and a queue of its own (``okr.events.test-<hex>``), so tests
running at the same time on one broker never see each other's messages; both are
deleted at the end. Relay processes started through ``relay_process`` are stopped at
the end too (SIGKILL if SIGTERM did not do it within 10 s).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import amqp
import pytest
from kombu import Connection
from sqlalchemy import make_url

from okr_shared.bus import wire

AMQP_URI = os.environ.get("OKR_TEST_AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")


@dataclass
class Received:
    message: amqp.Message
    at: float  # time.perf_counter() when it arrived

    @property
    def position(self) -> int:
        return self.message.properties["application_headers"][wire.HEADER_POSITION]

    @property
    def message_id(self) -> str:
        return self.message.properties["message_id"]


@dataclass
class Bus:
    """An exchange of its own with one durable queue bound to everything (``#``), and
    a consumer on it that records what arrives and when."""

    exchange: str
    queue: str
    conn: Connection
    channel: amqp.Channel = None
    received: list[Received] = field(default_factory=list)
    extra_queues: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.channel = self.conn.channel()
        self.channel.exchange_declare(self.exchange, wire.EXCHANGE_TYPE, durable=True, auto_delete=False)
        self.declare_queue(self.queue)
        self.channel.basic_consume(self.queue, no_ack=True, callback=self._on_message)

    def declare_queue(self, name: str, arguments: dict | None = None, bind: bool = True) -> str:
        self.channel.queue_declare(name, durable=True, auto_delete=False, arguments=arguments or {})
        if bind:
            self.channel.queue_bind(name, self.exchange, "#")
        if name != self.queue:
            self.extra_queues.append(name)
        return name

    def _on_message(self, message: amqp.Message) -> None:
        self.received.append(Received(message, time.perf_counter()))

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until at least ``count`` messages arrived in total; returns them all."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{len(self.received)} of {count} messages arrived within {timeout} s")
            try:
                self.conn.drain_events(timeout=min(remaining, 0.1))
            except TimeoutError:
                pass
        return self.received

    def settle(self, quiet: float = 0.3) -> list[Received]:
        """Collect until nothing arrived for ``quiet`` seconds; returns everything."""
        while True:
            try:
                self.conn.drain_events(timeout=quiet)
            except TimeoutError:
                return self.received

    def get_from(self, queue: str, count: int, timeout: float = 10.0) -> list[amqp.Message]:
        """Fetch ``count`` messages from another queue (basic.get)."""
        messages, deadline = [], time.monotonic() + timeout
        while len(messages) < count:
            message = self.channel.basic_get(queue, no_ack=True)
            if message is not None:
                messages.append(message)
            elif time.monotonic() > deadline:
                raise AssertionError(f"{len(messages)} of {count} messages in {queue} within {timeout} s")
            else:
                time.sleep(0.02)
        return messages

    def close(self) -> None:
        with Connection(AMQP_URI) as admin:
            channel = admin.channel()
            for name in (self.queue, *self.extra_queues):
                channel.queue_delete(name)
            channel.exchange_delete(self.exchange)
        self.conn.release()


@pytest.fixture
def bus_probe():
    suffix = uuid.uuid4().hex[:10]
    conn = Connection(AMQP_URI)
    conn.connect()
    bus = Bus(exchange=f"okr.events.test-{suffix}", queue=f"relay-test-{suffix}", conn=conn)
    bus.start()
    yield bus
    bus.close()


def database_url(database) -> str:
    """The URL a relay process needs for the test's database (PostgreSQL: the test's
    schema through search_path)."""
    if database.backend == "sqlite":
        return database.url
    url = make_url(database.url).update_query_dict({"options": database.connect_args["options"]})
    return url.render_as_string(hide_password=False)


#: Short lease for tests: a dead relay's lease expires within 2 s.
LEASE_ARGS = ("--lease-ttl", "2", "--lease-renew-interval", "0.4")


@dataclass
class RelayProcess:
    proc: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def logs(self) -> list[dict]:
        lines = self.log_path.read_text().splitlines() if self.log_path.exists() else []
        return [json.loads(line) for line in lines if line.startswith("{")]

    def wait(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def terminate(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def relay_env(database) -> dict:
    """Environment for a relay process on the test's database and the test broker."""
    return {**os.environ, "OKR_DATABASE_URL": database_url(database), "AMQP_URI": AMQP_URI}


@pytest.fixture
def relay_process(relay_env, bus_probe, tmp_path):
    """Start ``python -m okr_services.relay`` on the test's database and exchange:
    ``relay_process(*extra_args)`` → RelayProcess (JSON log lines in ``logs()``)."""
    started: list[RelayProcess] = []

    def start(*args: str) -> RelayProcess:
        log_path = tmp_path / f"relay-{len(started)}.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "okr_services.relay", "--exchange", bus_probe.exchange,
                 "--poll-interval", "0.005", *LEASE_ARGS, *args],
                env=relay_env, stdout=subprocess.DEVNULL, stderr=log,
            )
        started.append(RelayProcess(proc, log_path))
        return started[-1]

    yield start
    for relay in started:
        relay.terminate()
