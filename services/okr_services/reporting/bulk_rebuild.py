"""The reporting read models rebuilt from the whole event store: fold it (raw ``scan``
pages, in-process or in tenant-partitioned worker processes) into NEW tables
(``reporting_<table>_next``) with a progress callback, index them, then in ONE
transaction (holding the consumer's offset row, so the running consumer waits) apply to
the new tables whatever the consumer applied past the rebuilt position meanwhile,
rename the live tables away and the new ones in, drop the old and set the consumer's
offset to the position the new tables hold: the incremental consumer continues from
there seamlessly. A rebuild that fails leaves the live tables and the offset untouched
(docs/adr/0009-reporting-storage-and-rebuild.md, 0010).

``okr projections rebuild`` (``rebuild.py``) runs it; ``rebuild_worker.py`` is one
partition's process.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable

from sqlalchemy import Engine, MetaData, Table, insert, select, text, update

from okr_shared.bus.consumer import offsets
from okr_shared.db import sqlite_write_lock, write_transaction
from okr_shared.readmodels.projections import POINTS, TABLES, fold_rows, new_model
from okr_shared.readmodels.storage import apply_event, dumps, forget_cached, index, stored_rows, table

from . import config
from .storage import CONSUMER, PREFIX, STORED, migrate_schema, table_name

NEXT = "_next"
OLD = "_old"



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
    nxt = {t: table(md, PREFIX, t, NEXT, token, indexed=False) for t in STORED}
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
                index(t, PREFIX, name, token).create(conn)
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
    configured = config.rebuild_workers()
    if configured is not None:
        return configured
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
                        head, point_rows = stored_rows(key, doc)
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
    env = config.rebuild_worker_environment(store.engine.url.render_as_string(hide_password=False),
                                            engine.url.render_as_string(hide_password=False))
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
        forget_cached(conn)
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

