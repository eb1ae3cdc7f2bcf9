"""The notification rules as pure functions: real events from the real deciders
(tests/fixtures/company_history.Script), the reporting fold, a given clock."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from tests.fixtures.company_history import Script
from tests.fixtures.directory import directory_changes
from okr_shared.domain import commands as c
from okr_services.notification import rules
from okr_shared.readmodels.projections import EVENT_TYPES, new_model, project, row_key

Q_START, Q_END = date(2026, 1, 1), date(2026, 3, 31)


def company() -> Script:
    s = Script("acme")
    s.run(date(2025, 12, 20), "olga", c.PlanCycle("q1", "QUARTERLY", "Q1 2026", "2026-01-01", "2026-03-31"))
    s.run(date(2025, 12, 20), "olga", c.CreateObjective("o1", "q1", "TEAM", "Grow", "olga", team_id="growth"))
    s.run(Q_START, "olga", c.ActivateCycle("q1"))
    s.run(Q_START, "olga", c.DefineKeyResult("kr1", "o1", "Signups 0 → 1000", "INCREASE_TO", 0, 1000, "ken",
                                             "2026-03-31"))
    s.run(Q_START, "olga", c.DefineKeyResult("kr2", "o1", "Churn 5 → 2 %", "DECREASE_TO", 5, 2, "kim", "2026-03-31"))
    s.run(Q_START, "ken", c.CreateInitiative("i1", "kr1", "Referral program", "ken", "2026-01-05", "2026-02-01"))
    return s


def replay(script: Script, settings=None) -> tuple[dict, list]:
    """The model after the script's events, and every notification the event rules gave."""
    settings = settings or rules.merge_settings({})
    model, notes = new_model(history=False), []
    for event in script.events():
        before = None
        if event.event_type in ("okr.v1.CheckInRecorded", "okr.v1.CheckInCorrected"):
            before = copy.deepcopy(model["key_results"].get(row_key(event.tenant_id, event.data["key_result_id"])))
        project(model, event)
        day = datetime.fromtimestamp(event.recorded_at_us / 1e6, tz=timezone.utc).date()
        notes += rules.for_event(event, model, before, day, settings)
    return model, notes


def week(n: int) -> date:
    return Q_START + timedelta(days=7 * n)


def test_a_check_in_on_pace_is_silent_a_drop_to_off_track_alerts_owner_and_objective_owner():
    s = company()
    s.run(week(2), "ken", c.RecordCheckIn("ci1", "kr1", 160, 8, week(2).isoformat()))  # ~on pace
    model, notes = replay(s)
    assert notes == []
    s.run(week(4), "ken", c.RecordCheckIn("ci2", "kr1", 330, 8, week(4).isoformat()))  # on pace again
    assert replay(s)[1] == []
    day = week(4) + timedelta(days=1)
    s.run(day, "ken", c.RecordCheckIn("ci3", "kr1", 100, 7, day.isoformat()))  # far behind
    _, notes = replay(s)
    dropped = [n for n in notes if n.rule == "kr_status_dropped"]
    assert {n.recipient for n in dropped} == {"ken", "olga"}
    assert {n.subject for n in dropped} == {"kr1"}
    assert dropped[0].data["was"] == "ON_TRACK" and dropped[0].data["status"] in ("AT_RISK", "OFF_TRACK")
    assert "Signups" in dropped[0].title and dropped[0].severity in ("warning", "alert")


def test_directory_events_cause_no_notification_and_change_no_row():
    """Joiners, leavers and team changes amid check-ins: the service skips them (not in the
    fold's EVENT_TYPES, which its handler filters by), and were one to reach the rules
    they would say nothing and break nothing."""
    s = company()
    s.run(week(2), "ken", c.RecordCheckIn("ci1", "kr1", 160, 8, week(2).isoformat()))
    written = directory_changes(s, week(2))
    s.run(week(4), "ken", c.RecordCheckIn("ci2", "kr1", 40, 3, week(4).isoformat()))  # confidence down
    events = s.events()
    directory = [e for e in events if e.stream_id.startswith(("person-", "team-"))]
    assert len(directory) == len(written) > 15
    assert not {e.event_type for e in directory} & EVENT_TYPES
    settings = rules.merge_settings({})
    model, notes = replay(s, settings)
    for event in directory:
        assert rules.for_event(event, model, None, week(2), settings) == []
    okr_only = SimpleNamespace(events=lambda: [e for e in events if e not in directory])  # the same positions
    expected_model, expected_notes = replay(okr_only, settings)
    assert "confidence_dropped" in {n.rule for n in notes}  # the rules still see the check-ins
    assert notes == expected_notes
    assert model == expected_model


