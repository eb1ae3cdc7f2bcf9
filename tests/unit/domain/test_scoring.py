"""Scoring, pace, status and grading of key results and objectives (docs/scoring.md)."""

from datetime import date, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from okr_shared.domain.scoring import (
    DEFAULT_THRESHOLDS,
    GRADE_LABELS,
    CheckInPoint,
    Grade,
    Status,
    StatusThresholds,
    expected_progress,
    grade,
    kr_status,
    objective_score,
    progress,
    score,
)

LINEAR = ["INCREASE_TO", "DECREASE_TO", "PERCENTAGE", "CURRENCY"]
KINDS = LINEAR + ["STAY_AT_OR_ABOVE", "STAY_AT_OR_BELOW", "MILESTONE"]
START, DUE = date(2026, 1, 1), date(2026, 3, 31)  # a quarter: 89 days

values = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)
fractions = st.floats(min_value=0.0, max_value=1.0)
weights = st.floats(min_value=1e-3, max_value=1e3)


def day(n: int) -> date:
    """The n-th day after the cycle start (day(0) is the start)."""
    return START + timedelta(days=n)


def status(kind, start, target, points, today, **thresholds):
    check_ins = [CheckInPoint(day(n), v) for n, v in points]
    return kr_status(kind, start, target, check_ins, START, DUE, day(today),
                     StatusThresholds(**thresholds) if thresholds else DEFAULT_THRESHOLDS)


# --------------------------------------------------------------------------- progress


#: One rule of docs/scoring.md per row: key results (kind, start, target) and the
#: progress of some of their values, (value, progress).
PROGRESS = {
    "increase_to_is_the_share_of_the_distance_covered": [("INCREASE_TO", 2_000_000, 3_000_000, ((2_500_000, 0.5),))],
    # churn 40 → 20, now 30
    "decrease_to_counts_the_value_going_down": [("DECREASE_TO", 40, 20, ((30, 0.5), (15, 1.0), (45, 0.0)))],
    "percentage_and_currency_are_linear_like_increase_to": [("PERCENTAGE", 40, 60, ((45, 0.25),)),
                                                             ("CURRENCY", 100.0, 300.0, ((250.0, 0.75),))],
    "linear_progress_is_clamped_to_zero_and_one": [("INCREASE_TO", 10, 20, ((5, 0.0), (25, 1.0)))],
    "stay_at_or_above_is_one_while_the_threshold_holds": [("STAY_AT_OR_ABOVE", 99.5, 99.9, ((99.9, 1.0), (99.89, 0.0)))],
    "stay_at_or_below_is_one_while_the_threshold_holds": [("STAY_AT_OR_BELOW", 300, 200, ((200, 1.0), (201, 0.0)))],
    "milestone_is_done_or_not": [("MILESTONE", 0, 1, ((1, 1.0), (True, 1.0), (0, 0.0)))],
}


@pytest.mark.parametrize("key_results", PROGRESS.values(), ids=PROGRESS.keys())
def test_progress(key_results):
    for kind, start, target, cases in key_results:
        for value, expected in cases:
            assert progress(kind, start, target, value) == expected, (kind, start, target, value)


#: (kind, start, target, value) refused, and the start of the error's message.
INVALID = {
    "linear_kind_with_start_equal_to_target": (("INCREASE_TO", 5, 5, 5), "^target"),
    "unknown_kind": (("KEY_RESULT_KIND_INCREASE_TO", 0, 1, 1), "^kind"),
    "non_finite_value": (("INCREASE_TO", 0, 1, float("nan")), "^value"),
}


@pytest.mark.parametrize("arguments, match", INVALID.values(), ids=INVALID.keys())
def test_invalid_progress_arguments(arguments, match):
    with pytest.raises(ValueError, match=match):
        progress(*arguments)


@given(st.sampled_from(KINDS), values, values, values)
def test_progress_always_lies_between_zero_and_one(kind, start, target, value):
    assume(start != target)
    assert 0.0 <= progress(kind, start, target, value) <= 1.0


@given(st.sampled_from(LINEAR), values, values, values, values)
def test_progress_never_decreases_as_the_value_moves_toward_the_target(kind, start, target, a, b):
    assume(start != target)
    farther, nearer = sorted((a, b), reverse=target < start)  # nearer is closer to the target side
    assert progress(kind, start, target, nearer) >= progress(kind, start, target, farther)


