"""Lag gauges, computed when Prometheus scrapes (a custom collector).

Why at scrape time and not updated by the relay or the consumer: lag is the distance
between two processes' states — the store's head moves with every append made
anywhere, the relay's checkpoint and a consumer's offset move in theirs. A gauge the
relay or consumer sets freezes exactly when that process stalls or dies, the case the
metric is for. The queries are primary-key lookups (the head row, the checkpoint rows,
one event by position, one offset row): microseconds on both backends, once per scrape.

Sources (registered by the processes that have the databases):

- ``track_store(key, engine)``: an event store — ``okr_event_store_head_position``, and
  for every relay that has a checkpoint in it ``okr_relay_checkpoint_position``,
  ``okr_relay_lag_events`` (head − checkpoint) and ``okr_relay_lag_seconds`` (age of
  the oldest unpublished event; 0 when none). The relay process and the goal and
  progress services register their store, so relay lag is visible even while every
  relay is down.
- ``track_consumer(name, offset, store_engine)``: an ordered consumer —
  ``okr_consumer_offset_position``, ``okr_consumer_lag_events`` (head − offset) and
  ``okr_consumer_lag_seconds`` (age of the event after the offset). The reporting and
  notification projections bind every event type, so their lag is 0 when caught up; a
  consumer bound to a few types also counts the events after its offset it never
  receives.

A source that fails (database down) is left out of that scrape and counted in
``okr_metrics_source_errors_total``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Engine

from ..eventstore.outbox import age_of, relay_checkpoints, store_head

_log = logging.getLogger(__name__)

SOURCE_ERRORS = Counter("okr_metrics_source_errors_total",
                        "Scrapes in which a lag source (an event store, a consumer offset) could not be read.",
                        ["source"], registry=REGISTRY)


def relay_lag(engine: Engine, now_us: int | None = None) -> tuple[int, dict[str, tuple[int, int, float]]]:
    """(head, {relay name: (checkpoint, lag in events, lag in seconds)}) of one store."""
    now_us = now_us if now_us is not None else time.time_ns() // 1000
    with engine.connect() as conn:
        head = store_head(conn)
        relays = {}
        for name, position in relay_checkpoints(conn):
            lag = max(0, head - position)
            relays[name] = (position, lag, age_of(conn, position + 1, now_us) if lag else 0.0)
    return head, relays


def _gauges(label: str, *specs: tuple[str, str]) -> list[GaugeMetricFamily]:
    """A gauge family per ``(name, help)`` of ``specs``, each labelled by ``label``."""
    return [GaugeMetricFamily(name, help_text, labels=[label]) for name, help_text in specs]


class LagCollector:
    def __init__(self):
        self._lock = threading.Lock()
        self._stores: dict[str, list] = {}  # key -> [engine, refcount]
        self._consumers: dict[str, tuple[Callable[[], int], Engine]] = {}

    def track_store(self, key: str, engine: Engine) -> None:
        with self._lock:
            entry = self._stores.setdefault(key, [engine, 0])
            entry[1] += 1

    def untrack_store(self, key: str) -> None:
        with self._lock:
            entry = self._stores.get(key)
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    del self._stores[key]

    def track_consumer(self, name: str, offset: Callable[[], int], store_engine: Engine) -> None:
        """``offset()``: the consumer's committed offset (its own database)."""
        with self._lock:
            self._consumers[name] = (offset, store_engine)

    def untrack_consumer(self, name: str) -> None:
        with self._lock:
            self._consumers.pop(name, None)

    def describe(self):
        return []  # no samples at registration time (a scrape-time collector)

    def collect(self):
        with self._lock:
            stores = [(key, entry[0]) for key, entry in self._stores.items()]
            consumers = list(self._consumers.items())
        now_us = time.time_ns() // 1000
        head = GaugeMetricFamily("okr_event_store_head_position", "The event store's last position.")
        checkpoint, relay_events, relay_seconds = _gauges(
            "relay",
            ("okr_relay_checkpoint_position", "The last position a relay published and saved."),
            ("okr_relay_lag_events", "Events stored but not yet published by the relay (head - checkpoint)."),
            ("okr_relay_lag_seconds", "Age of the oldest event the relay has not published (0: none)."),
        )
        offset, consumer_events, consumer_seconds = _gauges(
            "consumer",
            ("okr_consumer_offset_position", "The last position a consumer committed."),
            ("okr_consumer_lag_events", "Events after a consumer's offset (store head - offset)."),
            ("okr_consumer_lag_seconds", "Age of the first event after a consumer's offset (0: none)."),
        )
        seen_relays: set[str] = set()
        head_done = False
        for key, engine in stores:
            try:
                position, relays = relay_lag(engine, now_us)
            except Exception as e:  # noqa: BLE001 - a scrape must not fail for one source
                SOURCE_ERRORS.labels("event_store").inc()
                _log.warning("metrics: cannot read the event store for the relay lag: %s", e)
                continue
            if not head_done:
                head.add_metric([], position)
                head_done = True
            for name, (cp, lag, age) in sorted(relays.items()):
                if name in seen_relays:  # two stores in one process (tests) with a relay of one name
                    continue
                seen_relays.add(name)
                checkpoint.add_metric([name], cp)
                relay_events.add_metric([name], lag)
                relay_seconds.add_metric([name], age)
        for name, (read_offset, engine) in sorted(consumers, key=lambda c: c[0]):
            try:
                position = read_offset()
                with engine.connect() as conn:
                    last = store_head(conn)
                    lag = max(0, last - position)
                    age = age_of(conn, position + 1, now_us) if lag else 0.0
            except Exception as e:  # noqa: BLE001
                SOURCE_ERRORS.labels("consumer").inc()
                _log.warning("metrics: cannot read the offset of consumer %s: %s", name, e)
                continue
            offset.add_metric([name], position)
            consumer_events.add_metric([name], lag)
            consumer_seconds.add_metric([name], age)
        return [head, checkpoint, relay_events, relay_seconds, offset, consumer_events, consumer_seconds]


COLLECTOR = LagCollector()
REGISTRY.register(COLLECTOR)

track_store = COLLECTOR.track_store
untrack_store = COLLECTOR.untrack_store
track_consumer = COLLECTOR.track_consumer
untrack_consumer = COLLECTOR.untrack_consumer
