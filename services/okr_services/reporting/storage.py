"""The reporting service's own tables: the read models of ``projections.py`` persisted
row by row, loaded back, and rebuilt from the event store.

Schema (docs/adr/0009-reporting-storage-and-rebuild.md, 0010): one table per read-model
table, ``reporting_<table>`` (``reporting_cycles``, ``reporting_objectives``,
``reporting_key_results``, ``reporting_initiatives``, ``reporting_history``), each with
the columns ``tenant``, ``key`` (the model's row key ``"<tenant>/<id>"``) and ``doc`` (the
document as JSON text, ``dumps``: orjson, sorted keys, compact) and a unique index on
``(tenant, key)``. They live in the consumer's database (``OKR_REPORTING_DATABASE_URL``)
next to the consumer layer's offset tables; ``migrate_schema`` creates them by the
Alembic history ``reporting`` (okr_shared.db) when the service starts and before a
rebuild.

- incremental: ``apply_event(conn, event)`` loads only the rows the event reads (the fold
  reads at most one entity row per event; history rows are never read), runs
  ``project`` and writes exactly the touched rows, in the caller's transaction (the
  consumer layer's: it commits with the offset);
- ``load_model(conn, tenant=None)``: the model (one tenant's rows, or all) from the tables;
- ``rebuild(engine, store, ...)``: fold the whole store (raw ``scan`` pages, in-process or
  in tenant-partitioned worker processes) into NEW tables (``reporting_<table>_next``)
  with a progress callback, index them, then in ONE
  transaction (holding the consumer's offset row, so the running consumer waits) apply
  to the new tables whatever the consumer applied past the rebuilt position meanwhile,
  rename the live tables away and the new ones in, drop the old and set the consumer's
  offset to the position the new tables hold: the incremental consumer continues from
  there seamlessly. A rebuild that fails leaves the live tables and the offset untouched.

Unique indexes get a name unique to their build (PostgreSQL keeps an index's name when
its table is renamed; a fixed name would clash with the next rebuild).
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
import weakref
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from orjson import OPT_SORT_KEYS
from orjson import dumps as _orjson_dumps
from orjson import loads as _orjson_loads
from sqlalchemy import (
    Column,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    insert,
    inspect,
    select,
    text,
    update,
)

from okr_shared import dbapi
from okr_shared.bus.consumer import offsets
from okr_shared.db import migrate, sqlite_write_lock, write_transaction

from .projections import POINTS, TABLES, Model, fold_rows, new_model, project

#: The ordered consumer's queue (and its name in okr_consumer_offsets).
CONSUMER = "reporting.read-models"
PREFIX = "reporting_"
NEXT = "_next"
OLD = "_old"

#: Every table kept: the model's tables, and the key results' chart points in rows of
#: their own (``reporting_key_result_points``; a key result's row holds the rest).
STORED = (*TABLES, POINTS)


def table_name(table: str, suffix: str = "", prefix: str = PREFIX) -> str:
    return f"{prefix}{table}{suffix}"


#: The points' keys compare byte by byte (PostgreSQL's default collations may not; SQLite's
#: BINARY does): a key result's points are the index range ("<kr key>/", "<kr key>0").
_BYTEWISE_KEY = String(400).with_variant(String(400, collation="C"), "postgresql")


def _table(metadata: MetaData, table: str, suffix: str = "", token: str = "live", indexed: bool = True,
           prefix: str = PREFIX) -> Table:
    """A read-model table; ``indexed``: with its unique ``(tenant, key)`` index (a
    rebuild loads its new tables without it and builds it once at the end)."""
    t = Table(
        table_name(table, suffix, prefix),
        metadata,
        Column("tenant", String(64), nullable=False),
        Column("key", _BYTEWISE_KEY if table == POINTS else String(400), nullable=False),
        Column("doc", Text, nullable=False),
    )
    if indexed:
        _index(t, table, token, prefix)
    return t


def _index(t: Table, table: str, token: str, prefix: str = PREFIX) -> Index:
    return Index(f"ux_{prefix}{table}_{token}", t.c.tenant, t.c.key, unique=True)


def tables_for(prefix: str, names: Iterable[str] = TABLES) -> dict[str, Table]:
    """Read-model tables of the same shape under another prefix: another service that
    keeps its own copy of (some of) these read models with the same fold (the
    notification service: ``notification_rm_``), never reading this service's tables.
    With ``key_results`` come its points (``POINTS``)."""
    names = tuple(names)
    if "key_results" in names and POINTS not in names:
        names += (POINTS,)
    md = MetaData()
    return {t: _table(md, t, prefix=prefix) for t in names}


_metadata = MetaData()
#: The live tables (for queries; constraint names do not matter to queries).
LIVE: dict[str, Table] = {t: _table(_metadata, t) for t in STORED}


def dumps(doc: dict) -> str:
    """How a document is written, the one way every path writes it: orjson with sorted
    keys, compact (rows compare byte for byte). What orjson refuses (an integer beyond
    64 bits) falls back to the standard library."""
    try:
        return _orjson_dumps(doc, option=OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


loads = _orjson_loads


def migrate_schema(engine: Engine, tables: dict[str, Table] | None = None, history: str = "reporting") -> None:
    """Bring the database's schema up to date: the consumer layer's tables and the live
    read-model tables (or another service's copies, ``tables`` from ``tables_for``, with
    that service's Alembic ``history``), each history by its migrations
    (``okr_shared.db.migrate``). A database from before the chart points had rows of
    their own has its key results' points moved out (``move_points_out``) once the
    points table exists."""
    wanted = LIVE if tables is None else tables
    existing = set(inspect(engine).get_table_names())
    split = POINTS in wanted and "key_results" in wanted and wanted["key_results"].name in existing \
        and wanted[POINTS].name not in existing
    migrate(engine, "consumer")
    migrate(engine, history)
    if split:
        move_points_out(engine, wanted)


def move_points_out(engine: Engine, tables: dict[str, Table] | None = None) -> int:
    """The upgrade from the layout that kept a key result's chart points in its row:
    every such row becomes its head row and one row per point, in one transaction (a
    row already split is left alone, so a second instance doing it too changes
    nothing). Returns the rows split."""
    tables = LIVE if tables is None else tables
    krs, points = tables["key_results"], tables[POINTS]
    split = 0
    with write_transaction(engine) as conn:
        _forget_cached(conn)
        for tenant, key, text_ in conn.execute(select(krs.c.tenant, krs.c.key, krs.c.doc)).all():
            doc = loads(text_)
            if "points" not in doc:
                continue
            head, point_rows = _stored_rows(key, doc)
            conn.execute(update(krs).where(krs.c.tenant == tenant, krs.c.key == key).values(doc=head))
            if point_rows:
                conn.execute(insert(points), [{"tenant": tenant, "key": k, "doc": d} for k, d in point_rows])
            split += 1
    return split


# ------------------------------------------------------- a key result's chart points
#
# The model keeps a key result's chart in its row (``points``, sorted by effective date
# and stream order, and ``roots``: check-in id -> the original check-in of its correction
# chain). Storage keeps the row without them, and each point in a row of POINTS keyed
# "<kr row key>/<root check-in id>" holding the point and ``ids``: the check-ins whose
# root it is. A check-in thus writes one small point row and the small head row, however
# long the chart (the whole row with every point was ~35 KB read, parsed, dumped and
# written per check-in after 240 check-ins).

_KR_PARTS = frozenset({"points", "roots"})


def _kr_head(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in _KR_PARTS}


def _stored_rows(key: str, doc: dict) -> tuple[str, list[tuple[str, str]]]:
    """A key result's model row as stored: its head row text, and its points as (point
    row key, point row text)."""
    ids: dict[str, list[str]] = {}
    for check_in_id, root in doc["roots"].items():
        ids.setdefault(root, []).append(check_in_id)
    points = [(f"{key}/{p['check_in_id']}", dumps({**p, "ids": sorted(ids.get(p["check_in_id"], ()))}))
              for p in doc["points"]]
    return dumps(_kr_head(doc)), points


def _point_row(kr: dict, root: str) -> dict:
    """The point row doc of ``root``'s point in the key result row ``kr``."""
    points = kr["points"]
    for i in range(len(points) - 1, -1, -1):  # the usual case: the last point
        if points[i]["check_in_id"] == root:
            return {**points[i], "ids": sorted(c for c, r in kr["roots"].items() if r == root)}
    raise KeyError(f"key result {kr.get('key_result_id')!r} has no point of check-in {root!r}")


