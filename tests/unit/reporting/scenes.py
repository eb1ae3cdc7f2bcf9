"""Small hand-made histories for the reporting tests, written through the real deciders
(``tests.fixtures.company_history.Script``). Days only move forward within one history."""

from __future__ import annotations

from datetime import date

from tests.fixtures.company_history import Script
from okr_shared.domain import commands as c

Q1 = "q1"
JAN1 = date(2026, 1, 1)
PLANNING = date(2025, 12, 20)


def quarter(tenant: str = "acme") -> Script:
    """Q1 2026 (1 Jan – 31 Mar, active from 1 Jan) with a company objective ``o-co``
    (owner ceo) and the growth team's objective ``o-growth`` (lead gina) aligned to it."""
    s = Script(tenant)
    s.run(PLANNING, "ceo", c.PlanCycle(Q1, "QUARTERLY", "Q1 2026", "2026-01-01", "2026-03-31"))
    s.run(PLANNING, "ceo", c.CreateObjective("o-co", Q1, "COMPANY", "Win the mid-market", "ceo"))
    s.run(PLANNING, "gina", c.CreateObjective("o-growth", Q1, "TEAM", "Fill the pipeline", "gina",
                                              team_id="growth", parent_objective_id="o-co"))
    s.run(JAN1, "ceo", c.ActivateCycle(Q1))
    return s


def two_team_quarter(tenant: str = "acme") -> Script:
    """``quarter()`` with a second team: the platform team's objective ``o-platform``
    (lead paul), aligned to ``o-co`` on 1 Jan."""
    s = quarter(tenant)
    s.run(JAN1, "paul", c.CreateObjective("o-platform", Q1, "TEAM", "Be fast", "paul", team_id="platform",
                                          parent_objective_id="o-co"))
    return s


def kr(s: Script, kr_id: str, kind: str = "INCREASE_TO", start: float = 0, target: float = 100,
       owner: str = "gina", objective: str = "o-growth", due: str = "2026-03-31", weight: float = 1.0,
       day: date = JAN1) -> str:
    s.run(day, owner, c.DefineKeyResult(kr_id, objective, f"KR {kr_id}", kind, start, target, owner, due,
                                        weight=weight))
    return kr_id


def check_in(s: Script, day: date, kr_id: str, value: float, confidence: int = 7, actor: str = "gina",
             check_in_id: str | None = None) -> str:
    check_in_id = check_in_id or f"ci-{kr_id}-{day.isoformat()}"
    s.run(day, actor, c.RecordCheckIn(check_in_id, kr_id, value, confidence, day.isoformat()))
    return check_in_id


def initiative(s: Script, initiative_id: str, kr_id: str, start: str, due: str, assignee: str = "gina",
               day: date = JAN1) -> str:
    s.run(day, assignee, c.CreateInitiative(initiative_id, kr_id, f"Initiative {initiative_id}", assignee, start, due))
    return initiative_id


def worked_example(tenant: str = "acme") -> Script:
    """docs/scoring.md's worked example: on 15 Feb 2026 NPS (30 → 50, weight 1) is on
    track at 0.45, churn (4.0 → 2.0 %, weight 2) off track at 0.25, uptime (≥ 99.9 %,
    weight 1) on track scoring 0.75; the objective ``o-co`` scores 0.425."""
    s = quarter(tenant)
    kr(s, "kr-nps", start=30, target=50, owner="ceo", objective="o-co")
    kr(s, "kr-churn", "DECREASE_TO", 4.0, 2.0, owner="ceo", objective="o-co", weight=2.0)
    kr(s, "kr-uptime", "STAY_AT_OR_ABOVE", 99.5, 99.9, owner="ceo", objective="o-co")
    for day, kr_id, value in ((date(2026, 1, 14), "kr-nps", 34), (date(2026, 1, 19), "kr-uptime", 99.95),
                              (date(2026, 1, 26), "kr-uptime", 99.92), (date(2026, 1, 28), "kr-churn", 3.6),
                              (date(2026, 2, 2), "kr-uptime", 99.85), (date(2026, 2, 9), "kr-uptime", 99.97),
                              (date(2026, 2, 11), "kr-nps", 39), (date(2026, 2, 11), "kr-churn", 3.5)):
        check_in(s, day, kr_id, value, actor="ceo")
    return s


WORKED_EXAMPLE_DAY = date(2026, 2, 15)
