"""The kanban board: cards in status columns, computed against the clock it is given."""

import json
from datetime import date

import pytest

from tests.fixtures.company_history import week_end, week_end_us
from okr_services.reporting import fold, fold_as_of
from okr_services.reporting.queries import INITIATIVE_COLUMNS, KR_COLUMNS, board, key_result_status
from okr_shared.domain import commands as c

from .scenes import JAN1, Q1, check_in, initiative, kr, quarter, two_team_quarter

FEB = date(2026, 2, 1)


def columns(b, lane="key_results") -> dict[str, list[str]]:
    return {col["status"]: [card["id"] for card in col["cards"]] for col in b[lane]}


def where(b, card_id, lane="key_results") -> str:
    (status,) = [s for s, ids in columns(b, lane).items() if card_id in ids]
    return status


# ------------------------------------------------------------------ the generated history


def test_the_as_of_board_at_week_6_equals_the_board_of_the_first_six_weeks(history):
    today = week_end(6)
    as_of = fold_as_of(history, recorded_before_us=week_end_us(6))
    first_six_weeks = fold([e for e in history if e.recorded_at_us < week_end_us(6)])
    b = board(as_of, "acme", today)
    assert json.dumps(b, sort_keys=True) == json.dumps(board(first_six_weeks, "acme", today), sort_keys=True)
    assert sum(len(col["cards"]) for col in b["key_results"]) > 40
    # The live model read on the same day is not the past: later events changed cards.
    assert b != board(fold(history), "acme", today)


def test_the_columns_come_in_a_fixed_order(history):
    b = board(fold(history), "acme", week_end(9))
    assert [col["status"] for col in b["key_results"]] == list(KR_COLUMNS)
    assert [col["status"] for col in b["initiatives"]] == list(INITIATIVE_COLUMNS)


# ------------------------------------------------------------------ key result columns


@pytest.mark.parametrize("history_of,today,column", [
    ([(date(2026, 2, 10), 45)], date(2026, 2, 15), "ON_TRACK"),  # 0.45 vs expected 0.51
    ([(date(2026, 2, 10), 35)], date(2026, 2, 15), "AT_RISK"),  # 0.16 behind pace
    ([(date(2026, 2, 10), 20)], date(2026, 2, 15), "OFF_TRACK"),  # 0.31 behind pace
    ([(date(2026, 1, 30), 40)], date(2026, 2, 9), "CHECK_IN_OVERDUE"),  # 10 days without a check-in
    ([(date(2026, 1, 20), 30), (date(2026, 2, 10), 30)], date(2026, 2, 10), "STALLED"),  # 21 days flat
    ([(date(2026, 2, 10), 100)], date(2026, 2, 15), "DONE"),
], ids=lambda x: x if isinstance(x, str) else None)
def test_a_key_result_sits_in_the_column_of_its_computed_status(history_of, today, column):
    s = quarter()
    kr(s, "kr-1")
    for day, value in history_of:
        check_in(s, day, "kr-1", value)
    assert columns(board(fold(s.events()), "acme", today))[column] == ["kr-1"]


def test_a_card_shows_progress_pace_confidence_and_days_since_the_last_check_in():
    s = quarter()
    kr(s, "kr-1")
    check_in(s, date(2026, 2, 3), "kr-1", 30, confidence=6)
    check_in(s, date(2026, 2, 10), "kr-1", 45, confidence=8)
    (card,) = board(fold(s.events()), "acme", date(2026, 2, 15))["key_results"][0]["cards"]
    assert card == {
        "id": "kr-1", "kind": "kr", "title": "KR kr-1", "owner": "gina", "team": "growth",
        "objective": "o-growth", "cycle": Q1, "key_result": "kr-1", "status": "ON_TRACK",
        "progress": 0.45, "expected": 45 / 89, "score": 0.45, "confidence": 8, "confidence_trend": "up",
        "days_since_check_in": 5, "current_value": 45.0, "target_value": 100.0, "due_date": "2026-03-31",
    }


def test_a_corrected_check_in_counts_with_its_corrected_value():
    s = quarter()
    kr(s, "kr-1")
    check_in(s, date(2026, 2, 10), "kr-1", 4.5, check_in_id="ci-1")
    s.run(date(2026, 2, 11), "gina", c.CorrectCheckIn("ci-2", "ci-1", "kr-1", 45, 7, "Typo in the value"))
    status = key_result_status(fold(s.events()), "acme", "kr-1", date(2026, 2, 15))
    assert (status["current_value"], status["status"], status["last_check_in"]) == (45.0, "ON_TRACK", "2026-02-10")


