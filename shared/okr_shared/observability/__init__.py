"""Observability of every process: Prometheus metrics and JSON logs carrying the
correlation id (docs/observability.md).

- ``metrics``: every metric definition, and the cheap helpers the hot paths call;
- ``lag``: the relay and consumer lag gauges, computed at scrape time;
- ``server``: the per-process ``/metrics`` endpoint (``OKR_METRICS_PORT``);
- ``context``: the correlation id / tenant / service / entrypoint of the call or event
  being handled (a ContextVar: per thread, per greenlet under eventlet);
- ``logs``: JSON-lines (or text) formatter reading that context; ``OKR_LOG_FORMAT``,
  ``OKR_LOG_LEVEL``;
- ``nameko``: ``Observed``, the dependency every service class carries (context, RPC
  latency, the endpoint);
- ``interceptor``: the gateway's server interceptor (context, gRPC latency by code, access log).
"""
