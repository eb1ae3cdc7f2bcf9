"""Deciders: a command, checked against current state, becomes events.

``handle(command, state, ctx)`` returns the okr.v1 event messages to append to
``target_stream(command)`` (``state`` is that stream's folded state, None when it does
not exist), or raises a DomainError naming the field or the rule. ``ctx`` gives the
date (``today``), the caller (``actor``) and read access to other aggregates
(``get(stream_id)`` → state or None). Nothing here does I/O of its own.
"""

from __future__ import annotations

from datetime import date
from functools import singledispatch
from typing import Protocol

from okr.v1 import events_pb2 as ev

from . import commands as c
from . import validation as v
from .errors import NotFound, PreconditionFailed, ValidationError
from .state import Cycle, Initiative, KeyResult, Objective, Person, Team

CADENCES = ("MONTHLY", "QUARTERLY", "ANNUAL")
LEVELS = ("COMPANY", "TEAM", "INDIVIDUAL")
KINDS = ("INCREASE_TO", "DECREASE_TO", "STAY_AT_OR_ABOVE", "STAY_AT_OR_BELOW", "MILESTONE", "PERCENTAGE", "CURRENCY")
#: Length of each cadence in days (inclusive of both ends), generous for fiscal calendars.
CADENCE_DAYS = {"MONTHLY": (28, 31), "QUARTERLY": (84, 92), "ANNUAL": (364, 366)}
_CADENCE_RANK = {"MONTHLY": 0, "QUARTERLY": 1, "ANNUAL": 2}
#: Which levels an objective of each level may align to.
ALIGNS_TO = {"INDIVIDUAL": ("TEAM", "COMPANY"), "TEAM": ("COMPANY",), "COMPANY": ("COMPANY",)}


class Context(Protocol):
    today: date
    actor: str

    def get(self, stream_id: str): ...


def target_stream(command) -> str:
    """The stream a command's events are appended to."""
    for attr, category in (("initiative_id", "initiative"), ("key_result_id", "kr"),
                           ("objective_id", "objective"), ("cycle_id", "cycle"),
                           ("person_id", "person"), ("team_id", "team")):
        if isinstance(command, _TARGET[category]):
            return f"{category}-{v.identifier(attr, getattr(command, attr))}"
    raise TypeError(f"not a command: {type(command).__name__}")


_TARGET = {
    "cycle": (c.PlanCycle, c.ActivateCycle, c.MoveCycleToReview, c.CloseCycle),
    "objective": (c.CreateObjective, c.AlignObjective, c.RealignObjective, c.RestateObjective, c.ArchiveObjective),
    "kr": (c.DefineKeyResult, c.AdjustKeyResult, c.AssignKeyResultOwner, c.ArchiveKeyResult,
           c.RecordCheckIn, c.CorrectCheckIn),
    "initiative": (c.CreateInitiative, c.StartInitiative, c.CompleteInitiative, c.DropInitiative, c.SlipInitiative),
    # the directory; a team's commands that name a
    # person go on the team's stream
    "person": (c.AddPerson, c.UpdatePerson, c.AssignManager, c.DeactivatePerson, c.ReactivatePerson,
               c.GrantRole, c.RevokeRole),
    "team": (c.CreateTeam, c.RenameTeam, c.MoveTeam, c.ArchiveTeam, c.AddTeamMember, c.RemoveTeamMember,
             c.AssignTeamLead, c.RemoveTeamLead),
}


@singledispatch
def handle(command, state, ctx: Context) -> list:
    """Decide: the events ``command`` causes on ``state`` (see module docstring)."""
    raise TypeError(f"not a command: {type(command).__name__}")


# ----------------------------------------------------------------------- lookups


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _cycle(ctx, cycle_id: str, field: str = "cycle_id") -> Cycle:
    cycle = ctx.get(f"cycle-{v.identifier(field, cycle_id)}")
    if cycle is None:
        raise NotFound("cycle", cycle_id)
    return cycle


def _objective(ctx, objective_id: str, field: str = "objective_id") -> Objective:
    objective = ctx.get(f"objective-{v.identifier(field, objective_id)}")
    if objective is None:
        raise NotFound("objective", objective_id)
    return objective


def _key_result(ctx, key_result_id: str, field: str = "key_result_id") -> KeyResult:
    kr = ctx.get(f"kr-{v.identifier(field, key_result_id)}")
    if kr is None:
        raise NotFound("key result", key_result_id)
    return kr


def _exists(state, kind: str, id: str):
    if state is None:
        raise NotFound(kind, id)
    return state


def _new(state, kind: str, id: str) -> None:
    if state is not None:
        raise PreconditionFailed(f"{kind.replace(' ', '_')}_exists", f"{kind} {id!r} already exists")


def _open_cycle(cycle: Cycle, doing: str) -> None:
    """Objectives, key results and initiatives change only while planning or active."""
    if cycle.state not in ("planning", "active"):
        raise PreconditionFailed(
            "cycle_not_open", f"cannot {doing}: cycle {cycle.cycle_id!r} is in {cycle.state}")


def _not_archived(state, kind: str, id: str) -> None:
    if state.archived:
        raise PreconditionFailed(f"{kind.replace(' ', '_')}_archived", f"{kind} {id!r} is archived")