@given(st.sampled_from(LINEAR), values, values)
def test_linear_progress_is_zero_at_start_and_one_at_target(kind, start, target):
    assume(start != target)
    assert progress(kind, start, target, start) == 0.0
    assert progress(kind, start, target, target) == 1.0


# ------------------------------------------------------------------------------ score


def test_score_is_none_before_the_first_check_in():
    assert score("INCREASE_TO", 0, 10, []) is None


def test_linear_score_is_the_progress_of_the_latest_value():
    assert score("INCREASE_TO", 0, 10, [9, 4]) == 0.4
    assert score("DECREASE_TO", 40, 20, [35, 30, 25]) == 0.75


def test_milestone_score_is_the_latest_value():
    assert score("MILESTONE", 0, 1, [0, 0, 1]) == 1.0
    assert score("MILESTONE", 0, 1, [1, 0]) == 0.0


def test_stay_score_is_the_share_of_check_ins_that_held():
    assert score("STAY_AT_OR_ABOVE", 99.5, 99.9, [99.95, 99.8, 99.9, 99.99]) == 0.75
    assert score("STAY_AT_OR_BELOW", 300, 200, [150, 250]) == 0.5


@given(st.sampled_from(KINDS),
       values, values, st.lists(values, min_size=1, max_size=20))
def test_score_always_lies_between_zero_and_one(kind, start, target, vs):
    assume(start != target)
    assert 0.0 <= score(kind, start, target, vs) <= 1.0


# ------------------------------------------------------------------ expected progress


def test_expected_progress_follows_a_linear_pace():
    assert expected_progress(date(2026, 1, 1), date(2026, 1, 11), date(2026, 1, 6)) == 0.5


def test_expected_progress_is_zero_before_the_start_and_one_from_the_due_date():
    assert expected_progress(START, DUE, START - timedelta(days=3)) == 0.0
    assert expected_progress(START, DUE, START) == 0.0
    assert expected_progress(START, DUE, DUE) == 1.0
    assert expected_progress(START, DUE, DUE + timedelta(days=30)) == 1.0


def test_expected_progress_with_a_due_date_on_the_start_day_is_one_from_that_day():
    assert expected_progress(START, START, START) == 1.0
    assert expected_progress(START, START, START - timedelta(days=1)) == 0.0


def test_due_date_before_the_start_is_invalid():
    with pytest.raises(ValueError, match="^due_date"):
        expected_progress(START, START - timedelta(days=1), START)


@given(st.integers(0, 400), st.integers(-50, 500), st.integers(-50, 500))
def test_expected_progress_never_decreases_as_today_advances(length, a, b):
    due = START + timedelta(days=length)
    early, late = sorted((a, b))
    assert 0.0 <= expected_progress(START, due, day(early)) <= expected_progress(START, due, day(late)) <= 1.0


# ---------------------------------------------------------------------- status: pace


def test_on_track_when_progress_keeps_pace():
    assert status("INCREASE_TO", 0, 100, [(40, 45)], today=44) == Status.ON_TRACK  # expected 0.49


def test_on_track_within_the_at_risk_gap_behind_pace():
    assert status("INCREASE_TO", 0, 100, [(40, 40)], today=44) == Status.ON_TRACK  # 0.09 behind


def test_at_risk_between_the_at_risk_and_off_track_gaps():
    assert status("INCREASE_TO", 0, 100, [(40, 30)], today=44) == Status.AT_RISK  # 0.19 behind


def test_off_track_beyond_the_off_track_gap():
    assert status("INCREASE_TO", 0, 100, [(40, 20)], today=44) == Status.OFF_TRACK  # 0.29 behind


def test_pace_gaps_are_inclusive():
    # due in 10 days, today day 5: expected 0.5
    def at(value, **gaps):
        return kr_status("INCREASE_TO", 0, 100, [CheckInPoint(day(5), value)], START, day(10), day(5),
                         StatusThresholds(**gaps))
    assert at(40, at_risk_gap=0.1, off_track_gap=0.3) == Status.ON_TRACK
    assert at(20, at_risk_gap=0.1, off_track_gap=0.3) == Status.AT_RISK
    assert at(19, at_risk_gap=0.1, off_track_gap=0.3) == Status.OFF_TRACK


def test_decrease_to_keeps_pace_going_down():
    assert status("DECREASE_TO", 40, 20, [(40, 30)], today=44) == Status.ON_TRACK  # progress 0.5
    assert status("DECREASE_TO", 40, 20, [(40, 36)], today=44) == Status.OFF_TRACK  # progress 0.2


