"""The reporting service: the read models of the fold (``okr_shared.readmodels``) kept
in its own database from the bus, queried over RPC (for the gateway) and HTTP (JSON and
a kanban board page).

    nameko run --config services/config.yaml okr_services.reporting.service

- **Incremental**: ``@okr_event_handler("reporting.read-models", ordered=True)`` on every
  okr.v1 event: the rows the event touches are loaded, projected and written in the
  consumer layer's transaction (with its offset). A new, empty database catches up on
  the whole history from the store (the layer's gap filling).
- **Rebuild**: ``okr projections rebuild`` (``rebuild.py``, ``bulk_rebuild.rebuild``).
- **As-of**: ``as_of(read_model, position=…|time=…)`` folds the store's prefix into a
  fresh model; the live tables are never touched.
- **Clock**: ``Clock`` gives ``today`` in ``OKR_TIMEZONE``; tests pass a fixed day. A
  ``@timer`` (every ``refresh_interval`` s) refreshes the cached board per tenant when
  no event was applied since its previous tick; it reads only and writes nothing to
  the event store.

RPC queries take the tenant from the call's context data ``tenant_id`` (as the goal and
progress services do; ``okr_services.dependencies.Caller``).

HTTP (``WEB_SERVER_ADDRESS``, nameko's default ``0.0.0.0:8000``):
``GET /api/<tenant>/board?cycle=&team=&owner=``, ``GET /api/<tenant>/scorecard/<cycle>``,
``GET /api/<tenant>/kr/<id>/history``, ``GET /board/<tenant>`` (HTML). Bad input gets a JSON
error, never a 500: an unknown, repeated, empty or malformed query parameter → 400
``{"error": "invalid_argument", "field": …, "message": …}``; an unknown cycle or key result
→ 404 ``{"error": "not_found", "kind": …, "id": …, "message": …}``; only a genuine bug → 500
(logged; the body holds no traceback). RPC ``as_of``/``diff`` refuse (ValidationError naming
the field) an instant in the future or beyond the head; one before the tenant's first event
is the empty state. A cycle, key result or objective a query names that the tenant does not
have (``as_of``: did not have at the instant) → NotFound; team, owner and person are filters.
TODO(issue 7): the HTTP face is NOT authenticated yet — the tenant comes from the URL.
Issue 7 adds authentication (and must derive the tenant from the authenticated caller);
until then, do not expose WEB_SERVER_ADDRESS beyond a trusted network.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from datetime import date, datetime, timezone
from urllib.parse import unquote, unquote_to_bytes
from zoneinfo import ZoneInfo

from nameko.extensions import DependencyProvider
from nameko.timer import timer
from nameko.web.handlers import http
from sqlalchemy import select
from werkzeug.wrappers import Response

from okr_shared.bus import wire
from okr_shared.bus.consumer import ConsumerDatabase, okr_event_handler
from okr_shared.config import Settings
from okr_shared.domain import validation
from okr_shared.domain.errors import DomainError, NotFound, ValidationError
from okr_shared.readmodels import projections
from okr_shared.readmodels.events import BusEvent
from okr_shared.readmodels.projections import TABLES, new_model
from okr_shared.observability.nameko import Observed
from okr_services.dependencies import Caller
from okr_services.off_the_hub import OffTheHub
from okr_services.rpc import query

from . import queries, storage
from .html import render_board

_log = logging.getLogger(__name__)

ENTITY_TABLES = tuple(t for t in TABLES if t != "history")


# ------------------------------------------------------------------ dependencies


class ReportingDatabase(ConsumerDatabase):
    """The consumer database (``OKR_REPORTING_DATABASE_URL``, default
    ``sqlite:///$OKR_DATA_DIR/<service name>.db``) with the read-model tables created at
    start. Workers get this provider itself: ``.engine``, ``.event_store`` (the store at
    ``OKR_DATABASE_URL``, for as-of replays), ``.transaction()``."""

    def setup(self):
        super().setup()
        storage.migrate_schema(self.engine)

    def get_dependency(self, worker_ctx):
        return self


class Clock(DependencyProvider):
    """What day it is in the organisation's calendar: ``today()`` in ``OKR_TIMEZONE``
    (okr_shared.config.Settings), or the fixed ``today`` given (a ``date`` or a callable
    returning one) — tests pass one, so status, pace and overdue are deterministic."""

    def __init__(self, today=None):
        self.fixed = today

    def setup(self):
        self.zone = ZoneInfo(Settings.from_env().timezone)

    def today(self) -> date:
        if self.fixed is not None:
            return self.fixed() if callable(self.fixed) else self.fixed
        return datetime.now(self.zone).date()

    def day_of_us(self, us: int) -> date:
        """The calendar day of an instant (microseconds since the epoch)."""
        return datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc).astimezone(self.zone).date()

    def get_dependency(self, worker_ctx):
        return self


class BoardCache(DependencyProvider):
    """The timer's derived, disposable cache: per tenant the board (no filters) and the
    KR statuses of ``today``, valid while the consumer's offset and the day are those it
    was computed at."""

    def setup(self):
        self.entries: dict[str, dict] = {}
        self.refreshes = 0
        self.skipped = 0  # ticks while events were being applied
        self.seen_position: int | None = None  # the consumer's offset at the last tick
        self.lock = threading.Lock()

    def get_dependency(self, worker_ctx):
        return self


# ------------------------------------------------------------------------ helpers


#: ``queries`` computed off the hub: a board is ~60 ms of pure Python for 50 key results
#: with 170 check-ins each (several times that on a busy machine); on the hub it stopped
#: the event consumer meanwhile.
_queries = OffTheHub(queries)
_storage = OffTheHub(storage)  # only its pure functions (build_model)
_projections = OffTheHub(projections)  # fold_page


def _parse_instant(value, zone, field: str = "time") -> int:
    """Microseconds since the epoch from an int or ``{"us": n}`` (µs), an ISO date (midnight at the start
    of that day, in the organisation's time zone) or an ISO datetime (naive: that zone)."""
    if isinstance(value, bool):
        raise ValidationError(field, "must be an ISO date/datetime or microseconds")
    if isinstance(value, dict) and isinstance(value.get("us"), int):
        return value["us"]
    if isinstance(value, int):
        return value
    if not isinstance(value, str) or not _ISO_MOMENT.match(value):  # no week or ordinal dates
        raise ValidationError(field, f"not an ISO date YYYY-MM-DD or datetime: {value!r}")
    try:
        if len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), datetime.min.time(), zone)
        else:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
    except (TypeError, ValueError) as e:
        raise ValidationError(field, f"not an ISO date or datetime: {value!r}") from e
    return int(moment.timestamp() * 1_000_000)