def _live_in_open_cycle(state, kind: str, id: str, ctx, doing: str) -> tuple[Objective | KeyResult, Cycle]:
    """The existing, not archived objective or key result ``state`` and its cycle, which
    must be open for ``doing``."""
    _not_archived(_exists(state, kind, id), kind, id)
    cycle = _cycle(ctx, state.cycle_id)
    _open_cycle(cycle, doing)
    return state, cycle


def _to_archive(state, kind: str, id: str, ctx, reason: str) -> tuple[Objective | KeyResult, Cycle, str]:
    """The not yet archived objective or key result ``state`` to archive, its cycle (not
    closed) and the (required) reason."""
    _not_archived(_exists(state, kind, id), kind, id)
    reason = v.reason(reason, required=True)
    cycle = _cycle(ctx, state.cycle_id)
    if cycle.state == "closed":
        raise PreconditionFailed("cycle_closed", f"cycle {cycle.cycle_id!r} is closed")
    return state, cycle, reason


# ------------------------------------------------------------------------ cycles


@handle.register
def _(cmd: c.PlanCycle, state: Cycle | None, ctx: Context) -> list:
    _new(state, "cycle", cmd.cycle_id)
    cadence = v.choice("cadence", cmd.cadence, CADENCES)
    name = v.text("name", cmd.name, max_length=v.MAX_NAME)
    start, end = v.iso_date("start_date", cmd.start_date), v.iso_date("end_date", cmd.end_date)
    if end <= start:
        raise ValidationError("end_date", f"must be after start_date ({start})")
    days = (end - start).days + 1
    low, high = CADENCE_DAYS[cadence]
    if not low <= days <= high:
        raise ValidationError("end_date", f"{_a(cadence.lower())} cycle lasts {low}-{high} days; this one lasts {days}")
    parent_id = v.optional_identifier("parent_cycle_id", cmd.parent_cycle_id)
    if parent_id:
        parent = _cycle(ctx, parent_id, "parent_cycle_id")
        if _CADENCE_RANK[parent.cadence] <= _CADENCE_RANK[cadence]:
            raise ValidationError("parent_cycle_id", f"{_a(cadence.lower())} cycle nests only in a longer cycle, "
                                                     f"not in {parent.cadence.lower()} {parent_id!r}")
        if not (parent.contains(start) and parent.contains(end)):
            raise ValidationError("start_date", f"must lie within parent cycle {parent_id!r} "
                                                f"({parent.start_date} to {parent.end_date})")
        if parent.state == "closed":
            raise PreconditionFailed("cycle_closed", f"parent cycle {parent_id!r} is closed")
    return [ev.CyclePlanned(cycle_id=cmd.cycle_id, cadence=f"CADENCE_{cadence}", name=name,
                            start_date=start.isoformat(), end_date=end.isoformat(), parent_cycle_id=parent_id)]


def _transition(cmd, state: Cycle | None, allowed_from: str, event, verb: str) -> list:
    cycle = _exists(state, "cycle", cmd.cycle_id)
    if cycle.state != allowed_from:
        raise PreconditionFailed("cycle_transition", f"cannot {verb} cycle {cycle.cycle_id!r}: it is in "
                                                     f"{cycle.state}, not {allowed_from}")
    return [event(cycle_id=cycle.cycle_id)]


@handle.register
def _(cmd: c.ActivateCycle, state, ctx) -> list:
    return _transition(cmd, state, "planning", ev.CycleActivated, "activate")


@handle.register
def _(cmd: c.MoveCycleToReview, state, ctx) -> list:
    return _transition(cmd, state, "active", ev.CycleMovedToReview, "move to review")


@handle.register
def _(cmd: c.CloseCycle, state, ctx) -> list:
    return _transition(cmd, state, "review", ev.CycleClosed, "close")


# -------------------------------------------------------------------- objectives


def _encloses(ctx, outer_id: str, cycle: Cycle) -> bool:
    """Is ``outer_id`` the cycle itself or one of its ancestors?"""
    seen = set()
    while cycle is not None and cycle.cycle_id not in seen:
        if cycle.cycle_id == outer_id:
            return True
        seen.add(cycle.cycle_id)
        cycle = ctx.get(f"cycle-{cycle.parent_cycle_id}") if cycle.parent_cycle_id else None
    return False


