"""The gateway's server interceptor: for every gRPC call

- the log context: the correlation id of the call's ``okr-correlation-id`` metadata
  (else a new UUID; the gateway forwards the same one to the services: ``context.
  correlation_id()``), service ``gateway``, entrypoint = the full method name;
- ``okr_grpc_server_duration_seconds{grpc_service, grpc_method, grpc_code}`` (a
  stream: from the call to its last message);
- one access log line (logger ``okr.access``, INFO; ``OKR_ACCESS_LOG=0`` turns it off):
  method, code, ``duration_ms`` (the tenant is not known here: authentication happens
  inside the handler, whose own log lines carry the correlation id).
"""

from __future__ import annotations

import logging
import time
import uuid

import grpc

from . import context, metrics
from ..config import access_log_enabled

_access = logging.getLogger("okr.access")

CORRELATION_HEADER = "okr-correlation-id"


def _code_name(servicer_context, error: BaseException | None) -> str:
    code = servicer_context.code() if hasattr(servicer_context, "code") else None
    if code is None:
        return "OK" if error is None else "UNKNOWN"
    return code.name if isinstance(code, grpc.StatusCode) else str(code)


class ObservingInterceptor(grpc.ServerInterceptor):
    def __init__(self, access_log: bool | None = None):
        self.access_log = access_log_enabled() if access_log is None else access_log
        self._names: dict[str, tuple[str, str]] = {}

    def _split(self, method: str) -> tuple[str, str]:
        names = self._names.get(method)
        if names is None:
            service, _, name = method.lstrip("/").partition("/")
            names = self._names[method] = (service, name)
        return names

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if method.startswith("/grpc."):  # health checks and reflection: not measured
            return handler
        service, name = self._split(method)
        header = next((v for k, v in handler_call_details.invocation_metadata or () if k == CORRELATION_HEADER),
                      None)
        observe = self._observe

        if handler.unary_unary is not None:
            inner = handler.unary_unary

            def unary_unary(request, servicer_context):
                token = context.bind(header or str(uuid.uuid4()), "", "gateway", method)
                t0 = time.perf_counter()
                error = None
                try:
                    return inner(request, servicer_context)
                except BaseException as e:
                    error = e
                    raise
                finally:
                    observe(service, name, method, servicer_context, error, t0)
                    context.reset(token)

            return grpc.unary_unary_rpc_method_handler(unary_unary, handler.request_deserializer,
                                                       handler.response_serializer)
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            def unary_stream(request, servicer_context):
                correlation_id = header or str(uuid.uuid4())
                t0 = time.perf_counter()
                error = None
                token = context.bind(correlation_id, "", "gateway", method)
                try:
                    iterator = inner_stream(request, servicer_context)
                finally:
                    context.reset(token)
                try:
                    while True:
                        # each step of the generator runs with the call's context
                        token = context.bind(correlation_id, "", "gateway", method)
                        try:
                            item = next(iterator)
                        except StopIteration:
                            return
                        finally:
                            context.reset(token)
                        yield item
                except BaseException as e:
                    error = e
                    raise
                finally:
                    token = context.bind(correlation_id, "", "gateway", method)
                    observe(service, name, method, servicer_context, error, t0)
                    context.reset(token)

            return grpc.unary_stream_rpc_method_handler(unary_stream, handler.request_deserializer,
                                                        handler.response_serializer)
        return handler  # client or bidirectional streaming: none in okr.v1

    def _observe(self, service, name, method, servicer_context, error, t0) -> None:
        elapsed = time.perf_counter() - t0
        if isinstance(error, GeneratorExit):  # the client went away mid-stream
            code = "CANCELLED"
        else:
            code = _code_name(servicer_context, error)
        metrics.grpc_server_duration[(service, name, code)].observe(elapsed)
        if self.access_log:
            _access.info("grpc %s %s", method, code,
                         extra={"kind": "grpc", "grpc_code": code, "duration_ms": round(elapsed * 1000, 3)})