#: A date YYYY-MM-DD, alone or starting a datetime (``T`` or a space, then the time).
_ISO_MOMENT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:$|[T ][0-9])")


def _parse_day(value, field: str = "today") -> date | None:
    if value is None or isinstance(value, date):
        return value
    return validation.iso_date(field, value)


#: The range of a roll-up's child weight, as a key result's weight (validation.positive).
MAX_CHILD_WEIGHT = 1000.0


def _child_weight(value, field: str = "child_weight") -> float:
    """GetObjectiveRollup's ``child_weight``: a finite number > 0 and at most 1000 (a
    negative or zero weight would turn the weighted mean into a division by zero or a
    score outside 0..1); None: the default 1.0."""
    return 1.0 if value is None else validation.positive(field, value, maximum=MAX_CHILD_WEIGHT)


def _range_in_order(since: dict, until: dict, zone) -> None:
    """``since`` after ``until`` (both positions, or both times/dates): ValidationError
    naming ``since``. A position and a time are not compared (their order depends on when
    the event was recorded); each is still checked against the store by the replay."""
    if "position" in since and "position" in until:
        if since["position"] > until["position"]:
            raise ValidationError("since", f"position {since['position']} is after until's position "
                                           f"{until['position']}")
    elif "time" in since and "time" in until:
        since_us, until_us = _parse_instant(since["time"], zone, "since"), _parse_instant(until["time"], zone, "until")
        if since_us > until_us:
            raise ValidationError("since", f"{_us_text(since_us)} is after until ({_us_text(until_us)})")