def _parent_ref(ctx, objective_id: str, level: str, cycle: Cycle, parent_objective_id: str,
                parent_key_result_id: str):
    """Check an alignment; return (parent objective id, KeyResultRef or None)."""
    parent_objective_id = v.optional_identifier("parent_objective_id", parent_objective_id)
    parent_key_result_id = v.optional_identifier("parent_key_result_id", parent_key_result_id)
    if parent_objective_id and parent_key_result_id:
        raise ValidationError("parent_key_result_id", "align to a parent objective or a parent key result, not both")
    if not (parent_objective_id or parent_key_result_id):
        return "", None
    ref = None
    field = "parent_objective_id"
    if parent_key_result_id:
        field = "parent_key_result_id"
        kr = _key_result(ctx, parent_key_result_id, field)
        _not_archived(kr, "key result", parent_key_result_id)
        parent_objective_id = kr.objective_id
        ref = ev.KeyResultRef(key_result_id=kr.key_result_id, objective_id=kr.objective_id)
    parent = _objective(ctx, parent_objective_id, field)
    _not_archived(parent, "objective", parent_objective_id)
    # No loop (checked first: it is the clearest message when someone aligns an objective
    # under its own descendant): walk up from the parent; reaching this objective closes a circle.
    node, seen = parent, set()
    while node is not None and node.objective_id not in seen:
        if node.objective_id == objective_id:
            raise ValidationError(field, f"aligning {objective_id!r} under {parent.objective_id!r} would form a loop")
        seen.add(node.objective_id)
        up = node.parent_objective_id
        if node.parent_key_result_id:
            kr = ctx.get(f"kr-{node.parent_key_result_id}")
            up = kr.objective_id if kr else ""
        node = ctx.get(f"objective-{up}") if up else None
    if parent.level not in ALIGNS_TO[level]:
        raise ValidationError(field, f"{_a(level.lower())} objective aligns to a "
                                     f"{' or '.join(x.lower() for x in ALIGNS_TO[level])} objective, "
                                     f"not to {parent.level.lower()} objective {parent.objective_id!r}")
    if not _encloses(ctx, parent.cycle_id, cycle):
        raise ValidationError(field, f"the parent must be in the same or an enclosing cycle; objective "
                                     f"{parent.objective_id!r} is in cycle {parent.cycle_id!r}")
    if level == "COMPANY" and parent.cycle_id == cycle.cycle_id:
        raise ValidationError(field, "a company objective aligns only to a company objective of an enclosing cycle")
    return ("" if ref else parent.objective_id), ref


def _with_parent(message, prefix: str, parent_objective_id: str, ref):
    if ref is not None:
        getattr(message, f"{prefix}parent_key_result").CopyFrom(ref)
    elif parent_objective_id:
        setattr(message, f"{prefix}parent_objective_id", parent_objective_id)
    return message


@handle.register
def _(cmd: c.CreateObjective, state, ctx) -> list:
    _new(state, "objective", cmd.objective_id)
    cycle = _cycle(ctx, cmd.cycle_id)
    _open_cycle(cycle, "create an objective")
    level = v.choice("level", cmd.level, LEVELS)
    title = v.text("title", cmd.title, max_length=v.MAX_TITLE)
    description = v.text("description", cmd.description, max_length=v.MAX_DESCRIPTION, required=False)
    owner = v.person("owner", cmd.owner)
    team_id = v.optional_identifier("team_id", cmd.team_id)
    if level == "TEAM" and not team_id:
        raise ValidationError("team_id", "a team objective names its team")
    parent_objective_id, ref = _parent_ref(ctx, cmd.objective_id, level, cycle,
                                           cmd.parent_objective_id, cmd.parent_key_result_id)
    message = ev.ObjectiveCreated(objective_id=cmd.objective_id, cycle_id=cycle.cycle_id,
                                  level=f"OBJECTIVE_LEVEL_{level}", title=title, description=description,
                                  owner=owner, team_id=team_id)
    return [_with_parent(message, "", parent_objective_id, ref)]


@handle.register
def _(cmd: c.AlignObjective, state, ctx) -> list:
    objective, cycle = _live_in_open_cycle(state, "objective", cmd.objective_id, ctx, "align an objective")
    if objective.has_parent:
        raise PreconditionFailed("already_aligned", f"objective {objective.objective_id!r} is already aligned; "
                                                    "realign it with a reason")
    if not (cmd.parent_objective_id or cmd.parent_key_result_id):
        raise ValidationError("parent_objective_id", "name a parent objective or a parent key result")
    parent_objective_id, ref = _parent_ref(ctx, objective.objective_id, objective.level, cycle,
                                           cmd.parent_objective_id, cmd.parent_key_result_id)
    message = ev.ObjectiveAligned(objective_id=objective.objective_id, cycle_id=cycle.cycle_id)
    return [_with_parent(message, "", parent_objective_id, ref)]


@handle.register
def _(cmd: c.RealignObjective, state, ctx) -> list:
    objective, cycle = _live_in_open_cycle(state, "objective", cmd.objective_id, ctx, "realign an objective")
    reason = v.reason(cmd.reason, required=True, why="to realign an objective")
    if not objective.has_parent and not (cmd.parent_objective_id or cmd.parent_key_result_id):
        raise PreconditionFailed("not_aligned", f"objective {objective.objective_id!r} has no parent to remove")
    parent_objective_id, ref = _parent_ref(ctx, objective.objective_id, objective.level, cycle,
                                           cmd.parent_objective_id, cmd.parent_key_result_id)
    new = (parent_objective_id, ref.key_result_id if ref else "")
    if new == (objective.parent_objective_id, objective.parent_key_result_id):
        raise PreconditionFailed("alignment_unchanged", "the objective already has this parent")
    message = ev.ObjectiveRealigned(objective_id=objective.objective_id, cycle_id=cycle.cycle_id, reason=reason)
    if objective.parent_key_result_id:
        old_kr = ctx.get(f"kr-{objective.parent_key_result_id}")
        message.old_parent_key_result.CopyFrom(ev.KeyResultRef(
            key_result_id=objective.parent_key_result_id, objective_id=old_kr.objective_id if old_kr else ""))
    elif objective.parent_objective_id:
        message.old_parent_objective_id = objective.parent_objective_id
    return [_with_parent(message, "new_", parent_objective_id, ref)]


