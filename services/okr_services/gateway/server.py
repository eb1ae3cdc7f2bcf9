"""The gRPC gateway: the one public face of the suite (protos/okr/v1/*.proto, docs/api.md).

    python -m okr_services.gateway            # or: make gateway

A plain grpcio server in its own process (grpcio does not serve inside an
eventlet-patched process: ADR 0013, ADR 0030) with a thread pool. Every call is

1. **authenticated** (``authorization: ApiKey <key>`` or ``Bearer <jwt>``: auth.py);
2. **authorised** for its action on the resource it touches (policy.py; the facts —
   the objective's team, the key result's owner — come from the goal service, which reads
   the event store: consistent with the command that follows);
3. **forwarded** over nameko RPC with one long-lived client (rpc_client.py) carrying the
   caller's tenant, principal and correlation id as context data; the tenant is always
   the caller's, never taken from the request (GoalService and ProgressService to the
   ``goal`` and ``progress`` services, ReportingService to ``reporting``,
   DirectoryService to ``directory``; ``WhoAmI`` is answered here, from the principal
   and its person in the directory);
4. **answered** with the typed response, or a status code: INVALID_ARGUMENT
   (``okr-field``), NOT_FOUND (``okr-kind``, ``okr-id``), FAILED_PRECONDITION
   (``okr-rule``), ABORTED, PERMISSION_DENIED, UNAUTHENTICATED, UNAVAILABLE (a service
   that does not answer), DEADLINE_EXCEEDED (the caller's deadline, which every RPC
   honours).

Audit reads (history, verify, export) and event streams read the event store directly
(read-only, ``OKR_DATABASE_URL``), always for the caller's tenant. gRPC health checking
(``grpc.health.v1.Health``: Check, Watch, List; each service's status follows the broker
and the event store it needs, health.py) and server reflection (``grpc.reflection.v1``
and ``v1alpha``, reflection_v1.py) are on, without credentials (docs/api.md, ADR 0026).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import uuid
from concurrent import futures
from typing import Any, Callable

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health as grpc_health, health_pb2, health_pb2_grpc

from okr.v1 import audit_pb2, directory_pb2, goal_pb2, progress_pb2, reporting_pb2, stream_pb2
from okr_shared.contracts import history_what
from okr_shared.db import migrate
from okr_shared.eventstore import EventStore, make_engine
from okr_shared.eventstore.errors import StreamNotFound
from okr_shared.eventstore.export import export_chunks
from okr_shared.observability import context as log_context, metrics
from okr_shared.observability.interceptor import ObservingInterceptor

from . import auth, convert, health, policy, reflection_v1, request_checks
from . import config as gateway_config
from .config import GatewayConfig
from .rpc_client import RemoteError, RpcClient, RpcTimeout, ServiceUnavailable

_log = logging.getLogger(__name__)

#: The proto services whose commands go to which nameko service.
COMMAND_TARGETS = {"okr.v1.GoalService": "goal", "okr.v1.ProgressService": "progress",
                   "okr.v1.DirectoryService": "directory"}

#: Reads: (proto service, method) -> (nameko service, method).
READS = {
    ("okr.v1.GoalService", "GetCycle"): ("goal", "get_cycle"),
    ("okr.v1.GoalService", "GetObjective"): ("goal", "get_objective"),
    ("okr.v1.GoalService", "GetKeyResult"): ("goal", "get_key_result"),
    ("okr.v1.GoalService", "GetInitiative"): ("goal", "get_initiative"),
    ("okr.v1.ProgressService", "GetKeyResult"): ("progress", "get_key_result"),
    ("okr.v1.ReportingService", "GetBoard"): ("reporting", "board"),
    ("okr.v1.ReportingService", "GetTeamDashboard"): ("reporting", "team_dashboard"),
    ("okr.v1.ReportingService", "GetPersonDashboard"): ("reporting", "person_dashboard"),
    ("okr.v1.ReportingService", "GetScorecard"): ("reporting", "scorecard"),
    ("okr.v1.ReportingService", "GetKeyResultStatus"): ("reporting", "key_result_status"),
    ("okr.v1.ReportingService", "ListKeyResultStatuses"): ("reporting", "key_result_statuses"),
    ("okr.v1.ReportingService", "GetObjectiveRollup"): ("reporting", "objective_rollup"),
    ("okr.v1.ReportingService", "GetAlignmentTree"): ("reporting", "alignment_tree"),
    ("okr.v1.ReportingService", "GetDiff"): ("reporting", "diff"),
    ("okr.v1.DirectoryService", "GetPerson"): ("directory", "get_person"),
    ("okr.v1.DirectoryService", "ListPeople"): ("directory", "list_people"),
    ("okr.v1.DirectoryService", "GetTeam"): ("directory", "get_team"),
    ("okr.v1.DirectoryService", "ListTeams"): ("directory", "list_teams"),
}

#: Reads whose "nothing there" answer (None) is NOT_FOUND, with the kind and the id field.
_NOT_FOUND_WHEN_NONE = {
    "GetCycle": ("cycle", "cycle_id"), "GetObjective": ("objective", "objective_id"),
    "GetKeyResult": ("key result", "key_result_id"), "GetInitiative": ("initiative", "initiative_id"),
    "GetScorecard": ("cycle", "cycle_id"), "GetKeyResultStatus": ("key result", "key_result_id"),
    "GetObjectiveRollup": ("objective", "objective_id"),
    "GetPerson": ("person", "person_id"), "GetTeam": ("team", "team_id"),
}

#: The directory's searches and the characters of their ``query`` (a substring searched
#: for; their page_size and page_token are the directory service's to check).
SEARCHES = frozenset({"ListPeople", "ListTeams"})
QUERY_MAX = 200

_SERVICE_MODULES = (goal_pb2, progress_pb2, reporting_pb2, audit_pb2, stream_pb2, directory_pb2)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class _Abort(Exception):
    """A refusal: the status, its message and the ``okr-*`` trailing metadata
    (docs/api.md); ``okr-kind`` is always the code's name in lower case."""

    def __init__(self, code: grpc.StatusCode, message: str, **details: str):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = {"okr-kind": code.name.lower(), **{k: v for k, v in details.items() if v}}


