"""Per-KR history (who, when, why) and the weekly-review diff between two instants."""

from datetime import date

import pytest

from tests.fixtures.company_history import day_start_us, week_end, week_end_us
from okr_services.reporting import fold, fold_as_of
from okr_services.reporting.queries import diff, kr_history
from okr_shared.domain import commands as c

from .scenes import check_in, initiative, kr, quarter

# ------------------------------------------------------------------------------ history


def test_a_key_results_history_has_every_check_in_correction_adjustment_and_owner_change():
    s = quarter()
    kr(s, "kr-1")
    check_in(s, date(2026, 1, 8), "kr-1", 10, check_in_id="ci-1")
    s.run(date(2026, 1, 9), "hana", c.CorrectCheckIn("ci-2", "ci-1", "kr-1", 12, 6, "Late data"))
    s.run(date(2026, 1, 12), "gina", c.AdjustKeyResult("kr-1", "Scope cut", target_value=80.0))
    s.run(date(2026, 1, 13), "gina", c.AssignKeyResultOwner("kr-1", "hana", "Hana owns onboarding"))
    s.run(date(2026, 1, 14), "gina", c.ArchiveKeyResult("kr-1", "Metric retired"))
    entries = kr_history(fold(s.events()), "acme", "kr-1")["entries"]
    assert [(e["what"], e["actor"], e["reason"], e["recorded_at"][:10]) for e in entries] == [
        ("defined", "gina", "", "2026-01-01"),
        ("check_in", "gina", "", "2026-01-08"),
        ("correction", "hana", "Late data", "2026-01-09"),
        ("adjusted", "gina", "Scope cut", "2026-01-12"),
        ("owner_assigned", "gina", "Hana owns onboarding", "2026-01-13"),
        ("archived", "gina", "Metric retired", "2026-01-14"),
    ]
    assert [(e["value"], e["in_force"]) for e in entries[1:3]] == [(10.0, False), (12.0, True)]
    assert entries[2]["corrects_check_in_id"] == "ci-1"
    assert entries[3]["changes"] == {"target_value": {"old": 100.0, "new": 80.0}}
    assert (entries[4]["old_owner"], entries[4]["new_owner"]) == ("gina", "hana")


def test_a_key_results_history_leaves_out_its_initiatives():
    s = quarter()
    kr(s, "kr-1")
    initiative(s, "i-1", "kr-1", "2026-01-05", "2026-02-01")
    assert [e["what"] for e in kr_history(fold(s.events()), "acme", "kr-1")["entries"]] == ["defined"]


def test_an_unknown_key_result_has_no_history():
    assert kr_history(fold(quarter().events()), "acme", "kr-x") is None


# --------------------------------------------------------------------------------- diff

LAST_WEEK, THIS_WEEK = date(2026, 2, 1), date(2026, 2, 8)


@pytest.fixture(scope="module")
def review():
    """A week of changes, 2–8 Feb, after a quiet January."""
    s = quarter()
    for kr_id in ("kr-1", "kr-2", "kr-3"):
        kr(s, kr_id)
    initiative(s, "i-slip", "kr-1", "2026-01-05", "2026-02-05")
    initiative(s, "i-drop", "kr-1", "2026-01-05", "2026-02-20")
    initiative(s, "i-late", "kr-1", "2026-01-05", "2026-01-30")
    initiative(s, "i-due", "kr-2", "2026-01-05", "2026-02-03")
    initiative(s, "i-long-late", "kr-2", "2026-01-05", "2026-01-20")
    s.run(date(2026, 1, 5), "gina", c.StartInitiative("i-late"))
    for kr_id in ("kr-1", "kr-2", "kr-3"):
        check_in(s, date(2026, 1, 29), kr_id, 40)
    # the week under review
    s.run(date(2026, 2, 4), "gina", c.SlipInitiative("i-slip", "2026-02-19", "Vendor late"))
    check_in(s, date(2026, 2, 5), "kr-1", 45)
    check_in(s, date(2026, 2, 5), "kr-2", 42, check_in_id="ci-typo")
    s.run(date(2026, 2, 6), "gina", c.CorrectCheckIn("ci-fixed", "ci-typo", "kr-2", 46, 7, "Typo in the value"))
    s.run(date(2026, 2, 6), "gina", c.AdjustKeyResult("kr-2", "Budget cut", target_value=90.0))
    s.run(date(2026, 2, 6), "gina", c.AssignKeyResultOwner("kr-1", "hana", "Hana takes over"))
    s.run(date(2026, 2, 6), "gina", c.DropInitiative("i-drop", "Superseded"))
    s.run(date(2026, 2, 6), "gina", c.CompleteInitiative("i-late", reason="Waited on legal"))
    events = s.events()
    before = fold_as_of(events, recorded_before_us=day_start_us(date(2026, 2, 2)))
    return diff(before, fold(events), "acme", LAST_WEEK, THIS_WEEK)