@handle.register
def _(cmd: c.RestateObjective, state, ctx) -> list:
    objective = _exists(state, "objective", cmd.objective_id)
    _not_archived(objective, "objective", cmd.objective_id)
    cycle = _cycle(ctx, objective.cycle_id)
    if cycle.state != "planning":
        raise PreconditionFailed("objective_frozen", f"the statement of objective {objective.objective_id!r} "
                                                     f"cannot change: its cycle is {cycle.state} (only key "
                                                     "results may be adjusted, with a reason)")
    title = v.text("title", cmd.title, max_length=v.MAX_TITLE)
    description = v.text("description", cmd.description, max_length=v.MAX_DESCRIPTION, required=False)
    if (title, description) == (objective.title, objective.description):
        return []
    return [ev.ObjectiveRestated(objective_id=objective.objective_id, cycle_id=cycle.cycle_id,
                                 old_title=objective.title, new_title=title,
                                 old_description=objective.description, new_description=description)]


@handle.register
def _(cmd: c.ArchiveObjective, state, ctx) -> list:
    objective, cycle, reason = _to_archive(state, "objective", cmd.objective_id, ctx, cmd.reason)
    return [ev.ObjectiveArchived(objective_id=objective.objective_id, cycle_id=cycle.cycle_id, reason=reason)]


# ------------------------------------------------------------------- key results


def _check_target(kind: str, start: float, target: float, field: str = "target_value") -> None:
    if kind == "MILESTONE":
        if (start, target) != (0.0, 1.0):
            raise ValidationError(field, "a milestone goes from 0 (not done) to 1 (done)")
        return
    if kind in ("STAY_AT_OR_ABOVE", "STAY_AT_OR_BELOW"):
        return  # target is the threshold to hold; start is the baseline
    if target == start:
        raise ValidationError(field, f"must differ from start_value ({start:g}): a key result is a change")
    if kind == "INCREASE_TO" and target < start:
        raise ValidationError(field, f"an increase-to key result needs a target above start_value ({start:g})")
    if kind == "DECREASE_TO" and target > start:
        raise ValidationError(field, f"a decrease-to key result needs a target below start_value ({start:g})")
    if kind == "PERCENTAGE":
        for name, value in (("start_value", start), (field, target)):
            if not 0 <= value <= 100:
                raise ValidationError(name, f"a percentage lies between 0 and 100, not {value:g}")


def _due_in_cycle(due: date, cycle: Cycle, field: str = "due_date") -> None:
    if not cycle.contains(due):
        raise ValidationError(field, f"must lie inside cycle {cycle.cycle_id!r} ({cycle.start_date} to {cycle.end_date})")


@handle.register
def _(cmd: c.DefineKeyResult, state, ctx) -> list:
    _new(state, "key result", cmd.key_result_id)
    objective = _objective(ctx, cmd.objective_id)
    _not_archived(objective, "objective", objective.objective_id)
    cycle = _cycle(ctx, objective.cycle_id)
    _open_cycle(cycle, "define a key result")
    title = v.text("title", cmd.title, max_length=v.MAX_TITLE)
    kind = v.choice("kind", cmd.kind, KINDS)
    start = v.number("start_value", cmd.start_value)
    target = v.number("target_value", cmd.target_value)
    _check_target(kind, start, target)
    unit = v.text("unit", cmd.unit, max_length=30, required=False)
    currency = v.currency_code(cmd.currency_code) if kind == "CURRENCY" else ""
    if kind != "CURRENCY" and cmd.currency_code:
        raise ValidationError("currency_code", "only a currency key result has a currency")
    weight = v.positive("weight", cmd.weight)
    owner = v.person("owner", cmd.owner)
    due = v.iso_date("due_date", cmd.due_date)
    _due_in_cycle(due, cycle)
    return [ev.KeyResultDefined(key_result_id=cmd.key_result_id, objective_id=objective.objective_id,
                                cycle_id=cycle.cycle_id, title=title, kind=f"KEY_RESULT_KIND_{kind}",
                                start_value=start, target_value=target, unit=unit, currency_code=currency,
                                weight=weight, owner=owner, due_date=due.isoformat())]


@handle.register
def _(cmd: c.AdjustKeyResult, state, ctx) -> list:
    kr, cycle = _live_in_open_cycle(state, "key result", cmd.key_result_id, ctx, "adjust a key result")
    reason = v.reason(cmd.reason, required=cycle.state == "active",
                      why="to adjust a key result while its cycle is active")
    message = ev.KeyResultTargetAdjusted(key_result_id=kr.key_result_id, objective_id=kr.objective_id, reason=reason)
    if cmd.target_value is not None:
        target = v.number("target_value", cmd.target_value)
        _check_target(kr.kind, kr.start_value, target)
        if target != kr.target_value:
            message.old_target_value, message.new_target_value = kr.target_value, target
    if cmd.due_date is not None:
        due = v.iso_date("due_date", cmd.due_date)
        _due_in_cycle(due, cycle)
        if due != kr.due_date:
            message.old_due_date, message.new_due_date = kr.due_date.isoformat(), due.isoformat()
    if cmd.weight is not None:
        weight = v.positive("weight", cmd.weight)
        if weight != kr.weight:
            message.old_weight, message.new_weight = kr.weight, weight
    if not any(message.HasField(f) for f in ("new_target_value", "new_due_date", "new_weight")):
        raise ValidationError("target_value", "nothing to adjust: give a new target_value, due_date or weight")
    return [message]


