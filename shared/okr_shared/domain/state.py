"""Aggregate states, rebuilt by folding their stored events.

One stream per aggregate: ``cycle-<id>``, ``objective-<id>``, ``kr-<id>`` (the key result
and its check-ins), ``initiative-<id>``, and the directory's ``person-<id>`` (details,
manager, active or left, granted roles) and ``team-<id>`` (name, parent, leads, members). ``evolve`` applies one event; ``fold`` applies
many, copying the state once (a key result's stream can hold thousands of check-ins).
Events arrive as ``(event_type, data)`` with ``data`` the stored JSON payload (the
protobuf JSON mapping of okr.v1 — enum values by full name, e.g. ``CADENCE_QUARTERLY``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from functools import cache
from datetime import date
from typing import Iterable, NamedTuple

#: Bump when a fold changes meaning: stored snapshots of older versions are ignored.
SNAPSHOT_VERSION = 2

CYCLE_STATES = ("planning", "active", "review", "closed")
INITIATIVE_STATES = ("todo", "doing", "done", "dropped")


def _enum(value: str, prefix: str) -> str:
    return value.removeprefix(prefix) if value else ""


def _date(value: str) -> date | None:
    return date.fromisoformat(value) if value else None


def _plain(v):
    """A field's JSON-safe value: dates as ISO text, lists and dicts as new ones (a
    caller may change the dict it gets; the state, maybe kept in a cache, stays as it is)."""
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


@cache
def _field_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


class _State:
    """Shared behaviour: JSON-safe dicts for RPC replies and snapshots."""

    def to_dict(self) -> dict:
        return self._fields_dict()

    def _fields_dict(self, leave_out: str = "") -> dict:
        """Every field in declaration order, JSON-safe; ``leave_out``'s value is None (the
        caller fills it in). Field by field rather than ``dataclasses.asdict``, which deep-
        copies every value first: for a key result with 100 check-ins that was ~2 ms of a
        3 ms snapshot write, the check-ins then replaced anyway (ADR 0018)."""
        return {name: None if name == leave_out else _plain(getattr(self, name)) for name in _field_names(type(self))}

    @classmethod
    def from_dict(cls, d: dict):
        kwargs = {}
        for f in fields(cls):
            v = d[f.name]
            if f.type in ("date", "date | None") and v is not None:
                v = date.fromisoformat(v)
            kwargs[f.name] = v
        return cls(**kwargs)


@dataclass(slots=True)
class Cycle(_State):
    cycle_id: str
    cadence: str  # MONTHLY | QUARTERLY | ANNUAL
    name: str
    start_date: date
    end_date: date
    parent_cycle_id: str
    state: str = "planning"
    version: int = 0

    def contains(self, day: date) -> bool:
        return self.start_date <= day <= self.end_date


@dataclass(slots=True)
class Objective(_State):
    objective_id: str
    cycle_id: str
    level: str  # COMPANY | TEAM | INDIVIDUAL
    title: str
    description: str
    owner: str
    team_id: str
    parent_objective_id: str = ""
    parent_key_result_id: str = ""
    archived: bool = False
    archive_reason: str = ""
    version: int = 0

    @property
    def has_parent(self) -> bool:
        return bool(self.parent_objective_id or self.parent_key_result_id)


class CheckIn(NamedTuple):
    """One recorded check-in or correction (``corrects`` names the check-in replaced).
    A named tuple: a key result's stream may hold thousands, folded on every load."""

    check_in_id: str
    value: float
    confidence: int
    comment: str
    author: str
    effective_date: date
    corrects: str = ""
    reason: str = ""

    def to_dict(self) -> dict:
        d = self._asdict()
        d["effective_date"] = self.effective_date.isoformat()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CheckIn":
        return cls(**{**d, "effective_date": date.fromisoformat(d["effective_date"])})


