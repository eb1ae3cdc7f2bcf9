"""Scoring, pace, status and grading of key results and objectives as pure functions
(stdlib only). Formulas, defaults, precedence and edge cases: docs/scoring.md.

    progress(kind, start, target, value)          -> 0.0..1.0 for one value
    score(kind, start, target, values)            -> 0.0..1.0 for the KR, or None
    expected_progress(cycle_start, due, today)    -> 0.0..1.0 by linear pace
    kr_status(kind, start, target, check_ins, cycle_start, due, today) -> Status
    objective_score([(score, weight)...], children) -> weighted mean, or None
    grade(score)                                  -> Grade (GRADE_LABELS for people)

Invalid input (unknown kind, start == target for a linear kind, weight <= 0, ...) raises
ValueError whose message starts with the offending field. Scores are exact fractions;
round them (2 decimals) only for display.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from types import MappingProxyType
from typing import Optional, Sequence

LINEAR_KINDS = frozenset({"INCREASE_TO", "DECREASE_TO", "PERCENTAGE", "CURRENCY"})
STAY_KINDS = frozenset({"STAY_AT_OR_ABOVE", "STAY_AT_OR_BELOW"})
MILESTONE = "MILESTONE"
KINDS = LINEAR_KINDS | STAY_KINDS | {MILESTONE}

_FLOAT_NOISE = 1e-9  # tolerated when comparing a progress shortfall with a gap


def _number(field: str, value) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{field}: must be a finite number, not {value!r}")
    return float(value)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind: must be one of {', '.join(sorted(KINDS))}, not {kind!r}")


# ------------------------------------------------------------------ progress and score


def progress(kind: str, start: float, target: float, value: float) -> float:
    """How far ``value`` is along the key result, from 0.0 to 1.0.

    Linear kinds (increase-to, decrease-to, percentage, currency): ``(value - start) /
    (target - start)`` clamped to [0, 1], so either direction works; start == target
    raises ValueError. Stay-at-or-above / -below: 1.0 while the value holds the
    threshold ``target``, else 0.0. Milestone: 1.0 when done (value >= 1), else 0.0.
    """
    _check_kind(kind)
    start, target, value = _number("start", start), _number("target", target), _number("value", value)
    if kind == "STAY_AT_OR_ABOVE":
        return 1.0 if value >= target else 0.0
    if kind == "STAY_AT_OR_BELOW":
        return 1.0 if value <= target else 0.0
    if kind == MILESTONE:
        return 1.0 if value >= 1 else 0.0
    if start == target:
        raise ValueError(f"target: must differ from start ({start:g}) for a {kind} key result")
    return min(1.0, max(0.0, (value - start) / (target - start)))


def score(kind: str, start: float, target: float, values: Sequence[float]) -> Optional[float]:
    """The key result's score from 0.0 to 1.0, or None before its first check-in.

    ``values`` are the effective check-in values in date order (corrections applied).
    Linear kinds and milestones score the progress of the latest value; stay kinds
    score the share of check-ins that held the threshold. Not rounded.
    """
    _check_kind(kind)
    if not values:
        return None
    if kind in STAY_KINDS:
        return sum(progress(kind, start, target, v) for v in values) / len(values)
    return progress(kind, start, target, values[-1])


def expected_progress(start_date: date, due_date: date, today: date) -> float:
    """The progress a key result should have made by ``today`` at a linear pace:
    0.0 on ``start_date`` (and before), 1.0 on ``due_date`` (and after)."""
    if due_date < start_date:
        raise ValueError(f"due_date: must not be before the start date {start_date} (got {due_date})")
    if today >= due_date:
        return 1.0
    if today <= start_date:
        return 0.0
    return (today - start_date).days / (due_date - start_date).days


# ------------------------------------------------------------------------------ status


class Status(StrEnum):
    """A key result's status in the weekly view (precedence in docs/scoring.md)."""

    ON_TRACK = "ON_TRACK"
    AT_RISK = "AT_RISK"
    OFF_TRACK = "OFF_TRACK"
    CHECK_IN_OVERDUE = "CHECK_IN_OVERDUE"
    STALLED = "STALLED"
    DONE = "DONE"


@dataclass(frozen=True)
class StatusThresholds:
    """When a key result is at risk, off track, overdue for a check-in or stalled.

    On track while ``expected - progress <= at_risk_gap``, at risk while it is
    ``<= off_track_gap``, else off track. A check-in is overdue after more than
    ``check_in_cadence_days`` without one; a KR is stalled after more than
    ``stalled_after_days`` without progress.
    """

    at_risk_gap: float = 0.10
    off_track_gap: float = 0.25
    check_in_cadence_days: int = 7
    stalled_after_days: int = 14

    def __post_init__(self) -> None:
        at_risk, off_track = _number("at_risk_gap", self.at_risk_gap), _number("off_track_gap", self.off_track_gap)
        if not 0.0 <= at_risk <= 1.0:
            raise ValueError(f"at_risk_gap: must lie between 0 and 1, not {at_risk:g}")
        if not at_risk <= off_track <= 1.0:
            raise ValueError(f"off_track_gap: must lie between at_risk_gap ({at_risk:g}) and 1, not {off_track:g}")
        for name in ("check_in_cadence_days", "stalled_after_days"):
            days = getattr(self, name)
            if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
                raise ValueError(f"{name}: must be a positive whole number of days, not {days!r}")


DEFAULT_THRESHOLDS = StatusThresholds()