def _point_order(point: dict) -> tuple:
    return point["effective_date"], point["seq"]


def _attach(kr: dict, points: list[dict]) -> dict:
    """The key result row ``kr`` (a head row) with its points (point row docs, any
    order) back in place: the model's row."""
    points.sort(key=_point_order)
    roots = {}
    for point in points:
        ids = point.pop("ids")
        if len(ids) == 1:  # the usual case: a check-in never corrected
            roots[ids[0]] = point["check_in_id"]
        else:
            roots.update(dict.fromkeys(ids, point["check_in_id"]))
    kr["points"] = points
    kr["roots"] = roots
    return kr


def _point_rows(conn, points: Table, tenant: str | None) -> list[tuple[str, str]]:
    """Every point row (key, doc text) of ``tenant`` (or all), read on the DBAPI cursor
    (a tenant's model holds thousands: SQLAlchemy's result rows were most of the load's
    time)."""
    statements = _statements_of(points)
    statement, params = (statements.tenant_rows, {"tenant": tenant}) if tenant is not None else (statements.all_rows, {})
    cursor = dbapi.run(conn, dbapi.compiled(statement, conn.dialect), params)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def _attach_all(krs: dict[str, dict], rows: list[tuple[str, str]]) -> None:
    """The point rows attached to their key results."""
    by_kr: dict[str, list[dict]] = {}
    for key, text_ in rows:
        kr_key = key[:key.rindex("/")]
        found = by_kr.get(kr_key)
        if found is None:
            found = by_kr[kr_key] = []
        found.append(loads(text_))
    for key, kr in krs.items():
        _attach(kr, by_kr.get(key, []))


