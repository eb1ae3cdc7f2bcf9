"""The reporting service's own tables: the read models of ``projections.py`` persisted
row by row, loaded back, and rebuilt from the event store.

Schema (docs/adr/0009-reporting-storage-and-rebuild.md): one table per read-model table,
``reporting_<table>`` (``reporting_cycles``, ``reporting_objectives``,
``reporting_key_results``, ``reporting_initiatives``, ``reporting_history``), each with
the columns ``tenant``, ``key`` (the model's row key ``"<tenant>/<id>"``) and ``doc`` (the
document as JSON text, ``json.dumps(doc, sort_keys=True)``); primary key
``(tenant, key)``. They live in the consumer's database (``OKR_REPORTING_DATABASE_URL``)
next to the consumer layer's offset tables; ``ensure_schema`` creates them (idempotent)
when the service starts, the rebuild creates them too.

- incremental: ``apply_event(conn, event)`` loads only the rows the event reads (the fold
  reads at most one entity row per event; history rows are never read), runs
  ``project`` and writes exactly the touched rows, in the caller's transaction (the
  consumer layer's: it commits with the offset);
- ``load_model(conn, tenant=None)``: the model (one tenant's rows, or all) from the tables;
- ``rebuild(engine, store, ...)``: fold the whole store into NEW tables
  (``reporting_<table>_next``) in chunks with a progress callback, then in ONE
  transaction (holding the consumer's offset row, so the running consumer waits) apply
  to the new tables whatever the consumer applied past the rebuilt position meanwhile,
  rename the live tables away and the new ones in, drop the old and set the consumer's
  offset to the position the new tables hold: the incremental consumer continues from
  there seamlessly. A rebuild that fails leaves the live tables and the offset untouched.

Primary-key constraints get a name unique to their build (PostgreSQL keeps an index's
name when its table is renamed; a fixed name would clash with the next rebuild).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    delete,
    insert,
    inspect,
    select,
    text,
    update,
)

from okr_shared.bus.consumer import ensure_schema as ensure_consumer_schema
from okr_shared.bus.consumer import offsets

from .projections import TABLES, Model, new_model, project

#: The ordered consumer's queue (and its name in okr_consumer_offsets).
CONSUMER = "reporting.read-models"
PREFIX = "reporting_"
NEXT = "_next"
OLD = "_old"


def table_name(table: str, suffix: str = "") -> str:
    return f"{PREFIX}{table}{suffix}"


def _table(metadata: MetaData, table: str, suffix: str = "", token: str = "live") -> Table:
    return Table(
        table_name(table, suffix),
        metadata,
        Column("tenant", String(64), nullable=False),
        Column("key", String(400), nullable=False),
        Column("doc", Text, nullable=False),
        PrimaryKeyConstraint("tenant", "key", name=f"pk_{PREFIX}{table}_{token}"),
    )


_metadata = MetaData()
#: The live tables (for queries; constraint names do not matter to queries).
LIVE: dict[str, Table] = {t: _table(_metadata, t) for t in TABLES}


def dumps(doc: dict) -> str:
    """How a document is written: sorted keys (rows compare byte for byte)."""
    return json.dumps(doc, sort_keys=True)


def ensure_schema(engine: Engine) -> None:
    """Create the consumer layer's tables and the live read-model tables if missing."""
    ensure_consumer_schema(engine)
    existing = set(inspect(engine).get_table_names())
    token = uuid.uuid4().hex[:8]
    md = MetaData()
    missing = [_table(md, t, token=token) for t in TABLES if table_name(t) not in existing]
    for attempt in range(3):
        try:
            md.create_all(engine, tables=missing, checkfirst=True)
            return
        except Exception:  # another instance created one between check and create
            if attempt == 2:
                raise
            time.sleep(0.05 * (attempt + 1))


# ---------------------------------------------------------------------- loading