def test_the_board_moves_with_the_clock_alone_and_writes_nothing():
    s = quarter()
    kr(s, "kr-1")
    check_in(s, date(2026, 2, 10), "kr-1", 45)
    model = fold(s.events())
    before = json.dumps(model, sort_keys=True)
    assert where(board(model, "acme", date(2026, 2, 15)), "kr-1") == "ON_TRACK"
    assert where(board(model, "acme", date(2026, 2, 20)), "kr-1") == "CHECK_IN_OVERDUE"
    assert json.dumps(model, sort_keys=True) == before


# ------------------------------------------------------------------ initiative columns


def test_initiatives_sit_in_todo_doing_overdue_done_and_dropped():
    s = quarter()
    kr(s, "kr-1")
    for iid, due in (("todo", "2026-03-01"), ("doing", "2026-03-01"), ("late", "2026-02-01"),
                     ("done", "2026-03-01"), ("dropped", "2026-03-01"), ("late-doing", "2026-02-01")):
        initiative(s, iid, "kr-1", "2026-01-05", due)
    for iid in ("doing", "done", "late-doing"):
        s.run(date(2026, 1, 5), "gina", c.StartInitiative(iid))
    s.run(date(2026, 1, 20), "gina", c.CompleteInitiative("done"))
    s.run(date(2026, 1, 20), "gina", c.DropInitiative("dropped", "Superseded"))
    b = board(fold(s.events()), "acme", date(2026, 2, 10))
    assert columns(b, "initiatives") == {"TODO": ["todo"], "DOING": ["doing"], "OVERDUE": ["late", "late-doing"],
                                         "DONE": ["done"], "DROPPED": ["dropped"]}


def test_an_overdue_initiative_card_says_how_late_and_how_often_it_slipped():
    s = quarter()
    kr(s, "kr-1")
    initiative(s, "i-1", "kr-1", "2026-01-05", "2026-01-20")
    s.run(date(2026, 1, 19), "gina", c.SlipInitiative("i-1", "2026-02-01", "Vendor late"))
    b = board(fold(s.events()), "acme", date(2026, 2, 10))
    card = b["initiatives"][INITIATIVE_COLUMNS.index("OVERDUE")]["cards"][0]
    assert (card["days_overdue"], card["slips"], card["original_due_date"], card["reason"]) == (
        9, 1, "2026-01-20", "Vendor late")
    assert (card["state"], card["expected"], card["confidence"]) == ("todo", 1.0, None)


# ------------------------------------------------------------------------------ filters


def two_teams():
    s = two_team_quarter()
    kr(s, "kr-growth", owner="gina")
    kr(s, "kr-growth-hana", owner="hana")
    kr(s, "kr-platform", owner="paul", objective="o-platform")
    initiative(s, "i-growth", "kr-growth", "2026-01-05", "2026-03-01", assignee="hana")
    initiative(s, "i-platform", "kr-platform", "2026-01-05", "2026-03-01", assignee="paul")
    return s


def cards(b) -> set[str]:
    return {card["id"] for lane in ("key_results", "initiatives") for col in b[lane] for card in col["cards"]}


def test_the_board_filters_by_team():
    assert cards(board(fold(two_teams().events()), "acme", FEB, team_id="platform")) == {"kr-platform", "i-platform"}


def test_the_board_filters_by_owner_and_assignee():
    assert cards(board(fold(two_teams().events()), "acme", FEB, owner="hana")) == {"kr-growth-hana", "i-growth"}


def test_the_board_filters_by_cycle_and_leaves_closed_cycles_out_by_default():
    s = quarter()
    s.run(JAN1, "ceo", c.PlanCycle("jan", "MONTHLY", "January", "2026-01-01", "2026-01-31"))
    s.run(JAN1, "ceo", c.CreateObjective("o-jan", "jan", "TEAM", "January push", "gina", team_id="growth"))
    kr(s, "kr-q1")
    kr(s, "kr-jan", objective="o-jan", due="2026-01-31")
    s.run(JAN1, "ceo", c.ActivateCycle("jan"))
    s.run(date(2026, 2, 1), "ceo", c.MoveCycleToReview("jan"))
    assert cards(board(fold(s.events()), "acme", FEB)) == {"kr-q1", "kr-jan"}
    assert cards(board(fold(s.events()), "acme", FEB, cycle_id="jan")) == {"kr-jan"}
    s.run(date(2026, 2, 2), "ceo", c.CloseCycle("jan"))
    assert cards(board(fold(s.events()), "acme", FEB)) == {"kr-q1"}
    assert cards(board(fold(s.events()), "acme", FEB, cycle_id="jan")) == {"kr-jan"}


def test_archived_key_results_and_objectives_leave_the_board_with_their_initiatives():
    s = two_teams()
    s.run(date(2026, 1, 10), "gina", c.ArchiveKeyResult("kr-growth", "Metric retired"))
    s.run(date(2026, 1, 10), "paul", c.ArchiveObjective("o-platform", "Team merged"))
    assert cards(board(fold(s.events()), "acme", FEB)) == {"kr-growth-hana"}
