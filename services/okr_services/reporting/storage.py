"""The reporting service's own tables: the read models of the fold
(``okr_shared.readmodels.projections``) persisted row by row
(``okr_shared.readmodels.storage``) under the prefix ``reporting_``, loaded back; the
rebuild from the event store is ``bulk_rebuild.py``.

Schema (docs/adr/0009-reporting-storage-and-rebuild.md, 0010, 0019): one table per
read-model table, ``reporting_<table>`` (``reporting_cycles``, ``reporting_objectives``,
``reporting_key_results``, ``reporting_initiatives``, ``reporting_history``) and the key
results' chart points (``reporting_key_result_points``), each with the columns
``tenant``, ``key`` (the model's row key ``"<tenant>/<id>"``) and ``doc`` (the document
as JSON text, ``dumps``: orjson, sorted keys, compact) and a unique index on ``(tenant,
key)``. They live in the consumer's database (``OKR_REPORTING_DATABASE_URL``) next to
the consumer layer's offset tables; ``migrate_schema`` creates them by the Alembic
history ``reporting`` (okr_shared.db) when the service starts and before a rebuild.

- incremental: ``apply_event(conn, event)`` projects one event onto the live tables in
  the caller's transaction (the consumer layer's: it commits with the offset);
- ``load_model(conn, tenant=None)``: the model (one tenant's rows, or all) from the tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, Table, bindparam, delete, select

from okr_shared.bus.consumer import offsets
from okr_shared.readmodels import storage as rows
from okr_shared.readmodels.projections import POINTS, TABLES, Model
from okr_shared.readmodels.storage import build_model, dumps, loads, write_row  # noqa: F401 - this service's API

#: The ordered consumer's queue (and its name in okr_consumer_offsets).
CONSUMER = "reporting.read-models"
PREFIX = "reporting_"

#: Every table kept: the model's tables, and the key results' chart points in rows of
#: their own (``reporting_key_result_points``; a key result's row holds the rest).
STORED = (*TABLES, POINTS)

#: The live tables (for queries; constraint names do not matter to queries).
LIVE: dict[str, Table] = rows.tables_for(PREFIX, STORED)


def table_name(table: str, suffix: str = "") -> str:
    return f"{PREFIX}{table}{suffix}"


def migrate_schema(engine: Engine) -> None:
    """Bring the database's schema up to date: the consumer layer's tables and the live
    read-model tables, by the Alembic histories ``consumer`` and ``reporting``
    (``okr_shared.readmodels.storage.migrate_schema``)."""
    rows.migrate_schema(engine, LIVE, history="reporting")


def move_points_out(engine: Engine) -> int:
    """Split the key results' chart points out of their rows (the upgrade of ADR 0019;
    ``okr_shared.readmodels.storage.move_points_out``). Returns the rows split."""
    return rows.move_points_out(engine, LIVE)


def apply_event(conn, event) -> set[tuple[str, str]]:
    """Project one event onto the live tables in ``conn``'s transaction; returns the
    ``(table, key)`` pairs written."""
    return rows.apply_event(conn, event, LIVE)


def load_model(conn, tenant: str | None = None, tables: Iterable[str] = TABLES, *, build=None) -> Model:
    """The model held by the live tables: every row, or one tenant's (``build``: see
    ``okr_shared.readmodels.storage.load_model``)."""
    return rows.load_model(conn, LIVE, tenant, tables, build=build)


def read_model_rows(conn, tenant: str | None = None,
                    tables: Iterable[str] = TABLES) -> dict[str, list[tuple[str, str]]]:
    """The live tables' rows of the model, unparsed (``build_model`` parses them)."""
    return rows.read_model_rows(conn, LIVE, tenant, tables)


def dump_tables(conn, names: Iterable[str] | None = None) -> dict[str, list[tuple[str, str, str]]]:
    """Every row of the live tables as stored (tenant, key, doc text), sorted: for
    byte-for-byte comparisons."""
    out = {}
    for name in names or STORED:
        t = LIVE[name]
        out[name] = [tuple(r) for r in conn.execute(select(t.c.tenant, t.c.key, t.c.doc).order_by(t.c.tenant, t.c.key))]
    return out


def model_dumps(model: Model) -> str:
    return json.dumps(model, sort_keys=True)


_OFFSET_OF = select(offsets.c.last_position).where(offsets.c.consumer == bindparam("consumer"))


def offset_of(conn, consumer: str = CONSUMER) -> int | None:
    return conn.execute(_OFFSET_OF, {"consumer": consumer}).scalar()


def clear(conn) -> None:
    """Delete every row of the live tables (tests)."""
    rows.forget_cached(conn)
    for t in LIVE.values():
        conn.execute(delete(t))


Row = dict[str, Any]
