# nameko's fixtures hang without this, and the services run patched: the whole suite
# runs under eventlet, as production does (docs/adr/0030-…).
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # "Eventlet is deprecated" (a plain Warning): known
    import eventlet

eventlet.monkey_patch()

import os  # noqa: E402
import uuid  # noqa: E402

# No /metrics endpoint from the nameko containers the tests start in this process (the
# default port would collide between concurrent test runs); tests that scrape pick ports.
os.environ.setdefault("OKR_METRICS_PORT", "0")

import pytest  # noqa: E402
from sqlalchemy import text  # noqa: E402

import nameko  # noqa: E402

from tests.infra import AMQP_URI, BACKENDS  # noqa: E402 - the PostgreSQL runs carry the postgres marker

# nameko's RPC reply consumer reads ``AMQP_URI`` from its config at every call, not when the
# container starts: a test that starts a container inside ``nameko.config.patch(...)`` and
# calls it after the patch has ended would listen for replies on the default vhost ``/``.
# The test broker is therefore nameko's default for the whole run, so a run on a vhost of
# its own (OKR_TEST_AMQP_URI=.../okr-ci2) gets every reply.
nameko.config["AMQP_URI"] = AMQP_URI

POSTGRES_URL = os.environ.get(
    "OKR_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


class Database:
    """A fresh, migrated event store database for one test: a SQLite file, or a
    PostgreSQL schema of its own on the real server."""

    def __init__(self, backend: str, tmp_path):
        from okr_shared.eventstore import make_engine, migrate

        self.backend = backend
        if backend == "sqlite":
            self.url = f"sqlite:///{tmp_path}/eventstore.db"
            self.connect_args = {}
        else:
            self.schema = f"es_test_{uuid.uuid4().hex[:12]}"
            self.url = POSTGRES_URL
            self.connect_args = {"options": f"-csearch_path={self.schema}"}
            admin = make_engine(POSTGRES_URL)
            try:
                with admin.begin() as conn:
                    conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
            except Exception as e:  # pragma: no cover - environment problem
                raise RuntimeError(
                    f"PostgreSQL at {POSTGRES_URL} is needed by the conformance suite "
                    f"(set OKR_TEST_POSTGRES_URL or `docker compose up -d postgres`): {e}"
                ) from e
            finally:
                admin.dispose()
        self.engine = self.make_engine()
        migrate(self.engine)

    def make_engine(self, **kwargs):
        from okr_shared.eventstore import make_engine

        return make_engine(self.url, connect_args=self.connect_args, **kwargs)

    def close(self):
        self.engine.dispose()
        if self.backend == "postgres":
            from okr_shared.eventstore import make_engine

            admin = make_engine(POSTGRES_URL)
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
            admin.dispose()


@pytest.fixture(params=BACKENDS)
def database(request, tmp_path):
    db = Database(request.param, tmp_path)
    yield db
    db.close()


@pytest.fixture
def store(database):
    from okr_shared.eventstore import EventStore

    store = EventStore(database.engine)
    yield store
    store.close()