@dataclass(slots=True)
class KeyResult(_State):
    key_result_id: str
    objective_id: str
    cycle_id: str
    title: str
    kind: str  # INCREASE_TO | DECREASE_TO | STAY_AT_OR_ABOVE | STAY_AT_OR_BELOW | MILESTONE | PERCENTAGE | CURRENCY
    start_value: float
    target_value: float
    unit: str
    currency_code: str
    weight: float
    owner: str
    due_date: date
    archived: bool = False
    archive_reason: str = ""
    check_ins: list = field(default_factory=list)  # CheckIn, in stream order
    version: int = 0

    def check_in(self, check_in_id: str) -> CheckIn | None:
        for c in self.check_ins:
            if c.check_in_id == check_in_id:
                return c
        return None

    def effective_check_ins(self) -> list[CheckIn]:
        """The check-ins that count: each original replaced by its latest correction,
        ordered by effective date (then stream order)."""
        root: dict[str, str] = {}
        latest: dict[str, tuple[int, CheckIn]] = {}
        for i, c in enumerate(self.check_ins):
            r = root.get(c.corrects, c.corrects) if c.corrects else c.check_in_id
            root[c.check_in_id] = r
            first = latest[r][0] if r in latest else i
            latest[r] = (first, c)
        return [c for _, c in sorted(latest.values(), key=lambda t: (t[1].effective_date, t[0]))]

    @property
    def current_value(self) -> float | None:
        effective = self.effective_check_ins()
        return effective[-1].value if effective else None

    def scorecard(self, cycle_start: date, today: date, thresholds=None) -> dict:
        """Computed figures of the key result as of ``today`` (see docs/scoring.md):
        current value, progress, score, expected progress, status and grade."""
        from . import scoring  # stdlib-only module; imported late to keep folds lean

        thresholds = thresholds or scoring.DEFAULT_THRESHOLDS
        effective = [c for c in self.effective_check_ins() if c.effective_date <= today]
        current = effective[-1].value if effective else None
        score = scoring.score(self.kind, self.start_value, self.target_value, [c.value for c in effective])
        return {
            "current_value": current,
            "progress": scoring.progress(self.kind, self.start_value, self.target_value,
                                         self.start_value if current is None else current),
            "score": score,
            "expected_progress": scoring.expected_progress(cycle_start, self.due_date, today),
            "status": str(scoring.kr_status(self.kind, self.start_value, self.target_value, effective,
                                            cycle_start, self.due_date, today, thresholds)),
            "grade": str(scoring.grade(score)),
            "confidence": effective[-1].confidence if effective else None,
            "last_check_in": effective[-1].effective_date.isoformat() if effective else None,
        }

    def to_dict(self) -> dict:
        d = self._fields_dict(leave_out="check_ins")
        d["check_ins"] = [c.to_dict() for c in self.check_ins]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "KeyResult":
        state = _State.from_dict.__func__(cls, {**d, "check_ins": []})
        state.check_ins = [CheckIn.from_dict(c) for c in d["check_ins"]]
        return state

    def to_snapshot(self) -> dict:
        """Like to_dict, with check-ins as rows (field order of CheckIn): a key result
        with thousands of check-ins loads from its snapshot in half the time."""
        d = self._fields_dict(leave_out="check_ins")
        d["check_ins"] = [[*c[:5], c.effective_date.isoformat(), *c[6:]] for c in self.check_ins]
        return d

    @classmethod
    def from_snapshot(cls, d: dict) -> "KeyResult":
        state = _State.from_dict.__func__(cls, {**d, "check_ins": []})
        fromiso = date.fromisoformat
        state.check_ins = [CheckIn(r[0], r[1], r[2], r[3], r[4], fromiso(r[5]), r[6], r[7]) for r in d["check_ins"]]
        return state


@dataclass(slots=True)
class Initiative(_State):
    initiative_id: str
    key_result_id: str
    objective_id: str
    title: str
    assignee: str
    start_date: date
    due_date: date
    state: str = "todo"
    started_on: date | None = None
    completed_on: date | None = None
    reason: str = ""
    version: int = 0


@dataclass(slots=True)
class Person(_State):
    """A person of the directory (stream ``person-<person_id>``). ``roles`` are the
    grants (ADMIN, AUDITOR, OBSERVER), sorted; they stay through a deactivation, which
    alone takes every access away (docs/adr/0033)."""

    person_id: str
    display_name: str
    email: str
    manager_id: str
    time_zone: str
    language: str
    user_name: str
    external_id: str
    active: bool = True
    roles: list = field(default_factory=list)  # sorted role names
    version: int = 0


@dataclass(slots=True)
class Team(_State):
    """A team of the directory (stream ``team-<team_id>``); ``leads`` and ``members`` are
    sorted person ids. An archived team is not ``active`` (its leads and members were
    removed by events of their own before it was archived)."""

    team_id: str
    name: str
    parent_team_id: str
    external_id: str
    active: bool = True
    leads: list = field(default_factory=list)
    members: list = field(default_factory=list)
    version: int = 0