#: A domain error's code (okr_shared.domain.errors) -> its status and which of its
#: fields (the reply's ``details``) become which ``okr-*`` metadata (docs/api.md).
_REFUSALS = {
    "invalid_argument": (grpc.StatusCode.INVALID_ARGUMENT, (("field", "okr-field"),)),
    "not_found": (grpc.StatusCode.NOT_FOUND, (("kind", "okr-entity"), ("id", "okr-id"))),
    "failed_precondition": (grpc.StatusCode.FAILED_PRECONDITION, (("rule", "okr-rule"),)),
    "aborted": (grpc.StatusCode.ABORTED, (("stream_id", "okr-stream"),)),
}


def remote_refusal(e: RemoteError) -> _Abort:
    """A service's refusal as a status with details: mapped by the error's type and its
    structured fields (``RemoteError.details``), never by its message (ADR 0030)."""
    value = e.value or str(e)
    refusal = _REFUSALS.get(e.code)
    if refusal is not None:
        status, metadata = refusal
        return _Abort(status, value, **{key: str(e.details.get(name) or "") for name, key in metadata})
    if e.exc_type == "IncorrectSignature":  # a required argument left out of the request
        missing = e.details.get("missing")
        return _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"{missing}: required" if missing else value,
                      **{"okr-field": missing or ""})
    if e.exc_type in ("TenantMismatch", "PermissionDenied"):
        return _Abort(grpc.StatusCode.PERMISSION_DENIED, value)
    _log.error("service error %s: %s", e.exc_type, value)
    return _Abort(grpc.StatusCode.INTERNAL, f"internal error ({e.exc_type}); the service logged it")