@handle.register
def _(cmd: c.AssignKeyResultOwner, state, ctx) -> list:
    kr, cycle = _live_in_open_cycle(state, "key result", cmd.key_result_id, ctx, "reassign a key result")
    owner = v.person("owner", cmd.owner)
    reason = v.reason(cmd.reason, required=cycle.state == "active",
                      why="to reassign a key result while its cycle is active")
    if owner == kr.owner:
        return []
    return [ev.KeyResultOwnerAssigned(key_result_id=kr.key_result_id, objective_id=kr.objective_id,
                                      old_owner=kr.owner, new_owner=owner, reason=reason)]


@handle.register
def _(cmd: c.ArchiveKeyResult, state, ctx) -> list:
    kr, cycle, reason = _to_archive(state, "key result", cmd.key_result_id, ctx, cmd.reason)
    return [ev.KeyResultArchived(key_result_id=kr.key_result_id, objective_id=kr.objective_id, reason=reason)]


# ---------------------------------------------------------------------- check-ins


def _check_in_value(kr: KeyResult, value) -> float:
    if kr.kind == "MILESTONE":
        if value in (True, False, 0, 1):
            return float(value)
        raise ValidationError("value", f"a milestone check-in is true/1 (done) or false/0 (not done), not {value!r}")
    value = v.number("value", value)
    if kr.kind == "PERCENTAGE" and not 0 <= value <= 100:
        raise ValidationError("value", f"a percentage lies between 0 and 100, not {value:g}")
    return value


def _effective_date(value, default: date, cycle: Cycle, ctx) -> date:
    day = v.iso_date("effective_date", value) if value else default
    if day > ctx.today:
        raise ValidationError("effective_date", f"{day} is in the future (today is {ctx.today})")
    if day < cycle.start_date:
        raise ValidationError("effective_date", f"{day} is before cycle {cycle.cycle_id!r} starts ({cycle.start_date})")
    return day


def _kr_accepting_check_ins(state, key_result_id: str, ctx) -> tuple[KeyResult, Cycle]:
    kr = _exists(state, "key result", key_result_id)
    if kr.archived:
        raise PreconditionFailed("key_result_archived", f"key result {key_result_id!r} is archived: no check-ins")
    cycle = _cycle(ctx, kr.cycle_id)
    if cycle.state == "closed":
        raise PreconditionFailed("cycle_closed", f"cycle {cycle.cycle_id!r} is closed: no check-ins")
    return kr, cycle


def _new_check_in_id(kr: KeyResult, check_in_id: str) -> str:
    v.identifier("check_in_id", check_in_id)
    if kr.check_in(check_in_id) is not None:
        raise PreconditionFailed("check_in_exists", f"check-in {check_in_id!r} is already recorded")
    return check_in_id


@handle.register
def _(cmd: c.RecordCheckIn, state, ctx) -> list:
    kr, cycle = _kr_accepting_check_ins(state, cmd.key_result_id, ctx)
    check_in_id = _new_check_in_id(kr, cmd.check_in_id)
    value = _check_in_value(kr, cmd.value)
    confidence = v.confidence(cmd.confidence)
    comment = v.text("comment", cmd.comment, max_length=v.MAX_COMMENT, required=False)
    day = _effective_date(cmd.effective_date, ctx.today, cycle, ctx)
    return [ev.CheckInRecorded(check_in_id=check_in_id, key_result_id=kr.key_result_id,
                               objective_id=kr.objective_id, value=value, confidence=confidence,
                               comment=comment, author=v.person("actor", ctx.actor),
                               effective_date=day.isoformat())]


@handle.register
def _(cmd: c.CorrectCheckIn, state, ctx) -> list:
    kr, cycle = _kr_accepting_check_ins(state, cmd.key_result_id, ctx)
    v.identifier("corrects_check_in_id", cmd.corrects_check_in_id)
    corrected = kr.check_in(cmd.corrects_check_in_id)
    if corrected is None:
        raise NotFound("check-in", cmd.corrects_check_in_id)
    check_in_id = _new_check_in_id(kr, cmd.check_in_id)
    reason = v.reason(cmd.reason, required=True, why="to correct a check-in")
    value = _check_in_value(kr, cmd.value)
    confidence = v.confidence(cmd.confidence)
    comment = v.text("comment", cmd.comment, max_length=v.MAX_COMMENT, required=False)
    day = _effective_date(cmd.effective_date, corrected.effective_date, cycle, ctx)
    return [ev.CheckInCorrected(check_in_id=check_in_id, corrects_check_in_id=corrected.check_in_id,
                                key_result_id=kr.key_result_id, objective_id=kr.objective_id, value=value,
                                confidence=confidence, comment=comment, author=v.person("actor", ctx.actor),
                                effective_date=day.isoformat(), reason=reason)]


# ------------------------------------------------------------------- initiatives