def test_confidence_drop_fires_from_the_threshold_on_and_is_tunable():
    s = company()
    s.run(week(1), "kim", c.RecordCheckIn("a", "kr2", 4.8, 8, week(1).isoformat()))
    s.run(week(2), "kim", c.RecordCheckIn("b", "kr2", 4.6, 6, week(2).isoformat()))  # -2: silent
    _, notes = replay(s)
    assert [n for n in notes if n.rule == "confidence_dropped"] == []
    s.run(week(3), "kim", c.RecordCheckIn("c", "kr2", 4.5, 3, week(3).isoformat()))  # -3: fires
    _, notes = replay(s)
    fired = [n for n in notes if n.rule == "confidence_dropped"]
    assert {n.recipient for n in fired} == {"kim", "olga"} and fired[0].data["from"] == 6 and fired[0].data["to"] == 3
    tuned = rules.merge_settings({"rules": {"confidence_dropped": {"points": 4}}})
    _, notes = replay(s, tuned)
    assert [n for n in notes if n.rule == "confidence_dropped"] == []


def test_adjustments_and_slipped_or_dropped_initiatives_go_to_the_objective_owner_with_the_reason():
    s = company()
    s.run(week(3), "olga", c.AdjustKeyResult("kr1", reason="market shrank", target_value=800))
    s.run(week(3), "ken", c.SlipInitiative("i1", "2026-02-15", "vendor late"))
    s.run(week(4), "ken", c.DropInitiative("i1", "replaced by ads"))
    _, notes = replay(s)
    by_rule = {}
    for n in notes:
        by_rule.setdefault(n.rule, []).append(n)
    (adjusted,) = by_rule["kr_adjusted"]
    assert adjusted.recipient == "olga" and "market shrank" in adjusted.text and "1000 → 800" in adjusted.text
    slipped, dropped = by_rule["initiative_slipped"]
    assert slipped.recipient == dropped.recipient == "olga"
    assert "vendor late" in slipped.text and "2026-02-15" in slipped.text
    assert "replaced by ads" in dropped.text and dropped.data["dropped"] is True
    assert len({n.period for n in notes}) == len(notes)  # each event its own period


def test_a_disabled_rule_is_silent():
    s = company()
    s.run(week(3), "olga", c.AdjustKeyResult("kr1", reason="market shrank", target_value=800))
    off = rules.merge_settings({"rules": {"kr_adjusted": {"enabled": False}}})
    assert replay(s, off)[1] == []


def at(day: date, hour: int, zone: str = "UTC") -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(zone)).astimezone(timezone.utc)


def groups(model, now, settings=None, zones=None):
    out = rules.timed(model, "acme", now, settings or rules.merge_settings({}), zones or {})
    return {(rule, subject, period): notes for rule, subject, period, notes in out}


def test_the_weekly_reminder_comes_at_the_owners_hour_and_skips_who_checked_in():
    s = company()
    friday = date(2026, 1, 16)
    s.run(friday - timedelta(days=2), "ken", c.RecordCheckIn("k1", "kr1", 100, 7, (friday - timedelta(days=2)).isoformat()))
    model, _ = replay(s)
    assert not [k for k in groups(model, at(friday, 9)) if k[0] == "checkin_reminder"]  # before 10:00
    found = groups(model, at(friday, 10))
    assert found[("checkin_reminder", "kim", "2026-W03")][0].data["key_result_ids"] == ["kr2"]
    assert found[("checkin_reminder", "ken", "2026-W03")] == []  # checked in 2 days ago: claimed, nothing sent
    # kim lives in Tokyo: her Friday 10:00 is 01:00 UTC
    tokyo = groups(model, at(friday, 1), zones={"kim": "Asia/Tokyo"})
    assert ("checkin_reminder", "kim", "2026-W03") in tokyo
    assert ("checkin_reminder", "ken", "2026-W03") not in tokyo


