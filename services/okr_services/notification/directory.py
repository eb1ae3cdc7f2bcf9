"""Who gets what, where: the notification service's subscriptions, per-tenant rule
settings and people's time zones — its own tables (created by the Alembic history ``notification``, okr_shared.db).

``notification_subscriptions``: one row per (tenant, subscriber, channel, target); the
subscriber is a person (``alice``) or a team (``team:growth``); ``rules`` is the list of
rules it wants (NULL: every rule); ``secret`` signs webhooks / chat robots and never
leaves the service (queries show ``has_secret`` and a redacted target only).
``notification_settings``: a tenant's overrides of ``rules.DEFAULT_SETTINGS`` (JSON).
``notification_people``: a person's IANA time zone (else the tenant's).
``notification_kr_status``: each key result's status as the rules last saw it (so a
drop is told once, whether a check-in or the passing of time caused it).

Everything is validated when saved: a malformed e-mail address or webhook URL, an
unknown channel or rule, a bad time zone — ValueError with a message naming the field
and the problem; nothing is written then.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Iterable, Optional

from sqlalchemy import (
    Engine,
    and_,
    delete,
    insert,
    select,
    update,
)

from okr_shared.clock import now_us
from okr_shared.db import write_transaction
# the tables: the notification history's snapshot of its newest revision (docs/adr/0032-…)
from okr_shared.db.migrations.notification.tables_0001 import (
    kr_statuses, metadata, people, settings_table, subscriptions,
)

from . import rules as rules_
from .channels import channel_for
from .delivery import redact_target

_SUBSCRIBER = re.compile(r"(team:)?[A-Za-z0-9][A-Za-z0-9_.@\-]{0,127}")
MAX_SECRET = 512



def check_subscriber(subscriber: Any) -> str:
    if not isinstance(subscriber, str) or not _SUBSCRIBER.fullmatch(subscriber):
        raise ValueError(f"subscriber: a person id (letters, digits, _ . @ -) or 'team:<team id>', got {subscriber!r}")
    return subscriber


def _check_rules(wanted: Any) -> Optional[list[str]]:
    if wanted is None:
        return None
    if isinstance(wanted, str) or not isinstance(wanted, (list, tuple)) or not wanted:
        raise ValueError(f"rules: a non-empty list of rules (or none for every rule), got {wanted!r}")
    unknown = [r for r in wanted if r not in rules_.RULES]
    if unknown:
        raise ValueError(f"rules: unknown rule {unknown[0]!r}; one of: {', '.join(rules_.RULES)}")
    return sorted(set(wanted))


def subscribe(engine: Engine, tenant: str, subscriber: str, channel: str, target: str, secret: str = "",
              wanted_rules: Optional[Iterable[str]] = None) -> dict:
    """Save a subscription (validated: ValueError naming the field); subscribing the same
    (subscriber, channel, target) again replaces its secret and rules. Returns it as
    ``list_subscriptions`` shows it."""
    subscriber = check_subscriber(subscriber)
    try:
        kind = channel_for(channel)
    except ValueError as e:
        raise ValueError(f"channel: {e}") from None
    try:
        target = kind.validate_target(target)
    except ValueError as e:
        raise ValueError(f"target: {e}") from None
    if not isinstance(secret, str) or len(secret) > MAX_SECRET:
        raise ValueError(f"secret: text of at most {MAX_SECRET} characters")
    wanted = _check_rules(None if wanted_rules is None else list(wanted_rules))
    sid = "s" + hashlib.sha256(f"{tenant}\x00{subscriber}\x00{channel}\x00{target}".encode()).hexdigest()[:32]
    row = {"tenant": tenant, "subscriber": subscriber, "channel": channel, "target": target, "secret": secret,
           "rules": None if wanted is None else json.dumps(wanted)}
    with write_transaction(engine) as conn:
        if conn.execute(update(subscriptions).where(subscriptions.c.id == sid).values(**row)).rowcount == 0:
            conn.execute(insert(subscriptions).values(id=sid, created_at_us=now_us(), **row))
    return _shown({"id": sid, **row, "created_at_us": None})


def unsubscribe(engine: Engine, tenant: str, subscription_id: str) -> bool:
    """Delete one of the tenant's subscriptions; False when it has none with that id."""
    with write_transaction(engine) as conn:
        return conn.execute(delete(subscriptions).where(and_(subscriptions.c.tenant == tenant,
                                                             subscriptions.c.id == subscription_id))).rowcount > 0


def _shown(row) -> dict:
    r = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
    return {"id": r["id"], "subscriber": r["subscriber"], "channel": r["channel"],
            "target": redact_target(r["target"]), "has_secret": bool(r["secret"]),
            "rules": None if r["rules"] is None else json.loads(r["rules"])}


