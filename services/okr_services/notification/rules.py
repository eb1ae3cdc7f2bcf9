"""The notification rules: pure functions from events, read models and a clock to
``Notification``s. No database, no bus, no channel: the service (service.py) feeds them
its own copy of the shared read models (``okr_shared.readmodels``: the same fold and KR
status as the reporting service, in its own tables) and turns what they return into
deliveries.

Event rules (``for_event``), evaluated in the consumer's transaction when the event
arrives, on the day the event was recorded (tenant time zone) — so a replay gives the
same answer:

- ``kr_status_dropped``: a key result went from on track / done to at risk or off track,
  or from at risk to off track — by a check-in (evaluated with the event) or as time
  passed (pace, evaluated by the timer: ``status_changes``, against the status the
  service last stored) — to the KR's owner and the objective's owner, once per key
  result, day and new status;
- ``confidence_dropped``: a check-in's confidence is ``points`` (default 3) or more below
  the previous check-in's — to the same two;
- ``kr_adjusted``: target, due date or weight adjusted, with the reason — to the
  objective's owner;
- ``initiative_slipped``: an initiative slipped (new due date) or was dropped, with the
  reason — to the objective's owner.

Timed rules (``timed``), evaluated by the service's timer against the clock; each
returns ``(rule, subject, period, notifications)`` groups and the service claims the
period in its schedule table (``delivery.claim_period``) in the transaction that
enqueues them, so a restart neither skips nor repeats one:

- ``checkin_reminder``: on the configured weekday and hour in each owner's time zone,
  one reminder per owner per ISO week listing their key results without a check-in
  within ``cadence_days``; owners who checked in on all of them are skipped (the week is
  still claimed: the reminder is not sent later that week);
- ``kr_stalled`` / ``kr_checkin_overdue``: a key result whose status is STALLED /
  CHECK_IN_OVERDUE — once per ISO week while it stays so, to its owner and the
  objective's owner;
- ``cycle_review_due``: ``days_before`` (default 7) days before an active cycle ends —
  once per cycle, to the leads of the teams with objectives in it and the company leads;
- ``team_digest``: on the configured weekday and hour (tenant time zone), once per ISO
  week per team, to ``team:<id>``: progress, status changes since a week earlier, what
  needs help.

Defaults and every tunable: ``DEFAULT_SETTINGS`` (docs/notifications.md).
"""

from __future__ import annotations

import copy
import html
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from okr_shared.readmodels.status import key_result_status, key_result_statuses

from .message import Notification

WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")

#: Every rule, on by default, with its tunables. A tenant's settings are a deep merge of
#: its overrides onto these (``merge_settings``).
DEFAULT_SETTINGS: dict[str, Any] = {
    "timezone": "UTC",  # the tenant's zone; a person's own zone (set_person_timezone) wins for them
    "board_url": "",  # base of the links in messages, e.g. https://okr.example.com
    "leads": {},  # team id -> [people]; "*" -> the company's leads
    "rules": {
        "checkin_reminder": {"enabled": True, "weekday": "FRI", "hour": 10, "cadence_days": 7},
        "kr_stalled": {"enabled": True},
        "kr_checkin_overdue": {"enabled": True},
        "kr_status_dropped": {"enabled": True},
        "confidence_dropped": {"enabled": True, "points": 3},
        "kr_adjusted": {"enabled": True},
        "initiative_slipped": {"enabled": True},
        "cycle_review_due": {"enabled": True, "days_before": 7},
        "team_digest": {"enabled": True, "weekday": "MON", "hour": 9},
    },
}
RULES = tuple(DEFAULT_SETTINGS["rules"])

_TUNABLES = {  # name -> (type, check, what)
    "enabled": (bool, lambda v: True, "true or false"),
    "weekday": (str, lambda v: v in WEEKDAYS, f"one of {', '.join(WEEKDAYS)}"),
    "hour": (int, lambda v: 0 <= v <= 23, "an hour 0..23"),
    "cadence_days": (int, lambda v: 1 <= v <= 60, "days 1..60"),
    "points": (int, lambda v: 1 <= v <= 10, "confidence points 1..10"),
    "days_before": (int, lambda v: 1 <= v <= 90, "days 1..90"),
}

