"""Group commit: concurrent ``EventStore.append`` calls of one process share one
transaction on PostgreSQL (ADR 0020).

Appends are serial — every one takes the head's row lock — and on PostgreSQL an append
is two round trips with that lock held, plus, in an eventlet-patched service, the time
the appending green thread waits to be scheduled again between them. At a few hundred
appends per second that serial section is the ceiling. Here the appends that arrive
while one transaction is in flight wait for it, and the next transaction writes them
all: still two round trips and one COMMIT, for any number of appends.

Leader/follower: an append joins the queue; when no transaction is running it leads —
takes the queue's front (its own request first, at most ``max_events`` events), writes
that group in one transaction and passes the lead to the next request waiting. Every
append keeps its own semantics: its expected version is checked against the stream —
the tenant's own, named by (tenant, stream id) — as the earlier appends of the same
group leave it; a refused append (a conflict) writes nothing and does not stop the others;
positions stay gap-free (the head is set back to the last position used) and each
tenant's hash chain runs through the group in queue order. Whatever else goes wrong in
a group's transaction (an event id stored already, a lost connection, a kill of the
leading green thread), each of its appends is redone alone, as without grouping —
idempotent by event ids, so an append whose group did commit before the failure is
reported ``already_stored``. An append alone in the queue is written exactly as
without grouping.
"""

from __future__ import annotations

import threading
from collections import deque

from .canonical import GENESIS_HASH, chain_records
from .model import AppendResult
from ..observability import metrics


class _Request:
    __slots__ = ("stream_id", "expected", "rows", "tenant_id", "done", "lead", "result", "error",
                 "conflict", "alone")

    def __init__(self, stream_id, expected, rows, tenant_id):
        self.stream_id, self.expected, self.rows, self.tenant_id = stream_id, expected, rows, tenant_id
        self.done = threading.Event()  # a green Event in an eventlet-patched process
        self.lead = False  # handed the lead while waiting
        self.result = self.error = self.conflict = None
        self.alone = False  # redo alone (the group's transaction failed, or ids repeat in it)

    def finished(self) -> bool:
        return self.alone or self.result is not None or self.error is not None or self.conflict is not None


class GroupCommit:
    """The queue of one EventStore's appends (one per store and process)."""

    def __init__(self, store, max_events: int):
        self._store = store
        self._max_events = max_events
        self._lock = threading.Lock()
        self._pending: deque[_Request] = deque()
        self._active = False  # a leader is running, or the lead is being handed over
        self.groups = self.grouped_appends = 0  # for tests and the benchmark

    def append(self, stream_id: str, expected, rows: list[tuple], tenant_id: str) -> AppendResult:
        req = _Request(stream_id, expected, rows, tenant_id)
        with self._lock:
            self._pending.append(req)
            lead = not self._active
            self._active = True
        if not lead:
            try:
                req.done.wait()
            except BaseException:  # killed while waiting: leave the queue, pass a lead on
                with self._lock:
                    queued = req in self._pending
                    if queued:
                        self._pending.remove(req)
                if queued and req.lead:
                    self._hand_over()
                raise
            lead = req.lead and not req.finished()
        if lead:
            try:
                self._lead()
            finally:
                self._hand_over()
        return self._outcome(req)

    def _outcome(self, req: _Request) -> AppendResult:
        store = self._store
        if req.alone:
            return store._append_one(req.stream_id, req.expected, req.rows, req.tenant_id)
        if req.error is not None:
            raise req.error
        if req.conflict is not None:
            # As a lone append: the exact batch stored already is an idempotent retry.
            # Checked after the group's COMMIT (stored events never change), by the
            # caller, so that the leader's group is not held up by it.
            event_ids = [r[0] for r in req.rows]
            stored = store._already_stored(store._appender.find_event_ids(event_ids), req.tenant_id, req.stream_id,
                                           event_ids)
            if stored is None:
                raise req.conflict
            return stored
        return req.result

    def _hand_over(self) -> None:
        with self._lock:
            if self._pending:
                nxt = self._pending[0]
                nxt.lead = True
                nxt.done.set()
            else:
                self._active = False

    def _lead(self) -> None:
        with self._lock:
            group, events = [], 0
            while self._pending and (not group or events + len(self._pending[0].rows) <= self._max_events):
                req = self._pending.popleft()
                group.append(req)
                events += len(req.rows)
        try:
            self._write(group)
        finally:
            for req in group:
                if not req.finished():
                    req.alone = True
                req.done.set()

    def _write(self, group: list[_Request]) -> None:
        store = self._store
        batch, seen = [], set()
        for req in group:
            ids = [r[0] for r in req.rows]
            if seen.intersection(ids):
                req.alone = True  # after the earlier one: it is then a retry, or a collision
            else:
                seen.update(ids)
                batch.append(req)
        if len(batch) == 1:
            req = batch[0]
            try:
                req.result = store._append_one(req.stream_id, req.expected, req.rows, req.tenant_id)
            except Exception as e:
                req.error = e
            return
        n = sum(len(req.rows) for req in batch)
        keys = list(dict.fromkeys((req.tenant_id, req.stream_id) for req in batch))
        tenant_ids = list(dict.fromkeys(req.tenant_id for req in batch))
        written = []
        try:
            with store._appender.begin() as tx:
                last, streams, hashes = tx.lock_and_read_group(n, keys, tenant_ids)
                position = last - n + 1
                prev = {t: bytes.fromhex(h) for t, h in hashes.items()}
                heads: dict[str, list] = {}
                now = store._clock()
                records = []
                for req in batch:
                    stream_id, tenant_id, rows = req.stream_id, req.tenant_id, req.rows
                    current = streams.get((tenant_id, stream_id), 0)
                    conflict = store._conflict(stream_id, req.expected, current)
                    if conflict is not None:
                        req.conflict = conflict
                        continue
                    first = position
                    h = chain_records(records, prev.get(tenant_id, GENESIS_HASH), position, tenant_id, stream_id,
                                      current, rows, now)
                    position += len(rows)
                    prev[tenant_id] = h
                    head = heads.setdefault(tenant_id, [tenant_id, 0, "", 0])
                    head[1], head[2], head[3] = position - 1, h.hex(), head[3] + len(rows)
                    streams[(tenant_id, stream_id)] = current + len(rows)
                    written.append((req, AppendResult(stream_id, current + len(rows), first, position - 1)))
                if written:  # else: nothing to write, the exit rolls the head back
                    tx.write_group_and_commit(
                        records, [tuple(h) for h in heads.values()], position - 1 if position - 1 != last else None)
        except Exception:
            for req in batch:  # each redone alone: the group's outcome is unknown
                req.error = req.conflict = None
                req.alone = True
            metrics.APPEND_GROUP_FAILURES.inc()
            return
        for req, result in written:
            req.result = result
        self.groups += 1
        self.grouped_appends += len(batch)
        metrics.APPEND_GROUP_SIZE.observe(len(batch))
        metrics.events_appended([r[1] for req, _ in written for r in req.rows])