def list_subscriptions(engine, tenant: str, subscriber: Optional[str] = None) -> list[dict]:
    query = select(subscriptions).where(subscriptions.c.tenant == tenant)
    if subscriber is not None:
        query = query.where(subscriptions.c.subscriber == check_subscriber(subscriber))
    with engine.connect() as conn:
        return [_shown(r) for r in conn.execute(query.order_by(subscriptions.c.subscriber, subscriptions.c.id))]


def targets_for(conn, tenant: str, recipient: str, rule: str) -> list[tuple[str, str]]:
    """The (channel, target) pairs ``recipient`` subscribed to for ``rule``."""
    rows = conn.execute(select(subscriptions.c.channel, subscriptions.c.target, subscriptions.c.rules)
                        .where(and_(subscriptions.c.tenant == tenant, subscriptions.c.subscriber == recipient))
                        .order_by(subscriptions.c.id))
    return [(channel, target) for channel, target, wanted in rows if wanted is None or rule in json.loads(wanted)]


def secret_for(conn, tenant: str, channel: str, target: str) -> Optional[str]:
    """The secret of the tenant's subscription to (channel, target): "" without one, None
    when no subscription holds that target any more."""
    found = conn.execute(select(subscriptions.c.secret).where(and_(
        subscriptions.c.tenant == tenant, subscriptions.c.channel == channel, subscriptions.c.target == target))
        .limit(1)).first()
    return None if found is None else found[0]


# ---------------------------------------------------------------------- settings


def settings_overrides(conn, tenant: str) -> dict:
    doc = conn.execute(select(settings_table.c.doc).where(settings_table.c.tenant == tenant)).scalar()
    return {} if doc is None else json.loads(doc)


def get_settings(conn_or_engine, tenant: str) -> dict:
    """The tenant's effective settings (defaults with its overrides)."""
    if isinstance(conn_or_engine, Engine):
        with conn_or_engine.connect() as conn:
            return rules_.merge_settings(settings_overrides(conn, tenant))
    return rules_.merge_settings(settings_overrides(conn_or_engine, tenant))


def update_settings(engine: Engine, tenant: str, change: dict) -> dict:
    """Merge a validated partial settings document into the tenant's overrides; returns
    the effective settings."""
    change = rules_.validate_change(change)
    with write_transaction(engine) as conn:
        current = settings_overrides(conn, tenant)
        for key, value in change.items():
            if key == "rules":
                merged_rules = current.setdefault("rules", {})
                for rule, params in value.items():
                    merged_rules.setdefault(rule, {}).update(params)
            else:
                current[key] = value
        doc = json.dumps(current, sort_keys=True)
        if conn.execute(update(settings_table).where(settings_table.c.tenant == tenant)
                        .values(doc=doc, updated_at_us=now_us())).rowcount == 0:
            conn.execute(insert(settings_table).values(tenant=tenant, doc=doc, updated_at_us=now_us()))
    return rules_.merge_settings(current)


def set_person_timezone(engine: Engine, tenant: str, person: str, zone: str) -> None:
    person = check_subscriber(person)
    if person.startswith("team:"):
        raise ValueError("person: a person id, not a team")
    zone = rules_.check_zone(zone)
    with write_transaction(engine) as conn:
        if conn.execute(update(people).where(and_(people.c.tenant == tenant, people.c.person == person))
                        .values(timezone=zone)).rowcount == 0:
            conn.execute(insert(people).values(tenant=tenant, person=person, timezone=zone))


def zones(conn, tenant: str) -> dict[str, str]:
    return dict(conn.execute(select(people.c.person, people.c.timezone).where(people.c.tenant == tenant)).all())


# ----------------------------------------------------------------- last statuses


def last_statuses(conn, tenant: str, kr_ids: Optional[Iterable[str]] = None) -> dict[str, str]:
    query = select(kr_statuses.c.key_result_id, kr_statuses.c.status).where(kr_statuses.c.tenant == tenant)
    if kr_ids is not None:
        query = query.where(kr_statuses.c.key_result_id.in_(list(kr_ids)))
    return dict(conn.execute(query).all())


def store_statuses(conn, tenant: str, statuses: dict[str, str], now_us: int) -> None:
    """Record statuses (in the caller's write transaction); unchanged ones are skipped."""
    known = last_statuses(conn, tenant, statuses)
    for kr_id, status in statuses.items():
        if kr_id not in known:
            conn.execute(insert(kr_statuses).values(tenant=tenant, key_result_id=kr_id, status=status,
                                                    updated_at_us=now_us))
        elif known[kr_id] != status:
            conn.execute(update(kr_statuses).where(and_(kr_statuses.c.tenant == tenant,
                                                        kr_statuses.c.key_result_id == kr_id))
                         .values(status=status, updated_at_us=now_us))
