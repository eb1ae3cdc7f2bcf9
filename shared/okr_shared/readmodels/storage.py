"""The read-model tables of the fold (``projections``): a service's own copy of (some of)
the model's tables, persisted row by row, loaded back and kept up to date event by
event. The reporting service keeps every table (``reporting_*``), the notification
service the entity tables (``notification_rm_*``); each service reads and writes only its
own (docs/adr/0009-reporting-storage-and-rebuild.md, 0011, 0019).

Schema: one table per model table, ``<prefix><table>``, each with the columns
``tenant``, ``key`` (the model's row key ``"<tenant>/<id>"``) and ``doc`` (the document
as JSON text, ``dumps``: orjson, sorted keys, compact) and a unique index on ``(tenant,
key)``; a key result's chart points in rows of their own (``<prefix>key_result_points``,
ADR 0019). ``tables_for(prefix, names)`` names a service's tables; ``migrate_schema``
creates the missing ones (idempotent) when the service starts.

- incremental: ``apply_event(conn, event, tables)`` loads only the rows the event reads
  (the fold reads at most one entity row per event; history rows are never read), runs
  ``project`` and writes exactly the touched rows, in the caller's transaction (the
  consumer layer's: it commits with the offset);
- ``load_model(conn, tables, tenant=None)``: the model (one tenant's rows, or all) from
  the tables.

Unique indexes get a name unique to their build (PostgreSQL keeps an index's name when
its table is renamed; a fixed name would clash with a rebuild's, which builds new tables
and renames them in).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable
from typing import Any

from orjson import OPT_SORT_KEYS
from orjson import dumps as _orjson_dumps
from orjson import loads as _orjson_loads
from sqlalchemy import Engine, Index, MetaData, Table, bindparam, insert, inspect, select, update

from okr_shared import dbapi
from okr_shared.db import migrate, write_transaction
from okr_shared.db.migrations import read_models

from .projections import POINTS, TABLES, Model, new_model, project


def table(metadata: MetaData, prefix: str, name: str, suffix: str = "", token: str = "live",
          indexed: bool = True) -> Table:
    """The read-model table ``<prefix><name><suffix>``; ``indexed``: with its unique
    ``(tenant, key)`` index named after ``token`` (a rebuild loads its new tables without
    it and builds it once at the end)."""
    # the columns as the histories' revisions make them (docs/adr/0032-…); a key
    # result's points are the range ("<kr key>/", "<kr key>0") of their bytewise keys
    t = Table(f"{prefix}{name}{suffix}", metadata, *read_models.columns(name))
    if indexed:
        index(t, prefix, name, token)
    return t


def index(t: Table, prefix: str, name: str, token: str) -> Index:
    """The unique ``(tenant, key)`` index of the read-model table ``t``."""
    return Index(f"ux_{prefix}{name}_{token}", t.c.tenant, t.c.key, unique=True)


def tables_for(prefix: str, names: Iterable[str] = TABLES) -> dict[str, Table]:
    """A service's own read-model tables: the model's tables ``names`` under
    ``prefix`` (the reporting service: ``reporting_``, every table; the notification
    service: ``notification_rm_``, the entity tables), by model table name. With
    ``key_results`` come its points (``POINTS``)."""
    names = tuple(names)
    if "key_results" in names and POINTS not in names:
        names += (POINTS,)
    md = MetaData()
    return {name: table(md, prefix, name) for name in names}


def dumps(doc: dict) -> str:
    """How a document is written, the one way every path writes it: orjson with sorted
    keys, compact (rows compare byte for byte). What orjson refuses (an integer beyond
    64 bits) falls back to the standard library."""
    try:
        return _orjson_dumps(doc, option=OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


loads = _orjson_loads


def migrate_schema(engine: Engine, tables: dict[str, Table], history: str) -> None:
    """Bring a service's database up to date: the consumer layer's tables and the
    service's own (``tables``, from ``tables_for``), each history by its Alembic
    migrations (``okr_shared.db.migrate``: ``consumer``, then the service's ``history``).
    A database from before the chart points had rows of their own has its key results'
    points moved out (``move_points_out``) once the points table exists."""
    existing = set(inspect(engine).get_table_names())
    split = POINTS in tables and "key_results" in tables and tables["key_results"].name in existing \
        and tables[POINTS].name not in existing
    migrate(engine, "consumer")
    migrate(engine, history)
    if split:
        move_points_out(engine, tables)


def move_points_out(engine: Engine, tables: dict[str, Table]) -> int:
    """The upgrade from the layout that kept a key result's chart points in its row:
    every such row becomes its head row and one row per point, in one transaction (a
    row already split is left alone, so a second instance doing it too changes
    nothing). Returns the rows split."""
    krs, points = tables["key_results"], tables[POINTS]
    split = 0
    with write_transaction(engine) as conn:
        forget_cached(conn)
        for tenant, key, text_ in conn.execute(select(krs.c.tenant, krs.c.key, krs.c.doc)).all():
            doc = loads(text_)
            if "points" not in doc:
                continue
            head, point_rows = stored_rows(key, doc)
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


def stored_rows(key: str, doc: dict) -> tuple[str, list[tuple[str, str]]]:
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


def forget_cached(conn) -> None:
    _kr_caches.pop(conn.engine.pool, None)


# ---------------------------------------------------------------------- loading


def load_model(conn, live: dict[str, Table], tenant: str | None = None, tables: Iterable[str] | None = None,
               *, build=None) -> Model:
    """The model held by the tables ``live`` (the model tables ``tables``, default all
    of them): every row, or one tenant's. The rows are read here; ``build`` (default
    ``build_model``) makes the model of them — the services pass it run in eventlet's
    thread pool (parsing a large tenant's rows would stop their event consumer)."""
    return (build or build_model)(read_model_rows(conn, live, tenant, tables))


def read_model_rows(conn, live: dict[str, Table], tenant: str | None = None,
                    tables: Iterable[str] | None = None) -> dict[str, list[tuple[str, str]]]:
    """The stored rows of the model, unparsed: ``{table: [(key, doc text)]}``, the key
    results' point rows under ``POINTS``."""
    raw: dict[str, list[tuple[str, str]]] = {}
    for name in (tables if tables is not None else [n for n in live if n != POINTS]):
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


def apply_event(conn, event, tables: dict[str, Table]) -> set[tuple[str, str]]:
    """Project one event onto ``tables`` (a service's, from ``tables_for``: the model
    tables it does not keep are skipped) in ``conn``'s transaction: load the rows it
    reads, ``project``, write the touched rows (update, else insert) — a key result as
    its head row and the one point the event wrote. Returns them."""
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

