"""The incremental path's statements run on the transaction's DBAPI cursor (perf):
same rows as through SQLAlchemy, and SQLAlchemy's exceptions on failure."""

import pytest
from sqlalchemy import create_engine, exc as sa_exc, select, text

from okr_shared.readmodels import storage as shared_storage
from okr_services.reporting import storage


@pytest.fixture
def engine():
    engine = create_engine("sqlite://")
    storage.migrate_schema(engine)
    yield engine
    engine.dispose()


def test_rows_are_inserted_then_updated_and_read_back_in_the_callers_transaction(engine):
    t = storage.LIVE["key_results"]
    with engine.begin() as conn:
        storage.write_row(conn, t, "acme/kr-1", {"tenant": "acme", "value": 1})
        storage.write_row(conn, t, "acme/kr-1", {"tenant": "acme", "value": 2})
        storage.write_row(conn, t, "acme/kr-2", {"tenant": "acme", "value": 3})
        rows = shared_storage._RowsOnDemand(conn, t)
        assert rows.get("acme/kr-1") == {"tenant": "acme", "value": 2}
        assert rows.get("globex/kr-1") is None and rows.get("acme/nope", "default") == "default"
        conn.rollback()  # the caller's transaction decides: nothing stays
    with engine.connect() as conn:
        assert conn.execute(select(t.c.key)).all() == []
    with engine.begin() as conn:
        storage.write_row(conn, t, "acme/kr-1", {"tenant": "acme", "value": 4})
    with engine.connect() as conn:
        assert conn.execute(select(t.c.tenant, t.c.key, t.c.doc)).all() == [("acme", "acme/kr-1", '{"tenant":"acme","value":4}')]


def test_a_failing_statement_raises_sqlalchemys_error_naming_the_problem(engine):
    t = storage.LIVE["key_results"]
    with engine.begin() as conn:
        conn.execute(text(f'DROP TABLE "{t.name}"'))
    with engine.begin() as conn, pytest.raises(sa_exc.OperationalError, match=f"no such table: {t.name}"):
        storage.write_row(conn, t, "acme/kr-1", {"tenant": "acme", "value": 1})
    with engine.begin() as conn, pytest.raises(sa_exc.OperationalError, match=f"no such table: {t.name}"):
        shared_storage._RowsOnDemand(conn, t).get("acme/kr-1")
