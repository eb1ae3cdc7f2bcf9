"""The cycle scorecard: distribution, the healthy 0.6–0.7 band, the ≥ 0.9 and < 0.3 flags."""

from datetime import date

import pytest

from tests.fixtures.company_history import QUARTER, week_end
from okr_services.reporting import fold
from okr_services.reporting.queries import scorecard

from .scenes import JAN1, Q1, WORKED_EXAMPLE_DAY, check_in, kr, quarter, worked_example

DAY = date(2026, 2, 10)
#: key result -> its latest value (0 → 100, so value / 100 is the score); None: no check-in
VALUES = {"kr-95": 95, "kr-100": 100, "kr-65": 65, "kr-70": 70, "kr-69996": 69.996, "kr-60": 60, "kr-594": 59.4,
          "kr-30": 30, "kr-296": 29.6, "kr-20": 20, "kr-none": None}


@pytest.fixture(scope="module")
def card():
    s = quarter()
    for kr_id in VALUES:
        kr(s, kr_id)
    for kr_id, value in VALUES.items():
        if value is not None:
            check_in(s, DAY, kr_id, value)
    return scorecard(fold(s.events()), "acme", Q1, DAY)["key_results"]


def test_unscored_key_results_are_counted_apart(card):
    assert (card["count"], card["scored"], card["unscored"]) == (11, 10, 1)


def test_the_healthy_share_is_of_the_scored_key_results_read_to_two_decimals(card):
    # 0.65, 0.70, 0.69996 (shown 0.70) and 0.60 are healthy; 0.594 (shown 0.59) is not.
    assert card["healthy"] == 4
    assert card["healthy_share"] == 0.4


def test_scores_of_0_9_and_above_are_flagged_not_ambitious(card):
    assert card["not_ambitious"] == ["kr-100", "kr-95"]


def test_scores_below_0_3_as_shown_are_flagged_for_help(card):
    assert card["needs_help"] == ["kr-20"]  # 0.296 shows as 0.30: no flag


def test_the_distribution_has_ten_bands_of_a_tenth_with_1_0_in_the_last(card):
    counts = [band["count"] for band in card["distribution"]]
    assert counts == [0, 0, 1, 2, 0, 1, 2, 2, 0, 2]
    assert (card["distribution"][0]["from"], card["distribution"][-1]["to"]) == (0.0, 1.0)


def test_the_mean_score_is_of_the_scored_key_results(card):
    scored = [v / 100 for v in VALUES.values() if v is not None]
    assert card["mean_score"] == pytest.approx(sum(scored) / len(scored))


def test_objectives_are_scored_from_their_key_results_by_weight():
    model = fold(worked_example().events())
    objectives = scorecard(model, "acme", Q1, WORKED_EXAMPLE_DAY)["objectives"]
    by_id = {item["id"]: item for item in objectives["items"]}
    assert by_id["o-co"]["score"] == pytest.approx(0.425)
    assert by_id["o-growth"]["score"] is None and objectives["unscored"] == 1


def test_a_scorecard_of_the_generated_quarter_accounts_for_every_key_result(history):
    card = scorecard(fold(history), "acme", QUARTER, week_end(12))
    krs = card["key_results"]
    assert sum(band["count"] for band in krs["distribution"]) == krs["scored"] > 30
    assert krs["not_ambitious"] and krs["needs_help"] and 0 < krs["healthy_share"] < 1


def test_an_unknown_cycle_has_no_scorecard():
    assert scorecard(fold(quarter().events()), "acme", "nope", JAN1) is None