_GOOD = {"ON_TRACK": 3, "DONE": 3, "AT_RISK": 2, "OFF_TRACK": 1}
_LABEL = {"ON_TRACK": "on track", "AT_RISK": "at risk", "OFF_TRACK": "off track", "DONE": "done",
          "STALLED": "stalled", "CHECK_IN_OVERDUE": "check-in overdue"}
_NEEDS_HELP = ("OFF_TRACK", "STALLED", "CHECK_IN_OVERDUE", "AT_RISK")


# ------------------------------------------------------------------------ settings


def check_zone(name: Any, field: str = "timezone") -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{field}: an IANA time zone name such as 'Europe/Berlin', got {name!r}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"{field}: unknown time zone {name!r}") from e
    return name


def merge_settings(overrides: Optional[dict]) -> dict:
    """The tenant's effective settings: ``DEFAULT_SETTINGS`` with ``overrides`` merged in."""
    merged = copy.deepcopy(DEFAULT_SETTINGS)
    for key, value in (overrides or {}).items():
        if key == "rules":
            for rule, params in value.items():
                merged["rules"][rule].update(params)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def validate_change(change: Any) -> dict:
    """Check a settings change (a partial settings document) and return it normalised;
    ValueError naming the field for anything unknown or out of range."""
    if not isinstance(change, dict):
        raise ValueError(f"settings: expected an object, got {type(change).__name__}")
    out: dict[str, Any] = {}
    for key, value in change.items():
        if key == "timezone":
            out[key] = check_zone(value)
        elif key == "board_url":
            if not isinstance(value, str) or (value and not value.startswith(("http://", "https://"))):
                raise ValueError(f"board_url: an http(s) URL or empty, got {value!r}")
            out[key] = value.rstrip("/")
        elif key == "leads":
            if not isinstance(value, dict) or not all(
                    isinstance(k, str) and k and isinstance(v, list) and all(isinstance(p, str) and p for p in v)
                    for k, v in value.items()):
                raise ValueError("leads: an object of team id (or '*') -> list of people")
            out[key] = {k: list(dict.fromkeys(v)) for k, v in value.items()}
        elif key == "rules":
            if not isinstance(value, dict):
                raise ValueError("rules: an object of rule -> settings")
            out[key] = {}
            for rule, params in value.items():
                if rule not in DEFAULT_SETTINGS["rules"]:
                    raise ValueError(f"rules: unknown rule {rule!r}; one of: {', '.join(RULES)}")
                if not isinstance(params, dict):
                    raise ValueError(f"rules.{rule}: an object of settings")
                allowed = DEFAULT_SETTINGS["rules"][rule]
                for name, v in params.items():
                    if name not in allowed:
                        raise ValueError(f"rules.{rule}.{name}: unknown setting; {rule} has: {', '.join(allowed)}")
                    kind, ok, what = _TUNABLES[name]
                    if isinstance(v, bool) != (kind is bool) or not isinstance(v, kind) or not ok(v):
                        raise ValueError(f"rules.{rule}.{name}: {what}, got {v!r}")
                out[key][rule] = dict(params)
        else:
            raise ValueError(f"settings: unknown field {key!r}; one of: timezone, board_url, leads, rules")
    return out


def enabled(settings: dict, rule: str) -> bool:
    return bool(settings["rules"][rule]["enabled"])


# ------------------------------------------------------------------------- helpers


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _link(settings: dict, tenant: str, path: str = "") -> str:
    base = settings.get("board_url") or ""
    return f"{base}/board/{tenant}{path}" if base else ""


def _html(lines: Iterable[str]) -> str:
    return "".join(f"<p>{html.escape(line)}</p>" for line in lines)