def test_linear_kr_not_done_after_its_due_date_is_judged_against_full_progress():
    points = [(n, 50 + n * 40 / 95) for n in range(0, 96, 7)]  # progress rising weekly to ~0.9
    assert status("INCREASE_TO", 0, 100, points, today=95) == Status.AT_RISK


def test_stay_kind_is_on_track_while_it_holds_and_off_track_when_it_does_not():
    assert status("STAY_AT_OR_ABOVE", 99.5, 99.9, [(35, 99.95)], today=40) == Status.ON_TRACK
    assert status("STAY_AT_OR_ABOVE", 99.5, 99.9, [(28, 99.95), (35, 99.8)], today=40) == Status.OFF_TRACK
    assert status("STAY_AT_OR_BELOW", 300, 200, [(28, 190), (35, 210)], today=40) == Status.OFF_TRACK


def test_stay_kind_without_check_ins_is_judged_by_its_start_value():
    assert status("STAY_AT_OR_ABOVE", 99.95, 99.9, [], today=3) == Status.ON_TRACK
    assert status("STAY_AT_OR_ABOVE", 99.5, 99.9, [], today=3) == Status.OFF_TRACK


def test_milestone_is_on_track_until_its_due_date_and_off_track_after_it():
    weekly_not_done = [(n, 0) for n in range(0, 96, 7)]
    assert status("MILESTONE", 0, 1, weekly_not_done[:12], today=80) == Status.ON_TRACK
    assert status("MILESTONE", 0, 1, weekly_not_done, today=95) == Status.OFF_TRACK


# ---------------------------------------------------------------- status: precedence


def test_everything_is_on_track_before_the_cycle_starts():
    assert status("INCREASE_TO", 0, 100, [], today=-30) == Status.ON_TRACK
    assert status("STAY_AT_OR_ABOVE", 99.5, 99.9, [], today=-1) == Status.ON_TRACK


def test_done_when_a_linear_kr_reaches_its_target():
    assert status("INCREASE_TO", 0, 100, [(10, 100)], today=60) == Status.DONE


def test_done_wins_over_stalled_and_overdue():
    assert status("INCREASE_TO", 0, 100, [(5, 120)], today=80) == Status.DONE


def test_done_when_a_milestone_is_reached():
    assert status("MILESTONE", 0, 1, [(20, 1)], today=21) == Status.DONE


def test_stay_kind_is_never_done_before_its_due_date_passed():
    assert status("STAY_AT_OR_ABOVE", 99.5, 99.9, [(89, 99.95)], today=89) == Status.ON_TRACK
    assert status("STAY_AT_OR_ABOVE", 99.5, 99.9, [(89, 99.95)], today=90) == Status.DONE
    assert status("STAY_AT_OR_ABOVE", 99.5, 99.9, [(84, 99.95), (89, 99.0)], today=90) == Status.OFF_TRACK


def test_stalled_after_more_than_fourteen_days_without_progress():
    weekly_flat = [(0, 10), (7, 10), (14, 10), (21, 10)]
    assert status("INCREASE_TO", 0, 100, weekly_flat, today=14) != Status.STALLED
    assert status("INCREASE_TO", 0, 100, weekly_flat, today=21) == Status.STALLED  # last rise on day 0


def test_stalled_wins_over_check_in_overdue():
    assert status("INCREASE_TO", 0, 100, [(1, 5)], today=16) == Status.STALLED


def test_kr_that_never_moved_is_stalled_counted_from_the_cycle_start():
    assert status("INCREASE_TO", 0, 100, [], today=14) == Status.CHECK_IN_OVERDUE
    assert status("INCREASE_TO", 0, 100, [], today=15) == Status.STALLED


def test_a_fall_is_not_progress_but_the_rise_after_it_is():
    assert status("INCREASE_TO", 0, 100, [(0, 20), (7, 10), (14, 15)], today=28) == Status.CHECK_IN_OVERDUE
    assert status("INCREASE_TO", 0, 100, [(0, 20), (7, 10), (14, 10)], today=16) == Status.STALLED


def test_a_stay_kind_holding_steadily_is_never_stalled():
    holding = [(n, 99.95) for n in range(0, 64, 7)]
    assert status("STAY_AT_OR_ABOVE", 99.5, 99.9, holding, today=63) == Status.ON_TRACK