def load_rows(conn, tables: dict[str, Table], name: str, tenant: str, ids: Iterable[str]) -> dict[str, dict]:
    """The rows of ``tables[name]`` of these entity ids (key results with their points)."""
    t = tables[name]
    keys = [f"{tenant}/{i}" for i in ids if i]
    if not keys:
        return {}
    rows = {key: loads(doc) for key, doc in conn.execute(
        select(t.c.key, t.c.doc).where(t.c.tenant == tenant, t.c.key.in_(keys)))}
    if name == "key_results":
        for key, kr in rows.items():
            _attach(kr, _kr_points(conn, tables[POINTS], tenant, key))
    return rows


def _kr_points(conn, points: Table, tenant: str, key: str) -> list[dict]:
    statement = dbapi.compiled(_statements_of(points).range, conn.dialect)
    cursor = dbapi.run(conn, statement, {"tenant": tenant, "lo": key + "/", "hi": key + "0"})
    try:
        return [loads(row[0]) for row in cursor.fetchall()]
    finally:
        cursor.close()


class _KeyResultCache:
    """The key result rows (with their points) the incremental path last wrote, each
    with the exact head row text it wrote: a row is taken from here only while the
    stored head row is still that text (a rolled-back transaction, a rebuild's swap or
    another writer changes it: the row is then read from the tables). Taking a row
    removes it (the fold changes it in place); the write puts it back."""

    def __init__(self, size: int = 256):
        self.size = size
        self._rows: dict[str, tuple[str, dict]] = {}

    def take(self, key: str, head_text: str) -> dict | None:
        found = self._rows.pop(key, None)
        return found[1] if found is not None and found[0] == head_text else None

    def put(self, key: str, head_text: str, doc: dict) -> None:
        rows = self._rows
        rows.pop(key, None)
        rows[key] = (head_text, doc)
        if len(rows) > self.size:
            del rows[next(iter(rows))]  # the least recently written


#: Per database (its engine's pool: an engine and its execution-option copies share it)
#: and table name. The rows of one database at one head row text are the same in every
#: process (the fold is deterministic), so a rebuild's swap leaves the cache right;
#: storage's own bulk rewrites (``clear``, the swap, ``move_points_out``) drop it anyway.
_kr_caches: weakref.WeakKeyDictionary[Any, dict[str, _KeyResultCache]] = weakref.WeakKeyDictionary()