def _initiative(state, initiative_id: str, allowed: tuple[str, ...], doing: str) -> Initiative:
    initiative = _exists(state, "initiative", initiative_id)
    if initiative.state not in allowed:
        raise PreconditionFailed("initiative_transition", f"cannot {doing} initiative {initiative_id!r}: "
                                                          f"it is {initiative.state}")
    return initiative


def _day_not_in_future(field: str, value, ctx) -> date:
    day = v.iso_date(field, value) if value else ctx.today
    if day > ctx.today:
        raise ValidationError(field, f"{day} is in the future (today is {ctx.today})")
    return day


@handle.register
def _(cmd: c.CreateInitiative, state, ctx) -> list:
    _new(state, "initiative", cmd.initiative_id)
    kr = _key_result(ctx, cmd.key_result_id)
    _not_archived(kr, "key result", kr.key_result_id)
    _open_cycle(_cycle(ctx, kr.cycle_id), "create an initiative")
    title = v.text("title", cmd.title, max_length=v.MAX_TITLE)
    assignee = v.person("assignee", cmd.assignee)
    start, due = v.iso_date("start_date", cmd.start_date), v.iso_date("due_date", cmd.due_date)
    if due < start:
        raise ValidationError("due_date", f"must not be before start_date ({start})")
    return [ev.InitiativeCreated(initiative_id=cmd.initiative_id, key_result_id=kr.key_result_id,
                                 objective_id=kr.objective_id, title=title, assignee=assignee,
                                 start_date=start.isoformat(), due_date=due.isoformat())]


@handle.register
def _(cmd: c.StartInitiative, state, ctx) -> list:
    initiative = _initiative(state, cmd.initiative_id, ("todo",), "start")
    day = _day_not_in_future("started_on", cmd.started_on, ctx)
    return [ev.InitiativeStarted(initiative_id=initiative.initiative_id, key_result_id=initiative.key_result_id,
                                 objective_id=initiative.objective_id, started_on=day.isoformat())]


@handle.register
def _(cmd: c.CompleteInitiative, state, ctx) -> list:
    initiative = _initiative(state, cmd.initiative_id, ("doing",), "complete")
    day = _day_not_in_future("completed_on", cmd.completed_on, ctx)
    if initiative.started_on and day < initiative.started_on:
        raise ValidationError("completed_on", f"must not be before it started ({initiative.started_on})")
    reason = v.reason(cmd.reason, required=day > initiative.due_date,
                      why=f"when completing after the due date ({initiative.due_date})")
    return [ev.InitiativeCompleted(initiative_id=initiative.initiative_id, key_result_id=initiative.key_result_id,
                                   objective_id=initiative.objective_id, completed_on=day.isoformat(),
                                   reason=reason)]


@handle.register
def _(cmd: c.DropInitiative, state, ctx) -> list:
    initiative = _initiative(state, cmd.initiative_id, ("todo", "doing"), "drop")
    return [ev.InitiativeDropped(initiative_id=initiative.initiative_id, key_result_id=initiative.key_result_id,
                                 objective_id=initiative.objective_id,
                                 reason=v.reason(cmd.reason, required=True, why="to drop an initiative"))]


@handle.register
def _(cmd: c.SlipInitiative, state, ctx) -> list:
    initiative = _initiative(state, cmd.initiative_id, ("todo", "doing"), "move the due date of")
    reason = v.reason(cmd.reason, required=True, why="to move an initiative's due date")
    due = v.iso_date("new_due_date", cmd.new_due_date)
    if due == initiative.due_date:
        raise ValidationError("new_due_date", f"is already the due date ({due})")
    if due < initiative.start_date:
        raise ValidationError("new_due_date", f"must not be before start_date ({initiative.start_date})")
    return [ev.InitiativeSlipped(initiative_id=initiative.initiative_id, key_result_id=initiative.key_result_id,
                                 objective_id=initiative.objective_id, old_due_date=initiative.due_date.isoformat(),
                                 new_due_date=due.isoformat(), reason=reason)]


# ------------------------------------------------------------------ the directory
#
# People and teams (docs/adr/0033, docs/identity.md). What another stream must say (the
# manager exists and is active, the new parent team is not below the team, the person to
# add is active) is read through ``ctx.get``. A command that would change nothing —
# granting a role already held, adding a member or a lead already there, details, a
# manager, a name or a parent as they are — returns no events (the executor stores
# nothing and answers OK).
#
# Left to the directory service, which needs its read model: unique user names and
# e-mail addresses among the active people, at least one active admin left after a
# revocation or deactivation (``last_admin``), and no archiving of a team with active
# teams below it (``team_has_children``: a team's stream does not know its children).

ROLES = ("ADMIN", "AUDITOR", "OBSERVER")
#: How far a manager or parent chain is walked (each step reads a stream): a deeper
#: organisation is refused rather than read without end.
MAX_CHAIN = 100


def _person(ctx: Context, person_id: str, field: str = "person_id") -> Person:
    person = ctx.get(f"person-{v.identifier(field, person_id)}")
    if person is None:
        raise NotFound("person", person_id)
    return person


def _team(ctx: Context, team_id: str, field: str = "team_id") -> Team:
    team = ctx.get(f"team-{v.identifier(field, team_id)}")
    if team is None:
        raise NotFound("team", team_id)
    return team