STATE_TYPES = {"cycle": Cycle, "objective": Objective, "kr": KeyResult, "initiative": Initiative,
               "person": Person, "team": Team}


# ------------------------------------------------------------------------- folding


def _cycle_planned(_, d):
    return Cycle(d["cycle_id"], _enum(d["cadence"], "CADENCE_"), d["name"], _date(d["start_date"]),
                 _date(d["end_date"]), d.get("parent_cycle_id", ""))


def _cycle_state(new_state):
    def apply(s, d):
        s.state = new_state
        return s

    return apply


def _parent(d: dict, objective_key: str, kr_key: str) -> tuple[str, str]:
    kr = d.get(kr_key)
    return d.get(objective_key, ""), (kr or {}).get("key_result_id", "")


def _objective_created(_, d):
    parent_objective, parent_kr = _parent(d, "parent_objective_id", "parent_key_result")
    return Objective(d["objective_id"], d["cycle_id"], _enum(d["level"], "OBJECTIVE_LEVEL_"), d["title"],
                     d.get("description", ""), d["owner"], d.get("team_id", ""), parent_objective, parent_kr)


def _objective_aligned(s, d):
    s.parent_objective_id, s.parent_key_result_id = _parent(d, "parent_objective_id", "parent_key_result")
    return s


def _objective_realigned(s, d):
    s.parent_objective_id, s.parent_key_result_id = _parent(d, "new_parent_objective_id", "new_parent_key_result")
    return s


def _objective_restated(s, d):
    s.title, s.description = d["new_title"], d.get("new_description", "")
    return s


def _archived(s, d):
    s.archived, s.archive_reason = True, d.get("reason", "")
    return s


def _kr_defined(_, d):
    return KeyResult(d["key_result_id"], d["objective_id"], d.get("cycle_id", ""), d["title"],
                     _enum(d["kind"], "KEY_RESULT_KIND_"), float(d.get("start_value", 0.0)),
                     float(d.get("target_value", 0.0)), d.get("unit", ""), d.get("currency_code", ""),
                     float(d.get("weight", 1.0)), d["owner"], _date(d["due_date"]))


def _kr_adjusted(s, d):
    if "new_target_value" in d:
        s.target_value = float(d["new_target_value"])
    if "new_due_date" in d:
        s.due_date = _date(d["new_due_date"])
    if "new_weight" in d:
        s.weight = float(d["new_weight"])
    return s


def _kr_owner(s, d):
    s.owner = d["new_owner"]
    return s


def _check_in(s, d):
    s.check_ins.append(CheckIn(d["check_in_id"], float(d.get("value", 0.0)), int(d.get("confidence", 0)),
                               d.get("comment", ""), d.get("author", ""), _date(d["effective_date"]),
                               d.get("corrects_check_in_id", ""), d.get("reason", "")))
    return s


def _initiative_created(_, d):
    return Initiative(d["initiative_id"], d["key_result_id"], d.get("objective_id", ""), d["title"],
                      d["assignee"], _date(d["start_date"]), _date(d["due_date"]))


def _initiative_started(s, d):
    s.state, s.started_on = "doing", _date(d.get("started_on", ""))
    return s


def _initiative_completed(s, d):
    s.state, s.completed_on, s.reason = "done", _date(d.get("completed_on", "")), d.get("reason", "")
    return s


def _initiative_dropped(s, d):
    s.state, s.reason = "dropped", d.get("reason", "")
    return s


def _initiative_slipped(s, d):
    s.due_date, s.reason = _date(d["new_due_date"]), d.get("reason", "")
    return s


def _person_added(_, d):
    return Person(d["person_id"], d["display_name"], d.get("email", ""), d.get("manager_id", ""),
                  d.get("time_zone", ""), d.get("language", ""), d.get("user_name", ""), d.get("external_id", ""))


def _person_details(s, d):
    s.display_name, s.email, s.time_zone = d["display_name"], d.get("email", ""), d.get("time_zone", "")
    s.language, s.user_name, s.external_id = d.get("language", ""), d.get("user_name", ""), d.get("external_id", "")
    return s


def _person_manager(s, d):
    s.manager_id = d.get("new_manager_id", "")
    return s


def _active(value: bool):
    def apply(s, d):
        s.active = value
        return s

    return apply


# The list folds below build a new list rather than change the state's: ``_copy`` copies
# states shallowly, and the list of the state given to ``evolve`` must stay as it is.