def _kr_cache(conn, t: Table) -> _KeyResultCache:
    by_table = _kr_caches.get(conn.engine.pool)
    if by_table is None:
        by_table = _kr_caches[conn.engine.pool] = {}
    found = by_table.get(t.name)
    if found is None:
        found = by_table[t.name] = _KeyResultCache()
    return found


def _forget_cached(conn) -> None:
    _kr_caches.pop(conn.engine.pool, None)


# ---------------------------------------------------------------------- loading


def load_model(conn, tenant: str | None = None, tables: Iterable[str] = TABLES,
               live: dict[str, Table] | None = None, *, build=None) -> Model:
    """The model held by the live tables (or ``live``): every row, or one tenant's.
    The rows are read here; ``build`` (default ``build_model``) makes the model of
    them — the service passes it run in eventlet's thread pool (parsing a large
    tenant's rows would stop its event consumer)."""
    return (build or build_model)(read_model_rows(conn, tenant, tables, live))


def read_model_rows(conn, tenant: str | None = None, tables: Iterable[str] = TABLES,
                    live: dict[str, Table] | None = None) -> dict[str, list[tuple[str, str]]]:
    """The stored rows of the model, unparsed: ``{table: [(key, doc text)]}``, the key
    results' point rows under ``POINTS``."""
    live = LIVE if live is None else live
    raw: dict[str, list[tuple[str, str]]] = {}
    for name in tables:
        t = live[name]
        query = select(t.c.key, t.c.doc)
        if tenant is not None:
            query = query.where(t.c.tenant == tenant)
        raw[name] = [tuple(row) for row in conn.execute(query)]
        if name == "key_results":
            raw[POINTS] = _point_rows(conn, live[POINTS], tenant)
    return raw


def build_model(raw: dict[str, list[tuple[str, str]]]) -> Model:
    """The model of ``read_model_rows``' rows (pure: parses and attaches the points)."""
    model = new_model()
    for name, rows in raw.items():
        if name != POINTS:
            model[name] = {key: loads(doc) for key, doc in rows}
    if "key_results" in model:
        _attach_all(model["key_results"], raw[POINTS])
    return model


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


# ------------------------------------------------------------------ incremental


class _Statements:
    """The three statements of the incremental path on one table, built once and run
    on the transaction's DBAPI cursor (``okr_shared.dbapi``): building a Core statement
    and its cache key per event was a third of the handler's CPU, and even a prebuilt
    statement costs ~80 µs through ``Connection.execute`` against ~6 µs on the cursor."""

    __slots__ = ("read", "update", "insert", "range", "tenant_rows", "all_rows")

    def __init__(self, t: Table):
        self.read = select(t.c.doc).where(t.c.tenant == bindparam("tenant"), t.c.key == bindparam("key"))
        self.update = (update(t).where(t.c.tenant == bindparam("w_tenant"), t.c.key == bindparam("w_key"))
                       .values(doc=bindparam("doc")))
        self.insert = insert(t).values(tenant=bindparam("tenant"), key=bindparam("key"), doc=bindparam("doc"))
        # the rows whose keys lie between two keys (a key result's points)
        self.range = select(t.c.doc).where(t.c.tenant == bindparam("tenant"), t.c.key > bindparam("lo"),
                                           t.c.key < bindparam("hi"))
        self.tenant_rows = select(t.c.key, t.c.doc).where(t.c.tenant == bindparam("tenant"))
        self.all_rows = select(t.c.key, t.c.doc)


_statements: weakref.WeakKeyDictionary[Table, _Statements] = weakref.WeakKeyDictionary()


def _statements_of(t: Table) -> _Statements:
    found = _statements.get(t)
    if found is None:
        found = _statements[t] = _Statements(t)
    return found