def test_stalled_and_overdue_key_results_once_a_week_cycle_review_and_team_digest():
    s = company()
    s.run(week(1), "ken", c.RecordCheckIn("k1", "kr1", 50, 7, week(1).isoformat()))
    model, _ = replay(s)
    settings = rules.merge_settings({"leads": {"growth": ["gina"], "*": ["ceo"]}})
    late = groups(model, at(date(2026, 3, 25), 12), settings)  # Wednesday, 6 days before the end
    statuses = {k[0] for k in late}
    assert {"kr_stalled", "kr_checkin_overdue"} & statuses
    for key, notes in late.items():
        if key[0] in ("kr_stalled", "kr_checkin_overdue"):
            assert key[2] == "2026-W13" and {n.recipient for n in notes} <= {"ken", "kim", "olga"} and notes
    review = late[("cycle_review_due", "q1", "review")]
    assert {n.recipient for n in review} == {"ceo", "gina"} and review[0].data["days_left"] == 6
    assert groups(model, at(date(2026, 3, 20), 12), settings).get(("cycle_review_due", "q1", "review")) is None
    digest = groups(model, at(date(2026, 3, 23), 9), settings)[("team_digest", "growth", "2026-W13")]
    (note,) = digest
    assert note.recipient == "team:growth" and sum(note.data["statuses"].values()) == 2
    assert "Needs help" in note.text
    assert ("team_digest", "growth", "2026-W13") not in groups(model, at(date(2026, 3, 23), 8), settings)


@pytest.mark.parametrize("change, message", [
    ({"rules": {"nope": {}}}, "rules: unknown rule 'nope'"),
    ({"rules": {"checkin_reminder": {"weekday": "FRIDAY"}}}, "rules.checkin_reminder.weekday: one of MON"),
    ({"rules": {"checkin_reminder": {"hour": 24}}}, "rules.checkin_reminder.hour: an hour 0..23"),
    ({"rules": {"confidence_dropped": {"points": True}}}, "rules.confidence_dropped.points"),
    ({"rules": {"kr_stalled": {"hour": 3}}}, "rules.kr_stalled.hour: unknown setting"),
    ({"timezone": "Mars/Olympus"}, "timezone: unknown time zone"),
    ({"leads": {"growth": "gina"}}, "leads:"),
    ({"board_url": "ftp://x"}, "board_url:"),
    ({"colour": "red"}, "settings: unknown field 'colour'"),
])
def test_bad_settings_are_refused_naming_the_field(change, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        rules.validate_change(change)


def test_settings_merge_keeps_the_defaults():
    merged = rules.merge_settings(rules.validate_change({"rules": {"checkin_reminder": {"hour": 8}}}))
    assert merged["rules"]["checkin_reminder"] == {"enabled": True, "weekday": "FRI", "hour": 8, "cadence_days": 7}
    assert rules.DEFAULT_SETTINGS["rules"]["checkin_reminder"]["hour"] == 10


def test_a_drop_as_time_passes_is_told_once_against_the_last_seen_status():
    s = company()
    s.run(week(2), "ken", c.RecordCheckIn("ci1", "kr1", 120, 8, week(2).isoformat()))  # just on pace
    model, _ = replay(s)
    settings = rules.merge_settings({})
    drops, seen = rules.status_changes(model, "acme", at(week(2), 12), settings, {})
    assert drops == [] and seen["kr1"] == "ON_TRACK"  # nothing known before: nothing told
    later = at(week(2) + timedelta(days=6), 12)  # no check-in since: the pace left it behind
    drops, now = rules.status_changes(model, "acme", later, settings, seen)
    assert now["kr1"] == "AT_RISK"
    ((kr_id, notes),) = drops
    assert kr_id == "kr1" and {n.recipient for n in notes} == {"ken", "olga"}
    assert notes[0].period == f"{(week(2) + timedelta(days=6)).isoformat()}:AT_RISK"
    assert rules.status_changes(model, "acme", later, settings, now)[0] == []  # already seen: silent
    off = rules.merge_settings({"rules": {"kr_status_dropped": {"enabled": False}}})
    assert rules.status_changes(model, "acme", later, off, seen)[0] == []


@pytest.mark.parametrize("was, now, expected", [
    ("ON_TRACK", "AT_RISK", True), ("ON_TRACK", "OFF_TRACK", True), ("AT_RISK", "OFF_TRACK", True),
    ("DONE", "AT_RISK", True), ("OFF_TRACK", "AT_RISK", False), ("AT_RISK", "AT_RISK", False),
    ("STALLED", "AT_RISK", False), ("ON_TRACK", "STALLED", False), (None, "OFF_TRACK", False),
])
def test_what_counts_as_a_drop(was, now, expected):
    assert rules.dropped(was, now) is expected
