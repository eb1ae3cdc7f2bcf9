"""Every query reads one tenant's rows only, even when another tenant uses the same ids."""

import pytest

from tests.fixtures.company_history import QUARTER, company_history, week_end, week_end_us
from okr_services.reporting import fold
from okr_services.reporting import queries as q

TODAY = week_end(9)


@pytest.fixture(scope="module")
def models(history):
    """acme alone, and acme with globex: another company with the very same ids (other
    seed, so other values and other individual KRs); each also as of week 8."""
    globex = company_history(seed=7, tenant="globex", first_position=len(history) + 1)
    acme_before = [e for e in history if e.recorded_at_us < week_end_us(8)]
    return {"alone": (fold(history), fold(acme_before)), "shared": (fold(history + globex), fold(acme_before + globex))}


QUERIES = {
    "key_result_status": lambda m, _, t: q.key_result_status(m, t, "kr-leads", TODAY),
    "key_result_statuses": lambda m, _, t: q.key_result_statuses(m, t, TODAY),
    "board": lambda m, _, t: q.board(m, t, TODAY),
    "team_dashboard": lambda m, _, t: q.team_dashboard(m, t, "growth", TODAY),
    "person_dashboard": lambda m, _, t: q.person_dashboard(m, t, "gina", TODAY),
    "scorecard": lambda m, _, t: q.scorecard(m, t, QUARTER, TODAY),
    "kr_history": lambda m, _, t: q.kr_history(m, t, "kr-leads"),
    "objective_rollup": lambda m, _, t: q.objective_rollup(m, t, "o-2026", TODAY, include_children=True),
    "alignment_tree": lambda m, _, t: q.alignment_tree(m, t, TODAY),
    "diff": lambda m, before, t: q.diff(before, m, t, week_end(8), TODAY),
}


@pytest.mark.parametrize("query", QUERIES.values(), ids=QUERIES.keys())
def test_a_query_sees_only_its_tenants_rows(query, models):
    alone, shared = models["alone"], models["shared"]
    acme = query(*alone, "acme")
    assert acme  # something to compare
    assert query(*shared, "acme") == acme
    assert query(*shared, "globex") != acme