#: The read models ``as_of`` replays: name -> f(model, tenant, today, **params).
READ_MODELS = {
    "board": lambda m, t, d, **p: _queries.board(m, t, d, **p),
    "team_dashboard": lambda m, t, d, **p: _queries.team_dashboard(m, t, today=d, **p),
    "person_dashboard": lambda m, t, d, **p: _queries.person_dashboard(m, t, today=d, **p),
    "scorecard": lambda m, t, d, **p: _queries.scorecard(m, t, today=d, **p),
    "kr_history": lambda m, t, d, **p: _queries.kr_history(m, t, **p),
    "key_result_status": lambda m, t, d, **p: _queries.key_result_status(m, t, today=d, **p),
    "key_result_statuses": lambda m, t, d, **p: _queries.key_result_statuses(m, t, d, **p),
    "objective_rollup": lambda m, t, d, **p: _queries.objective_rollup(m, t, today=d, **p),
    "alignment_tree": lambda m, t, d, **p: _queries.alignment_tree(m, t, d, **p),
    "model": lambda m, t, d, **p: m,
}


#: The read models that read the history table (the others replay without building it).
HISTORY_READ_MODELS = frozenset({"kr_history", "model"})


def _json_response(value, status: int = 200) -> Response:
    return Response(json.dumps(value, sort_keys=True), status=status, mimetype="application/json")


def _error_response(error: DomainError) -> Response:
    """A DomainError as JSON: ValidationError → 400 (``field``), NotFound → 404 (``kind``,
    ``id``), any other refusal → 400 with its code."""
    body = {"error": error.code, "message": str(error)}
    if isinstance(error, ValidationError):
        body["field"] = error.field
        return _json_response(body, 400)
    if isinstance(error, NotFound):
        body.update(kind=error.kind, id=error.id)
        return _json_response(body, 404)
    return _json_response(body, 400)


def _http_errors(handler):
    """Wrap an HTTP entrypoint: DomainErrors become their JSON status (``_error_response``);
    anything else is a bug — logged with its traceback, answered with a bare 500 JSON body
    (no traceback leaks)."""

    @functools.wraps(handler)
    def wrapper(self, request, *args, **kwargs):
        try:
            return handler(self, request, *args, **kwargs)
        except DomainError as e:
            return _error_response(e)
        except Exception:  # noqa: BLE001 - a genuine bug: logged, never leaked
            _log.exception("reporting HTTP %s %s failed", request.method, request.path)
            return _json_response({"error": "internal", "message": "internal error"}, 500)

    return wrapper


#: The query parameters of the board (JSON and page): name -> the query's argument.
BOARD_FILTERS = {"cycle": "cycle_id", "team": "team_id", "owner": "owner"}


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _check_query_string(raw: bytes) -> None:
    """Refuse a malformed query string (ValidationError naming the parameter): a ``%`` not
    followed by two hex digits, or an escape that does not decode to UTF-8 text (werkzeug
    would pass both on as literal text)."""
    text = raw.decode("latin-1")
    for part in filter(None, text.split("&")):
        name = part.split("=", 1)[0]
        shown = unquote(name.replace("+", " "), errors="replace") or name
        if _BAD_ESCAPE.search(part):
            raise ValidationError(shown, "malformed query string: '%' must start an escape of two hex digits")
        try:
            unquote_to_bytes(part.replace("+", " ")).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValidationError(shown, "malformed query string: not UTF-8 once unescaped") from e