class Gateway:
    """The servicers of every okr.v1 service on one grpcio server."""

    def __init__(self, config: GatewayConfig, rpc: RpcClient | None = None,
                 jwt_config: auth.JwtConfig | None = None, keys_engine=None, store: EventStore | None = None):
        self.config = config
        self.rpc = rpc or RpcClient(config.amqp_uri, default_timeout=config.rpc_timeout)
        self.jwt_config = jwt_config if jwt_config is not None else gateway_config.jwt_config()
        self.keys_engine = keys_engine if keys_engine is not None else (
            make_engine(config.keys_url) if config.keys_url else None)
        if self.keys_engine is not None:
            migrate(self.keys_engine, "gateway_keys")
        self._store_engine = None
        self.store = store
        if self.store is None and config.store_url:
            self._store_engine = make_engine(config.store_url)
            self.store = EventStore(self._store_engine)
        self._names = dict(config.service_names)
        self._keys: dict[str, tuple[float, auth.Principal]] = {}
        self._keys_lock = threading.Lock()
        self.server: grpc.Server | None = None
        self.health = health.HealthServicer()
        self.health_checker: health.DependencyChecker | None = None

    # ------------------------------------------------------------------ plumbing

    def _principal(self, context) -> auth.Principal:
        """The caller, from the call's one credential. A valid API key is remembered for
        ``key_cache_s`` seconds (by its whole header); two credentials are refused before
        the cache is asked, so a cached key never vouches for a second one."""
        metadata = context.invocation_metadata()
        header = auth.authorization_entry(metadata)
        if header and header.lower().startswith("apikey ") and self.config.key_cache_s > 0:
            now = time.monotonic()
            with self._keys_lock:
                hit = self._keys.get(header)
            if hit and now - hit[0] < self.config.key_cache_s:
                return hit[1]
            principal = auth.authenticate(metadata, self.keys_engine, self.jwt_config)
            with self._keys_lock:
                if len(self._keys) > 10_000:
                    self._keys.clear()
                self._keys[header] = (now, principal)
            return principal
        return auth.authenticate(metadata, self.keys_engine, self.jwt_config)

    def _context_data(self, principal: auth.Principal, context) -> dict:
        metadata = dict(context.invocation_metadata())
        return {"tenant_id": principal.tenant, "actor": principal.subject,
                "correlation_id": (metadata.get("okr-correlation-id") or log_context.correlation_id()
                                   or str(uuid.uuid4())),
                "role": principal.role}

    def _timeout(self, context) -> float:
        remaining = context.time_remaining()
        if remaining is None:
            return self.config.rpc_timeout
        if remaining <= 0:
            raise _Abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the call was forwarded")
        return min(remaining, self.config.rpc_timeout)

    def call(self, service: str, method: str, kwargs: dict, data: dict, context) -> Any:
        target = self._names.get(service, service)
        t0, outcome = time.perf_counter(), "error"
        try:
            reply = self.rpc.call(target, method, kwargs, context_data=data, timeout=self._timeout(context))
            outcome = "ok"
            return reply
        except RemoteError as e:
            outcome = "remote_error"
            raise remote_refusal(e) from None
        except RpcTimeout:
            outcome = "timeout"
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0.05:
                raise _Abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"{service}.{method} did not answer before the "
                                                                 "deadline") from None
            raise _Abort(grpc.StatusCode.UNAVAILABLE, f"the {service} service did not answer in time") from None
        except ServiceUnavailable as e:
            outcome = "unavailable"
            raise _Abort(grpc.StatusCode.UNAVAILABLE, f"the {service} service is unavailable: {e}") from None
        finally:
            metrics.rpc_client_duration[(service, method, outcome)].observe(time.perf_counter() - t0)

    def _guard(self, request_cls, fn: Callable, streaming: bool = False):
        """Wrap a handler for the raw request bytes: authenticate, then decode and check
        the request (``_request``), run, map every refusal to its status. The credential
        comes first: a caller without one learns nothing, not even what its bytes mean."""

        def handler(data, context):
            with _refusals(context):
                principal = self._principal(context)
                return fn(_request(request_cls, data), context, principal)

        def stream_handler(data, context):
            with _refusals(context):
                principal = self._principal(context)
                yield from fn(_request(request_cls, data), context, principal)

        return stream_handler if streaming else handler

    # ------------------------------------------------------------ authorisation

    def _get(self, service: str, method: str, kwargs: dict, data: dict, context) -> dict:
        found = self.call(service, method, kwargs, data, context)
        if not found:
            kind, field = {"get_objective": ("objective", "objective_id"),
                           "get_key_result": ("key result", "key_result_id"),
                           "get_initiative": ("initiative", "initiative_id")}[method]
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"{kind} {kwargs.get(field)!r} not found",
                         **{"okr-entity": kind, "okr-id": kwargs.get(field, "")})
        return found

    def resource(self, principal: auth.Principal, action: str, kwargs: dict, data: dict, context) -> policy.Resource:
        """What the command writes to, looked up only when the role's rules need it."""
        tenant = principal.tenant
        if action in policy.DIRECTORY_COMMANDS:  # named by the request itself: no look-up
            return policy.directory_resource(tenant, action, kwargs)
        if action not in policy.COMMANDS or principal.role in ("admin", "viewer", "auditor"):
            return policy.Resource(tenant, key_result_id=kwargs.get("key_result_id"))
        if principal.role == "service":
            return policy.Resource(tenant, key_result_id=kwargs.get("key_result_id"))
        if action in policy.CYCLE_COMMANDS:
            return policy.Resource(tenant)
        if action == "CreateObjective":
            return policy.Resource(tenant, team_id=kwargs.get("team_id") or None, owner=kwargs.get("owner"))
        if action in policy.OBJECTIVE_COMMANDS or action == "DefineKeyResult":
            o = self._get("goal", "get_objective", {"objective_id": kwargs.get("objective_id", "")}, data, context)
            return policy.Resource(tenant, team_id=o.get("team_id") or None, owner=o.get("owner"))
        if action in policy.KEY_RESULT_COMMANDS or action in policy.CHECK_IN_COMMANDS \
                or action == "CreateInitiative":
            kr_id = kwargs.get("key_result_id", "")
            kr = self._get("goal", "get_key_result", {"key_result_id": kr_id}, data, context)
            o = self._get("goal", "get_objective", {"objective_id": kr.get("objective_id", "")}, data, context)
            return policy.Resource(tenant, team_id=o.get("team_id") or None, owner=kr.get("owner"),
                                   key_result_id=kr_id)
        if action in policy.INITIATIVE_COMMANDS:
            i = self._get("goal", "get_initiative", {"initiative_id": kwargs.get("initiative_id", "")}, data, context)
            o = self._get("goal", "get_objective", {"objective_id": i.get("objective_id", "")}, data, context)
            return policy.Resource(tenant, team_id=o.get("team_id") or None, owner=i.get("assignee"),
                                   key_result_id=i.get("key_result_id"))
        return policy.Resource(tenant)

    # ----------------------------------------------------------------- handlers

    def _command(self, service: str, method: str, action: str):
        def run(request, context, principal):
            kwargs = convert.to_kwargs(request, every_field=True)
            if not kwargs.get("command_id"):
                kwargs.pop("command_id", None)
            data = self._context_data(principal, context)
            if action in policy.COMPOSITES:  # MovePersonToTeam: each of its commands
                for part, resource in policy.composite_parts(action, principal.tenant, kwargs):
                    policy.authorize(principal, part, resource)
            else:
                policy.authorize(principal, action, self.resource(principal, action, kwargs, data, context))
            return convert.command_result(self.call(service, method, kwargs, data, context))

        return run

    def _read(self, service: str, method: str, action: str, response_cls):
        def run(request, context, principal):
            policy.authorize(principal, action, policy.Resource(principal.tenant))
            if action in SEARCHES and len(request.query) > QUERY_MAX:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"query: at most {QUERY_MAX} characters",
                             **{"okr-field": "query"})
            kwargs = convert.to_kwargs(request)
            data = self._context_data(principal, context)
            result = self.call(service, method, kwargs, data, context)
            if result is None and action in _NOT_FOUND_WHEN_NONE:
                kind, field = _NOT_FOUND_WHEN_NONE[action]
                raise _Abort(grpc.StatusCode.NOT_FOUND, f"{kind} {kwargs.get(field, '')!r} not found",
                             **{"okr-entity": kind, "okr-id": str(kwargs.get(field, ""))})
            if action == "ListKeyResultStatuses":
                result = {"statuses": list((result or {}).values())}
            if action == "GetAlignmentTree":  # the query returns the list of roots
                result = {"roots": result or []}
            if action == "GetDiff" and isinstance(result, dict):
                result = dict(result, status_changes=[
                    dict(c, from_status=c.get("from"), to_status=c.get("to")) for c in result.get("status_changes", [])])
            if action == "GetKeyResult" and isinstance(result, dict):
                result = dict(result, check_ins=result.get("check_ins") or [])
            return convert.to_message(result, response_cls)

        return run

    # ------------------------------------------------------------------- import

    def _import_plan(self, request, context, principal):
        """ImportPlan: authorised once per team the plan writes to, then one call to the
        goal service, which checks every row and stores all or nothing."""
        rows = [convert.to_kwargs(row) for row in request.rows]
        data = self._context_data(principal, context)
        for resource in self._import_resources(principal, rows, data, context):
            policy.authorize(principal, "ImportPlan", resource)
        kwargs = {"rows": rows, "dry_run": bool(request.dry_run), "command_id": request.command_id or None}
        return convert.to_message(self.call("goal", "import_plan", kwargs, data, context), goal_pb2.ImportPlanResult)

    def _import_resources(self, principal, rows: list[dict], data: dict, context) -> list[policy.Resource]:
        """What an import writes to, for the policy: each objective row's team; for a
        key result or initiative whose parent is an existing item (not a ref of the
        file), that item's objective's team. An admin needs no look-ups; a parent that
        does not exist is left to the goal service (an error on its line)."""
        tenant = principal.tenant
        if principal.role == "admin" or not rows:
            return [policy.Resource(tenant)]
        refs = {r.get("ref") for r in rows if r.get("ref")}
        resources = set()
        for row in rows:
            kind, parent = row.get("type"), row.get("parent_ref", "")
            if kind == "OBJECTIVE":
                resources.add(policy.Resource(tenant, team_id=row.get("team_id") or None))
            elif kind in ("KEY_RESULT", "INITIATIVE") and parent and parent not in refs:
                try:
                    objective_id = parent
                    if kind == "INITIATIVE":
                        kr = self._get("goal", "get_key_result", {"key_result_id": parent}, data, context)
                        objective_id = kr.get("objective_id", "")
                    o = self._get("goal", "get_objective", {"objective_id": objective_id}, data, context)
                except _Abort as e:
                    if e.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                        continue
                    raise
                resources.add(policy.Resource(tenant, team_id=o.get("team_id") or None))
        return sorted(resources, key=lambda r: r.team_id or "") or [policy.Resource(tenant)]

    # ------------------------------------------------------------------- caller

    def _who_am_i(self, request, context, principal):
        """WhoAmI: the principal as this gateway authenticated it, and their person when
        the directory has one of that id (a machine key's subject usually is none)."""
        policy.authorize(principal, "WhoAmI", policy.Resource(principal.tenant))
        response = directory_pb2.WhoAmIResponse(tenant_id=principal.tenant, subject=principal.subject,
                                                via=principal.via, role=principal.role, teams=list(principal.teams))
        try:
            person = self.call("directory", "get_person", {"person_id": principal.subject},
                               self._context_data(principal, context), context)
        except _Abort as e:
            # not a person of the directory (or a subject that cannot be a person id)
            if e.code not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise
            person = None
        if person:
            convert.fill(response.person, person)
        return response

    # -------------------------------------------------------------------- audit

    def _history(self, request, context, principal):
        policy.authorize(principal, "GetHistory", policy.Resource(principal.tenant))
        stream_id = request.stream_id or (f"kr-{request.key_result_id}" if request.key_result_id else "")
        if not stream_id:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "key_result_id or stream_id: give one",
                         **{"okr-field": "key_result_id"})
        page_size = request.page_size or 100
        if page_size > 1000:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "page_size: at most 1000", **{"okr-field": "page_size"})
        start = 1
        if request.page_token:
            if not request.page_token.isdigit():
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "page_token: not a token this server gave",
                             **{"okr-field": "page_token"})
            start = int(request.page_token)
        store = self._store()
        try:
            events = []
            # the caller's tenant's stream: another tenant's of the same id is another stream
            for event in store.read_stream(stream_id, start, tenant_id=principal.tenant, batch_size=page_size + 1):
                events.append(event)
                if len(events) > page_size:
                    break
        except StreamNotFound:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"stream {stream_id!r} not found",
                         **{"okr-entity": "stream", "okr-id": stream_id}) from None
        except ValueError as e:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
        more = len(events) > page_size
        events = events[:page_size]
        response = audit_pb2.GetHistoryResponse(stream_id=stream_id)
        for e in events:
            metadata, payload = e.metadata, e.data
            entry = response.entries.add(
                position=e.position, stream_version=e.stream_version, event_id=e.event_id, event_type=e.event_type,
                actor=metadata.get("actor", ""), reason=payload.get("reason") or metadata.get("reason", ""),
                what=history_what(e.event_type), correlation_id=metadata.get("correlation_id", ""),
                causation_id=metadata.get("causation_id", ""), hash=e.hash)
            entry.recorded_at.FromMicroseconds(e.recorded_at_us)
            entry.payload.update(payload)
        if more:
            response.next_page_token = str(events[-1].stream_version + 1)
        return response

    def _replay(self, request, context, principal):
        policy.authorize(principal, "ReplayAsOf", policy.Resource(principal.tenant))
        read_model = convert.enum_short(request.DESCRIPTOR.fields_by_name["read_model"].enum_type,
                                        request.read_model)
        if read_model is None:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "read_model: required", **{"okr-field": "read_model"})
        at = convert.instant(request.at)
        if at is None:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "at: a position, a time or a date",
                         **{"okr-field": "at"})
        kwargs = {"read_model": read_model.lower(), **({"position": at} if isinstance(at, int) else {"time": at})}
        if request.today:
            kwargs["today"] = request.today
        if request.HasField("params"):
            try:
                params = json_format.MessageToDict(request.params)
            except (ValueError, json_format.Error) as e:  # NaN or infinity: not JSON
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"params: {e}", **{"okr-field": "params"}) from None
            kwargs.update(_replay_params(kwargs["read_model"], params))
        data = self._context_data(principal, context)
        result = self.call("reporting", "as_of", kwargs, data, context)
        response = audit_pb2.ReplayAsOfResponse(read_model=request.read_model, today=request.today)
        if isinstance(at, int):
            response.position = at
        json_format.ParseDict(result, response.result)
        return response

    def _verify(self, request, context, principal):
        policy.authorize(principal, "VerifyChain", policy.Resource(principal.tenant))
        anchor = None
        if request.expected_head:
            if not re.fullmatch(r"[0-9a-fA-F]{64}", request.expected_head):
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "expected_head: 64 hexadecimal characters, or empty",
                             **{"okr-field": "expected_head"})
            anchor = (request.expected_head.lower(), request.expected_head_position or None)
        elif request.expected_head_position:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         "expected_head: required with expected_head_position (an anchor is a hash, "
                         "optionally with its position)", **{"okr-field": "expected_head"})
        store = self._store()
        result = store.verify(principal.tenant, anchor=anchor)
        head = result.chain_head or store.chain_head(principal.tenant) or {}
        response = audit_pb2.VerifyChainResponse(
            ok=result.ok, events_checked=result.events_checked, first_bad_position=result.position or 0,
            first_bad_event_id=result.event_id or "", reason=result.problem or "")
        convert.fill(response.chain_head, head)
        if result.anchor_position is not None:
            response.anchor_matched = True
            response.expected_head_position = result.anchor_position
            response.anchor_event_count = result.anchor_event_count
            response.events_after_anchor = result.events_checked - result.anchor_event_count
        return response

    def _export(self, request, context, principal):
        policy.authorize(principal, "ExportBundle", policy.Resource(principal.tenant))
        chunks = export_chunks(self._store(), principal.tenant, request.max_chunk_bytes)
        for sequence, (data, head) in enumerate(chunks):
            chunk = audit_pb2.ExportChunk(data=data, sequence=sequence)
            if head is not None:
                convert.fill(chunk.chain_head, head)
            yield chunk

    def _store(self) -> EventStore:
        if self.store is None:
            raise _Abort(grpc.StatusCode.UNAVAILABLE, "this gateway has no event store configured (OKR_DATABASE_URL)")
        return self.store

    # ------------------------------------------------------------------- stream

    def _stream(self, request, context, principal):
        policy.authorize(principal, "StreamEvents", policy.Resource(principal.tenant))
        from .streaming import StreamOverflow, StreamUnavailable, stream_events

        stop = threading.Event()
        context.add_callback(stop.set)
        try:
            events = stream_events(self._store(), self.config.amqp_uri, tenant=principal.tenant,
                                   from_position=request.from_position or 1,
                                   event_types=list(request.event_types) or None, follow=request.follow, stop=stop)
            for envelope in events:
                if stop.is_set():
                    return
                if envelope is not None:
                    yield envelope
        except ValueError as e:
            field, _, _ = str(e).partition(":")
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, str(e), **{"okr-field": field}) from None
        except StreamOverflow as e:
            raise _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{e}; resume from your last position + 1") from None
        except StreamUnavailable as e:
            raise _Abort(grpc.StatusCode.UNAVAILABLE, f"{e}; resume from your last position + 1") from None

    # ------------------------------------------------------------------- server

    def handlers(self) -> list:
        out = []
        for module in _SERVICE_MODULES:
            for service in module.DESCRIPTOR.services_by_name.values():
                methods = {}
                for method in service.methods:
                    request_cls = _message_class(method.input_type)
                    response_cls = _message_class(method.output_type)
                    action = method.name
                    key = (service.full_name, method.name)
                    if method.output_type.full_name == "okr.v1.CommandResult":
                        fn = self._guard(request_cls, self._command(COMMAND_TARGETS[service.full_name], snake(action),
                                                               action))
                    elif key in READS:
                        fn = self._guard(request_cls, self._read(*READS[key], action, response_cls))
                    elif action == "WhoAmI":
                        fn = self._guard(request_cls, self._who_am_i)
                    elif action == "ImportPlan":
                        fn = self._guard(request_cls, self._import_plan)
                    elif action == "GetHistory":
                        fn = self._guard(request_cls, self._history)
                    elif action == "ReplayAsOf":
                        fn = self._guard(request_cls, self._replay)
                    elif action == "VerifyChain":
                        fn = self._guard(request_cls, self._verify)
                    elif action == "ExportBundle":
                        fn = self._guard(request_cls, self._export, streaming=True)
                    elif action == "StreamEvents":
                        fn = self._guard(request_cls, self._stream, streaming=True)
                    else:  # pragma: no cover - a new RPC without a handler fails the start
                        raise RuntimeError(f"no handler for {service.full_name}/{method.name}")
                    make = grpc.unary_stream_rpc_method_handler if method.server_streaming \
                        else grpc.unary_unary_rpc_method_handler
                    # the bytes as they came: decoded and checked by _guard, so that a
                    # request that does not decode is INVALID_ARGUMENT (and measured), not
                    # grpcio's INTERNAL "Exception deserializing request!"
                    methods[method.name] = make(fn, request_deserializer=None,
                                                response_serializer=response_cls.SerializeToString)
                out.append(grpc.method_handlers_generic_handler(service.full_name, methods))
        return out

    def service_names(self) -> list[str]:
        return [s.full_name for m in _SERVICE_MODULES for s in m.DESCRIPTOR.services_by_name.values()]

    def start(self) -> int:
        """Start serving; returns the bound port."""
        self.rpc.start()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.config.workers,
                                                             thread_name_prefix="okr-gateway"),
                                  interceptors=[ObservingInterceptor()],
                                  # a port another process listens on is an error, not
                                  # a port silently shared (grpcio's default)
                                  options=[("grpc.so_reuseport", 0)])
        self.server.add_generic_rpc_handlers(self.handlers())
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = self.service_names()
        probes = {health.BROKER: health.broker_probe(self.rpc)}
        if self.store is not None:
            probes[health.STORE] = health.store_probe(self.store.engine)
        # the first check runs now: the statuses are true before the port opens
        self.health_checker = health.DependencyChecker(self.health, probes, names, self.config.health_interval)
        self.health_checker.start()
        reflection_v1.enable_server_reflection(names + [grpc_health.SERVICE_NAME], self.server)
        try:
            port = self.server.add_insecure_port(self.config.address)
        except RuntimeError:  # grpcio >= 1.5x raises where older ones returned 0
            port = 0
        if port == 0:
            self.server = None
            self.health_checker.stop()
            self.rpc.stop()
            raise RuntimeError(f"cannot listen on {self.config.address}: in use by another process, "
                               "or not an address of this machine (OKR_GATEWAY_ADDRESS)")
        self.server.start()
        return port

    def stop(self, grace: float = 2.0) -> None:
        if self.health_checker is not None:
            self.health_checker.stop()  # before the NOT_SERVING below, which it must not undo
        if self.server is not None:
            for name in self.service_names() + [""]:
                self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
            self.server.stop(grace).wait()
        self.rpc.stop()
        if self._store_engine is not None:
            self.store.close()
            self._store_engine.dispose()