def _role(granted: bool):
    def apply(s, d):
        role = _enum(d["role"], "DIRECTORY_ROLE_")
        s.roles = sorted({*s.roles, role} if granted else set(s.roles) - {role})
        return s

    return apply


def _team_created(_, d):
    return Team(d["team_id"], d["name"], d.get("parent_team_id", ""), d.get("external_id", ""))


def _team_renamed(s, d):
    s.name, s.external_id = d["new_name"], d.get("external_id", "")
    return s


def _team_moved(s, d):
    s.parent_team_id = d.get("new_parent_team_id", "")
    return s


def _team_people(attr: str, added: bool):
    def apply(s, d):
        people = set(getattr(s, attr))
        setattr(s, attr, sorted(people | {d["person_id"]} if added else people - {d["person_id"]}))
        return s

    return apply


_APPLY = {
    "okr.v1.CyclePlanned": _cycle_planned,
    "okr.v1.CycleActivated": _cycle_state("active"),
    "okr.v1.CycleMovedToReview": _cycle_state("review"),
    "okr.v1.CycleClosed": _cycle_state("closed"),
    "okr.v1.ObjectiveCreated": _objective_created,
    "okr.v1.ObjectiveAligned": _objective_aligned,
    "okr.v1.ObjectiveRealigned": _objective_realigned,
    "okr.v1.ObjectiveRestated": _objective_restated,
    "okr.v1.ObjectiveArchived": _archived,
    "okr.v1.KeyResultDefined": _kr_defined,
    "okr.v1.KeyResultTargetAdjusted": _kr_adjusted,
    "okr.v1.KeyResultOwnerAssigned": _kr_owner,
    "okr.v1.KeyResultArchived": _archived,
    "okr.v1.CheckInRecorded": _check_in,
    "okr.v1.CheckInCorrected": _check_in,
    "okr.v1.InitiativeCreated": _initiative_created,
    "okr.v1.InitiativeStarted": _initiative_started,
    "okr.v1.InitiativeCompleted": _initiative_completed,
    "okr.v1.InitiativeDropped": _initiative_dropped,
    "okr.v1.InitiativeSlipped": _initiative_slipped,
    "okr.v1.PersonAdded": _person_added,
    "okr.v1.PersonDetailsChanged": _person_details,
    "okr.v1.PersonManagerAssigned": _person_manager,
    "okr.v1.PersonDeactivated": _active(False),
    "okr.v1.PersonReactivated": _active(True),
    "okr.v1.RoleGranted": _role(True),
    "okr.v1.RoleRevoked": _role(False),
    "okr.v1.TeamCreated": _team_created,
    "okr.v1.TeamRenamed": _team_renamed,
    "okr.v1.TeamMoved": _team_moved,
    "okr.v1.TeamMemberAdded": _team_people("members", True),
    "okr.v1.TeamMemberRemoved": _team_people("members", False),
    "okr.v1.TeamLeadAssigned": _team_people("leads", True),
    "okr.v1.TeamLeadRemoved": _team_people("leads", False),
    "okr.v1.TeamArchived": _active(False),
}

#: The event types that start a stream (every other one applies to an existing state):
#: the "...Planned/Created/Defined" facts, and a person's PersonAdded ("...Added" alone
#: would take TeamMemberAdded too).
_CREATES = frozenset(t for t in _APPLY if t.endswith(("Planned", "Created", "Defined"))) | {"okr.v1.PersonAdded"}


def _copy(state):
    if state is None:
        return None
    state = copy.copy(state)
    if isinstance(state, KeyResult):
        state.check_ins = list(state.check_ins)
    return state


def _apply(state, event_type: str, data: dict):
    try:
        apply = _APPLY[event_type]
    except KeyError:
        raise ValueError(f"no fold for event type {event_type!r}") from None
    if (state is None) != (event_type in _CREATES):
        raise ValueError(f"{event_type} cannot apply to {'no state' if state is None else type(state).__name__}")
    state = apply(state, data)
    state.version += 1
    return state


def evolve(state, event_type: str, data: dict):
    """The state after one more event (``state`` itself is not changed)."""
    return _apply(_copy(state), event_type, data)


def fold(events: Iterable[tuple[str, dict]], state=None):
    """The state after ``events`` (pairs of event type and payload), starting from
    ``state`` (None: the stream's beginning). ``state`` itself is not changed."""
    state = _copy(state)
    for event_type, data in events:
        state = _apply(state, event_type, data)
    return state