def _query_args(request, allowed: dict[str, str]) -> dict:
    """The request's query string as the query's keyword arguments. Refused (ValidationError
    naming the parameter): a parameter not in ``allowed``, one given twice, an empty value,
    a value that is not valid UTF-8 or holds control characters."""
    _check_query_string(request.query_string)
    result = {}
    for name, values in request.args.lists():
        if name not in allowed:
            expected = ", ".join(sorted(allowed)) or "none"
            raise ValidationError(name, f"unknown query parameter (expected: {expected})")
        if len(values) != 1:
            raise ValidationError(name, "given more than once")
        (value,) = values
        if not value.strip():
            raise ValidationError(name, "must not be empty (leave the parameter out for no filter)")
        if "\ufffd" in value or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ValidationError(name, "malformed value (not UTF-8 text or control characters)")
        result[allowed[name]] = value
    return result


# ------------------------------------------------------------------------ service


def make_service(name: str = "reporting", *, queue: str = storage.CONSUMER, db_url: str | None = None,
                 event_store_url: str | None = None, today=None, refresh_interval: float = 60.0,
                 **handler_options):
    """The reporting service class. Production: ``ReportingService`` (this module's
    defaults). Tests give their own name, queue, exchanges (``exchange=``,
    ``dead_letter_exchange=``), databases and fixed ``today``."""

    class ReportingService:
        db = ReportingDatabase(db_url, url_env="OKR_REPORTING_DATABASE_URL", event_store_url=event_store_url)
        clock = Clock(today)
        cache = BoardCache()
        caller = Caller()
        observed = Observed()  # log context, latency metrics, the /metrics endpoint

        # ------------------------------------------------------- incremental

        @okr_event_handler(queue, event_types=wire.ALL_EVENTS, ordered=True, **handler_options)
        def on_event(self, envelope, conn):
            storage.apply_event(conn, BusEvent(envelope))

        # ------------------------------------------------------------ models

        def _tenant(self) -> str:
            tenant = self.caller.tenant_id
            if not tenant:
                raise ValidationError("tenant_id", "the call's context data must carry tenant_id")
            return tenant

        def _model(self, tenant: str, history: bool = False):
            with self.db.engine.connect() as conn:
                return storage.load_model(conn, tenant, TABLES if history else ENTITY_TABLES,
                                          build=_storage.build_model)

        def _position(self) -> int | None:
            with self.db.engine.connect() as conn:
                return storage.offset_of(conn, queue)

        def _replay(self, tenant: str, position=None, time=None, field: str | None = None, history: bool = True):
            """(model of the store's prefix, the day of its last event or of ``time``).
            An instant before the tenant's first event (or of a tenant without events) is
            the empty state: an empty model, read on the day before ``time`` (a position:
            the clock's today) — a new tenant's first weekly review diffs from the
            beginning (ADR 0022). Refused (ValidationError naming ``field``, else
            ``position``/``time``): a position that is not a non-negative integer or is
            beyond the store's head; a time that is malformed or in the future.
            ``history=False``: the model without its history table."""
            if position is None and time is None:
                raise ValidationError(field or "position", "give a position or a time")
            if position is not None and (isinstance(position, bool) or not isinstance(position, int)):
                raise ValidationError(field or "position", "must be an integer")
            if position is not None and position < 0:
                raise ValidationError(field or "position", f"{position} is not a position (0 or more)")
            before_us = None if time is None else _parse_instant(time, self.clock.zone, field or "time")
            if position is not None:
                head = self.db.event_store.head_position()
                if position > head:
                    raise ValidationError(field or "position", f"{position} is beyond the head of the store ({head})")
            if before_us is not None:
                now_us = int(datetime.now(timezone.utc).timestamp() * 1_000_000)
                if before_us > now_us:
                    raise ValidationError(field or "time", f"{_us_text(before_us)} is in the future")
                try:  # the day it is read on must exist (the calendar's years 1 to 9999)
                    self.clock.day_of_us(before_us - 1)
                except (OverflowError, OSError, ValueError):
                    raise ValidationError(field or "time", f"{before_us} µs is not a moment of years 1 to 9999") \
                        from None
            first = next(iter(self.db.event_store.read_all(1, tenant_id=tenant, batch_size=1)), None)
            if first is None or (position is not None and position < first.position) or (
                    before_us is not None and before_us <= first.recorded_at_us):
                day = self.clock.day_of_us(before_us - 1) if before_us is not None else self.clock.today()
                return new_model(history=history), day
            # The store's pages are read here, each folded in eventlet's thread pool: a
            # large tenant's replay would otherwise stop the event consumer until it ends.
            model, last_us = new_model(history=history), None
            pages = self.db.event_store.scan(first.position, to_position=position, tenant_id=tenant)
            try:
                for page in pages:
                    page_us, ended = _projections.fold_page(model, page, position, before_us)
                    last_us = page_us if page_us is not None else last_us
                    if ended:
                        break
            finally:
                pages.close()  # ends the read transaction now, not when collected
            if before_us is not None:
                day = self.clock.day_of_us(before_us - 1)
            elif last_us is not None:
                day = self.clock.day_of_us(last_us)
            else:
                day = self.clock.today()
            return model, day

        def _board(self, tenant: str, today: date, cycle_id=None, team_id=None, owner=None) -> dict:
            """The board (from the timer's cache when unfiltered); a cycle that the
            tenant does not have → NotFound (team and owner are filters)."""
            if cycle_id is None and team_id is None and owner is None:
                entry = self.cache.entries.get(tenant)
                if entry and entry["today"] == today and entry["position"] == self._position():
                    return entry["board"]
            return _queries.board(self._referenced(tenant, cycle_id=cycle_id), tenant, today, cycle_id=cycle_id,
                                 team_id=team_id, owner=owner)

        def _referenced(self, tenant: str, **arguments):
            """The tenant's live model, once every entity the query's ``arguments`` name
            (``queries.REFERENCES``: cycle, key result, objective) is found in it; else
            NotFound naming the first missing one."""
            model = self._model(tenant)
            missing = queries.missing_reference(model, tenant, arguments)
            if missing is not None:
                raise NotFound(*missing)
            return model

        def _today(self, today) -> date:
            """The day a query reads on: ``today`` (an ISO date) when given, else the clock's."""
            return _parse_day(today) or self.clock.today()

        def _cycle_query(self, query, cycle_id, today, *args):
            """``query(model, tenant, *args, day, cycle_id=cycle_id)`` on the caller's
            tenant's live model, once the cycle (None: every cycle) is found in it."""
            tenant = self._tenant()
            return query(self._referenced(tenant, cycle_id=cycle_id), tenant, *args, self._today(today),
                         cycle_id=cycle_id)

        def _entity_query(self, query, kind: str, id: str, today=None, *, dated: bool = True, history: bool = False):
            """``query(model, tenant, id, day)`` (``dated`` False: without the day) on
            the caller's tenant's live model (``history``: with its history table);
            NotFound(kind, id) when the tenant has no such entity."""
            tenant = self._tenant()
            model = self._model(tenant, history=history)
            day = (self._today(today),) if dated else ()
            return _found(query(model, tenant, id, *day), kind, id)

        # -------------------------------------------------------------- timer

        @timer(interval=refresh_interval)
        def refresh(self):
            """Re-read each tenant's board and KR statuses on today's date into the cache.
            Reads the read-model tables only: nothing is written to the event store (nor
            to any table).

            Only when the read models are quiet: if the consumer applied events since
            the previous tick, a board computed now would be stale before anyone read it
            (each entry is valid at one position), and computing every tenant's board
            while events flow took the consumer's process for hundreds of milliseconds
            each minute — the tick just notes the position (``skipped``). A quiet tick
            whose entries already hold this position and day recomputes nothing."""
            today = self.clock.today()
            position = self._position()
            cache = self.cache
            moved, cache.seen_position = position != cache.seen_position, position
            if moved:
                cache.skipped += 1
                return 0
            if cache.entries and all(e["position"] == position and e["today"] == today
                                     for e in cache.entries.values()):
                with cache.lock:
                    cache.refreshes += 1
                return len(cache.entries)
            with self.db.engine.connect() as conn:
                t = storage.LIVE["key_results"]
                tenants = [r[0] for r in conn.execute(select(t.c.tenant).distinct().order_by(t.c.tenant))]
            entries = {}
            for tenant in tenants:
                model = self._model(tenant)
                entries[tenant] = {"today": today, "position": position,
                                   "board": _queries.board(model, tenant, today),
                                   "statuses": _queries.key_result_statuses(model, tenant, today)}
            with self.cache.lock:
                self.cache.entries = entries
                self.cache.refreshes += 1
            return len(entries)

        # ---------------------------------------------------------------- rpc

        @query
        def board(self, cycle_id=None, team_id=None, owner=None, today=None):
            """The kanban board of the caller's tenant (``today``: the clock's by default)."""
            tenant = self._tenant()
            return self._board(tenant, self._today(today), cycle_id, team_id, owner)

        @query
        def team_dashboard(self, team_id, cycle_id=None, today=None):
            return self._cycle_query(_queries.team_dashboard, cycle_id, today, team_id)

        @query
        def person_dashboard(self, person, cycle_id=None, today=None):
            return self._cycle_query(_queries.person_dashboard, cycle_id, today, person)

        @query
        def scorecard(self, cycle_id, today=None):
            return self._entity_query(_queries.scorecard, "cycle", cycle_id, today)

        @query
        def kr_history(self, key_result_id):
            return self._entity_query(_queries.kr_history, "key result", key_result_id, dated=False, history=True)

        @query
        def key_result_status(self, key_result_id, today=None):
            return self._entity_query(_queries.key_result_status, "key result", key_result_id, today)

        @query
        def key_result_statuses(self, cycle_id=None, today=None):
            return self._cycle_query(_queries.key_result_statuses, cycle_id, today)

        @query
        def objective_rollup(self, objective_id, include_children=False, child_weight=1.0, today=None):
            tenant = self._tenant()
            child_weight = _child_weight(child_weight)
            return _found(_queries.objective_rollup(self._model(tenant), tenant, objective_id, self._today(today),
                                                    include_children=include_children, child_weight=child_weight),
                          "objective", objective_id)

        @query
        def alignment_tree(self, cycle_id=None, today=None):
            return self._cycle_query(_queries.alignment_tree, cycle_id, today)

        @query
        def diff(self, since, until=None):
            """The weekly-review diff between two instants of the caller's tenant: each a
            position (int) or a time (ISO date = start of that day, ISO datetime, or µs as
            ``{"us": n}``); ``until`` None: the live model on the clock's today."""
            tenant = self._tenant()
            if until is not None:
                _range_in_order(_instant(since, "since"), _instant(until, "until"), self.clock.zone)
            before, day_before = self._replay(tenant, **_instant(since, "since"), field="since")
            if until is None:
                after, day_after = self._model(tenant, history=True), self.clock.today()
            else:
                after, day_after = self._replay(tenant, **_instant(until, "until"), field="until")
            return _queries.diff(before, after, tenant, day_before, day_after)

        @query
        def as_of(self, read_model, position=None, time=None, today=None, **params):
            """Any read model (``READ_MODELS``: board, scorecard, kr_history, …, or the raw
            ``model``) of the caller's tenant as of ``position`` (inclusive) or ``time``
            (exclusive; ISO date/datetime, µs or ``{"us": µs}``), replayed from the store into a fresh
            model; read on ``today`` (default: the day of the instant). ``params``: the
            query's own arguments (``cycle_id``, ``key_result_id``, …)."""
            tenant = self._tenant()
            function = READ_MODELS.get(read_model)
            if function is None:
                raise ValidationError("read_model", f"one of {', '.join(sorted(READ_MODELS))}")
            if read_model == "objective_rollup" and "child_weight" in params:
                params["child_weight"] = _child_weight(params["child_weight"], "params.child_weight")
            model, day = self._replay(tenant, position=position, time=time,
                                      history=read_model in HISTORY_READ_MODELS)
            for name, value in params.items():
                if not isinstance(value, (str, int, float, bool)) or value is None:
                    raise ValidationError(f"params.{name}", "must be a string, number or boolean")
            missing = queries.missing_reference(model, tenant, params)
            if missing is not None:  # also one the tenant created later: it did not exist then
                instant = f"position {position}" if position is not None else _us_text(
                    _parse_instant(time, self.clock.zone))
                raise NotFound(*missing, detail=f"as of {instant}: it did not exist then")
            try:
                return function(model, tenant, _parse_day(today) or day, **params)
            except TypeError as e:  # a parameter the read model does not take, or one left out
                raise ValidationError("params", f"not the parameters of {read_model}: {e}") from None

        # --------------------------------------------------------------- http
        # TODO(issue 7): authenticate these routes; the tenant must come from the caller,
        # not from the URL. Until then the HTTP face is for a trusted network only.

        def _http_board(self, request, tenant: str) -> dict:
            """The board of the HTTP faces: filters from ``BOARD_FILTERS`` (``_query_args``);
            a cycle that the tenant does not have → NotFound."""
            return self._board(tenant, self.clock.today(), **_query_args(request, BOARD_FILTERS))

        @http("GET", "/api/<tenant>/board")
        @_http_errors
        def http_board(self, request, tenant):
            return _json_response(self._http_board(request, tenant))

        @http("GET", "/api/<tenant>/scorecard/<cycle_id>")
        @_http_errors
        def http_scorecard(self, request, tenant, cycle_id):
            _query_args(request, {})
            return _json_response(_found(_queries.scorecard(self._model(tenant), tenant, cycle_id, self.clock.today()),
                                         "cycle", cycle_id))

        @http("GET", "/api/<tenant>/kr/<key_result_id>/history")
        @_http_errors
        def http_kr_history(self, request, tenant, key_result_id):
            _query_args(request, {})
            return _json_response(_found(_queries.kr_history(self._model(tenant, history=True), tenant, key_result_id),
                                         "key result", key_result_id))

        @http("GET", "/board/<tenant>")
        @_http_errors
        def http_board_page(self, request, tenant):
            return Response(render_board(self._http_board(request, tenant)), mimetype="text/html")

    ReportingService.name = name
    ReportingService.__qualname__ = ReportingService.__name__ = "ReportingService"
    return ReportingService


def _found(result, kind: str, id: str):
    """A query's ``result``; NotFound(kind, id) when it is None (no such entity)."""
    if result is None:
        raise NotFound(kind, id)
    return result


def _us_text(us: int) -> str:
    try:
        return datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc).isoformat()
    except (OverflowError, OSError, ValueError):
        return f"{us} µs"


def _instant(value, field: str) -> dict:
    if isinstance(value, dict) and "us" in value:
        if isinstance(value["us"], bool) or not isinstance(value["us"], int):
            raise ValidationError(field, "{'us': …} must hold an integer number of microseconds")
        return {"time": value["us"]}
    if isinstance(value, int) and not isinstance(value, bool):
        return {"position": value}
    if isinstance(value, str):
        return {"time": value}
    raise ValidationError(field, "a position (int), an ISO date/datetime, or {'us': microseconds}")


#: The production service (``nameko run okr_services.reporting.service``).
ReportingService = make_service()
