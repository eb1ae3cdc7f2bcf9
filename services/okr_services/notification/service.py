"""The notification service: the rules of ``rules.py`` over its own copy of the shared
read models (``okr_shared.readmodels``), deliveries through ``channels.py`` with the
durable log of ``delivery.py``.

    nameko run --config services/config.yaml okr_services.notification.service

- **Events** (``@okr_event_handler("notification.rules", ordered=True)``): each okr.v1
  event updates the service's own read-model tables (``notification_rm_*``: the
  shared fold, ``okr_shared.readmodels.storage.apply_event``; never the reporting
  service's tables) and the event rules run on the rows before and after it; what they
  return is enqueued for every channel the recipient subscribed to — all in the
  consumer layer's transaction, with its offset, and with a dedupe key per (rule,
  subject, period, recipient, channel, target): a redelivered event or a restart
  enqueues nothing twice.
- **Timed rules** (``@timer`` every ``tick_interval`` s): for every tenant, the rules
  that depend on the clock; each (rule, subject, period) is claimed in the schedule table
  in the transaction that enqueues it, so a restart neither skips nor repeats one.
- **Sending** (``@timer`` every ``dispatch_interval`` s): ``delivery.Dispatcher`` claims
  due deliveries and sends them (timeouts, retries with exponential backoff and jitter,
  ``failed`` kept after the last attempt); one slow or failing channel never blocks the
  others.
- **RPC** (context data ``tenant_id``): ``subscribe``, ``unsubscribe``,
  ``subscriptions``, ``settings``, ``update_settings``, ``set_timezone``,
  ``deliveries``, ``delivery_counts``. Bad input → ValidationError naming the field.

Configuration (environment): ``OKR_NOTIFICATION_DATABASE_URL`` (default
``sqlite:///$OKR_DATA_DIR/<service name>.db``), ``OKR_DATABASE_URL`` (the store, for
the consumer layer's gap filling), ``OKR_SMTP_*`` (config.SmtpSettings).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Callable, Optional
from zoneinfo import ZoneInfo

from nameko.extensions import DependencyProvider
from nameko.timer import timer
from sqlalchemy import select

from okr_shared.bus import wire
from okr_shared.bus.consumer import ConsumerDatabase, okr_event_handler
from okr_shared.db import write_transaction
from okr_shared.domain.errors import NotFound, ValidationError
from okr_shared.readmodels import storage
from okr_shared.readmodels.events import BusEvent
from okr_shared.readmodels.projections import EVENT_TYPES, row_key
from okr_shared.observability.nameko import Observed
from okr_services.dependencies import Caller
from okr_services.off_the_hub import OffTheHub
from okr_services.rpc import query

from . import delivery, directory, rules
from .channels import CHANNELS, Channel
from .message import DeliveryError, Notification

_log = logging.getLogger(__name__)

CONSUMER = "notification.rules"
PREFIX = "notification_rm_"
ENTITY_TABLES = ("cycles", "objectives", "key_results", "initiatives")
#: The service's own copy of the read models (no history: the rules never read it).
TABLES = storage.tables_for(PREFIX, ENTITY_TABLES)

_CHECK_INS = frozenset({"okr.v1.CheckInRecorded", "okr.v1.CheckInCorrected"})
_RULE_EVENTS = _CHECK_INS | {"okr.v1.KeyResultTargetAdjusted", "okr.v1.InitiativeSlipped",
                             "okr.v1.InitiativeDropped"}


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


class WallClock(DependencyProvider):
    """What time it is: ``now()`` an aware datetime (UTC); tests give a callable."""

    def __init__(self, now: Optional[Callable[[], datetime]] = None):
        self.fixed = now

    def now(self) -> datetime:
        return self.fixed() if self.fixed is not None else datetime.now(timezone.utc)

    def now_us(self) -> int:
        return _us(self.now())

    def get_dependency(self, worker_ctx):
        return self


class NotificationDatabase(ConsumerDatabase):
    """The consumer database with the service's tables created at start, and its
    dispatcher. Workers get this provider itself."""

    def __init__(self, *args, clock: WallClock, channels: dict[str, Channel], policy: delivery.RetryPolicy,
                 send_timeout: float, **kwargs):
        super().__init__(*args, **kwargs)
        # the clock's bound method, not the WallClock itself: nameko binds every Extension
        # attribute of an extension as a sub-extension (DependencyProvider.bind then fails)
        self.now_us = clock.now_us
        self.channels = channels
        self.policy = policy
        self.send_timeout = send_timeout

    def setup(self):
        super().setup()
        storage.migrate_schema(self.engine, TABLES, history="notification")
        self.dispatcher = delivery.Dispatcher(self.engine, self._send, policy=self.policy, clock=self.now_us,
                                              send_timeout_s=self.send_timeout)

    def _send(self, n: Notification, kind: str, target: str) -> None:
        with self.engine.connect() as conn:
            secret = directory.secret_for(conn, n.tenant, kind, target)
        if secret is None:
            raise DeliveryError("the subscription to this target was removed", retryable=False)
        channel = self.channels.get(kind)
        if channel is None:
            raise DeliveryError(f"unknown channel {kind!r}", retryable=False)
        channel.send(n, target, secret=secret, timeout=self.send_timeout)

    def get_dependency(self, worker_ctx):
        return self


#: The timed rules and status changes over a tenant's model, computed off the hub (pure;
#: on the hub a large tenant stopped the event consumer meanwhile).
_rules = OffTheHub(rules)
_storage = OffTheHub(storage)  # only its pure functions (build_model)


def _refused(e: ValueError) -> ValidationError:
    """A ValueError of directory/rules/delivery ("field: message") as a ValidationError."""
    text = str(e)
    field, _, message = text.partition(": ")
    if not message or " " in field:
        field, message = "argument", text
    return ValidationError(field, message)


def _load(conn, tenant: str, ids: dict[str, list[str]]) -> dict:
    """A model holding the tenant's cycles and the named rows of the other tables."""
    model = {name: {} for name in ENTITY_TABLES}
    t = TABLES["cycles"]
    for key, doc in conn.execute(select(t.c.key, t.c.doc).where(t.c.tenant == tenant)):
        model["cycles"][key] = storage.loads(doc)
    for name, wanted in ids.items():
        model[name].update(storage.load_rows(conn, TABLES, name, tenant, wanted))
    return model


