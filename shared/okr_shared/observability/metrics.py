"""Every metric of the platform, in one place (docs/observability.md lists them).

Names follow the Prometheus conventions: ``okr_`` prefix, base units in the name
(``_seconds``), ``_total`` for counters. Labels are bounded: service, entrypoint and
method names, event types and channel kinds come from the code, never from a request;
tenant ids are never a label (unbounded).

Hot paths call the small helpers below, which keep the labelled children in plain dicts
(one dict lookup per call instead of ``labels()``'s argument handling and lock), so an
update costs about a microsecond (bench figure in docs/observability.md).

The lag gauges (relay, consumers) are computed at scrape time: okr_shared.observability.lag.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import REGISTRY, Counter, Histogram

#: Latency buckets (seconds): sub-millisecond RPCs up to the 10 s RPC timeout.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

EVENTS_APPENDED = Counter(
    "okr_events_appended_total", "Events committed to the event store by this process, by event type.",
    ["event_type"], registry=REGISTRY)

ENTRYPOINT_DURATION = Histogram(
    "okr_entrypoint_duration_seconds",
    "Time a nameko worker took (server side): RPC calls, event handlers, timers, HTTP; "
    "outcome ok | refused (an expected domain error) | error.",
    ["service", "entrypoint", "kind", "outcome"], buckets=LATENCY_BUCKETS, registry=REGISTRY)

RPC_CLIENT_DURATION = Histogram(
    "okr_rpc_client_duration_seconds",
    "Nameko RPC calls made by the gateway, request to reply (client side); "
    "outcome ok | remote_error | timeout | unavailable | error.",
    ["service", "method", "outcome"], buckets=LATENCY_BUCKETS, registry=REGISTRY)

GRPC_SERVER_DURATION = Histogram(
    "okr_grpc_server_duration_seconds",
    "gRPC calls handled by the gateway, by method and status code (streams: their whole life).",
    ["grpc_service", "grpc_method", "grpc_code"], buckets=LATENCY_BUCKETS, registry=REGISTRY)

NOTIFICATIONS = Counter(
    "okr_notification_deliveries_total",
    "Notification send attempts by channel kind and outcome: sent | retrying (failed, will retry) | "
    "failed (for good) | lost (result not recorded).",
    ["channel", "outcome"], registry=REGISTRY)

CONSUMER_EVENTS = Counter(
    "okr_consumer_events_total",
    "Events a consumer committed, by result: applied | duplicate | skipped (not its type or tenant) | "
    "redriven | dead_lettered.",
    ["consumer", "result"], registry=REGISTRY)

DEAD_LETTERS = Counter(
    "okr_dead_letters_total",
    "Messages a consumer dead-lettered, by reason: handler (it kept failing or raised PoisonEvent) | "
    "undecodable.",
    ["consumer", "reason"], registry=REGISTRY)

CONSUMER_RETRIES = Counter(
    "okr_consumer_retries_total", "Handler failures a consumer retried.", ["consumer"], registry=REGISTRY)

RELAY_PUBLISHED = Counter(
    "okr_relay_events_published_total", "Events the relay published and the broker confirmed.", ["relay"],
    registry=REGISTRY)

APPEND_GROUP_SIZE = Histogram(
    "okr_event_store_append_group_size",
    "Appends written by one group-commit transaction of the event store (PostgreSQL, ADR 0020); "
    "an append alone in the queue is not a group.",
    buckets=(2, 4, 8, 16, 32, 64, 128, 256, 512, 1000), registry=REGISTRY)

APPEND_GROUP_FAILURES = Counter(
    "okr_event_store_append_group_failures_total",
    "Group-commit transactions that failed (an event id stored earlier, a lost connection, ...); "
    "each of their appends was redone alone.", registry=REGISTRY)

# ------------------------------------------------------------------- hot-path helpers

_appended: dict[str, object] = {}


def events_appended(event_types: Iterable[str]) -> None:
    """Count committed events (one per type in ``event_types``)."""
    children = _appended
    for event_type in event_types:
        child = children.get(event_type)
        if child is None:
            child = children[event_type] = EVENTS_APPENDED.labels(event_type)
        child.inc()


class Children:
    """``labels(*values)`` of one metric, cached: ``Children(metric)[values]``."""

    __slots__ = ("metric", "cache")

    def __init__(self, metric):
        self.metric = metric
        self.cache: dict[tuple, object] = {}

    def __getitem__(self, values: tuple):
        child = self.cache.get(values)
        if child is None:
            child = self.cache[values] = self.metric.labels(*values)
        return child


entrypoint_duration = Children(ENTRYPOINT_DURATION)
rpc_client_duration = Children(RPC_CLIENT_DURATION)
grpc_server_duration = Children(GRPC_SERVER_DURATION)
notifications = Children(NOTIFICATIONS)
consumer_events = Children(CONSUMER_EVENTS)
dead_letters = Children(DEAD_LETTERS)
consumer_retries = Children(CONSUMER_RETRIES)
relay_published = Children(RELAY_PUBLISHED)

#: The consumer layer's tally names -> the ``result`` label of okr_consumer_events_total.
_CONSUMER_RESULTS = {"applied": "applied", "duplicates": "duplicate", "skipped": "skipped",
                     "redriven": "redriven", "dead_lettered": "dead_lettered"}


def consumer_committed(consumer: str, tally: dict[str, int]) -> None:
    """What one committed consumer transaction did (its ``_Tx.tally``)."""
    for name, n in tally.items():
        result = _CONSUMER_RESULTS.get(name)
        if result is not None:
            consumer_events[(consumer, result)].inc(n)
            if result == "dead_lettered":
                dead_letters[(consumer, "handler")].inc(n)
