"""okr_shared.observability without servers: the log formatters and the context they
read, the configuration checks (every bad value named), the metric helpers, and the
/metrics endpoint scraped over HTTP in this process."""

from __future__ import annotations

import io
import json
import logging
import socket
import urllib.request

import eventlet
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from okr_shared.observability import context, logs, metrics, server
from okr_shared import config
from okr_shared.config import access_log_enabled
from okr_services.run_config import metrics_ports


def sample(name: str, **labels) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def record(msg="hello %s", args=("world",), **extra) -> logging.LogRecord:
    r = logging.LogRecord("okr.test", logging.INFO, __file__, 1, msg, args, None)
    for k, v in extra.items():
        setattr(r, k, v)
    return r


# ------------------------------------------------------------------------- logs


def test_json_line_carries_the_context_and_the_extra_fields():
    with context.bound(correlation_id="cid-1", tenant_id="acme", service="progress", entrypoint="record_check_in"):
        line = json.loads(logs.JsonLines().format(record(position=7)))
    assert line["msg"] == "hello world" and line["level"] == "info" and line["logger"] == "okr.test"
    assert line["ts"].endswith("Z") and "T" in line["ts"]
    assert (line["correlation_id"], line["tenant_id"], line["service"], line["entrypoint"]) == (
        "cid-1", "acme", "progress", "record_check_in")
    assert line["position"] == 7