#: ReplayAsOf params per read model (audit.proto ReadModel): name -> (type, required).
_REPLAY_PARAMS: dict[str, dict[str, tuple[type, bool]]] = {
    "board": {"cycle_id": (str, False), "team_id": (str, False), "owner": (str, False)},
    "team_dashboard": {"team_id": (str, True), "cycle_id": (str, False)},
    "person_dashboard": {"person": (str, True), "cycle_id": (str, False)},
    "scorecard": {"cycle_id": (str, True)},
    "kr_history": {"key_result_id": (str, True)},
    "key_result_status": {"key_result_id": (str, True)},
    "key_result_statuses": {"cycle_id": (str, False)},
    "objective_rollup": {"objective_id": (str, True), "include_children": (bool, False),
                         "child_weight": (float, False)},
    "alignment_tree": {"cycle_id": (str, False)},
    "model": {},
}


def _replay_params(read_model: str, params: dict) -> dict:
    """ReplayAsOf's ``params`` checked against the read model's own arguments: an unknown
    name, a value of the wrong JSON type or a missing required one is INVALID_ARGUMENT
    (``params.<name>``), never a failure inside the reporting service."""
    allowed = _REPLAY_PARAMS.get(read_model)
    if allowed is None:  # a read model this gateway does not know: the service decides
        return params
    for name, value in params.items():
        if name not in allowed:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         f"params.{name}: not a parameter of {read_model} (one of: {', '.join(allowed) or 'none'})",
                         **{"okr-field": f"params.{name}"})
        kind, _ = allowed[name]
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        if not ok:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         f"params.{name}: must be a JSON {'number' if kind is float else kind.__name__}",
                         **{"okr-field": f"params.{name}"})
    for name, (_, required) in allowed.items():
        if required and name not in params:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"params.{name}: required for {read_model}",
                         **{"okr-field": f"params.{name}"})
    return params


