"""okr_shared.dbapi: compiled once per dialect, run on the transaction's cursor, errors
as SQLAlchemy's."""

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, create_engine, exc as sa_exc, insert, select
from sqlalchemy.dialects import postgresql

from okr_shared import dbapi

t = Table("things", MetaData(), Column("id", Integer, primary_key=True), Column("name", String(20)))
READ = select(t.c.name).where(t.c.id == bindparam("id"))
WRITE = insert(t).values(id=bindparam("id"), name=bindparam("name"))


def test_statements_compile_once_per_dialect_with_their_parameter_order():
    engine = create_engine("sqlite://")
    sqlite = dbapi.compiled(READ, engine.dialect)
    assert sqlite == ("SELECT things.name \nFROM things \nWHERE things.id = ?", ("id",))
    assert dbapi.compiled(READ, engine.dialect) is sqlite
    pg = dbapi.compiled(WRITE, postgresql.psycopg2.dialect())
    assert pg == ("INSERT INTO things (id, name) VALUES (%(id)s, %(name)s)", None)


def test_rows_written_and_read_in_the_callers_transaction():
    engine = create_engine("sqlite://")
    t.metadata.create_all(engine)
    with engine.connect() as conn:
        with conn.begin():
            dbapi.run(conn, dbapi.compiled(WRITE, conn.dialect), {"id": 1, "name": "a"}).close()
            assert dbapi.scalar(conn, dbapi.compiled(READ, conn.dialect), {"id": 1}) == "a"
            assert dbapi.scalar(conn, dbapi.compiled(READ, conn.dialect), {"id": 2}) is None
        with conn.begin() as trans:
            dbapi.run(conn, dbapi.compiled(WRITE, conn.dialect), {"id": 2, "name": "b"}).close()
            trans.rollback()
        assert conn.execute(select(t.c.id)).scalars().all() == [1]


def test_errors_are_sqlalchemys_naming_the_problem():
    engine = create_engine("sqlite://")
    t.metadata.create_all(engine)
    with engine.begin() as conn:
        dbapi.run(conn, dbapi.compiled(WRITE, conn.dialect), {"id": 1, "name": "a"}).close()
        with pytest.raises(sa_exc.IntegrityError, match="UNIQUE constraint failed: things.id"):
            dbapi.run(conn, dbapi.compiled(WRITE, conn.dialect), {"id": 1, "name": "again"})