class _RowsOnDemand(dict):
    """A model table that loads a row from the database the first time the fold asks
    for it (the fold only reads entity rows with ``.get``)."""

    def __init__(self, conn, table: Table):
        super().__init__()
        self._conn = conn
        self._table = table

    def get(self, key, default=None):
        if key not in self:
            conn = self._conn
            doc = dbapi.scalar(conn, dbapi.compiled(_statements_of(self._table).read, conn.dialect),
                               {"tenant": key.split("/", 1)[0], "key": key})
            if doc is None:
                return default
            self[key] = loads(doc)
        return dict.get(self, key, default)


class _KeyResultsOnDemand(_RowsOnDemand):
    """The key results table of the incremental path: a row is its head row with its
    points attached — from the cache while the stored head row is the one the cache
    wrote, else read from the points table. ``loaded``: key -> the head row text read."""

    def __init__(self, conn, table: Table, points: Table):
        super().__init__(conn, table)
        self._points = points
        self.cache = _kr_cache(conn, table)
        self.loaded: dict[str, str] = {}

    def get(self, key, default=None):
        if key not in self:
            conn = self._conn
            tenant = key.split("/", 1)[0]
            head_text = dbapi.scalar(conn, dbapi.compiled(_statements_of(self._table).read, conn.dialect),
                                     {"tenant": tenant, "key": key})
            if head_text is None:
                return default
            doc = self.cache.take(key, head_text)
            if doc is None:
                doc = _attach(loads(head_text), _kr_points(conn, self._points, tenant, key))
            self[key] = doc
            self.loaded[key] = head_text
        return dict.get(self, key, default)


def apply_event(conn, event, tables: dict[str, Table] | None = None) -> set[tuple[str, str]]:
    """Project one event onto the live tables (or ``tables``) in ``conn``'s transaction:
    load the rows it reads, ``project``, write the touched rows (update, else insert) —
    a key result as its head row and the one point the event wrote. Returns them."""
    tables = LIVE if tables is None else tables
    model: dict[str, _RowsOnDemand] = {name: _RowsOnDemand(conn, tables[name]) for name in TABLES if name in tables}
    krs = None
    if "key_results" in model:
        krs = model["key_results"] = _KeyResultsOnDemand(conn, tables["key_results"], tables[POINTS])
    touched = {(name, key) for name, key in project(model, event) if name in model or (name == POINTS and krs)}
    for name, key in sorted(touched):
        if name == POINTS:
            kr_key, _, root = key.rpartition("/")
            kr = krs[kr_key]
            _write_text(conn, tables[POINTS], kr["tenant"], key, dumps(_point_row(kr, root)))
        elif name == "key_results":
            doc = krs[key]
            head_text = dumps(_kr_head(doc))
            _write_text(conn, tables[name], doc["tenant"], key, head_text)
            krs.loaded[key] = head_text
        else:
            write_row(conn, tables[name], key, model[name][key])
    if krs is not None:
        for key, head_text in krs.loaded.items():  # written or only read: back to the cache
            krs.cache.put(key, head_text, krs[key])
    return touched


def write_row(conn, t: Table, key: str, doc: dict) -> None:
    _write_text(conn, t, doc["tenant"], key, dumps(doc))


def _write_text(conn, t: Table, tenant: str, key: str, text_: str) -> None:
    statements = _statements_of(t)
    cursor = dbapi.run(conn, dbapi.compiled(statements.update, conn.dialect),
                       {"w_tenant": tenant, "w_key": key, "doc": text_})
    done = cursor.rowcount
    cursor.close()
    if not done:
        dbapi.run(conn, dbapi.compiled(statements.insert, conn.dialect),
                  {"tenant": tenant, "key": key, "doc": text_}).close()


# ---------------------------------------------------------------------- rebuild


class RebuildFailed(Exception):
    """The rebuild stopped before the swap: the live tables were not touched."""


def _drop(conn, names: Iterable[str]) -> None:
    for name in names:
        conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))