def load_model(conn, tenant: str | None = None, tables: Iterable[str] = TABLES) -> Model:
    """The model held by the live tables: every row, or one tenant's."""
    model = new_model()
    for name in tables:
        t = LIVE[name]
        query = select(t.c.key, t.c.doc)
        if tenant is not None:
            query = query.where(t.c.tenant == tenant)
        model[name] = {key: json.loads(doc) for key, doc in conn.execute(query)}
    return model


def dump_tables(conn, names: Iterable[str] | None = None) -> dict[str, list[tuple[str, str, str]]]:
    """Every row of the live tables as stored (tenant, key, doc text), sorted: for
    byte-for-byte comparisons."""
    out = {}
    for name in names or TABLES:
        t = LIVE[name]
        out[name] = [tuple(r) for r in conn.execute(select(t.c.tenant, t.c.key, t.c.doc).order_by(t.c.tenant, t.c.key))]
    return out


def model_dumps(model: Model) -> str:
    return json.dumps(model, sort_keys=True)


# ------------------------------------------------------------------ incremental


class _RowsOnDemand(dict):
    """A model table that loads a row from the database the first time the fold asks
    for it (the fold only reads entity rows with ``.get``)."""

    def __init__(self, conn, table: Table):
        super().__init__()
        self._conn = conn
        self._table = table

    def get(self, key, default=None):
        if key not in self:
            t = self._table
            doc = self._conn.execute(select(t.c.doc).where(t.c.tenant == key.split("/", 1)[0], t.c.key == key)).scalar()
            if doc is None:
                return default
            self[key] = json.loads(doc)
        return dict.get(self, key, default)


def apply_event(conn, event, tables: dict[str, Table] | None = None) -> set[tuple[str, str]]:
    """Project one event onto the live tables (or ``tables``) in ``conn``'s transaction:
    load the rows it reads, ``project``, write the touched rows (update, else insert).
    Returns them."""
    tables = LIVE if tables is None else tables
    model = {name: _RowsOnDemand(conn, tables[name]) for name in TABLES}
    touched = project(model, event)
    for name, key in sorted(touched):
        write_row(conn, tables[name], key, model[name][key])
    return touched


def write_row(conn, t: Table, key: str, doc: dict) -> None:
    tenant = doc["tenant"]
    text_ = dumps(doc)
    done = conn.execute(update(t).where(t.c.tenant == tenant, t.c.key == key).values(doc=text_)).rowcount
    if not done:
        conn.execute(insert(t).values(tenant=tenant, key=key, doc=text_))


# ---------------------------------------------------------------------- rebuild


class RebuildFailed(Exception):
    """The rebuild stopped before the swap: the live tables were not touched."""


def _drop(conn, names: Iterable[str]) -> None:
    for name in names:
        conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))


def rebuild(engine: Engine, store, *, progress: Callable[[int, int], None] | None = None,
            chunk: int = 2000, consumer: str = CONSUMER, to_position: int | None = None,
            before_swap: Callable[[], None] | None = None) -> int:
    """Fold the whole store (up to its head now, or ``to_position``) into new tables and
    swap them in; returns the position the swapped-in tables hold (the rebuilt position,
    or the consumer's offset if it had got further meanwhile).

    ``progress(done, total)`` is called after each chunk of events (``total``: the
    position reached at the end). History rows are written and evicted per chunk; the
    entity rows stay in memory until the end. Any exception before or during the swap
    (including one raised by ``progress`` or ``before_swap``) drops the new tables and
    leaves the live ones and the offset as they were.
    """
    ensure_schema(engine)
    head = store.head_position() if to_position is None else to_position
    token = uuid.uuid4().hex[:8]
    md = MetaData()
    nxt = {t: _table(md, t, NEXT, token) for t in TABLES}
    with _write_transaction(engine) as conn:
        _drop(conn, [table_name(t, NEXT) for t in TABLES])
        md.create_all(conn)
    try:
        model = new_model()
        done = 0
        if head > 0:
            events = store.read_all(1, to_position=head, batch_size=chunk)
            batch: list = []
            for event in events:
                batch.append(event)
                if len(batch) >= chunk:
                    done = _fold_chunk(engine, model, batch, nxt["history"])
                    batch = []
                    if progress:
                        progress(done, head)
            if batch:
                done = _fold_chunk(engine, model, batch, nxt["history"])
        with _write_transaction(engine) as conn:
            for name in TABLES:
                if name == "history":
                    continue
                rows = [{"tenant": doc["tenant"], "key": key, "doc": dumps(doc)} for key, doc in model[name].items()]
                for i in range(0, len(rows), 1000):
                    conn.execute(insert(nxt[name]), rows[i:i + 1000])
        if progress:
            progress(head, head)
        if before_swap:
            before_swap()
        return _swap(engine, store, consumer, head, nxt)
    except BaseException as e:
        try:
            with _write_transaction(engine) as conn:
                _drop(conn, [table_name(t, NEXT) for t in TABLES])
        finally:
            if isinstance(e, Exception):
                raise RebuildFailed(f"rebuild failed before the swap; live tables untouched: {e!r}") from e
            raise