def _active_person(ctx: Context, person_id: str, doing: str, field: str = "person_id",
                   rule: str = "person_inactive") -> Person:
    person = _person(ctx, person_id, field)
    if not person.active:
        raise PreconditionFailed(rule, f"cannot {doing}: person {person_id!r} is deactivated")
    return person


def _open_team(state: Team | None, team_id: str) -> Team:
    """The existing, not archived team ``state``."""
    team = _exists(state, "team", team_id)
    if not team.active:
        raise PreconditionFailed("team_archived", f"team {team_id!r} is archived")
    return team


def _manager(ctx: Context, person_id: str, manager_id: str) -> str:
    """Check a new manager of ``person_id`` ("": none): another, active person whose
    own chain of managers does not lead back to ``person_id``."""
    manager_id = v.optional_identifier("manager_id", manager_id)
    if not manager_id:
        return ""
    if manager_id == person_id:
        raise ValidationError("manager_id", f"person {person_id!r} cannot be their own manager")
    manager = _active_person(ctx, manager_id, f"make {manager_id!r} a manager", "manager_id", "manager_inactive")
    _no_cycle(ctx, manager, person_id, "person", "manager_id", "manager",
              f"{manager_id!r} reports (through their managers) to {person_id!r}")
    return manager_id


def _no_cycle(ctx: Context, node, own_id: str, category: str, up: str, rules: str, why: str) -> None:
    """Walk up from ``node`` along ``up`` (manager_id, parent_team_id); reaching
    ``own_id`` would close a circle (rule ``<rules>_cycle``). Bounded by MAX_CHAIN steps
    (rule ``<rules>_chain_too_long``)."""
    seen: set[str] = set()
    id_field = f"{category}_id"
    while node is not None:
        node_id = getattr(node, id_field)
        if node_id == own_id:
            raise PreconditionFailed(f"{rules}_cycle", f"would form a circle: {why}")
        if node_id in seen:  # a circle already stored above (not through own_id): stop
            return
        seen.add(node_id)
        if len(seen) > MAX_CHAIN:
            raise PreconditionFailed(f"{rules}_chain_too_long",
                                     f"more than {MAX_CHAIN} levels above {own_id!r}")
        above = getattr(node, up)
        node = ctx.get(f"{category}-{above}") if above else None


def _details(cmd, current: Person | None) -> dict:
    """The person's details after ``cmd`` (AddPerson, or UpdatePerson where None keeps a
    field), each checked; the message names the field that is wrong."""
    def given(name: str):
        value = getattr(cmd, name)
        return getattr(current, name) if value is None and current is not None else value

    return {
        "display_name": v.text("display_name", given("display_name"), max_length=v.MAX_NAME),
        "email": v.email("email", given("email")),
        "time_zone": v.time_zone("time_zone", given("time_zone")),
        "language": v.language("language", given("language")),
        "user_name": v.text("user_name", given("user_name"), max_length=v.MAX_NAME, required=False),
        "external_id": v.text("external_id", given("external_id"), max_length=v.MAX_NAME, required=False),
    }


# ------------------------------------------------------------------------ people


@handle.register
def _(cmd: c.AddPerson, state: Person | None, ctx: Context) -> list:
    _new(state, "person", cmd.person_id)
    details = _details(cmd, None)
    manager_id = _manager(ctx, cmd.person_id, cmd.manager_id)
    return [ev.PersonAdded(person_id=cmd.person_id, manager_id=manager_id, **details)]


@handle.register
def _(cmd: c.UpdatePerson, state: Person | None, ctx: Context) -> list:
    person = _exists(state, "person", cmd.person_id)
    details = _details(cmd, person)
    if all(getattr(person, name) == value for name, value in details.items()):
        return []
    return [ev.PersonDetailsChanged(person_id=person.person_id, **details)]


@handle.register
def _(cmd: c.AssignManager, state: Person | None, ctx: Context) -> list:
    person = _exists(state, "person", cmd.person_id)
    manager_id = _manager(ctx, person.person_id, cmd.manager_id)
    if manager_id == person.manager_id:
        return []
    return [ev.PersonManagerAssigned(person_id=person.person_id, old_manager_id=person.manager_id,
                                     new_manager_id=manager_id)]


@handle.register
def _(cmd: c.DeactivatePerson, state: Person | None, ctx: Context) -> list:
    person = _exists(state, "person", cmd.person_id)
    if not person.active:
        raise PreconditionFailed("person_inactive", f"person {person.person_id!r} is already deactivated")
    return [ev.PersonDeactivated(person_id=person.person_id, reason=v.reason(cmd.reason, required=False))]


@handle.register
def _(cmd: c.ReactivatePerson, state: Person | None, ctx: Context) -> list:
    person = _exists(state, "person", cmd.person_id)
    if person.active:
        raise PreconditionFailed("person_active", f"person {person.person_id!r} is active")
    return [ev.PersonReactivated(person_id=person.person_id, reason=v.reason(cmd.reason, required=False))]


@handle.register
def _(cmd: c.GrantRole, state: Person | None, ctx: Context) -> list:
    person = _exists(state, "person", cmd.person_id)
    role = v.choice("role", cmd.role, ROLES)
    if not person.active:
        raise PreconditionFailed("person_inactive", f"cannot grant a role: person {person.person_id!r} "
                                                    "is deactivated")
    if role in person.roles:
        return []
    return [ev.RoleGranted(person_id=person.person_id, role=f"DIRECTORY_ROLE_{role}")]