def rebuild(engine: Engine, store, *, progress: Callable[[int, int], None] | None = None,
            chunk: int = 5000, consumer: str = CONSUMER, to_position: int | None = None,
            before_swap: Callable[[], None] | None = None, workers: int | None = None) -> int:
    """Fold the whole store (up to its head now, or ``to_position``) into new tables and
    swap them in; returns the position the swapped-in tables hold (the rebuilt position,
    or the consumer's offset if it had got further meanwhile).

    The bulk path: the store's raw ``scan`` pages (``chunk`` events each) go through
    ``projections.fold_rows`` — the same fold as the incremental consumer's — with the
    cyclic GC paused (the model is acyclic; its growing row count is what made full
    collections the fold's main cost); each page's history rows are handed to a writer
    thread on its own connection (SQLite: ``executemany`` under the file's write lock;
    PostgreSQL: ``COPY``); entity rows are written at the end; the new tables are loaded
    without their unique index, built once before the swap.

    ``workers`` > 1 folds in that many processes (``python -m
    okr_services.reporting.rebuild_worker``), each taking the tenants whose CRC-32 falls
    in its partition (tenants share no row, so the partitions' rows are exactly the
    single fold's). Default: ``OKR_REBUILD_WORKERS``, else one per CPU (at most 4) when
    the store holds at least ``PARALLEL_FROM`` events, else 1.

    ``progress(done, total)`` is called after each page (``total``: the position reached
    at the end; with workers, ``done`` is the slowest worker's position). Any exception
    before or during the swap (including one raised by ``progress`` or ``before_swap``,
    or a failed worker) drops the new tables and leaves the live ones and the offset as
    they were.
    """
    migrate_schema(engine)
    head = store.head_position() if to_position is None else to_position
    workers = default_workers(head) if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, not {workers!r}")
    token = uuid.uuid4().hex[:8]
    md = MetaData()
    nxt = {t: _table(md, t, NEXT, token, indexed=False) for t in STORED}
    with write_transaction(engine) as conn:
        _drop(conn, [table_name(t, NEXT) for t in STORED])
        md.create_all(conn)
    try:
        if head > 0 and workers > 1:
            _fold_in_workers(engine, store, head, workers, chunk, progress)
        elif head > 0:
            fold_partition(engine, store, head, chunk=chunk, progress=progress)
        with write_transaction(engine) as conn:
            for name, t in nxt.items():
                _index(t, name, token).create(conn)
        if progress:
            progress(head, head)
        if before_swap:
            before_swap()
        return _swap(engine, store, consumer, head, nxt)
    except BaseException as e:
        try:
            with write_transaction(engine) as conn:
                _drop(conn, [table_name(t, NEXT) for t in STORED])
        finally:
            if isinstance(e, Exception):
                raise RebuildFailed(f"rebuild failed before the swap; live tables untouched: {e!r}") from e
            raise


#: Below this many events a rebuild folds in-process (starting workers costs ~0.5 s).
PARALLEL_FROM = 100_000


def default_workers(events: int) -> int:
    configured = os.environ.get("OKR_REBUILD_WORKERS", "").strip()
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise ValueError(f"OKR_REBUILD_WORKERS must be a positive integer, not {configured!r}")
        return int(configured)
    return min(os.cpu_count() or 1, 4) if events >= PARALLEL_FROM else 1


def partition_of(tenant: str, partitions: int) -> int:
    """The partition a tenant's rows are folded in (stable across processes)."""
    return zlib.crc32(tenant.encode()) % partitions