def test_a_stay_kind_not_holding_is_stalled_counted_from_the_last_check_in_that_held():
    broke = [(0, 99.95), (7, 99.95), (14, 99.0), (21, 99.0)]
    assert status("STAY_AT_OR_ABOVE", 99.5, 99.9, broke, today=21) == Status.OFF_TRACK
    assert status("STAY_AT_OR_ABOVE", 99.5, 99.9, broke, today=22) == Status.STALLED


def test_a_stay_kind_that_never_held_is_stalled_counted_from_the_cycle_start():
    assert status("STAY_AT_OR_ABOVE", 99.5, 99.9, [(7, 99.8), (14, 99.8)], today=14) == Status.OFF_TRACK
    assert status("STAY_AT_OR_ABOVE", 99.5, 99.9, [(7, 99.8), (14, 99.8)], today=15) == Status.STALLED


def test_a_milestone_is_never_stalled():
    assert status("MILESTONE", 0, 1, [(n, 0) for n in range(0, 43, 7)], today=42) == Status.ON_TRACK


def test_check_in_overdue_after_more_than_seven_days_without_one():
    assert status("INCREASE_TO", 0, 100, [(0, 10), (10, 20)], today=17) == Status.ON_TRACK
    assert status("INCREASE_TO", 0, 100, [(0, 10), (10, 20)], today=18) == Status.CHECK_IN_OVERDUE


def test_check_in_overdue_counts_from_the_cycle_start_without_check_ins():
    assert status("STAY_AT_OR_ABOVE", 99.95, 99.9, [], today=7) == Status.ON_TRACK
    assert status("STAY_AT_OR_ABOVE", 99.95, 99.9, [], today=8) == Status.CHECK_IN_OVERDUE


def test_check_in_overdue_wins_over_pace():
    assert status("STAY_AT_OR_ABOVE", 99.5, 99.9, [(0, 99.95)], today=8) == Status.CHECK_IN_OVERDUE


def test_check_ins_are_sorted_by_date_and_future_ones_ignored():
    check_ins = [CheckInPoint(day(30), 45), CheckInPoint(day(20), 10), CheckInPoint(day(50), 100)]
    assert kr_status("INCREASE_TO", 0, 100, check_ins, START, DUE, day(35)) == Status.ON_TRACK


def test_cadence_and_stall_window_are_configurable():
    assert status("INCREASE_TO", 0, 100, [(0, 5)], today=4, check_in_cadence_days=3) == Status.CHECK_IN_OVERDUE
    assert status("INCREASE_TO", 0, 100, [(0, 5), (3, 5)], today=4, stalled_after_days=3) == Status.STALLED


def test_kr_status_refuses_a_due_date_before_the_cycle_start():
    with pytest.raises(ValueError, match="^due_date"):
        kr_status("INCREASE_TO", 0, 100, [], START, START - timedelta(days=1), START)


@given(st.sampled_from(KINDS), values, values, st.lists(st.tuples(st.integers(-10, 120), values), max_size=8),
       st.integers(-30, 150))
def test_status_is_on_track_before_the_cycle_and_one_of_the_six_after(kind, start, target, points, today):
    assume(start != target)
    result = status(kind, start, target, points, today)
    assert result in set(Status)
    if today < 0:
        assert result == Status.ON_TRACK


@given(st.sampled_from(LINEAR), values, values, st.integers(0, 60), st.integers(0, 150))
def test_linear_kr_whose_latest_value_reached_the_target_is_done(kind, start, target, on, later):
    assume(start != target)
    assert status(kind, start, target, [(on, start), (on, target)], today=on + later) == Status.DONE


# ----------------------------------------------------------------------- thresholds


def test_default_thresholds():
    assert DEFAULT_THRESHOLDS == StatusThresholds(0.10, 0.25, 7, 14)


@pytest.mark.parametrize("fields, field", [
    ({"at_risk_gap": -0.01}, "at_risk_gap"),
    ({"at_risk_gap": 1.5, "off_track_gap": 2.0}, "at_risk_gap"),
    ({"at_risk_gap": 0.3, "off_track_gap": 0.2}, "off_track_gap"),
    ({"off_track_gap": 1.01}, "off_track_gap"),
    ({"off_track_gap": float("nan")}, "off_track_gap"),
    ({"check_in_cadence_days": 0}, "check_in_cadence_days"),
    ({"check_in_cadence_days": 7.5}, "check_in_cadence_days"),
    ({"stalled_after_days": -1}, "stalled_after_days"),
])
def test_invalid_thresholds_are_refused_naming_the_field(fields, field):
    with pytest.raises(ValueError, match=f"^{field}"):
        StatusThresholds(**fields)