@dataclass(frozen=True)
class CheckInPoint:
    """One effective check-in (after corrections): the day it is about and the value."""

    effective_date: date
    value: float


def _last_progress_date(kind: str, start: float, target: float, points: Sequence[CheckInPoint]) -> Optional[date]:
    """The date of the latest check-in that made progress: its progress rose above the
    previous check-in's (the first compares with the start value) or, for a stay kind,
    it held the threshold."""
    last, previous = None, progress(kind, start, target, start)
    for point in points:
        current = progress(kind, start, target, point.value)
        if current > previous or (kind in STAY_KINDS and current == 1.0):
            last = point.effective_date
        previous = current
    return last


def kr_status(kind: str, start: float, target: float, check_ins: Sequence[CheckInPoint],
              cycle_start: date, due_date: date, today: date,
              thresholds: StatusThresholds = DEFAULT_THRESHOLDS) -> Status:
    """The key result's status on ``today``.

    ``check_ins`` are the effective check-ins (anything with ``effective_date`` and
    ``value``, e.g. ``KeyResult.effective_check_ins()``) in any order, ties kept in the
    order given; those dated after ``today`` are ignored. Without check-ins the current value is ``start``. Precedence: ON_TRACK
    before ``cycle_start``; then DONE > STALLED > CHECK_IN_OVERDUE > pace
    (ON_TRACK / AT_RISK / OFF_TRACK). Stay kinds are DONE only after ``due_date`` and
    never STALLED while they hold; milestones are never STALLED and are off track only
    once ``due_date`` has passed undone.
    """
    _check_kind(kind)
    if due_date < cycle_start:
        raise ValueError(f"due_date: must not be before cycle_start {cycle_start} (got {due_date})")
    points = sorted((p for p in check_ins if p.effective_date <= today), key=lambda p: p.effective_date)
    now = progress(kind, start, target, points[-1].value if points else start)
    past_due = today > due_date

    if today < cycle_start:
        return Status.ON_TRACK
    if now >= 1.0 and (kind not in STAY_KINDS or past_due):
        return Status.DONE
    if kind in LINEAR_KINDS or (kind in STAY_KINDS and now < 1.0):
        moved = _last_progress_date(kind, start, target, points)
        since = max(cycle_start, moved) if moved else cycle_start
        if (today - since).days > thresholds.stalled_after_days:
            return Status.STALLED
    last_check_in = max(cycle_start, points[-1].effective_date) if points else cycle_start
    if (today - last_check_in).days > thresholds.check_in_cadence_days:
        return Status.CHECK_IN_OVERDUE

    if kind in STAY_KINDS:
        return Status.ON_TRACK if now >= 1.0 else Status.OFF_TRACK
    if kind == MILESTONE:
        return Status.OFF_TRACK if past_due else Status.ON_TRACK
    shortfall = expected_progress(cycle_start, due_date, today) - now
    if shortfall <= thresholds.at_risk_gap + _FLOAT_NOISE:
        return Status.ON_TRACK
    if shortfall <= thresholds.off_track_gap + _FLOAT_NOISE:
        return Status.AT_RISK
    return Status.OFF_TRACK


# --------------------------------------------------------------------- objectives, grades


def objective_score(key_results: Sequence[tuple[Optional[float], float]],
                    children: Sequence[tuple[Optional[float], float]] = ()) -> Optional[float]:
    """An objective's score: the weight-normalised mean of its key results' scores and,
    if given, its aligned child objectives' scores, as ``(score, weight)`` pairs in one pool.

    A None score (no check-in yet) counts as 0.0; the result is None only when every
    score is None (or there is nothing to score). Weights must be > 0.
    """
    pairs = [(_fraction("score", s) if s is not None else None, _positive("weight", w))
             for s, w in [*key_results, *children]]
    scored = [s for s, _ in pairs if s is not None]
    if not scored:
        return None
    mean = sum((s or 0.0) * w for s, w in pairs) / sum(w for _, w in pairs)
    lowest = min(scored) if len(scored) == len(pairs) else 0.0
    return min(max(scored), max(lowest, mean))  # keep float noise inside the inputs' range


def _fraction(field: str, value: float) -> float:
    value = _number(field, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{field}: must lie between 0 and 1, not {value:g}")
    return value


def _positive(field: str, value: float) -> float:
    value = _number(field, value)
    if value <= 0:
        raise ValueError(f"{field}: must be greater than 0, not {value:g}")
    return value


class Grade(StrEnum):
    """The end-of-cycle grading flag of a score (GRADE_LABELS has the words)."""

    NOT_AMBITIOUS = "NOT_AMBITIOUS"
    HEALTHY = "HEALTHY"
    NEEDS_HELP = "NEEDS_HELP"
    NONE = "NONE"


GRADE_LABELS = MappingProxyType({
    Grade.NOT_AMBITIOUS: "not ambitious enough",
    Grade.HEALTHY: "healthy",
    Grade.NEEDS_HELP: "needs help",
    Grade.NONE: "",
})


def grade(score: Optional[float]) -> Grade:
    """The grading flag of a score, read to 2 decimals as it is shown: >= 0.9 not
    ambitious enough, 0.6–0.7 healthy, < 0.3 needs help (a call for support, never
    blame), anything else (and None) no flag."""
    if score is None:
        return Grade.NONE
    shown = round(_fraction("score", score), 2)
    if shown >= 0.9:
        return Grade.NOT_AMBITIOUS
    if 0.6 <= shown <= 0.7:
        return Grade.HEALTHY
    if shown < 0.3:
        return Grade.NEEDS_HELP
    return Grade.NONE