@handle.register
def _(cmd: c.RevokeRole, state: Person | None, ctx: Context) -> list:
    person = _exists(state, "person", cmd.person_id)
    role = v.choice("role", cmd.role, ROLES)
    if role not in person.roles:
        raise PreconditionFailed("role_not_held", f"person {person.person_id!r} does not hold role {role}")
    return [ev.RoleRevoked(person_id=person.person_id, role=f"DIRECTORY_ROLE_{role}")]


# ------------------------------------------------------------------------- teams


def _parent_team(ctx: Context, team_id: str, parent_team_id: str) -> str:
    """Check a new parent of ``team_id`` ("": top level): another team, not archived,
    not below ``team_id``."""
    parent_team_id = v.optional_identifier("parent_team_id", parent_team_id)
    if not parent_team_id:
        return ""
    if parent_team_id == team_id:
        raise ValidationError("parent_team_id", f"team {team_id!r} cannot be its own parent")
    parent = _team(ctx, parent_team_id, "parent_team_id")
    if not parent.active:
        raise PreconditionFailed("team_archived", f"parent team {parent_team_id!r} is archived")
    _no_cycle(ctx, parent, team_id, "team", "parent_team_id", "team", f"{parent_team_id!r} is below {team_id!r}")
    return parent_team_id


@handle.register
def _(cmd: c.CreateTeam, state: Team | None, ctx: Context) -> list:
    _new(state, "team", cmd.team_id)
    name = v.text("name", cmd.name, max_length=v.MAX_NAME)
    external_id = v.text("external_id", cmd.external_id, max_length=v.MAX_NAME, required=False)
    parent_team_id = _parent_team(ctx, cmd.team_id, cmd.parent_team_id)
    return [ev.TeamCreated(team_id=cmd.team_id, name=name, parent_team_id=parent_team_id, external_id=external_id)]


@handle.register
def _(cmd: c.RenameTeam, state: Team | None, ctx: Context) -> list:
    team = _open_team(state, cmd.team_id)
    name = v.text("name", cmd.name, max_length=v.MAX_NAME)
    if name == team.name:
        return []
    return [ev.TeamRenamed(team_id=team.team_id, old_name=team.name, new_name=name, external_id=team.external_id)]


@handle.register
def _(cmd: c.MoveTeam, state: Team | None, ctx: Context) -> list:
    team = _open_team(state, cmd.team_id)
    parent_team_id = _parent_team(ctx, team.team_id, cmd.parent_team_id)
    if parent_team_id == team.parent_team_id:
        return []
    return [ev.TeamMoved(team_id=team.team_id, old_parent_team_id=team.parent_team_id,
                         new_parent_team_id=parent_team_id)]


@handle.register
def _(cmd: c.ArchiveTeam, state: Team | None, ctx: Context) -> list:
    """The team's leads and members leave it first, each by an event of its own (a
    consumer following memberships sees them go), then the team is archived."""
    team = _open_team(state, cmd.team_id)
    reason = v.reason(cmd.reason, required=False)
    return [*(ev.TeamLeadRemoved(team_id=team.team_id, person_id=p) for p in team.leads),
            *(ev.TeamMemberRemoved(team_id=team.team_id, person_id=p) for p in team.members),
            ev.TeamArchived(team_id=team.team_id, reason=reason)]


# A team's people: (state attribute, added event, removed event, rule when not there, word)
_PEOPLE = {"members": (ev.TeamMemberAdded, ev.TeamMemberRemoved, "not_a_member", "member"),
           "leads": (ev.TeamLeadAssigned, ev.TeamLeadRemoved, "not_a_lead", "lead")}


def _add(cmd, state: Team | None, ctx: Context, attr: str) -> list:
    added, _, _, word = _PEOPLE[attr]
    team = _open_team(state, cmd.team_id)
    person = _active_person(ctx, cmd.person_id, f"make them {_a(word)} of team {team.team_id!r}")
    if person.person_id in getattr(team, attr):
        return []
    return [added(team_id=team.team_id, person_id=person.person_id)]


def _remove(cmd, state: Team | None, attr: str) -> list:
    _, removed, rule, word = _PEOPLE[attr]
    team = _open_team(state, cmd.team_id)
    person_id = v.identifier("person_id", cmd.person_id)
    if person_id not in getattr(team, attr):
        raise PreconditionFailed(rule, f"person {person_id!r} is not {_a(word)} of team {team.team_id!r}")
    return [removed(team_id=team.team_id, person_id=person_id)]


@handle.register
def _(cmd: c.AddTeamMember, state: Team | None, ctx: Context) -> list:
    return _add(cmd, state, ctx, "members")


@handle.register
def _(cmd: c.RemoveTeamMember, state: Team | None, ctx: Context) -> list:
    return _remove(cmd, state, "members")


@handle.register
def _(cmd: c.AssignTeamLead, state: Team | None, ctx: Context) -> list:
    return _add(cmd, state, ctx, "leads")


@handle.register
def _(cmd: c.RemoveTeamLead, state: Team | None, ctx: Context) -> list:
    return _remove(cmd, state, "leads")
