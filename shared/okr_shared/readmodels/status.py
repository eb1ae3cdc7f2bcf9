"""A key result's status on a day, from the folded model (``projections``): pure
functions of the model, a tenant, the day ``today`` (the clock the service is given)
and the status thresholds — the figures the reporting service's board and queries
show and the notification service's rules act on, so the two never disagree
(docs/adr/0011-notifications-own-fold-dedupe-keys-and-claimed-periods.md).

    key_result_status(model, tenant, kr_id, today)  -> the KR status read model
    key_result_statuses(model, tenant, today)       -> every live KR's status
    View(model, tenant)                             -> one tenant's rows, by id, with indexes

Every figure comes from ``okr_shared.domain.scoring``; nothing here re-derives a formula
nor writes. Each call reads only the rows of ``tenant``.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Optional

from okr_shared.domain import scoring
from okr_shared.domain.scoring import CheckInPoint, StatusThresholds

DEFAULT_THRESHOLDS = scoring.DEFAULT_THRESHOLDS


class View:
    """One tenant's rows, by id, with the indexes the queries need (built per call)."""

    def __init__(self, model: dict, tenant: str):
        self.tenant = tenant
        self.cycles = by_id(model["cycles"], tenant, "cycle_id")
        self.objectives = by_id(model["objectives"], tenant, "objective_id")
        self.key_results = by_id(model["key_results"], tenant, "key_result_id")
        self.initiatives = by_id(model["initiatives"], tenant, "initiative_id")
        self._krs_of: dict[str, list[dict]] | None = None
        self._children_of: dict[str, list[dict]] | None = None
        #: (objective id, include_children, child_weight) -> roll-up score, for the queries
        #: that score objectives (one day per View)
        self.score_memo: dict[tuple, Optional[float]] = {}

    # -- indexes
    def krs_of(self, objective_id: str) -> list[dict]:
        """The objective's key results that count (not archived), by id."""
        if self._krs_of is None:
            self._krs_of = {}
            for kr in sorted(self.key_results.values(), key=lambda k: k["key_result_id"]):
                if not kr["archived"]:
                    self._krs_of.setdefault(kr["objective_id"], []).append(kr)
        return self._krs_of.get(objective_id, [])

    def children_of(self, objective_id: str) -> list[dict]:
        """Objectives aligned to this objective or to one of its key results (not archived)."""
        if self._children_of is None:
            self._children_of = {}
            for o in sorted(self.objectives.values(), key=lambda o: o["objective_id"]):
                parent = o["parent_objective_id"] or o["parent_key_result_objective_id"]
                if parent and not o["archived"]:
                    self._children_of.setdefault(parent, []).append(o)
        return self._children_of.get(objective_id, [])

    # -- what is live
    def cycle_start(self, kr: dict) -> date:
        cycle = self.cycles.get(kr["cycle_id"])
        # A key result always follows its cycle's CyclePlanned; without it, pace runs from the due date.
        return date.fromisoformat(cycle["start_date"]) if cycle else date.fromisoformat(kr["due_date"])

    def kr_in_scope(self, kr: dict, cycle_id: str | None) -> bool:
        """Not archived, its objective not archived, in ``cycle_id`` — or, when None, in a
        cycle that is not closed."""
        if kr["archived"]:
            return False
        objective = self.objectives.get(kr["objective_id"])
        if objective is None or objective["archived"]:
            return False
        if cycle_id is not None:
            return kr["cycle_id"] == cycle_id
        cycle = self.cycles.get(kr["cycle_id"])
        return cycle is None or cycle["state"] != "closed"

    def team_of(self, kr_or_initiative: dict) -> str:
        objective = self.objectives.get(kr_or_initiative["objective_id"])
        return objective["team_id"] if objective else ""

    def cycle_family(self, cycle_id: str) -> set[str]:
        """The cycle, the cycles it nests in and the cycles nested in it."""
        def ancestors(cid):
            seen = []
            while cid and cid not in seen:
                seen.append(cid)
                cid = self.cycles[cid]["parent_cycle_id"] if cid in self.cycles else ""
            return seen

        family = set(ancestors(cycle_id))
        family.update(cid for cid in self.cycles if cycle_id in ancestors(cid))
        return family