def fold_partition(engine: Engine, store, head: int, *, partition: int = 0, partitions: int = 1,
                   chunk: int = 5000, progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Fold the events up to ``head`` of the tenants in ``partition`` (of ``partitions``)
    into the ``_next`` tables; returns the rows written per table."""
    nxt = {t: table_name(t, NEXT) for t in STORED}
    counts = dict.fromkeys(STORED, 0)
    gc_enabled = gc.isenabled()
    gc.disable()
    writer = _BulkWriter(engine)
    try:
        model = new_model()
        history = model["history"]
        mine: dict[str, bool] = {}

        def rows_of_mine(page):
            for row in page:
                tenant = row[1]
                take = mine.get(tenant)
                if take is None:
                    take = mine[tenant] = partition_of(tenant, partitions) == partition
                if take:
                    yield row

        for page in store.scan(1, to_position=head, batch_size=chunk):
            fold_rows(model, page if partitions == 1 else rows_of_mine(page))
            if history:  # never read by the fold: written, then evicted
                counts["history"] += len(history)
                writer.write(nxt["history"], [(doc["tenant"], key, dumps(doc)) for key, doc in history.items()])
                history.clear()
            if progress:
                progress(page[-1][0], head)
        for name in TABLES:
            rows = list(model[name].items())
            model[name] = {}
            counts[name] += len(rows)
            for i in range(0, len(rows), 20_000):
                if name == "key_results":  # head rows, and the points in rows of their own
                    heads, points = [], []
                    for key, doc in rows[i:i + 20_000]:
                        head, point_rows = _stored_rows(key, doc)
                        heads.append((doc["tenant"], key, head))
                        points.extend((doc["tenant"], pkey, ptext) for pkey, ptext in point_rows)
                    writer.write(nxt[name], heads)
                    counts[POINTS] += len(points)
                    for j in range(0, len(points), 20_000):
                        writer.write(nxt[POINTS], points[j:j + 20_000])
                else:
                    writer.write(nxt[name], [(doc["tenant"], key, dumps(doc)) for key, doc in rows[i:i + 20_000]])
            del rows
        writer.close()
        return counts
    finally:
        writer.close(raise_error=False)
        if gc_enabled:
            gc.enable()


#: How a rebuild worker is started (its arguments follow: partition, partitions, head, chunk).
WORKER_COMMAND = [sys.executable, "-m", "okr_services.reporting.rebuild_worker"]


def _fold_in_workers(engine: Engine, store, head: int, workers: int, chunk: int,
                     progress: Callable[[int, int], None] | None) -> None:
    """Run ``workers`` rebuild_worker processes (URLs passed in their environment, never
    on the command line); relay their progress; raise if any fails (the others are
    killed). The workers connect with the engines' URLs: options given to an engine
    outside its URL (``connect_args``) do not reach them — put them in the URL (e.g.
    PostgreSQL's ``?options=-csearch_path=...``)."""
    env = dict(os.environ,
               OKR_REBUILD_STORE_URL=store.engine.url.render_as_string(hide_password=False),
               OKR_REBUILD_TARGET_URL=engine.url.render_as_string(hide_password=False))
    env.pop("OKR_REBUILD_WORKERS", None)
    procs = [subprocess.Popen([*WORKER_COMMAND, str(i), str(workers), str(head), str(chunk)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(workers)]
    positions = [0] * workers
    errors: list[str] = [""] * workers
    lock = threading.Lock()

    def follow(i: int, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            if line.startswith("progress "):
                with lock:
                    positions[i] = int(line.split()[1])
        errors[i] = proc.stderr.read()

    readers = [threading.Thread(target=follow, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for r in readers:
        r.start()
    try:
        reported = 0
        while any(p.poll() is None for p in procs):
            failed = [i for i, p in enumerate(procs) if p.returncode not in (None, 0)]
            if failed:
                break
            with lock:
                done = min(positions)
            if progress and done > reported:
                progress(done, head)
                reported = done
            time.sleep(0.05)
        for r in readers:
            r.join(timeout=5)
        failed = [i for i, p in enumerate(procs) if p.poll() not in (None, 0)]
        if failed:
            i = failed[0]
            tail = errors[i].strip().splitlines()[-1:] or ["no message"]
            raise RuntimeError(f"rebuild worker {i} of {workers} exited with {procs[i].returncode}: {tail[0]}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


class _BulkWriter:
    """Inserts batches of ``(tenant, key, doc)`` rows into tables from a background
    thread on its own connection, each batch in its own transaction, so the database's
    work (SQLite's B-tree and file writes run without the GIL; PostgreSQL's on the
    server) overlaps the fold. ``write`` blocks while a few batches are queued (bounded
    memory) and re-raises the thread's first error; ``close`` waits for the queue."""

    def __init__(self, engine: Engine, depth: int = 4):
        self._engine = engine
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="okr-rebuild-writer", daemon=True)
        self._thread.start()

    def write(self, table: str, rows: list[tuple[str, str, str]]) -> None:
        if self._error is not None:
            raise self._error
        if rows:
            self._queue.put((table, rows))

    def close(self, raise_error: bool = True) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
        if raise_error and self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            raw = self._engine.raw_connection()
        except BaseException as e:  # noqa: BLE001 - handed to the fold's thread
            self._error = e
            raw = None
        try:
            insert_rows = _copy_rows if self._engine.dialect.name == "postgresql" else self._sqlite_rows
            while (item := self._queue.get()) is not None:
                if self._error is None:
                    try:
                        insert_rows(raw, *item)
                    except BaseException as e:  # noqa: BLE001
                        self._error = e
                        with contextlib.suppress(Exception):
                            raw.rollback()
        finally:
            if raw is not None:
                raw.close()

    def _sqlite_rows(self, raw, name: str, rows: list) -> None:
        with sqlite_write_lock(self._engine):
            cursor = raw.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                cursor.executemany(f'INSERT INTO "{name}" (tenant, key, doc) VALUES (?, ?, ?)', rows)
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            finally:
                cursor.close()


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_rows(raw, name: str, rows: list) -> None:
    """PostgreSQL: one ``COPY ... FROM STDIN`` (text format) of the rows, committed.
    In an eventlet-patched process psycopg2 refuses COPY (its green wait callback), so
    there the rows go as multi-row INSERTs."""
    import psycopg2.extensions
    import psycopg2.extras

    if psycopg2.extensions.get_wait_callback() is not None:
        cursor = raw.cursor()
        try:
            psycopg2.extras.execute_values(cursor, f'INSERT INTO "{name}" (tenant, key, doc) VALUES %s', rows,
                                           page_size=1000)
            raw.commit()
        finally:
            cursor.close()
        return
    buffer = io.StringIO()
    write = buffer.write
    for tenant, key, doc in rows:
        # tenants are [A-Za-z0-9_.-]; JSON text holds no raw control characters, only
        # backslash escapes; keys are ids (escaped in full, they are short)
        write(f"{tenant}\t{key.translate(_COPY_ESCAPES)}\t{doc.replace(chr(92), chr(92) * 2)}\n")
    buffer.seek(0)
    cursor = raw.cursor()
    try:
        cursor.copy_expert(f'COPY "{name}" (tenant, key, doc) FROM STDIN', buffer)
        raw.commit()
    finally:
        cursor.close()


def _swap(engine: Engine, store, consumer: str, head: int, nxt: dict[str, Table]) -> int:
    """One transaction: lock the consumer's offset row (waiting for its transaction in
    flight); if the consumer got past ``head`` meanwhile, apply the events it applied since
    (``head``, offset] to the new tables too; live → _old, _next → live, drop _old;
    offset := the position the new tables hold. Returns it."""
    with write_transaction(engine) as conn:
        query = select(offsets.c.last_position).where(offsets.c.consumer == consumer)
        current = conn.execute(query.with_for_update()).scalar()
        position = head
        if current is not None and current > head:
            for event in store.read_all(head + 1, to_position=current):
                apply_event(conn, event, nxt)
            position = current
        _drop(conn, [table_name(t, OLD) for t in STORED])
        _forget_cached(conn)
        for t in STORED:
            conn.execute(text(f'ALTER TABLE "{table_name(t)}" RENAME TO "{table_name(t, OLD)}"'))
            conn.execute(text(f'ALTER TABLE "{table_name(t, NEXT)}" RENAME TO "{table_name(t)}"'))
        _drop(conn, [table_name(t, OLD) for t in STORED])
        now = time.time_ns() // 1000
        if current is None:
            conn.execute(insert(offsets).values(consumer=consumer, last_position=position, updated_at_us=now))
        else:
            conn.execute(update(offsets).where(offsets.c.consumer == consumer)
                         .values(last_position=position, updated_at_us=now))
    return position


_OFFSET_OF = select(offsets.c.last_position).where(offsets.c.consumer == bindparam("consumer"))


def offset_of(conn, consumer: str = CONSUMER) -> int | None:
    return conn.execute(_OFFSET_OF, {"consumer": consumer}).scalar()


def clear(conn) -> None:
    """Delete every row of the live tables (tests)."""
    _forget_cached(conn)
    for t in LIVE.values():
        conn.execute(delete(t))


Row = dict[str, Any]