def make_service(name: str = "notification", *, queue: str = CONSUMER, db_url: str | None = None,
                 event_store_url: str | None = None, now: Optional[Callable[[], datetime]] = None,
                 tick_interval: float = 30.0, dispatch_interval: float = 1.0,
                 policy: delivery.RetryPolicy | None = None, send_timeout: float = 10.0,
                 channels: dict[str, Channel] | None = None, **handler_options):
    """The notification service class. Production: ``NotificationService`` (this
    module's defaults). Tests give their own name, queue, exchanges, databases, clock,
    channels (e.g. an e-mail channel with a local SMTP server) and retry policy."""
    clock_ = WallClock(now)

    class NotificationService:
        clock = clock_
        db = NotificationDatabase(db_url, url_env="OKR_NOTIFICATION_DATABASE_URL", event_store_url=event_store_url,
                                  clock=clock_, channels=dict(CHANNELS, **(channels or {})),
                                  policy=policy or delivery.RetryPolicy(), send_timeout=send_timeout)
        caller = Caller()
        observed = Observed()  # log context, latency metrics, the /metrics endpoint

        # ------------------------------------------------------------- events

        @okr_event_handler(queue, event_types=wire.ALL_EVENTS, ordered=True, **handler_options)
        def on_event(self, envelope, conn):
            if envelope.event_type not in EVENT_TYPES:
                return
            event = BusEvent(envelope)
            tenant, d = event.tenant_id, event.data
            before = None
            if event.event_type in _CHECK_INS:
                # freshly parsed from the table: apply_event below changes its own copy, not this one
                before = _load(conn, tenant, {"key_results": [d.get("key_result_id", "")]})["key_results"].get(
                    row_key(tenant, d.get("key_result_id", "")))
            storage.apply_event(conn, event, TABLES)
            if event.event_type not in _RULE_EVENTS:
                return
            settings = directory.get_settings(conn, tenant)
            ids = {"key_results": [d.get("key_result_id", "")], "objectives": [d.get("objective_id", "")],
                   "initiatives": [d.get("initiative_id", "")]}
            model = _load(conn, tenant, ids)
            for kr in list(model["key_results"].values()):  # the KR's objective when the event did not name it
                if row_key(tenant, kr["objective_id"]) not in model["objectives"]:
                    model["objectives"].update(_load(conn, tenant, {"objectives": [kr["objective_id"]]})["objectives"])
            for initiative in list(model["initiatives"].values()):
                extra = _load(conn, tenant, {"key_results": [initiative["key_result_id"]],
                                             "objectives": [initiative.get("objective_id", "")]})
                model["key_results"].update(extra["key_results"])
                model["objectives"].update(extra["objectives"])
            day = datetime.fromtimestamp(event.recorded_at_us / 1_000_000, tz=timezone.utc) \
                .astimezone(ZoneInfo(settings["timezone"])).date()
            last = None
            kr_id = d.get("key_result_id", "")
            if event.event_type in _CHECK_INS:
                last = directory.last_statuses(conn, tenant, [kr_id]).get(kr_id)
            self._enqueue(conn, tenant, rules.for_event(event, model, before, day, settings, last))
            if event.event_type in _CHECK_INS:
                status = rules.kr_status(model, tenant, kr_id, day)
                if status is not None:
                    directory.store_statuses(conn, tenant, {kr_id: status}, self.clock.now_us())

        def _enqueue(self, conn, tenant: str, notes: list[Notification]) -> int:
            created = 0
            now_us = self.clock.now_us()
            for n in notes:
                targets = directory.targets_for(conn, tenant, n.recipient, n.rule)
                if targets:
                    created += len(delivery.enqueue(conn, n, targets, now_us))
            return created

        # --------------------------------------------------------------- timers

        @timer(interval=tick_interval)
        def tick(self):
            """The timed rules for every tenant, claimed per (rule, subject, period)."""
            self.run_timed_rules()

        def run_timed_rules(self) -> int:
            now = self.clock.now()
            engine = self.db.engine
            with engine.connect() as conn:
                t = TABLES["key_results"]
                tenants = [row[0] for row in conn.execute(select(t.c.tenant).distinct().order_by(t.c.tenant))]
            created = 0
            for tenant in tenants:
                try:
                    with engine.connect() as conn:
                        model = storage.load_model(conn, TABLES, tenant, ENTITY_TABLES, build=_storage.build_model)
                        settings = directory.get_settings(conn, tenant)
                        zones = directory.zones(conn, tenant)
                    for rule, subject, period, notes in _rules.timed(model, tenant, now, settings, zones):
                        with write_transaction(engine) as conn:
                            if delivery.claim_period(conn, tenant, rule, subject, period, _us(now)):
                                created += self._enqueue(conn, tenant, notes)
                    with write_transaction(engine) as conn:  # drops as time passed (pace, overdue)
                        last = directory.last_statuses(conn, tenant)
                        drops, statuses = _rules.status_changes(model, tenant, now, settings, last)
                        for _kr_id, notes in drops:
                            created += self._enqueue(conn, tenant, notes)
                        directory.store_statuses(conn, tenant, statuses, _us(now))
                except Exception:  # one tenant's trouble must not stop the others' reminders
                    _log.exception("timed rules failed for tenant %s", tenant)
            return created

        @timer(interval=dispatch_interval)
        def dispatch(self):
            try:
                self.db.dispatcher.run_once()
            except Exception:  # the database may be away for a moment: the next tick retries
                _log.exception("dispatching notifications failed")

        # ------------------------------------------------------------------ rpc

        def _tenant(self) -> str:
            tenant = self.caller.tenant_id
            if not tenant:
                raise ValidationError("tenant_id", "the call's context data must carry tenant_id")
            return tenant

        @query
        def subscribe(self, subscriber, channel, target, secret="", rules=None):
            """Subscribe a person or ``team:<id>`` to notifications on a channel (email,
            webhook, slack, teams, dingtalk, wecom, feishu); ``rules``: a list of rules,
            None for all. Refused (ValidationError naming the field): a malformed address
            or URL, an unknown channel or rule."""
            try:
                return directory.subscribe(self.db.engine, self._tenant(), subscriber, channel, target,
                                           secret or "", rules)
            except ValueError as e:
                raise _refused(e) from None

        @query
        def unsubscribe(self, subscription_id):
            if not directory.unsubscribe(self.db.engine, self._tenant(), subscription_id):
                raise NotFound("subscription", str(subscription_id))
            return True

        @query
        def subscriptions(self, subscriber=None):
            try:
                return directory.list_subscriptions(self.db.engine, self._tenant(), subscriber)
            except ValueError as e:
                raise _refused(e) from None

        @query
        def settings(self):
            return directory.get_settings(self.db.engine, self._tenant())

        @query
        def update_settings(self, change):
            """Merge a partial settings document (``rules.DEFAULT_SETTINGS`` shape: rules
            on/off and tunables, timezone, leads, board_url); returns the effective
            settings."""
            try:
                return directory.update_settings(self.db.engine, self._tenant(), change)
            except ValueError as e:
                raise _refused(e) from None

        @query
        def set_timezone(self, person, timezone):
            try:
                directory.set_person_timezone(self.db.engine, self._tenant(), person, timezone)
            except ValueError as e:
                raise _refused(e) from None
            return True

        @query
        def deliveries(self, status=None, rule=None, recipient=None, limit=100, cursor=None):
            """The delivery log, newest first: sent / pending / retrying / failed, with
            attempts and the last error (targets redacted, no secrets)."""
            try:
                return delivery.list_deliveries(self.db.engine, self._tenant(), status=status, rule=rule,
                                                recipient=recipient, limit=limit, cursor=cursor)
            except ValueError as e:
                raise _refused(e) from None

        @query
        def delivery_counts(self):
            return delivery.delivery_counts(self.db.engine, self._tenant())

    NotificationService.name = name
    NotificationService.__name__ = f"NotificationService[{name}]"
    return NotificationService


NotificationService = make_service()