def by_id(table: dict, tenant: str, id_field: str) -> dict[str, dict]:
    return {doc[id_field]: doc for doc in table.values() if doc["tenant"] == tenant}


def points_on(kr: dict, today: date) -> list[dict]:
    """The effective check-ins dated on or before today (the fold keeps them sorted)."""
    today_iso = today.isoformat()
    points = kr["points"]
    if points and points[-1]["effective_date"] <= today_iso:
        return points
    return [p for p in points if p["effective_date"] <= today_iso]


def status_of(view: View, kr: dict, today: date, thresholds: StatusThresholds) -> dict[str, Any]:
    """The KR status read model of the tenant's key result ``kr`` on ``today``
    (``key_result_status``)."""
    kind, start, target = kr["kind"], kr["start_value"], kr["target_value"]
    due = date.fromisoformat(kr["due_date"])
    cycle_start = view.cycle_start(kr)
    points = points_on(kr, today)
    values = [p["value"] for p in points]
    current = values[-1] if values else None
    score = scoring.score(kind, start, target, values)
    status = scoring.kr_status(kind, start, target,
                               [CheckInPoint(date.fromisoformat(p["effective_date"]), p["value"]) for p in points],
                               cycle_start, due, today, thresholds)
    last = points[-1] if points else None
    trend = None
    if len(points) >= 2:
        before, now = points[-2]["confidence"], points[-1]["confidence"]
        trend = "up" if now > before else "down" if now < before else "steady"
    return {
        "key_result_id": kr["key_result_id"],
        "title": kr["title"],
        "kind": kind,
        "unit": kr["unit"],
        "currency_code": kr["currency_code"],
        "objective_id": kr["objective_id"],
        "cycle_id": kr["cycle_id"],
        "team_id": view.team_of(kr),
        "owner": kr["owner"],
        "weight": kr["weight"],
        "start_value": start,
        "target_value": target,
        "due_date": kr["due_date"],
        "current_value": current,
        "progress": scoring.progress(kind, start, target, start if current is None else current),
        "score": score,
        "grade": str(scoring.grade(score)),
        # Pace applies to the linear kinds only (docs/scoring.md): None for stay kinds and milestones.
        "expected_progress": (scoring.expected_progress(cycle_start, due, today)
                              if kind in scoring.LINEAR_KINDS else None),
        "status": str(status),
        "confidence": last["confidence"] if last else None,
        "confidence_trend": trend,
        "last_check_in": last["effective_date"] if last else None,
        "days_since_check_in": (today - date.fromisoformat(last["effective_date"])).days if last else None,
        "archived": kr["archived"],
    }


def key_result_status(model: dict, tenant: str, key_result_id: str, today: date,
                      thresholds: StatusThresholds = DEFAULT_THRESHOLDS) -> Optional[dict]:
    """The KR status read model on ``today``: current value, progress, score, grade,
    expected progress, status, confidence and its trend (``up``/``down``/``steady``
    against the previous effective check-in, None before the second), last check-in and
    days since, owner, team. None when the tenant has no such key result."""
    view = View(model, tenant)
    kr = view.key_results.get(key_result_id)
    return None if kr is None else status_of(view, kr, today, thresholds)


def key_result_statuses(model: dict, tenant: str, today: date, thresholds: StatusThresholds = DEFAULT_THRESHOLDS,
                        cycle_id: str | None = None) -> dict[str, dict]:
    """``key_result_status`` of every key result in scope (not archived, objective not
    archived, in ``cycle_id`` or else in a cycle not closed), by id: what a timer
    refresh recomputes."""
    view = View(model, tenant)
    return {kr_id: status_of(view, kr, today, thresholds)
            for kr_id, kr in sorted(view.key_results.items()) if view.kr_in_scope(kr, cycle_id)}

