"""Real-infrastructure helpers the integration and browser tests share (``tests.infra``):
fresh databases of one backend, re-publishing stored events, removing a test's queues and
exchanges."""

from __future__ import annotations

import os
import uuid

import pytest
from kombu import Connection, Exchange, Producer
from sqlalchemy import make_url, text

from okr_shared.bus import wire
from okr_shared.contracts import envelope_from_recorded
from okr_shared.eventstore import make_engine

AMQP_URI = os.environ.get("OKR_TEST_AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES_URL = os.environ.get("OKR_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")

#: The event store backends a fixture runs its tests on: the PostgreSQL runs carry the
#: ``postgres`` marker (``pytest -m "not postgres"`` runs without the server).
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
POSTGRES = BACKENDS[1]


def require_broker() -> str:
    """The real RabbitMQ's URI, after checking that it answers (fails the test saying
    which one is needed otherwise)."""
    try:
        with Connection(AMQP_URI, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as e:  # pragma: no cover - environment problem
        pytest.fail(f"RabbitMQ at {AMQP_URI} is needed (OKR_TEST_AMQP_URI): {e}")
    return AMQP_URI


def schema_url(schema: str) -> str:
    """POSTGRES_URL selecting ``schema`` (``options=-csearch_path=…``: a process started
    with the URL sees the schema's tables)."""
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


class Databases:
    """Fresh databases of one backend: SQLite files, or PostgreSQL schemas (the schema
    in the URL's ``options=-csearch_path=…``, so processes started with the URL see it)."""

    def __init__(self, backend: str, tmp_dir, prefix: str = "test"):
        self.backend = backend
        self.tmp_dir = tmp_dir
        self.prefix = prefix
        self.schemas: list[str] = []

    def new(self, label: str) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.tmp_dir}/{label}-{uuid.uuid4().hex[:6]}.db"
        schema = f"{self.prefix}_{uuid.uuid4().hex[:12]}"
        admin = make_engine(POSTGRES_URL)
        try:
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        except Exception as e:  # pragma: no cover - environment problem
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is needed (OKR_TEST_POSTGRES_URL): {e}")
        finally:
            admin.dispose()
        self.schemas.append(schema)
        return schema_url(schema)

    def drop(self) -> None:
        if not self.schemas:
            return
        admin = make_engine(POSTGRES_URL)
        with admin.begin() as conn:
            for schema in self.schemas:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def publish_again(exchange: str, *recorded) -> None:
    """Publish stored events to ``exchange`` once more (as a relay that crashed before
    its checkpoint would)."""
    with Connection(AMQP_URI) as conn:
        producer = Producer(conn.default_channel, exchange=Exchange(exchange, type="topic", durable=True))
        for event in recorded:
            envelope = envelope_from_recorded(event)
            props = wire.message_properties(envelope)
            producer.publish(envelope.SerializeToString(), routing_key=wire.routing_key(envelope.event_type),
                             headers=props.pop("application_headers"), **props)


def delete_bus_objects(queues, exchanges) -> None:
    """Delete a test's queues and exchanges (those already gone are skipped)."""
    with Connection(AMQP_URI) as conn:
        channel = conn.default_channel
        for q in queues:
            try:
                channel.queue_delete(q)
            except Exception:  # noqa: BLE001 - already gone
                channel = conn.channel()
        for ex in exchanges:
            try:
                channel.exchange_delete(ex)
            except Exception:  # noqa: BLE001
                channel = conn.channel()