def test_json_line_outside_a_call_has_no_context_fields_and_keeps_the_traceback():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        r = logging.LogRecord("okr.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = json.loads(logs.JsonLines().format(r))
    assert "correlation_id" not in line and "service" not in line
    assert "RuntimeError: boom" in line["exc"]


def test_json_line_escapes_what_a_caller_sent():
    with context.bound(correlation_id='a"b\nc'):
        text = logs.JsonLines().format(record())
    assert "\n" not in text and json.loads(text)["correlation_id"] == 'a"b\nc'


def test_text_format_shows_the_context_in_brackets():
    with context.bound(correlation_id="cid-2", tenant_id="acme"):
        text = logs.Text().format(record())
    assert "INFO okr.test [correlation_id=cid-2 tenant_id=acme] hello world" in text
    assert "[" not in logs.Text().format(record())


def test_context_is_reset_and_isolated_between_green_threads():
    seen = {}

    def worker(i):
        with context.bound(correlation_id=f"c{i}"):
            eventlet.sleep(0.01)  # the others run meanwhile
            seen[i] = context.correlation_id()

    threads = [eventlet.spawn(worker, i) for i in range(5)]
    for t in threads:
        t.wait()
    assert seen == {i: f"c{i}" for i in range(5)}
    assert context.current() is context.EMPTY


def test_configure_logging_sets_the_root_handler_level_and_format(monkeypatch):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        monkeypatch.setenv("OKR_LOG_FORMAT", "text")
        logs.configure_logging(level="warning", stream=stream)
        logging.getLogger("okr.x").info("not shown")
        logging.getLogger("okr.x").warning("shown")
        assert stream.getvalue().count("\n") == 1 and "WARNING okr.x shown" in stream.getvalue()
        monkeypatch.setenv("OKR_LOG_FORMAT", "json")
        logs.configure_logging(stream=stream)
        logging.getLogger("okr.x").info("as json")
        assert json.loads(stream.getvalue().splitlines()[-1])["msg"] == "as json"
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_configured_logging_skips_what_no_format_prints(monkeypatch):
    """No caller lookup (a stack walk per record), no thread, process names: the lines
    are the same without them."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    for name, value in (("_srcfile", logging._srcfile), ("logThreads", True), ("logProcesses", True),
                        ("logMultiprocessing", True)):
        monkeypatch.setattr(logging, name, value)
    stream = io.StringIO()
    try:
        monkeypatch.setenv("OKR_LOG_FORMAT", "json")
        logs.configure_logging(stream=stream)
        assert (logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing) == (
            None, False, False, False)
        logging.getLogger("okr.x").info("lean", extra={"n": 1})
        line = json.loads(stream.getvalue())
        assert set(line) == {"ts", "level", "logger", "msg", "n"} and line["msg"] == "lean"
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


@pytest.mark.parametrize("env, message", [
    ({"OKR_LOG_FORMAT": "xml"}, "OKR_LOG_FORMAT: expected one of json, text, got 'xml'"),
    ({"OKR_LOG_LEVEL": "loud"}, "OKR_LOG_LEVEL: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'LOUD'"),
])
def test_bad_log_settings_are_named(env, message):
    with pytest.raises(ValueError) as e:
        config.log_format(env)
        config.log_level(env)
    assert str(e.value) == message


def test_access_log_switch():
    assert access_log_enabled({}) and access_log_enabled({"OKR_ACCESS_LOG": "on"})
    assert not access_log_enabled({"OKR_ACCESS_LOG": "0"})
    with pytest.raises(ValueError, match="OKR_ACCESS_LOG: expected 1 or 0"):
        access_log_enabled({"OKR_ACCESS_LOG": "maybe"})


# ------------------------------------------------------------------ configuration


def test_metrics_address_defaults_disabling_and_bad_values():
    assert config.metrics_address(9465, {}) == ("0.0.0.0", 9465)
    assert config.metrics_address(9465, {"OKR_METRICS_PORT": "9100", "OKR_METRICS_HOST": "127.0.0.1"}) == (
        "127.0.0.1", 9100)
    assert config.metrics_address(9465, {"OKR_METRICS_PORT": "0"}) is None
    assert config.metrics_address(9465, {"OKR_METRICS_PORT": ""}) is None
    for bad in ("http", "70000", "-1", "9.5"):
        with pytest.raises(ValueError, match=r"OKR_METRICS_PORT: expected a TCP port 1-65535 .* got"):
            config.metrics_address(9465, {"OKR_METRICS_PORT": bad})
    with pytest.raises(ValueError, match="OKR_METRICS_HOST"):
        config.metrics_address(9465, {"OKR_METRICS_HOST": "a b"})


def test_make_run_gives_three_consecutive_ports():
    assert metrics_ports(None) == {"services": 9464, "relay": 9465, "gateway": 9466}
    assert metrics_ports("9100") == {"services": 9100, "relay": 9101, "gateway": 9102}
    assert metrics_ports("0") == {"services": 0, "relay": 0, "gateway": 0}
    with pytest.raises(SystemExit, match="OKR_METRICS_PORT"):
        metrics_ports("nine")


# ------------------------------------------------------------------------ metrics


def test_events_appended_counts_per_type():
    before_a = sample("okr_events_appended_total", event_type="test.A")
    before_b = sample("okr_events_appended_total", event_type="test.B")
    metrics.events_appended(["test.A", "test.B", "test.A"])
    assert sample("okr_events_appended_total", event_type="test.A") == before_a + 2
    assert sample("okr_events_appended_total", event_type="test.B") == before_b + 1


def test_consumer_tally_maps_to_results_and_dead_letters():
    q = "unit.q"
    metrics.consumer_committed(q, {"applied": 3, "duplicates": 1, "source:bus": 3, "dead_lettered": 2,
                                   "from_store": 1})
    assert sample("okr_consumer_events_total", consumer=q, result="applied") == 3
    assert sample("okr_consumer_events_total", consumer=q, result="duplicate") == 1
    assert sample("okr_consumer_events_total", consumer=q, result="dead_lettered") == 2
    assert sample("okr_dead_letters_total", consumer=q, reason="handler") == 2


def test_children_are_cached():
    a = metrics.entrypoint_duration[("s", "m", "rpc", "ok")]
    assert metrics.entrypoint_duration[("s", "m", "rpc", "ok")] is a
    a.observe(0.003)
    assert sample("okr_entrypoint_duration_seconds_bucket", service="s", entrypoint="m", kind="rpc",
                  outcome="ok", le="0.005") >= 1


# ----------------------------------------------------------------------- endpoint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_endpoint_serves_the_registry_once_per_process_and_survives_a_taken_port(caplog, monkeypatch):
    assert server.serving_port() is None  # the conftest disables it for in-process containers
    port = _free_port()
    try:
        monkeypatch.setenv("OKR_METRICS_PORT", str(port))
        monkeypatch.setenv("OKR_METRICS_HOST", "127.0.0.1")
        assert server.serve_from_env("relay") == port
        assert server.serve(_free_port(), "127.0.0.1") == port  # one per process
        metrics.events_appended(["test.Scraped"])
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        families = {f.name: f for f in text_string_to_metric_families(body)}
        scraped = {s.labels["event_type"]: s.value for s in families["okr_events_appended"].samples
                   if s.name == "okr_events_appended_total"}
        assert scraped["test.Scraped"] >= 1
        assert "okr_event_store_head_position" in families or "okr_relay_lag_events" in families \
            or "process_cpu_seconds" in families
    finally:
        server.shutdown()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with caplog.at_level(logging.ERROR, logger="okr_shared.observability.server"):
            assert server.serve(taken.getsockname()[1], "127.0.0.1") is None
        assert "metrics endpoint disabled: cannot listen on" in caplog.text
    assert server.serving_port() is None


# -------------------------------------------------------------------- interceptor


class FakeContext:
    def __init__(self):
        self._code = None

    def code(self):
        return self._code

    def abort(self, code, details):
        self._code = code
        raise Exception(details)  # what grpc's ServicerContext.abort does


def intercepted(handler, method="/okr.v1.Test/Call", correlation_id=None):
    from collections import namedtuple

    from okr_shared.observability.interceptor import ObservingInterceptor

    Details = namedtuple("Details", "method invocation_metadata")
    metadata = (("okr-correlation-id", correlation_id),) if correlation_id else ()
    return ObservingInterceptor(access_log=True).intercept_service(lambda _: handler, Details(method, metadata))


def test_interceptor_binds_the_callers_id_and_counts_codes(caplog):
    import grpc

    seen = []

    def ok(request, ctx):
        seen.append(context.correlation_id())
        return b"reply"

    def refused(request, ctx):
        ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing")

    labels = dict(grpc_service="okr.v1.Test", grpc_method="Call")
    ok_before = sample("okr_grpc_server_duration_seconds_count", grpc_code="OK", **labels)
    nf_before = sample("okr_grpc_server_duration_seconds_count", grpc_code="NOT_FOUND", **labels)
    with caplog.at_level(logging.INFO, logger="okr.access"):
        assert intercepted(grpc.unary_unary_rpc_method_handler(ok), correlation_id="cid-x").unary_unary(
            b"", FakeContext()) == b"reply"
        intercepted(grpc.unary_unary_rpc_method_handler(ok)).unary_unary(b"", FakeContext())
        with pytest.raises(Exception, match="no such thing"):
            intercepted(grpc.unary_unary_rpc_method_handler(refused)).unary_unary(b"", FakeContext())
    assert seen[0] == "cid-x" and len(seen[1]) == 36  # the caller's, else a new UUID
    assert context.current() is context.EMPTY
    assert sample("okr_grpc_server_duration_seconds_count", grpc_code="OK", **labels) == ok_before + 2
    assert sample("okr_grpc_server_duration_seconds_count", grpc_code="NOT_FOUND", **labels) == nf_before + 1
    assert [r.grpc_code for r in caplog.records if r.name == "okr.access"] == ["OK", "OK", "NOT_FOUND"]


def test_interceptor_keeps_the_context_across_a_streams_messages_and_times_its_whole_life():
    import grpc

    def stream(request, ctx):
        for i in range(3):
            yield f"{i}:{context.correlation_id()}"

    labels = dict(grpc_service="okr.v1.Test", grpc_method="Stream", grpc_code="OK")
    before = sample("okr_grpc_server_duration_seconds_count", **labels)
    handler = intercepted(grpc.unary_stream_rpc_method_handler(stream), "/okr.v1.Test/Stream", "cid-s")
    out = []
    for item in handler.unary_stream(b"", FakeContext()):
        out.append(item)
        assert context.current() is context.EMPTY  # not leaked to the server's thread between messages
    assert out == ["0:cid-s", "1:cid-s", "2:cid-s"]
    assert sample("okr_grpc_server_duration_seconds_count", **labels) == before + 1


def test_interceptor_leaves_health_checks_alone():
    import grpc

    handler = grpc.unary_unary_rpc_method_handler(lambda r, c: b"")
    assert intercepted(handler, "/grpc.health.v1.Health/Check") is handler