def _request(request_cls, data: bytes):
    """The request decoded from its bytes as ``request_cls`` and checked (request_checks:
    finite numbers, valid timestamps, string lengths and entry counts); a failure is
    INVALID_ARGUMENT naming the field."""
    try:
        request = request_checks.decode(request_cls, data)
        request_checks.check(request)
    except request_checks.RequestError as e:
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, str(e), **{"okr-field": e.field}) from None
    return request


def _message_class(descriptor):
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)


def _metadata_value(value: Any, limit: int = 256) -> str:
    """A trailing metadata value as gRPC accepts it: printable ASCII only (a caller's id
    may hold any character; grpc refuses the whole answer with INTERNAL otherwise), other
    characters escaped as in a Python literal, at most ``limit`` characters."""
    text = "".join(c if " " <= c <= "~" and c != "\\" else c.encode("unicode_escape").decode("ascii")
                   for c in str(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def _refusals(context):
    """Every refusal of a handler as its status (and ``okr-*`` details)."""
    try:
        yield
    except _Abort as e:
        _abort(context, e)
    except auth.Unauthenticated as e:
        _abort(context, _Abort(grpc.StatusCode.UNAUTHENTICATED, str(e)))
    except auth.PermissionDenied as e:  # a field a rule does not let the caller set: named
        _abort(context, _Abort(grpc.StatusCode.PERMISSION_DENIED, str(e), **{"okr-field": getattr(e, "field", "")}))


def _abort(context, e: _Abort) -> None:
    if e.details:
        context.set_trailing_metadata(tuple((k, _metadata_value(v)) for k, v in e.details.items()))
    context.abort(e.code, e.message)

