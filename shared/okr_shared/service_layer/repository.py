"""Loading aggregates: a stream's state is the fold of its events on top of the newest
state already known — a recently loaded state kept in this process, else the stream's
snapshot, else nothing. Both are optimisations behind this one interface: a repository
without them (``snapshots=None, cache_size=0``) returns the same states (ADR 0005).

A stream is a tenant's (ADR 0023): every load, snapshot and cached state is of one
(tenant, stream id); another tenant's stream of the same id is another stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

from sqlalchemy import Engine

from ..eventstore.canonical import loads
from ..eventstore.reads import StreamTail
from ..eventstore.snapshots import SnapshotStore

_log = logging.getLogger(__name__)

#: A snapshot is written once this many events were folded on top of the last one.
DEFAULT_SNAPSHOT_EVERY = 100
#: Streams whose latest state this process keeps (least recently used dropped first).
DEFAULT_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class Loaded:
    """A tenant's stream as loaded: its folded ``state`` (None when the tenant has no
    such stream), its ``version`` (0 then), the tenant it was loaded for and how many
    events were folded since the last snapshot (``since_snapshot``; all of them when
    there is none)."""

    stream_id: str
    state: Any
    version: int
    tenant_id: str
    since_snapshot: int

    @property
    def key(self) -> tuple[str, str]:
        """(tenant_id, stream_id): what names the stream."""
        return self.tenant_id, self.stream_id


class Repository:
    """Loads aggregate states from the event store.

    ``domain`` supplies ``fold``, ``STATE_TYPES`` and ``SNAPSHOT_VERSION``
    (``okr_shared.domain``). Every load asks the store for the events after the newest
    state known (one narrow, indexed query: type and payload, in stream order), so a
    state is never stale, whichever process appended: the events table is append-only
    and a stream version is never reused.

    A snapshot holds ``state.to_snapshot()`` (read back by ``from_snapshot``) when the
    state type has those, else ``to_dict()`` / ``from_dict``.

    With ``cache_size`` > 0 the latest state of that many recently used streams stays
    in memory, so a hot stream loads with one query that returns nothing new. States
    handed out are copies (``fold`` copies), so a caller cannot corrupt the cache.
    """

    def __init__(
        self,
        engine: Engine,
        domain: ModuleType,
        snapshots: SnapshotStore | None = None,
        *,
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
        cache_size: int = 0,
        snapshot_writer: "BackgroundSnapshots | None" = None,
    ):
        if snapshot_every < 1:
            raise ValueError(f"snapshot_every must be >= 1, not {snapshot_every}")
        self.engine = engine
        self.domain = domain
        self.snapshots = snapshots
        self.snapshot_every = snapshot_every
        self.cache_size = cache_size
        #: None: a due snapshot is written at once, by the caller; else handed to it
        self.snapshot_writer = snapshot_writer
        self._cache: OrderedDict[tuple[str, str], Loaded] = OrderedDict()
        self._cache_guard = threading.Lock()
        self._tail = StreamTail(engine)

    def load(self, stream_id: str, tenant_id: str) -> Loaded:
        """The current state and version of the tenant's stream (state None, version 0
        when the tenant has none — whether or not another tenant has that stream id)."""
        known = self._cached((tenant_id, stream_id))
        if known is not None:  # one query, no snapshot: the DBAPI directly
            rows = self._tail.rows(tenant_id, stream_id, known.version)
        else:
            with self.engine.connect() as conn:  # one connection for snapshot and events
                known = self._snapshot(stream_id, tenant_id, conn)
                after = known.version if known else 0
                rows = self._tail.rows_on(conn, tenant_id, stream_id, after)
        if known is None:
            if not rows:
                return Loaded(stream_id, None, 0, tenant_id, 0)
            known = Loaded(stream_id, None, 0, tenant_id, 0)
        # fold copies the state even with no events: the cached one stays untouched
        state = self.domain.fold([(row[2], loads(row[3])) for row in rows], known.state)
        loaded = Loaded(stream_id, state, rows[-1][1] if rows else known.version, known.tenant_id,
                        known.since_snapshot + len(rows))
        if loaded.since_snapshot >= self.snapshot_every and self.snapshot(loaded):
            loaded = replace(loaded, since_snapshot=0)
        if self.cache_size > 0:
            self.remember(loaded)
            loaded = replace(loaded, state=self.domain.fold((), state))  # the caller's own copy
        return loaded

    def get(self, stream_id: str, tenant_id: str):
        """The state of the tenant's ``stream_id``, or None when the tenant has none."""
        return self.load(stream_id, tenant_id).state

    def remember(self, loaded: Loaded) -> None:
        """Keep ``loaded`` as the newest known state of its stream (if the cache is on
        and it is newer than what is kept). The caller must not change it afterwards."""
        if self.cache_size <= 0 or loaded.state is None:
            return
        with self._cache_guard:
            kept = self._cache.get(loaded.key)
            if kept is None or kept.version < loaded.version:
                self._cache[loaded.key] = loaded
            self._cache.move_to_end(loaded.key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def forget(self, stream_id: str | None = None, tenant_id: str | None = None) -> None:
        """Drop the cached state of one stream of ``tenant_id``, or all (no stream)."""
        with self._cache_guard:
            if stream_id is None:
                self._cache.clear()
            else:
                self._cache.pop((tenant_id, stream_id), None)

    def snapshot(self, loaded: Loaded) -> bool:
        """A snapshot of ``loaded`` is due: write it now, or hand it to the
        ``snapshot_writer``. True when it is stored or on its way."""
        if self.snapshots is None or loaded.state is None:
            return False
        if self.snapshot_writer is not None:
            self.snapshot_writer.submit(loaded)
            return True
        return self.save_snapshot(loaded)

    def save_snapshot(self, loaded: Loaded) -> bool:
        """Store ``loaded.state`` as the stream's snapshot. Best-effort: a failure is
        logged and forgotten (the next load folds a few more events). True when a
        snapshot at least as new is stored afterwards."""
        if self.snapshots is None or loaded.state is None:
            return False
        try:
            encode = getattr(loaded.state, "to_snapshot", None) or loaded.state.to_dict
            self.snapshots.save(
                loaded.stream_id, loaded.tenant_id, loaded.version, self.domain.SNAPSHOT_VERSION, encode(),
            )
            return True
        except Exception:
            _log.warning("could not save the snapshot of %s at version %s", loaded.stream_id,
                         loaded.version, exc_info=True)
            return False

    def _cached(self, key: tuple[str, str]) -> Loaded | None:
        if self.cache_size <= 0:
            return None
        with self._cache_guard:
            loaded = self._cache.get(key)
            if loaded is not None:
                self._cache.move_to_end(key)
            return loaded

    def _snapshot(self, stream_id: str, tenant_id: str, connection) -> Loaded | None:
        """The usable snapshot of the tenant's stream as a Loaded, or None."""
        if self.snapshots is None:
            return None
        snapshot = self.snapshots.load(stream_id, self.domain.SNAPSHOT_VERSION, tenant_id=tenant_id,
                                       connection=connection)
        if snapshot is None:
            return None
        try:
            state_type = self.domain.STATE_TYPES[stream_id.partition("-")[0]]
            state = (getattr(state_type, "from_snapshot", None) or state_type.from_dict)(snapshot.state)
        except Exception:
            # Written by a fold whose shape changed without a SNAPSHOT_VERSION bump:
            # ignore it (the next snapshot replaces it) rather than fail the load.
            _log.warning("ignoring the unreadable snapshot of %s at version %s", stream_id,
                         snapshot.version, exc_info=True)
            return None
        return Loaded(stream_id, state, snapshot.version, snapshot.tenant_id, 0)


class BackgroundSnapshots:
    """Writes due snapshots from one background thread (a green thread in the
    eventlet-patched services), the newest state per stream, one write per ``pace``
    seconds, oldest stream first.

    A snapshot is an optimisation, so it need not be written inside the command that
    made it due: written there, its write (the state's JSON and a transaction of its own
    with a commit) adds to that command's latency, and when many streams reach their
    snapshot interval together — 50 key results checked in round robin cross version
    100 within a quarter of a second — the service stalled every call in flight for
    ~100 ms (bench/e2e.py, ADR 0018). Here a burst is spread over ``pace`` steps and
    a state submitted again before its write replaces the older one. Failures are logged
    and forgotten; at most ``max_pending``
    streams wait (more are dropped: their next due snapshot comes 100 events later).
    ``stop`` writes what is still pending, for at most ``timeout`` seconds."""

    def __init__(self, save, *, pace: float = 0.05, max_pending: int = 10_000):
        self._save = save
        self.pace = pace
        self.max_pending = max_pending
        self._pending: OrderedDict[tuple[str, str], Loaded] = OrderedDict()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._stop_deadline = 0.0
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="snapshot-writer", daemon=True)
            self._thread.start()

    def submit(self, loaded: Loaded) -> None:
        with self._lock:
            if loaded.key in self._pending:
                if self._pending[loaded.key].version >= loaded.version:
                    return
                del self._pending[loaded.key]
            elif len(self._pending) >= self.max_pending:
                self.dropped += 1
                return
            self._pending[loaded.key] = loaded
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _next(self) -> Loaded | None:
        with self._lock:
            if not self._pending:
                self._wake.clear()
                return None
            return self._pending.popitem(last=False)[1]

    def _run(self) -> None:
        while True:
            self._wake.wait()
            while (loaded := self._next()) is not None:
                try:
                    self._save(loaded)
                    self.written += 1
                except Exception:  # noqa: BLE001 - an optimisation: log, go on with the next
                    _log.warning("could not save the snapshot of %s at version %s", loaded.stream_id,
                                 loaded.version, exc_info=True)
                if not self._stopping:
                    time.sleep(self.pace)
                elif time.monotonic() > self._stop_deadline:
                    return
            if self._stopping:
                return

    def stop(self, timeout: float = 5.0) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop_deadline = time.monotonic() + timeout
        self._stopping = True
        self._wake.set()
        thread.join(timeout + 1)
        if self._pending:
            _log.info("%d snapshots not written at stop (the next loads fold a few more events)",
                      len(self._pending))