def test_the_diff_lists_the_check_ins_and_corrections_recorded_in_between(review):
    assert [(e["key_result_id"], e["what"], e["value"], e["in_force"]) for e in review["check_ins"]] == [
        ("kr-1", "check_in", 45.0, True), ("kr-2", "check_in", 42.0, False), ("kr-2", "correction", 46.0, True)]


def test_the_diff_lists_status_changes_including_those_the_clock_made(review):
    # kr-3 was last checked in on 29 Jan: on time on 1 Feb, 10 days late on 8 Feb.
    assert [(e["key_result_id"], e["from"], e["to"]) for e in review["status_changes"]] == [
        ("kr-3", "ON_TRACK", "CHECK_IN_OVERDUE")]


def test_the_diff_lists_adjustments_and_owner_changes_with_who_and_why(review):
    assert [(e["key_result_id"], e["what"], e["actor"], e["reason"]) for e in review["adjustments"]] == [
        ("kr-2", "adjusted", "gina", "Budget cut"), ("kr-1", "owner_assigned", "gina", "Hana takes over")]


def test_the_diff_lists_slipped_dropped_late_and_newly_overdue_initiatives(review):
    assert [(e["initiative_id"], e["change"], e.get("reason")) for e in review["slipped_initiatives"]] == [
        ("i-slip", "slipped", "Vendor late"), ("i-drop", "dropped", "Superseded"),
        ("i-late", "completed_late", "Waited on legal"), ("i-due", "overdue", None)]
    assert (review["slipped_initiatives"][0]["old_due_date"], review["slipped_initiatives"][0]["new_due_date"]) == (
        "2026-02-05", "2026-02-19")


def test_the_weekly_review_of_the_generated_history_has_every_check_in_of_the_week(history):
    before, after = fold_as_of(history, recorded_before_us=week_end_us(5)), fold_as_of(
        history, recorded_before_us=week_end_us(6))
    review = diff(before, after, "acme", week_end(5), week_end(6))
    recorded = [e for e in history if week_end_us(5) <= e.recorded_at_us < week_end_us(6)
                and e.event_type in ("okr.v1.CheckInRecorded", "okr.v1.CheckInCorrected")]
    assert [e["position"] for e in review["check_ins"]] == [e.position for e in recorded]
    assert review["status_changes"] and review["adjustments"] and review["slipped_initiatives"]


def test_the_history_words_are_the_contracts_history_what(history):
    """GetHistory's ``what`` (okr_shared.contracts.HISTORY_WHAT) is the read models'
    word: every history row of the generated history (key result and initiative
    streams) says what the table says for its event type, and the table covers every
    event type of the contracts."""
    from okr_shared.contracts import EVENT_TYPES, HISTORY_WHAT

    assert set(HISTORY_WHAT) == set(EVENT_TYPES)
    types = {e.position: e.event_type for e in history}
    rows = fold(history)["history"].values()
    assert {types[r["position"]] for r in rows} == {t for t in EVENT_TYPES if ".KeyResult" in t or ".CheckIn" in t
                                                   or ".Initiative" in t}
    assert {(types[r["position"]], r["what"]) for r in rows} <= set(HISTORY_WHAT.items())