def _fold_chunk(engine: Engine, model: Model, batch: list, history: Table) -> int:
    for event in batch:
        project(model, event)
    rows = [{"tenant": doc["tenant"], "key": key, "doc": dumps(doc)} for key, doc in model["history"].items()]
    if rows:
        with _write_transaction(engine) as conn:
            conn.execute(insert(history), rows)
    model["history"].clear()  # never read by the fold: evicted once written
    return batch[-1].position


def _swap(engine: Engine, store, consumer: str, head: int, nxt: dict[str, Table]) -> int:
    """One transaction: lock the consumer's offset row (waiting for its transaction in
    flight); if the consumer got past ``head`` meanwhile, apply the events it applied since
    (``head``, offset] to the new tables too; live → _old, _next → live, drop _old;
    offset := the position the new tables hold. Returns it."""
    with _write_transaction(engine) as conn:
        query = select(offsets.c.last_position).where(offsets.c.consumer == consumer)
        current = conn.execute(query.with_for_update()).scalar()
        position = head
        if current is not None and current > head:
            for event in store.read_all(head + 1, to_position=current):
                apply_event(conn, event, nxt)
            position = current
        _drop(conn, [table_name(t, OLD) for t in TABLES])
        for t in TABLES:
            conn.execute(text(f'ALTER TABLE "{table_name(t)}" RENAME TO "{table_name(t, OLD)}"'))
            conn.execute(text(f'ALTER TABLE "{table_name(t, NEXT)}" RENAME TO "{table_name(t)}"'))
        _drop(conn, [table_name(t, OLD) for t in TABLES])
        now = time.time_ns() // 1000
        if current is None:
            conn.execute(insert(offsets).values(consumer=consumer, last_position=position, updated_at_us=now))
        else:
            conn.execute(update(offsets).where(offsets.c.consumer == consumer)
                         .values(last_position=position, updated_at_us=now))
    return position


@contextlib.contextmanager
def _write_transaction(engine: Engine):
    """A write transaction; on SQLite ``BEGIN IMMEDIATE`` under the consumer layer's
    per-file lock of this process (a consumer in the same process must not busy-wait on
    the file while we hold it: NAMEKO-NOTES.md)."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    from okr_shared.bus import consumer as layer

    with layer._sqlite_locks_guard:
        lock = layer._sqlite_locks.setdefault(str(engine.url.database), threading.Lock())
    with lock, engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
        yield conn


def offset_of(conn, consumer: str = CONSUMER) -> int | None:
    return conn.execute(select(offsets.c.last_position).where(offsets.c.consumer == consumer)).scalar()


def clear(conn) -> None:
    """Delete every row of the live tables (tests)."""
    for t in LIVE.values():
        conn.execute(delete(t))


Row = dict[str, Any]
