"""Objective roll-up, the alignment tree, and the team and person dashboards."""

from datetime import date

import pytest

from tests.fixtures.company_history import MONTH, NEXT_QUARTER, QUARTER, YEAR, week_end
from okr_services.reporting import fold
from okr_services.reporting.queries import alignment_tree, objective_rollup, person_dashboard, team_dashboard
from okr_shared.domain import commands as c

from .scenes import Q1, WORKED_EXAMPLE_DAY, check_in, initiative, kr, two_team_quarter, worked_example

DAY = WORKED_EXAMPLE_DAY


def with_child_at_0_8():
    """The worked example plus the growth objective (aligned to o-co) scoring 0.8."""
    s = worked_example()
    kr(s, "kr-growth", day=date(2026, 2, 11))
    check_in(s, date(2026, 2, 12), "kr-growth", 80)
    return s


# ------------------------------------------------------------------------------ roll-up


def test_an_objective_rolls_up_its_key_results_by_weight():
    rollup = objective_rollup(fold(worked_example().events()), "acme", "o-co", DAY)
    assert rollup["score"] == pytest.approx(0.425)
    assert [(k["key_result_id"], k["weight"]) for k in rollup["key_results"]] == [
        ("kr-churn", 2.0), ("kr-nps", 1.0), ("kr-uptime", 1.0)]
    assert rollup["children"] == []


def test_an_objective_rolls_up_its_aligned_children_when_asked():
    rollup = objective_rollup(fold(with_child_at_0_8().events()), "acme", "o-co", DAY, include_children=True)
    assert rollup["score"] == pytest.approx(0.5)  # (0.45 + 0.25×2 + 0.75 + 0.8) / 5
    assert [(ch["objective_id"], ch["score"]) for ch in rollup["children"]] == [("o-growth", pytest.approx(0.8))]


def test_a_child_aligned_to_one_of_the_key_results_counts_as_a_child():
    s = worked_example()
    s.run(date(2026, 2, 11), "hana", c.CreateObjective("o-hana", Q1, "INDIVIDUAL", "Mine", "hana", team_id="growth",
                                                       parent_key_result_id="kr-nps"))
    kr(s, "kr-hana", owner="hana", objective="o-hana", day=date(2026, 2, 11))
    check_in(s, date(2026, 2, 12), "kr-hana", 80, actor="hana")
    rollup = objective_rollup(fold(s.events()), "acme", "o-co", DAY, include_children=True)
    assert [ch["objective_id"] for ch in rollup["children"]] == ["o-growth", "o-hana"]


def test_archived_key_results_and_children_do_not_count():
    s = with_child_at_0_8()
    s.run(date(2026, 2, 13), "ceo", c.ArchiveKeyResult("kr-churn", "Metric retired"))
    s.run(date(2026, 2, 13), "gina", c.ArchiveObjective("o-growth", "Team merged"))
    rollup = objective_rollup(fold(s.events()), "acme", "o-co", DAY, include_children=True)
    assert rollup["score"] == pytest.approx(0.6)  # (0.45 + 0.75) / 2
    assert rollup["children"] == []


# ------------------------------------------------------------------------------- tree


def shape(nodes) -> list:
    return [(n["objective_id"], [(k["key_result_id"], shape(k["aligned"])) for k in n["key_results"] if k["aligned"]],
             shape(n["children"])) for n in nodes]


def test_the_alignment_tree_runs_company_team_individual_with_key_result_alignments():
    s = with_child_at_0_8()
    s.run(date(2026, 2, 13), "hana", c.CreateObjective("o-hana", Q1, "INDIVIDUAL", "Mine", "hana", team_id="growth",
                                                       parent_key_result_id="kr-growth"))
    s.run(date(2026, 2, 13), "ivan", c.CreateObjective("o-ivan", Q1, "INDIVIDUAL", "Mine too", "ivan",
                                                       team_id="growth", parent_objective_id="o-growth"))
    model = fold(s.events())
    tree = alignment_tree(model, "acme", DAY)
    assert shape(tree) == [("o-co", [], [("o-growth", [("kr-growth", [("o-hana", [], [])])], [("o-ivan", [], [])])])]
    assert tree[0]["score"] == pytest.approx(0.425)
    assert tree[0]["rolled_up_score"] == objective_rollup(model, "acme", "o-co", DAY, include_children=True)["score"]


def test_the_tree_of_a_cycle_shows_the_cycles_above_and_below_it_only(history):
    model = fold(history)
    cycles_in = set()

    def walk(nodes):
        for n in nodes:
            cycles_in.add(n["cycle_id"])
            walk(n["children"])
            for k in n["key_results"]:
                walk(k["aligned"])

    walk(alignment_tree(model, "acme", week_end(12), cycle_id=QUARTER))
    assert cycles_in == {YEAR, QUARTER, MONTH}
    cycles_in.clear()
    walk(alignment_tree(model, "acme", week_end(12), cycle_id=NEXT_QUARTER))
    assert cycles_in == {YEAR, NEXT_QUARTER}


# ------------------------------------------------------------------------- dashboards


def team_week():
    s = two_team_quarter()
    kr(s, "kr-fresh", owner="gina")
    kr(s, "kr-quiet", owner="hana")
    kr(s, "kr-late", owner="hana", due="2026-02-01")
    kr(s, "kr-platform", owner="paul", objective="o-platform")
    initiative(s, "i-overdue", "kr-fresh", "2026-01-05", "2026-02-01", assignee="hana")
    initiative(s, "i-platform", "kr-platform", "2026-01-05", "2026-02-01", assignee="paul")
    check_in(s, date(2026, 1, 29), "kr-quiet", 40, actor="hana")
    check_in(s, date(2026, 1, 29), "kr-late", 50, actor="hana")
    check_in(s, date(2026, 2, 6), "kr-fresh", 40)
    return fold(s.events())


FEB_9 = date(2026, 2, 9)


def test_a_team_dashboard_has_its_objectives_cards_and_what_is_overdue():
    dash = team_dashboard(team_week(), "acme", "growth", FEB_9)
    assert [o["objective_id"] for o in dash["objectives"]] == ["o-growth"]
    assert {card["id"] for card in dash["key_results"]} == {"kr-fresh", "kr-quiet", "kr-late"}
    assert [card["id"] for card in dash["initiatives"]] == ["i-overdue"]
    # kr-late is past its due date unfinished, and its last check-in is 11 days old.
    assert dash["overdue"] == {"check_ins": ["kr-late", "kr-quiet"], "key_results": ["kr-late"],
                               "initiatives": ["i-overdue"]}
    assert dash["status_counts"]["CHECK_IN_OVERDUE"] == 2


def test_a_person_dashboard_has_what_they_own_and_are_assigned():
    dash = person_dashboard(team_week(), "acme", "hana", FEB_9)
    assert dash["objectives"] == []
    assert {card["id"] for card in dash["key_results"]} == {"kr-quiet", "kr-late"}
    assert [card["id"] for card in dash["initiatives"]] == ["i-overdue"]
    assert dash["overdue"]["key_results"] == ["kr-late"]


def test_a_person_dashboard_lists_the_objectives_they_own():
    dash = person_dashboard(team_week(), "acme", "paul", FEB_9)
    assert [o["objective_id"] for o in dash["objectives"]] == ["o-platform"]