def _value(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _pct(value: Optional[float]) -> str:
    return "–" if value is None else f"{round(value * 100)}%"


def _owners(kr: dict, objective: Optional[dict]) -> list[str]:
    people = [kr.get("owner", "")]
    if objective is not None:
        people.append(objective.get("owner", ""))
    return [p for p in dict.fromkeys(people) if p]


def _status(model: dict, tenant: str, kr_id: str, day: date) -> Optional[dict]:
    return key_result_status(model, tenant, kr_id, day)


def _note(tenant: str, rule: str, subject: str, period: str, recipients: Iterable[str], *, title: str,
          lines: list[str], severity: str, link: str, facts: list[tuple[str, str]], data: dict) -> list[Notification]:
    text = "\n".join(lines)
    return [Notification(tenant=tenant, rule=rule, subject=subject, period=period, recipient=r, title=title,
                         text=text, html=_html(lines), severity=severity, link=link, facts=tuple(facts),
                         data=dict(data, rule=rule)) for r in recipients]


# --------------------------------------------------------------------- event rules


def kr_status(model: dict, tenant: str, kr_id: str, day: date) -> Optional[str]:
    """The key result's status on ``day`` (as the board shows it), None if unknown."""
    found = _status(model, tenant, kr_id, day)
    return None if found is None else found["status"]


def dropped(was: Optional[str], now: Optional[str]) -> bool:
    """On track / done → at risk or off track, or at risk → off track."""
    return bool(was and now) and now in ("AT_RISK", "OFF_TRACK") and _GOOD.get(was, 0) > _GOOD[now]


def for_event(event, model: dict, before_kr: Optional[dict], day: date, settings: dict,
              last_status: Optional[str] = None) -> list[Notification]:
    """The notifications one event causes. ``model``: the tenant's rows after the event
    (at least the event's key result / initiative, its objective and cycle);
    ``before_kr``: the key result's row before a check-in (None otherwise); ``day``: the
    day the event was recorded, in the tenant's zone; ``last_status``: the key result's
    status as last seen (the service stores it; default: computed from ``before_kr`` on
    ``day``, i.e. what the board showed just before the check-in)."""
    tenant, d, kind = event.tenant_id, event.data, event.event_type
    out: list[Notification] = []
    if kind in ("okr.v1.CheckInRecorded", "okr.v1.CheckInCorrected") and before_kr is not None:
        out += _check_in_rules(event, model, before_kr, day, settings, last_status)
    elif kind == "okr.v1.KeyResultTargetAdjusted" and enabled(settings, "kr_adjusted"):
        kr = _row(model, "key_results", tenant, d.get("key_result_id", ""))
        objective = kr and _row(model, "objectives", tenant, kr["objective_id"])
        if kr and objective and objective.get("owner"):
            changes = [(label, f"{_value(d.get('old_' + name))} → {_value(d['new_' + name])}")
                       for name, label in (("target_value", "target"), ("due_date", "due date"), ("weight", "weight"))
                       if "new_" + name in d]
            reason = d.get("reason") or event.metadata.get("reason", "")
            who = event.metadata.get("actor", "") or "someone"
            lines = [f"{who} adjusted the key result \"{kr['title']}\": "
                     + "; ".join(f"{label} {value}" for label, value in changes) + ".",
                     f"Reason: {reason or '(none given)'}"]
            out += _note(tenant, "kr_adjusted", kr["key_result_id"], f"p{event.position}", [objective["owner"]],
                         title=f"Key result adjusted: {kr['title']}", lines=lines, severity="info",
                         link=_link(settings, tenant), facts=[*changes, ("reason", reason), ("by", who)],
                         data={"key_result_id": kr["key_result_id"], "objective_id": kr["objective_id"],
                               "changes": dict(changes), "reason": reason, "actor": who, "position": event.position})
    elif kind in ("okr.v1.InitiativeSlipped", "okr.v1.InitiativeDropped") and enabled(settings, "initiative_slipped"):
        initiative = _row(model, "initiatives", tenant, d.get("initiative_id", ""))
        if initiative:
            kr = _row(model, "key_results", tenant, initiative["key_result_id"])
            objective_id = initiative.get("objective_id") or (kr or {}).get("objective_id", "")
            objective = _row(model, "objectives", tenant, objective_id)
            if objective and objective.get("owner"):
                reason = d.get("reason") or event.metadata.get("reason", "")
                slipped = kind.endswith("Slipped")
                what = (f"slipped to {d.get('new_due_date', '?')} (was due {d.get('old_due_date') or '?'})"
                        if slipped else "was dropped")
                lines = [f"The initiative \"{initiative['title']}\" ({initiative.get('assignee') or 'unassigned'}) "
                         f"{what}.", f"Reason: {reason or '(none given)'}"]
                out += _note(tenant, "initiative_slipped", initiative["initiative_id"], f"p{event.position}",
                             [objective["owner"]],
                             title=f"Initiative {'slipped' if slipped else 'dropped'}: {initiative['title']}",
                             lines=lines, severity="warning", link=_link(settings, tenant),
                             facts=[("change", what), ("reason", reason)],
                             data={"initiative_id": initiative["initiative_id"], "dropped": not slipped,
                                   "new_due_date": d.get("new_due_date"), "reason": reason,
                                   "position": event.position})
    return out


def _row(model: dict, table: str, tenant: str, entity_id: str) -> Optional[dict]:
    return model.get(table, {}).get(f"{tenant}/{entity_id}")


def _check_in_rules(event, model: dict, before_kr: dict, day: date, settings: dict,
                    last_status: Optional[str]) -> list[Notification]:
    tenant, d = event.tenant_id, event.data
    kr = _row(model, "key_results", tenant, d["key_result_id"])
    if kr is None:
        return []
    objective = _row(model, "objectives", tenant, kr["objective_id"])
    recipients = _owners(kr, objective)
    out: list[Notification] = []
    if enabled(settings, "kr_status_dropped"):
        if last_status is None:
            before_model = dict(model, key_results={f"{tenant}/{kr['key_result_id']}": before_kr})
            last_status = kr_status(before_model, tenant, kr["key_result_id"], day)
        now = _status(model, tenant, kr["key_result_id"], day)
        if now and dropped(last_status, now["status"]):
            out += _status_dropped(tenant, kr, now, last_status, f"{day.isoformat()}:{now['status']}", recipients,
                                   settings)
    if enabled(settings, "confidence_dropped") and event.event_type == "okr.v1.CheckInRecorded":
        previous = [p for p in before_kr["points"] if p["effective_date"] <= d["effective_date"]]
        if previous:
            old, new = previous[-1]["confidence"], int(d.get("confidence", 0))
            drop = old - new
            if drop >= settings["rules"]["confidence_dropped"]["points"]:
                lines = [f"Confidence in \"{kr['title']}\" fell from {old} to {new} (of 10).",
                         f"Check-in by {d.get('author') or event.metadata.get('actor') or 'someone'}"
                         + (f": {d['note']}" if d.get("note") else ".")]
                out += _note(tenant, "confidence_dropped", kr["key_result_id"], f"p{event.position}", recipients,
                             title=f"Confidence down {drop}: {kr['title']}", lines=lines, severity="warning",
                             link=_link(settings, tenant), facts=[("confidence", f"{old} → {new}")],
                             data={"key_result_id": kr["key_result_id"], "from": old, "to": new,
                                   "position": event.position})
    return out


def _status_dropped(tenant: str, kr: dict, now: dict, was: str, period: str, recipients: list[str],
                    settings: dict) -> list[Notification]:
    lines = [f"\"{kr['title']}\" is now {_LABEL[now['status']]} (was {_LABEL.get(was, was)}).",
             f"Progress {_pct(now['progress'])}, expected {_pct(now['expected_progress'])}; "
             f"confidence {now['confidence'] if now['confidence'] is not None else '–'}/10."]
    return _note(tenant, "kr_status_dropped", kr["key_result_id"], period, recipients,
                 title=f"{_LABEL[now['status']].capitalize()}: {kr['title']}", lines=lines,
                 severity="alert" if now["status"] == "OFF_TRACK" else "warning", link=_link(settings, tenant),
                 facts=[("status", _LABEL[now["status"]]), ("was", _LABEL.get(was, was)),
                        ("progress", _pct(now["progress"])), ("owner", kr["owner"])],
                 data={"key_result_id": kr["key_result_id"], "status": now["status"], "was": was,
                       "progress": now["progress"]})


def status_changes(model: dict, tenant: str, now: datetime, settings: dict,
                   last: dict[str, str]) -> tuple[list[tuple[str, list[Notification]]], dict[str, str]]:
    """Statuses that moved as time passed (pace, overdue, stalled — no event needed):
    ``last`` holds each key result's status as last seen; returns the ``kr_status_dropped``
    notifications of the drops (one per key result, day and new status: the period is
    ``"<day>:<status>"``) and every live key result's status today, to be stored."""
    today = _local(now, settings["timezone"]).date()
    statuses = key_result_statuses(model, tenant, today)
    objectives = {doc["objective_id"]: doc for doc in model["objectives"].values() if doc["tenant"] == tenant}
    krs = {doc["key_result_id"]: doc for doc in model["key_results"].values() if doc["tenant"] == tenant}
    out = []
    for kr_id, s in statuses.items():
        was = last.get(kr_id)
        if enabled(settings, "kr_status_dropped") and dropped(was, s["status"]):
            out.append((kr_id, _status_dropped(tenant, krs[kr_id], s, was, f"{today.isoformat()}:{s['status']}",
                                               _owners(krs[kr_id], objectives.get(s["objective_id"])), settings)))
    return out, {kr_id: s["status"] for kr_id, s in statuses.items()}


# ---------------------------------------------------------------------- timed rules


def _local(now: datetime, zone: str) -> datetime:
    return now.astimezone(ZoneInfo(zone))


def _due_this_week(local: datetime, weekday: str, hour: int) -> bool:
    """Whether this ISO week's (weekday, hour) has come, in ``local``'s zone."""
    return (local.weekday(), local.hour) >= (WEEKDAYS.index(weekday), hour)


def timed(model: dict, tenant: str, now: datetime, settings: dict, zones: dict[str, str]) -> list[tuple]:
    """The timed rules of one tenant at the aware instant ``now``: a list of
    ``(rule, subject, period, [Notification, ...])`` — the caller claims each (rule,
    subject, period) once; an empty list of notifications still claims it (a reminder
    skipped because everyone checked in). ``zones``: person -> IANA zone."""
    zone = settings["timezone"]
    today = _local(now, zone).date()
    statuses = key_result_statuses(model, tenant, today)
    view_objectives = {doc["objective_id"]: doc for doc in model["objectives"].values() if doc["tenant"] == tenant}
    krs = {doc["key_result_id"]: doc for doc in model["key_results"].values() if doc["tenant"] == tenant}
    active_cycles = {doc["cycle_id"]: doc for doc in model["cycles"].values()
                     if doc["tenant"] == tenant and doc["state"] == "active"}
    live = {kr_id: s for kr_id, s in statuses.items() if s["cycle_id"] in active_cycles}
    out: list[tuple] = []
    week = iso_week(today)
    rules = settings["rules"]

    for rule, status in (("kr_stalled", "STALLED"), ("kr_checkin_overdue", "CHECK_IN_OVERDUE")):
        if not rules[rule]["enabled"]:
            continue
        for kr_id, s in live.items():
            if s["status"] != status:
                continue
            objective = view_objectives.get(s["objective_id"])
            since = s["days_since_check_in"]
            lines = [f"\"{s['title']}\" is {_LABEL[status]}: "
                     + (f"last check-in {since} days ago ({s['last_check_in']})." if since is not None
                        else "no check-in yet."),
                     f"Progress {_pct(s['progress'])}, expected {_pct(s['expected_progress'])}. "
                     "Check in, or adjust the key result with a reason."]
            out.append((rule, kr_id, week, _note(
                tenant, rule, kr_id, week, _owners(krs[kr_id], objective),
                title=f"{_LABEL[status].capitalize()}: {s['title']}", lines=lines,
                severity="alert" if status == "STALLED" else "warning", link=_link(settings, tenant),
                facts=[("status", _LABEL[status]), ("last check-in", s["last_check_in"] or "never"),
                       ("owner", s["owner"])],
                data={"key_result_id": kr_id, "status": status, "days_since_check_in": since})))

    reminder = rules["checkin_reminder"]
    if reminder["enabled"]:
        by_owner: dict[str, list[dict]] = {}
        for s in live.values():
            if s["status"] != "DONE" and s["owner"]:
                by_owner.setdefault(s["owner"], []).append(s)
        for owner, items in sorted(by_owner.items()):
            local = _local(now, zones.get(owner) or zone)
            if not _due_this_week(local, reminder["weekday"], reminder["hour"]):
                continue
            period = iso_week(local.date())
            due = [s for s in items if s["days_since_check_in"] is None
                   or s["days_since_check_in"] >= reminder["cadence_days"]]
            notes = []
            if due:
                lines = [f"Time for your weekly check-in on {len(due)} key result{'s' if len(due) > 1 else ''}:"]
                lines += [f"• {s['title']} — " + (f"last {s['last_check_in']}" if s["last_check_in"] else "none yet")
                          for s in sorted(due, key=lambda s: s["key_result_id"])]
                notes = _note(tenant, "checkin_reminder", owner, period, [owner],
                              title=f"Weekly check-in: {len(due)} key result{'s' if len(due) > 1 else ''}",
                              lines=lines, severity="info", link=_link(settings, tenant, f"?owner={owner}"),
                              facts=[(s["title"], s["last_check_in"] or "no check-in") for s in due],
                              data={"key_result_ids": sorted(s["key_result_id"] for s in due), "owner": owner})
            out.append(("checkin_reminder", owner, period, notes))

    review = rules["cycle_review_due"]
    if review["enabled"]:
        leads = settings.get("leads") or {}
        for cycle_id, cycle in sorted(active_cycles.items()):
            end = date.fromisoformat(cycle["end_date"])
            left = (end - today).days
            if not 0 <= left <= review["days_before"]:
                continue
            teams = sorted({o["team_id"] for o in view_objectives.values() if o["cycle_id"] == cycle_id and o["team_id"]})
            people = list(dict.fromkeys([*leads.get("*", []), *(p for t in teams for p in leads.get(t, []))]))
            scores = [s["score"] for s in statuses.values() if s["cycle_id"] == cycle_id and s["score"] is not None]
            lines = [f"The cycle \"{cycle['name'] or cycle_id}\" ends on {cycle['end_date']} ({left} days).",
                     "Time to prepare the review: score every key result 0.0–1.0 (0.6–0.7 is healthy).",
                     f"{len(scores)} key results; average score so far "
                     + (f"{sum(scores) / len(scores):.2f}." if scores else "–.")]
            out.append(("cycle_review_due", cycle_id, "review", _note(
                tenant, "cycle_review_due", cycle_id, "review", people, title=f"Cycle review due: {cycle['name'] or cycle_id}",
                lines=lines, severity="info", link=_link(settings, tenant, f"?cycle={cycle_id}"),
                facts=[("ends", cycle["end_date"]), ("days left", str(left))],
                data={"cycle_id": cycle_id, "end_date": cycle["end_date"], "days_left": left, "teams": teams})))

    digest = rules["team_digest"]
    local = _local(now, zone)
    if digest["enabled"] and _due_this_week(local, digest["weekday"], digest["hour"]):
        week_ago = key_result_statuses(model, tenant, today - timedelta(days=7))
        teams: dict[str, list[dict]] = {}
        for s in live.values():
            if s["team_id"]:
                teams.setdefault(s["team_id"], []).append(s)
        for team, items in sorted(teams.items()):
            out.append(("team_digest", team, week, _digest(tenant, team, week, items, week_ago, settings)))
    return out


def _digest(tenant: str, team: str, week: str, items: list[dict], week_ago: dict, settings: dict) -> list[Notification]:
    items = sorted(items, key=lambda s: s["key_result_id"])
    counts: dict[str, int] = {}
    for s in items:
        counts[s["status"]] = counts.get(s["status"], 0) + 1
    changes = [(s, week_ago[s["key_result_id"]]["status"]) for s in items
               if s["key_result_id"] in week_ago and week_ago[s["key_result_id"]]["status"] != s["status"]]
    help_needed = [s for s in items if s["status"] in _NEEDS_HELP or (s["confidence"] is not None and s["confidence"] <= 4)]
    progress = [s["progress"] for s in items if s["progress"] is not None]
    lines = [f"Team {team}, week {week}: {len(items)} key results, average progress "
             f"{_pct(sum(progress) / len(progress) if progress else None)}.",
             "Status: " + ", ".join(f"{_LABEL.get(k, k)} {v}" for k, v in sorted(counts.items()))]
    if changes:
        lines.append("Changed this week:")
        lines += [f"• {s['title']}: {_LABEL.get(old, old)} → {_LABEL.get(s['status'], s['status'])}" for s, old in changes]
    if help_needed:
        lines.append("Needs help:")
        lines += [f"• {s['title']} ({s['owner']}): {_LABEL.get(s['status'], s['status'])}, "
                  f"confidence {s['confidence'] if s['confidence'] is not None else '–'}" for s in help_needed]
    else:
        lines.append("Nothing needs help this week.")
    return _note(tenant, "team_digest", team, week, [f"team:{team}"], title=f"Weekly OKR digest — {team} — {week}",
                 lines=lines, severity="info", link=_link(settings, tenant, f"?team={team}"),
                 facts=[(_LABEL.get(k, k), str(v)) for k, v in sorted(counts.items())],
                 data={"team_id": team, "week": week, "statuses": counts,
                       "changes": [{"key_result_id": s["key_result_id"], "from": old, "to": s["status"]}
                                   for s, old in changes],
                       "needs_help": [s["key_result_id"] for s in help_needed]})
