"""Queries over the folded reporting model: pure functions of the model, a tenant, the
day ``today`` (the clock the service is given) and the status thresholds.

    key_result_status(model, tenant, kr_id, today)         -> the KR status read model
    key_result_statuses(model, tenant, today)              -> every live KR's status
    board(model, tenant, today, cycle_id=, team_id=, owner=) -> the kanban board
    team_dashboard(model, tenant, team_id, today)          -> a team's objectives, KRs, initiatives, overdue
    person_dashboard(model, tenant, person, today)         -> the same for one person
    scorecard(model, tenant, cycle_id, today)              -> score distribution, healthy band, flags
    kr_history(model, tenant, kr_id)                       -> every definition, check-in, correction, adjustment
    diff(before, after, tenant, today_before, today_after) -> the weekly-review "what changed"
    objective_rollup(model, tenant, objective_id, today, include_children=False)
    alignment_tree(model, tenant, today, cycle_id=None)    -> company → team → individual

Every figure comes from ``okr_shared.domain.scoring`` (progress, score, expected
progress, status, objective score, grade); nothing here re-derives a formula. Nothing
here writes: the time-dependent values (status, pace, days since the last check-in,
overdue) are computed on each call, so a timer refresh of the board needs no new event.
Each query reads only the rows of ``tenant``. Results are JSON-safe dicts and lists.
The read models and their columns: docs/reporting.md.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Iterable, Optional

from okr_shared.domain import scoring
from okr_shared.domain.scoring import StatusThresholds
from okr_shared.readmodels.status import (  # noqa: F401 - key_result_status(es): this module's API too
    DEFAULT_THRESHOLDS,
    View,
    key_result_status,
    key_result_statuses,
    points_on,
    status_of,
)

#: Board columns of key results, in display order (the values of scoring.Status).
KR_COLUMNS = ("ON_TRACK", "AT_RISK", "OFF_TRACK", "CHECK_IN_OVERDUE", "STALLED", "DONE")
#: Board columns of initiatives, in display order. OVERDUE: not done or dropped, due
#: date before today (the initiative's own state is then in the card's ``state``).
INITIATIVE_COLUMNS = ("TODO", "DOING", "OVERDUE", "DONE", "DROPPED")

_LEVEL_RANK = {"COMPANY": 0, "TEAM": 1, "INDIVIDUAL": 2}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# ----------------------------------------------------------------------- the tenant's rows
#
# ``View`` (one tenant's rows, by id, with the indexes the queries need) and the key
# results' status (``status_of``, ``key_result_status(es)``) are the shared read model's
# (``okr_shared.readmodels.status``): the notification service's rules read the same.


#: The query arguments that name one entity of the tenant — references: an id that
#: names nothing is NOT_FOUND — as (table, kind). ``team_id``, ``owner`` and ``person``
#: are filters instead: teams and people are not aggregates, so a value that matches
#: nothing selects nothing (docs/api.md "Unknown ids and filters").
REFERENCES = {"cycle_id": ("cycles", "cycle"), "key_result_id": ("key_results", "key result"),
              "objective_id": ("objectives", "objective")}


def missing_reference(model: dict, tenant: str, arguments: dict) -> Optional[tuple[str, str]]:
    """The first ``(kind, id)`` among ``arguments`` (a query's keyword arguments) that
    names a cycle, key result or objective the tenant does not have in ``model``; None
    when every one given exists. Another tenant's row with that id is not the tenant's."""
    for name, (table, kind) in REFERENCES.items():
        value = arguments.get(name)
        if value is None:
            continue
        doc = model[table].get(f"{tenant}/{value}")
        if doc is None or doc["tenant"] != tenant:
            return kind, str(value)
    return None


def _iso_instant(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")


def _kr_score(kr: dict, today: date) -> Optional[float]:
    return scoring.score(kr["kind"], kr["start_value"], kr["target_value"], [p["value"] for p in points_on(kr, today)])


# ------------------------------------------------------------------------- cards, board


def _kr_card(view: View, kr: dict, today: date, thresholds: StatusThresholds) -> dict:
    s = status_of(view, kr, today, thresholds)
    return {
        "id": kr["key_result_id"],
        "kind": "kr",
        "title": kr["title"],
        "owner": s["owner"],
        "team": s["team_id"],
        "objective": kr["objective_id"],
        "cycle": kr["cycle_id"],
        "key_result": kr["key_result_id"],
        "status": s["status"],
        "progress": s["progress"],
        "expected": s["expected_progress"],
        "score": s["score"],
        "confidence": s["confidence"],
        "confidence_trend": s["confidence_trend"],
        "days_since_check_in": s["days_since_check_in"],
        "current_value": s["current_value"],
        "target_value": s["target_value"],
        "due_date": s["due_date"],
    }


def _initiative_column(initiative: dict, today: date) -> str:
    state = initiative["state"]
    if state in ("done", "dropped"):
        return state.upper()
    if date.fromisoformat(initiative["due_date"]) < today:
        return "OVERDUE"
    return state.upper()  # TODO | DOING


def _initiative_card(view: View, initiative: dict, kr: dict, today: date) -> dict:
    column = _initiative_column(initiative, today)
    start, due = date.fromisoformat(initiative["start_date"]), date.fromisoformat(initiative["due_date"])
    open_ = initiative["state"] in ("todo", "doing")
    return {
        "id": initiative["initiative_id"],
        "kind": "initiative",
        "title": initiative["title"],
        "owner": initiative["assignee"],
        "team": view.team_of(initiative),
        "objective": initiative["objective_id"],
        "cycle": kr["cycle_id"],
        "key_result": initiative["key_result_id"],
        "status": column,
        "state": initiative["state"],
        # Initiatives have no measured value: done is 1.0, anything else None. Their pace is
        # the share of their own start → due window that has passed (while open).
        "progress": 1.0 if initiative["state"] == "done" else None,
        "expected": scoring.expected_progress(start, due, today) if open_ else None,
        "score": None,
        "confidence": None,
        "confidence_trend": None,
        "days_since_check_in": None,
        "start_date": initiative["start_date"],
        "due_date": initiative["due_date"],
        "original_due_date": initiative["original_due_date"],
        "slips": initiative["slips"],
        "days_overdue": (today - due).days if column == "OVERDUE" else None,
        "reason": initiative["reason"],
    }


def _behind(card: dict) -> float:
    if card["expected"] is None or card["progress"] is None:
        return 0.0
    return card["expected"] - card["progress"]


def _cards(view: View, today: date, thresholds: StatusThresholds, cycle_id: str | None,
           kr_filter=lambda kr: True, initiative_filter=lambda i, kr: True) -> tuple[list[dict], list[dict]]:
    """KR cards (most behind pace first, then id) and initiative cards (by due date, then id)."""
    kr_cards, initiative_cards = [], []
    for kr in view.key_results.values():
        if view.kr_in_scope(kr, cycle_id) and kr_filter(kr):
            kr_cards.append(_kr_card(view, kr, today, thresholds))
    for initiative in view.initiatives.values():
        kr = view.key_results.get(initiative["key_result_id"])
        if kr is not None and view.kr_in_scope(kr, cycle_id) and initiative_filter(initiative, kr):
            initiative_cards.append(_initiative_card(view, initiative, kr, today))
    kr_cards.sort(key=lambda c: (-_behind(c), c["id"]))
    initiative_cards.sort(key=lambda c: (c["due_date"], c["id"]))
    return kr_cards, initiative_cards


def _columns(cards: list[dict], names: tuple[str, ...]) -> list[dict]:
    columns = {name: [] for name in names}
    for card in cards:
        columns[card["status"]].append(card)
    return [{"status": name, "cards": columns[name]} for name in names]


def board(model: dict, tenant: str, today: date, cycle_id: str | None = None, team_id: str | None = None,
          owner: str | None = None, thresholds: StatusThresholds = DEFAULT_THRESHOLDS) -> dict:
    """The OKR kanban board on ``today``: key results in the columns ``KR_COLUMNS`` (by
    computed status) and initiatives in ``INITIATIVE_COLUMNS``, each column a list of
    cards in a fixed order. Filters: ``cycle_id`` (default: every cycle not closed),
    ``team_id`` (the team of the card's objective) and ``owner`` (a KR's owner, an
    initiative's assignee). Archived KRs and objectives, and the initiatives under
    them, are not on the board."""
    view = View(model, tenant)
    kr_cards, initiative_cards = _cards(
        view, today, thresholds, cycle_id,
        lambda kr: (team_id is None or view.team_of(kr) == team_id) and (owner is None or kr["owner"] == owner),
        lambda i, kr: ((team_id is None or view.team_of(i) == team_id)
                       and (owner is None or i["assignee"] == owner)))
    return {
        "tenant": tenant,
        "today": today.isoformat(),
        "filters": {"cycle_id": cycle_id, "team_id": team_id, "owner": owner},
        "key_results": _columns(kr_cards, KR_COLUMNS),
        "initiatives": _columns(initiative_cards, INITIATIVE_COLUMNS),
    }


# ---------------------------------------------------------------------------- dashboards


def _objective_summary(view: View, objective: dict, today: date) -> dict:
    score = _rollup_score(view, objective["objective_id"], today, False, 1.0, ())
    return {
        "objective_id": objective["objective_id"],
        "title": objective["title"],
        "level": objective["level"],
        "owner": objective["owner"],
        "team_id": objective["team_id"],
        "cycle_id": objective["cycle_id"],
        "score": score,
        "grade": str(scoring.grade(score)),
        "key_results": len(view.krs_of(objective["objective_id"])),
    }


def _objective_in_scope(view: View, objective: dict, cycle_id: str | None) -> bool:
    if objective["archived"]:
        return False
    if cycle_id is not None:
        return objective["cycle_id"] == cycle_id
    cycle = view.cycles.get(objective["cycle_id"])
    return cycle is None or cycle["state"] != "closed"


def _dashboard(view: View, today: date, objectives: Iterable[dict], kr_cards: list[dict],
               initiative_cards: list[dict]) -> dict:
    today_iso = today.isoformat()
    counts = {name: 0 for name in KR_COLUMNS}
    for card in kr_cards:
        counts[card["status"]] += 1
    return {
        "today": today_iso,
        "objectives": [_objective_summary(view, o, today) for o in sorted(objectives, key=lambda o: o["objective_id"])],
        "key_results": kr_cards,
        "initiatives": initiative_cards,
        "status_counts": counts,
        "overdue": {
            "check_ins": [c["id"] for c in kr_cards if c["status"] == "CHECK_IN_OVERDUE"],
            "key_results": [c["id"] for c in kr_cards if c["due_date"] < today_iso and c["status"] != "DONE"],
            "initiatives": [c["id"] for c in initiative_cards if c["status"] == "OVERDUE"],
        },
        "stalled": [c["id"] for c in kr_cards if c["status"] == "STALLED"],
    }


def team_dashboard(model: dict, tenant: str, team_id: str, today: date, cycle_id: str | None = None,
                   thresholds: StatusThresholds = DEFAULT_THRESHOLDS) -> dict:
    """A team's objectives (every level with ``team_id``), their key results and
    initiatives as board cards, the status counts, and what is overdue (check-ins, key
    results past their due date and not done, initiatives) or stalled."""
    view = View(model, tenant)
    kr_cards, initiative_cards = _cards(view, today, thresholds, cycle_id,
                                        lambda kr: view.team_of(kr) == team_id,
                                        lambda i, kr: view.team_of(i) == team_id)
    objectives = [o for o in view.objectives.values()
                  if o["team_id"] == team_id and _objective_in_scope(view, o, cycle_id)]
    return {"tenant": tenant, "team_id": team_id, **_dashboard(view, today, objectives, kr_cards, initiative_cards)}


def person_dashboard(model: dict, tenant: str, person: str, today: date, cycle_id: str | None = None,
                     thresholds: StatusThresholds = DEFAULT_THRESHOLDS) -> dict:
    """One person's objectives (owned), key results (owned) and initiatives (assigned),
    with the same counts and overdue lists as the team dashboard."""
    view = View(model, tenant)
    kr_cards, initiative_cards = _cards(view, today, thresholds, cycle_id,
                                        lambda kr: kr["owner"] == person,
                                        lambda i, kr: i["assignee"] == person)
    objectives = [o for o in view.objectives.values()
                  if o["owner"] == person and _objective_in_scope(view, o, cycle_id)]
    return {"tenant": tenant, "person": person, **_dashboard(view, today, objectives, kr_cards, initiative_cards)}


# ------------------------------------------------------------------- roll-up, alignment


def _rollup_score(view: View, objective_id: str, today: date, include_children: bool, child_weight: float,
                  path: tuple[str, ...]) -> Optional[float]:
    memo_key = (objective_id, include_children, child_weight)
    if memo_key in view.score_memo:
        return view.score_memo[memo_key]
    pairs = [(_kr_score(kr, today), kr["weight"]) for kr in view.krs_of(objective_id)]
    children = []
    if include_children:
        path = path + (objective_id,)
        children = [(_rollup_score(view, child["objective_id"], today, True, child_weight, path), child_weight)
                    for child in view.children_of(objective_id) if child["objective_id"] not in path]
    score = scoring.objective_score(pairs, children)
    view.score_memo[memo_key] = score
    return score


def objective_rollup(model: dict, tenant: str, objective_id: str, today: date, include_children: bool = False,
                     child_weight: float = 1.0) -> Optional[dict]:
    """An objective's score on ``today``: its key results (not archived) by weight and,
    with ``include_children``, its aligned child objectives (to it or to one of its key
    results; not archived; each scored the same way, recursively) at ``child_weight``
    each — ``scoring.objective_score``. None when the tenant has no such objective."""
    view = View(model, tenant)
    objective = view.objectives.get(objective_id)
    if objective is None:
        return None
    score = _rollup_score(view, objective_id, today, include_children, child_weight, ())
    children = []
    if include_children:
        children = [{"id": child["objective_id"], "objective_id": child["objective_id"], "title": child["title"],
                     "score": _rollup_score(view, child["objective_id"], today, True, child_weight, (objective_id,)),
                     "weight": child_weight}
                    for child in view.children_of(objective_id)]
    return {
        "objective_id": objective_id,
        "title": objective["title"],
        "level": objective["level"],
        "cycle_id": objective["cycle_id"],
        "owner": objective["owner"],
        "team_id": objective["team_id"],
        "archived": objective["archived"],
        "score": score,
        "grade": str(scoring.grade(score)),
        # "id": RollupItem's field (reporting.proto); the kind's own id key stays for JSON readers
        "key_results": [{"id": kr["key_result_id"], "key_result_id": kr["key_result_id"], "title": kr["title"],
                         "score": _kr_score(kr, today), "weight": kr["weight"]}
                        for kr in view.krs_of(objective_id)],
        "children": children,
    }


def alignment_tree(model: dict, tenant: str, today: date, cycle_id: str | None = None) -> list[dict]:
    """The alignment tree company → team → individual: root nodes (objectives whose
    parent is not in the tree), each with its key results — objectives aligned to a key
    result hang under it (``aligned``) — and the objectives aligned to it (``children``).
    ``cycle_id`` keeps the cycle, the cycles it nests in and the cycles nested in it (Q1:
    the year above, January below). Archived objectives are left out. Each node has its
    own ``score`` and its ``rolled_up_score`` (children included)."""
    view = View(model, tenant)
    family = view.cycle_family(cycle_id) if cycle_id is not None else None
    members = {oid: o for oid, o in view.objectives.items()
               if not o["archived"] and (family is None or o["cycle_id"] in family)}

    def node(o: dict, path: tuple[str, ...]) -> dict:
        oid = o["objective_id"]
        path = path + (oid,)
        below = [c for c in view.children_of(oid) if c["objective_id"] in members and c["objective_id"] not in path]
        krs = []
        for kr in view.krs_of(oid):
            aligned = [c for c in below if c["parent_key_result_id"] == kr["key_result_id"]]
            krs.append({"key_result_id": kr["key_result_id"], "title": kr["title"], "owner": kr["owner"],
                        "score": _kr_score(kr, today), "aligned": [node(c, path) for c in aligned]})
        own = _rollup_score(view, oid, today, False, 1.0, ())
        rolled = _rollup_score(view, oid, today, True, 1.0, ())
        return {
            "objective_id": oid,
            "title": o["title"],
            "level": o["level"],
            "owner": o["owner"],
            "team_id": o["team_id"],
            "cycle_id": o["cycle_id"],
            "score": own,
            "rolled_up_score": rolled,
            "key_results": krs,
            "children": [node(c, path) for c in below if not c["parent_key_result_id"]],
        }

    def parent_of(o: dict) -> str:
        return o["parent_objective_id"] or o["parent_key_result_objective_id"]

    roots = [o for o in members.values() if parent_of(o) not in members]
    roots.sort(key=lambda o: (_LEVEL_RANK.get(o["level"], 3), o["objective_id"]))
    return [node(o, ()) for o in roots]


# ----------------------------------------------------------------------------- scorecard


def _bands(items: list[dict]) -> dict:
    """Distribution and flags of ``items`` (dicts with ``score``), as shown: 2 decimals."""
    scored = [i for i in items if i["score"] is not None]
    buckets = [0] * 10
    for item in scored:
        hundredths = round(round(item["score"], 2) * 100)
        buckets[min(hundredths // 10, 9)] += 1
    healthy = [i for i in scored if i["grade"] == scoring.Grade.HEALTHY]
    mean = scoring.objective_score([(i["score"], 1.0) for i in scored])
    return {
        "count": len(items),
        "scored": len(scored),
        "unscored": len(items) - len(scored),
        "mean_score": mean,
        "distribution": [{"from": b / 10, "to": (b + 1) / 10, "count": buckets[b]} for b in range(10)],
        "healthy": len(healthy),
        "healthy_share": len(healthy) / len(scored) if scored else None,
        "not_ambitious": [i["id"] for i in scored if i["grade"] == scoring.Grade.NOT_AMBITIOUS],
        "needs_help": [i["id"] for i in scored if i["grade"] == scoring.Grade.NEEDS_HELP],
        "items": items,
    }


def scorecard(model: dict, tenant: str, cycle_id: str, today: date) -> Optional[dict]:
    """The cycle's scorecard on ``today`` for its key results and its objectives (own
    key results by weight): how many are scored, the distribution over ten bands of 0.1
    (the last includes 1.0), the share of the scored ones in the healthy 0.6–0.7 band,
    and the ids flagged ``not_ambitious`` (≥ 0.9) and ``needs_help`` (< 0.3) — all as
    ``scoring.grade`` reads a score (2 decimals). Unscored items (no check-in yet) are
    counted apart and left out of the shares. Archived items are left out. None when the
    tenant has no such cycle."""
    view = View(model, tenant)
    cycle = view.cycles.get(cycle_id)
    if cycle is None:
        return None
    krs, objectives = [], []
    for kr_id, kr in sorted(view.key_results.items()):
        if view.kr_in_scope(kr, cycle_id):
            score = _kr_score(kr, today)
            krs.append({"id": kr_id, "title": kr["title"], "owner": kr["owner"], "team": view.team_of(kr),
                        "score": score, "grade": str(scoring.grade(score))})
    for oid, o in sorted(view.objectives.items()):
        if _objective_in_scope(view, o, cycle_id):
            score = _rollup_score(view, oid, today, False, 1.0, ())
            objectives.append({"id": oid, "title": o["title"], "owner": o["owner"], "team": o["team_id"],
                               "level": o["level"], "score": score, "grade": str(scoring.grade(score))})
    return {
        "tenant": tenant,
        "cycle_id": cycle_id,
        "name": cycle["name"],
        "state": cycle["state"],
        "start_date": cycle["start_date"],
        "end_date": cycle["end_date"],
        "today": today.isoformat(),
        "key_results": _bands(krs),
        "objectives": _bands(objectives),
    }


# ------------------------------------------------------------------------------- history


def _entry(row: dict, in_force: set[str]) -> dict:
    d, what = row["data"], row["what"]
    entry = {
        "position": row["position"],
        "recorded_at": _iso_instant(row["recorded_at_us"]),
        "actor": row["actor"],
        "what": what,
        "reason": row["reason"],
    }
    if what in ("check_in", "correction"):
        entry.update(check_in_id=d["check_in_id"], corrects_check_in_id=d.get("corrects_check_in_id", ""),
                     value=d.get("value", 0.0), confidence=d.get("confidence", 0), comment=d.get("comment", ""),
                     author=d.get("author", ""), effective_date=d["effective_date"],
                     in_force=d["check_in_id"] in in_force)
    elif what == "adjusted":
        entry["changes"] = {name: {"old": d.get(f"old_{name}"), "new": d[f"new_{name}"]}
                            for name in ("target_value", "due_date", "weight") if f"new_{name}" in d}
    elif what == "owner_assigned":
        entry.update(old_owner=d.get("old_owner", ""), new_owner=d.get("new_owner", ""))
    elif what == "defined":
        entry.update({k: d.get(k) for k in ("title", "start_value", "target_value", "unit", "currency_code",
                                             "weight", "owner", "due_date")})
        entry["kind"] = d.get("kind", "").removeprefix("KEY_RESULT_KIND_")
    elif what == "slipped":
        entry.update(old_due_date=d.get("old_due_date", ""), new_due_date=d.get("new_due_date", ""))
    elif what == "completed":
        entry["completed_on"] = d.get("completed_on", "")
    elif what == "started":
        entry["started_on"] = d.get("started_on", "")
    return entry


def kr_history(model: dict, tenant: str, key_result_id: str) -> Optional[dict]:
    """Every event of a key result in order: its definition, check-ins and corrections
    (``in_force``: whether it is the check-in that counts now, not replaced by a
    correction), target/due date/weight adjustments (old → new), owner changes and its
    archiving — each with position, time recorded, actor and reason. None when the
    tenant has no such key result."""
    kr = View(model, tenant).key_results.get(key_result_id)
    if kr is None:
        return None
    stream_id = f"kr-{key_result_id}"
    rows = sorted((r for r in model["history"].values() if r["tenant"] == tenant and r["stream_id"] == stream_id),
                  key=lambda r: r["position"])
    in_force = {p["latest_id"] for p in kr["points"]}
    return {"tenant": tenant, "key_result_id": key_result_id, "title": kr["title"],
            "entries": [_entry(r, in_force) for r in rows]}


# ---------------------------------------------------------------------------------- diff


def diff(before: dict, after: dict, tenant: str, today_before: date, today_after: date,
         thresholds: StatusThresholds = DEFAULT_THRESHOLDS) -> dict:
    """What changed between two instants, for the weekly review: ``before`` and ``after``
    are models as of each (``fold_as_of``; ``after`` may be the live model), with the
    days they are read on.

    - ``check_ins``: check-ins and corrections recorded in between;
    - ``status_changes``: key results whose status differs (``from`` None: new in scope);
    - ``adjustments``: target/due date/weight adjustments, owner changes, archived KRs;
    - ``new_key_results``: key results defined in between;
    - ``slipped_initiatives``: initiatives that slipped (``change`` ``slipped``, old → new
      due date), were dropped (``dropped``) or completed late (``completed_late``) in
      between, or became overdue (``overdue``: open and past due on ``today_after`` but
      not on ``today_before``).
    Each item names who, when and why where the event says so; lists are in event order.
    """
    old_rows = before["history"]
    new_rows = sorted((r for k, r in after["history"].items() if r["tenant"] == tenant and k not in old_rows),
                      key=lambda r: r["position"])
    view_before, view_after = View(before, tenant), View(after, tenant)

    def kr_info(kr_id: str) -> dict:
        kr = view_after.key_results.get(kr_id)
        return {"key_result_id": kr_id, "title": kr["title"] if kr else "", "owner": kr["owner"] if kr else "",
                "team_id": view_after.team_of(kr) if kr else ""}

    check_ins, adjustments, new_krs, initiatives = [], [], [], []
    for row in new_rows:
        what = row["what"]
        if row["stream_id"].startswith("kr-"):
            kr = view_after.key_results.get(row["key_result_id"])
            in_force = {p["latest_id"] for p in kr["points"]} if kr else set()
            entry = {**kr_info(row["key_result_id"]), **_entry(row, in_force)}
            if what in ("check_in", "correction"):
                check_ins.append(entry)
            elif what == "defined":
                new_krs.append(entry)
            else:
                adjustments.append(entry)
        elif what in ("slipped", "dropped") or (what == "completed" and row["reason"]):
            change = "completed_late" if what == "completed" else what
            initiatives.append(_initiative_change(view_after, row["initiative_id"], change, _entry(row, set())))

    for iid, initiative in sorted(view_after.initiatives.items()):
        old = view_before.initiatives.get(iid)
        kr = view_after.key_results.get(initiative["key_result_id"])
        if kr is None or not view_after.kr_in_scope(kr, None):
            continue
        if _initiative_column(initiative, today_after) == "OVERDUE" and (
                old is None or _initiative_column(old, today_before) != "OVERDUE"):
            initiatives.append(_initiative_change(view_after, iid, "overdue", {
                "due_date": initiative["due_date"], "days_overdue": (today_after - date.fromisoformat(
                    initiative["due_date"])).days}))

    status_changes = []
    for kr_id, kr in sorted(view_after.key_results.items()):
        if not view_after.kr_in_scope(kr, None):
            continue
        new = status_of(view_after, kr, today_after, thresholds)["status"]
        old_kr = view_before.key_results.get(kr_id)
        old = (status_of(view_before, old_kr, today_before, thresholds)["status"]
               if old_kr is not None and view_before.kr_in_scope(old_kr, None) else None)
        if old != new:
            status_changes.append({**kr_info(kr_id), "from": old, "to": new})

    return {
        "tenant": tenant,
        "today_before": today_before.isoformat(),
        "today_after": today_after.isoformat(),
        "check_ins": check_ins,
        "status_changes": status_changes,
        "adjustments": adjustments,
        "new_key_results": new_krs,
        "slipped_initiatives": initiatives,
    }


def _initiative_change(view: View, initiative_id: str, change: str, details: dict) -> dict:
    initiative = view.initiatives.get(initiative_id) or {}
    return {
        "initiative_id": initiative_id,
        "title": initiative.get("title", ""),
        "assignee": initiative.get("assignee", ""),
        "key_result_id": initiative.get("key_result_id", ""),
        "team_id": view.team_of(initiative) if initiative else "",
        "change": change,
        **details,
    }