def test_equal_gaps_and_the_extremes_are_valid_thresholds():
    StatusThresholds(at_risk_gap=0.0, off_track_gap=0.0)
    StatusThresholds(at_risk_gap=0.2, off_track_gap=0.2)
    StatusThresholds(at_risk_gap=1.0, off_track_gap=1.0, check_in_cadence_days=1, stalled_after_days=1)


# ------------------------------------------------------------------ objective score


def test_objective_score_is_the_weight_normalised_mean():
    assert objective_score([(1.0, 1.0), (0.4, 2.0), (0.1, 1.0)]) == pytest.approx(0.475)


def test_key_result_without_a_score_counts_as_zero():
    assert objective_score([(0.8, 1.0), (None, 1.0)]) == pytest.approx(0.4)


def test_objective_score_is_none_when_nothing_is_scored():
    assert objective_score([(None, 1.0), (None, 2.0)]) is None
    assert objective_score([]) is None


def test_aligned_child_objectives_count_with_their_own_weights():
    assert objective_score([(0.5, 1.0)], children=[(1.0, 1.0)]) == pytest.approx(0.75)
    assert objective_score([], children=[(0.6, 1.0)]) == pytest.approx(0.6)


@pytest.mark.parametrize("weight", [0, -1.0, float("inf")])
def test_weights_must_be_positive(weight):
    with pytest.raises(ValueError, match="^weight"):
        objective_score([(0.5, 1.0), (0.5, weight)])


def test_scores_outside_zero_to_one_are_refused():
    with pytest.raises(ValueError, match="^score"):
        objective_score([(1.2, 1.0)])


scored_pairs = st.lists(st.tuples(st.one_of(st.none(), fractions), weights), min_size=1, max_size=10)


@given(scored_pairs, st.lists(st.tuples(fractions, weights), max_size=5))
def test_objective_score_lies_within_its_inputs(krs, children):
    result = objective_score(krs, children)
    inputs = [s if s is not None else 0.0 for s, _ in [*krs, *children]]
    if all(s is None for s, _ in [*krs, *children]):
        assert result is None
    else:
        assert min(inputs) <= result <= max(inputs)


@given(scored_pairs, st.floats(min_value=1e-3, max_value=1e3))
def test_objective_score_does_not_change_when_all_weights_are_scaled(krs, factor):
    scaled = [(s, w * factor) for s, w in krs]
    original = objective_score(krs)
    if original is None:
        assert objective_score(scaled) is None
    else:
        assert objective_score(scaled) == pytest.approx(original, abs=1e-9)


# --------------------------------------------------------------------------- grades


@pytest.mark.parametrize("value, expected", [
    (1.0, Grade.NOT_AMBITIOUS),
    (0.9, Grade.NOT_AMBITIOUS),
    (0.89, Grade.NONE),
    (0.71, Grade.NONE),
    (0.7, Grade.HEALTHY),
    (0.65, Grade.HEALTHY),
    (0.6, Grade.HEALTHY),
    (0.59, Grade.NONE),
    (0.3, Grade.NONE),
    (0.29, Grade.NEEDS_HELP),
    (0.0, Grade.NEEDS_HELP),
])
def test_grade_boundaries(value, expected):
    assert grade(value) == expected


def test_grade_reads_the_score_as_shown_to_two_decimals():
    assert grade(0.1 + 0.2 + 0.4) == Grade.HEALTHY  # 0.7000000000000001
    assert grade(0.699999) == Grade.HEALTHY
    assert grade(0.8999) == Grade.NOT_AMBITIOUS


def test_no_score_has_no_grade():
    assert grade(None) == Grade.NONE


def test_grade_refuses_a_score_outside_zero_to_one():
    with pytest.raises(ValueError, match="^score"):
        grade(1.5)


def test_grade_labels_are_the_phrases_people_read():
    assert GRADE_LABELS[Grade.NOT_AMBITIOUS] == "not ambitious enough"
    assert GRADE_LABELS[Grade.HEALTHY] == "healthy"
    assert GRADE_LABELS[Grade.NEEDS_HELP] == "needs help"
    assert GRADE_LABELS[Grade.NONE] == ""
    assert set(GRADE_LABELS) == set(Grade)
