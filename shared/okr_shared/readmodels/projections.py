"""The read models of the reporting and notification services as one pure fold over
okr.v1 events (each service keeps the tables it needs in its own database: ``storage``).

    model = new_model()
    touched = project(model, event)        # one event; the rows it changed
    model = fold(events)                   # full rebuild (events in position order)
    model = fold_as_of(events, position=p) # as-of replay: the prefix, never the live model
    fold_rows(model, rows)                 # the same fold over EventStore.scan() pages (bulk)

The model is a plain mapping ``table -> {key: document}``; documents are JSON-safe dicts
holding only facts derived from events (nothing depends on "today": status, pace and
days-since are computed by ``status`` against the clock a service is given). Keys are
``"<tenant>/<id>"`` (history rows: ``"<tenant>/<stream_id>/<position>"``; ids never
contain ``/``). Tables and documents: docs/reporting.md.

``project`` returns the ``(table, key)`` pairs it wrote (and, for a check-in, the
``(POINTS, key)`` of the chart point it wrote), so a service persists exactly
those rows in its own tables, in the same transaction as its consumer offset. Because
the fold is deterministic and documents carry no clock, a model built incrementally
(the consumer layer delivers each position once, in order) and one rebuilt from the
store are byte-for-byte equal (``json.dumps(model, sort_keys=True)``).

An event is any object with ``position``, ``tenant_id``, ``stream_id``, ``event_type``,
``data`` (the stored JSON payload as a dict), ``metadata`` (dict: ``actor``, ``reason``,
...) and ``recorded_at_us`` — e.g. ``okr_shared.eventstore.RecordedEvent``. Event types
the fold does not know are ignored. An event about a row the model does not hold (e.g. a
check-in whose key result was never seen) is ignored too: the consumer layer guarantees
order, so this only happens to a consumer that filters event types.

Pure: no nameko, SQLAlchemy or kombu; no deep copies and no JSON encoding per event.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from orjson import loads as _loads

#: The tables of the model, in the order a service creates them.
TABLES = ("cycles", "objectives", "key_results", "initiatives", "history")

#: Not a table of the model: a key result's chart point (an element of its row's
#: ``points``), which ``project`` names when it writes one, as ``(POINTS, "<kr row
#: key>/<root check-in id>")``; a service's storage keeps each point in a row of its
#: own. Points are never changed in place or removed: a correction replaces its chain's
#: point (same root) with a new dict.
POINTS = "key_result_points"

Model = dict[str, dict[str, dict[str, Any]]]
Touched = set[tuple[str, str]]

_NOTHING: frozenset = frozenset()


def new_model(history: bool = True) -> Model:
    """An empty model: every table, no rows. ``history=False``: without the history
    table, which the fold then skips building (an as-of board needs no audit trail)."""
    return {table: {} for table in TABLES if history or table != "history"}


def row_key(tenant_id: str, entity_id: str) -> str:
    """The key of an entity's row: ``"<tenant>/<id>"``."""
    return f"{tenant_id}/{entity_id}"


def project(model: Model, event) -> Touched:
    """Apply one event to ``model`` (in place); return the ``(table, key)`` pairs written.

    Events must come in position order, each once (the consumer layer's contract).
    Unknown event types change nothing and return an empty set.
    """
    apply = _APPLY.get(event.event_type)
    if apply is None:
        return set()
    return set(apply(model, event.tenant_id, event.data, event))


def fold(events: Iterable, model: Model | None = None) -> Model:
    """The model after ``events`` (in position order), starting from ``model`` (changed
    in place) or from an empty model: a full rebuild is ``fold(store.read_all())``."""
    model = new_model() if model is None else model
    get = _APPLY.get
    for event in events:
        apply = get(event.event_type)
        if apply is not None:
            apply(model, event.tenant_id, event.data, event)
    return model


class RowEvent:
    """An event read as a plain ``EventStore.scan`` row (``position, tenant_id,
    stream_id, event_type, data, metadata, recorded_at_us``): the payload is parsed once
    (orjson: okr.v1 payloads are protobuf messages, whose integers fit in 64 bits, so it
    gives exactly the standard library's values), the metadata only when a history row
    asks for it."""

    __slots__ = ("position", "tenant_id", "stream_id", "event_type", "data", "metadata_json", "recorded_at_us")

    def __init__(self, row):
        (self.position, self.tenant_id, self.stream_id, self.event_type, data_json,
         self.metadata_json, self.recorded_at_us) = row
        self.data = _loads(data_json)

    @property
    def metadata(self) -> dict:
        return _loads(self.metadata_json)


def fold_rows(model: Model, rows: Iterable[tuple]) -> int:
    """``fold`` over raw ``EventStore.scan`` rows (the bulk path of rebuilds and as-of
    replays): rows of event types the fold does not know are skipped before their
    payload is parsed. Changes ``model`` in place; returns the last position seen (0 if
    none)."""
    get = _APPLY.get
    position = 0
    for row in rows:
        apply = get(row[3])
        if apply is not None:
            event = RowEvent(row)
            apply(model, event.tenant_id, event.data, event)
        position = row[0]
    return position


def rows_as_of(pages: Iterable[Iterable[tuple]], position: int | None = None,
               recorded_before_us: int | None = None) -> Iterable[tuple]:
    """The prefix of ``EventStore.scan`` pages for an as-of replay (the rows up to and
    including ``position`` and recorded before ``recorded_before_us``), flattened, for
    ``fold_rows``; stops reading at the first row past either limit."""
    for page in pages:
        for row in page:
            if position is not None and row[0] > position:
                return
            if recorded_before_us is not None and row[6] >= recorded_before_us:
                return
            yield row


def fold_page(model: Model, page: list[tuple], position: int | None = None,
              recorded_before_us: int | None = None) -> tuple[int | None, bool]:
    """``fold_rows`` of one ``EventStore.scan`` page's rows within an as-of replay's
    limits (as ``rows_as_of``). Pure: run in eventlet's thread pool by the reporting service.
    Returns (recorded_at_us of the last row folded or None, whether a row past a limit
    was met — the replay ends there)."""
    end = len(page)
    for i, row in enumerate(page):
        if (position is not None and row[0] > position) or (
                recorded_before_us is not None and row[6] >= recorded_before_us):
            end = i
            break
    fold_rows(model, page[:end] if end < len(page) else page)
    return (page[end - 1][6] if end else None), end < len(page)


def fold_as_of(events: Iterable, position: int | None = None, recorded_before_us: int | None = None) -> Model:
    """As-of replay: a fresh model of the events up to and including ``position`` and
    recorded before ``recorded_before_us`` (microseconds since the epoch, exclusive).

    ``events`` are read in position order and reading stops at the first event past
    either limit (the store assigns positions and ``recorded_at`` under one lock, so the
    prefix by time is the prefix by position). The live model is never touched.
    """

    def prefix():
        for event in events:
            if position is not None and event.position > position:
                return
            if recorded_before_us is not None and event.recorded_at_us >= recorded_before_us:
                return
            yield event

    return fold(prefix())


# ------------------------------------------------------------------------ helpers


def _enum(value: str, prefix: str) -> str:
    return value[len(prefix):] if value.startswith(prefix) else value


def _history(model: Model, tenant: str, event, data: dict, what: str) -> tuple[str, str]:
    """One row of the audit trail of a key result or initiative: who, when, why, what."""
    key = f"{tenant}/{event.stream_id}/{event.position}"
    history = model.get("history")
    if history is None:  # a model built without its history table
        return "history", key
    metadata = event.metadata
    history[key] = {
        "tenant": tenant,
        "stream_id": event.stream_id,
        "position": event.position,
        "recorded_at_us": event.recorded_at_us,
        "what": what,
        "actor": metadata.get("actor", ""),
        "reason": data.get("reason") or metadata.get("reason", ""),
        "key_result_id": data.get("key_result_id", ""),
        "initiative_id": data.get("initiative_id", ""),
        "objective_id": data.get("objective_id", ""),
        "data": data,  # the event's parsed payload: the fold never changes it
    }
    return "history", key


def _new_row(model, table: str, id_field: str, tenant: str, d: dict, event, **fields) -> str:
    """Add the row of a new entity to ``table`` (the entity the payload's ``id_field``
    names): its tenant and id, ``fields`` and the event's position; return its key."""
    key = row_key(tenant, d[id_field])
    model[table][key] = {"tenant": tenant, id_field: d[id_field], **fields, "position": event.position}
    return key


def _row_change(table: str, id_field: str, what: str | None, change: Callable[[dict, dict], None]):
    """The apply function of an event that changes one row of ``table`` (the entity the
    payload's ``id_field`` names) with ``change(row, payload)`` and writes its history
    row ``what`` (None: the table keeps no history); an event about a row the model
    does not hold changes nothing."""
    def apply(model, tenant, d, event):
        key = row_key(tenant, d[id_field])
        row = model[table].get(key)
        if row is None:
            return _NOTHING
        change(row, d)
        row["position"] = event.position
        if what is None:
            return ((table, key),)
        return (table, key), _history(model, tenant, event, d, what)

    return apply


def _parent(data: dict, objective_field: str, kr_field: str) -> tuple[str, str, str]:
    """(parent objective id, parent key result id, that key result's objective id)."""
    kr = data.get(kr_field) or {}
    if kr:
        return "", kr.get("key_result_id", ""), kr.get("objective_id", "")
    return data.get(objective_field, ""), "", ""


# ------------------------------------------------------------------------ cycles


def _cycle_planned(model, tenant, d, event):
    key = _new_row(
        model, "cycles", "cycle_id", tenant, d, event,
        cadence=_enum(d.get("cadence", ""), "CADENCE_"),
        name=d.get("name", ""),
        start_date=d["start_date"],
        end_date=d["end_date"],
        parent_cycle_id=d.get("parent_cycle_id", ""),
        state="planning",
    )
    return (("cycles", key),)


def _cycle_state(state: str):
    def change(cycle, d):
        cycle["state"] = state

    return _row_change("cycles", "cycle_id", None, change)


# -------------------------------------------------------------------- objectives


def _objective_created(model, tenant, d, event):
    parent_objective, parent_kr, parent_kr_objective = _parent(d, "parent_objective_id", "parent_key_result")
    key = _new_row(
        model, "objectives", "objective_id", tenant, d, event,
        cycle_id=d["cycle_id"],
        level=_enum(d.get("level", ""), "OBJECTIVE_LEVEL_"),
        title=d.get("title", ""),
        description=d.get("description", ""),
        owner=d.get("owner", ""),
        team_id=d.get("team_id", ""),
        parent_objective_id=parent_objective,
        parent_key_result_id=parent_kr,
        parent_key_result_objective_id=parent_kr_objective,
        archived=False,
        archive_reason="",
    )
    return (("objectives", key),)


def _objective_change(change: Callable[[dict, dict], None]):
    return _row_change("objectives", "objective_id", None, change)


def _aligned(objective, d):
    (objective["parent_objective_id"], objective["parent_key_result_id"],
     objective["parent_key_result_objective_id"]) = _parent(d, "parent_objective_id", "parent_key_result")


def _realigned(objective, d):
    (objective["parent_objective_id"], objective["parent_key_result_id"],
     objective["parent_key_result_objective_id"]) = _parent(d, "new_parent_objective_id", "new_parent_key_result")


def _restated(objective, d):
    objective["title"] = d.get("new_title", "")
    objective["description"] = d.get("new_description", "")


def _objective_archived(objective, d):
    objective["archived"] = True
    objective["archive_reason"] = d.get("reason", "")


# ------------------------------------------------------------------- key results


def _kr_defined(model, tenant, d, event):
    key = _new_row(
        model, "key_results", "key_result_id", tenant, d, event,
        objective_id=d["objective_id"],
        cycle_id=d.get("cycle_id", ""),
        title=d.get("title", ""),
        kind=_enum(d.get("kind", ""), "KEY_RESULT_KIND_"),
        start_value=float(d.get("start_value", 0.0)),
        target_value=float(d.get("target_value", 0.0)),
        unit=d.get("unit", ""),
        currency_code=d.get("currency_code", ""),
        weight=float(d.get("weight", 1.0)),
        owner=d.get("owner", ""),
        due_date=d["due_date"],
        archived=False,
        archive_reason="",
        # Effective check-ins (each original replaced by its latest correction), sorted by
        # (effective_date, seq): exactly KeyResult.effective_check_ins() of the domain model.
        points=[],
        roots={},  # check-in id -> id of the original check-in of its correction chain
        check_in_count=0,  # check-ins and corrections recorded (stream order: seq)
    )
    return ("key_results", key), _history(model, tenant, event, d, "defined")


def _kr_change(what: str, change: Callable[[dict, dict], None]):
    return _row_change("key_results", "key_result_id", what, change)


def _adjusted(kr, d):
    if "new_target_value" in d:
        kr["target_value"] = float(d["new_target_value"])
    if "new_due_date" in d:
        kr["due_date"] = d["new_due_date"]
    if "new_weight" in d:
        kr["weight"] = float(d["new_weight"])


def _owner_assigned(kr, d):
    kr["owner"] = d.get("new_owner", "")


def _kr_archived(kr, d):
    kr["archived"] = True
    kr["archive_reason"] = d.get("reason", "")


def _check_in(what: str):
    def apply(model, tenant, d, event):
        key = row_key(tenant, d["key_result_id"])
        kr = model["key_results"].get(key)
        if kr is None:
            return _NOTHING
        check_in_id = d["check_in_id"]
        corrects = d.get("corrects_check_in_id", "")
        roots = kr["roots"]
        root = roots.get(corrects, corrects) if corrects else check_in_id
        roots[check_in_id] = root
        seq = kr["check_in_count"]
        kr["check_in_count"] = seq + 1
        points = kr["points"]
        if corrects:  # the correction takes the place (and the stream rank) of its chain
            for i, old in enumerate(points):
                if old["check_in_id"] == root:
                    seq = old["seq"]
                    del points[i]
                    break
        effective_date = d["effective_date"]
        point = {
            "check_in_id": root,
            "latest_id": check_in_id,
            "effective_date": effective_date,
            "value": float(d.get("value", 0.0)),
            "confidence": int(d.get("confidence", 0)),
            "author": d.get("author", ""),
            "seq": seq,
        }
        if not points or (points[-1]["effective_date"], points[-1]["seq"]) <= (effective_date, seq):
            points.append(point)  # the usual case: check-ins arrive in date order
        else:
            order = (effective_date, seq)
            i = len(points) - 1
            while i and (points[i - 1]["effective_date"], points[i - 1]["seq"]) > order:
                i -= 1
            points.insert(i, point)
        kr["position"] = event.position
        # the point is a part of the key result's row that storage keeps in a row of its
        # own (POINTS, keyed "<kr row key>/<root check-in id>"): a check-in writes one
        # point, whatever the length of the chart
        return ("key_results", key), (POINTS, f"{key}/{root}"), _history(model, tenant, event, d, what)

    return apply


# ------------------------------------------------------------------- initiatives


def _initiative_created(model, tenant, d, event):
    key = _new_row(
        model, "initiatives", "initiative_id", tenant, d, event,
        key_result_id=d["key_result_id"],
        objective_id=d.get("objective_id", ""),
        title=d.get("title", ""),
        assignee=d.get("assignee", ""),
        start_date=d["start_date"],
        due_date=d["due_date"],
        original_due_date=d["due_date"],
        state="todo",
        started_on=None,
        completed_on=None,
        slips=0,
        reason="",  # of the latest slip, drop or late completion
    )
    return ("initiatives", key), _history(model, tenant, event, d, "created")


def _initiative_change(what: str, change: Callable[[dict, dict], None]):
    return _row_change("initiatives", "initiative_id", what, change)


def _started(initiative, d):
    initiative["state"] = "doing"
    initiative["started_on"] = d.get("started_on") or None


def _completed(initiative, d):
    initiative["state"] = "done"
    initiative["completed_on"] = d.get("completed_on") or None
    if d.get("reason"):
        initiative["reason"] = d["reason"]


def _dropped(initiative, d):
    initiative["state"] = "dropped"
    initiative["reason"] = d.get("reason", "")


def _slipped(initiative, d):
    initiative["due_date"] = d["new_due_date"]
    initiative["slips"] += 1
    initiative["reason"] = d.get("reason", "")


_APPLY: dict[str, Callable] = {
    "okr.v1.CyclePlanned": _cycle_planned,
    "okr.v1.CycleActivated": _cycle_state("active"),
    "okr.v1.CycleMovedToReview": _cycle_state("review"),
    "okr.v1.CycleClosed": _cycle_state("closed"),
    "okr.v1.ObjectiveCreated": _objective_created,
    "okr.v1.ObjectiveAligned": _objective_change(_aligned),
    "okr.v1.ObjectiveRealigned": _objective_change(_realigned),
    "okr.v1.ObjectiveRestated": _objective_change(_restated),
    "okr.v1.ObjectiveArchived": _objective_change(_objective_archived),
    "okr.v1.KeyResultDefined": _kr_defined,
    "okr.v1.KeyResultTargetAdjusted": _kr_change("adjusted", _adjusted),
    "okr.v1.KeyResultOwnerAssigned": _kr_change("owner_assigned", _owner_assigned),
    "okr.v1.KeyResultArchived": _kr_change("archived", _kr_archived),
    "okr.v1.CheckInRecorded": _check_in("check_in"),
    "okr.v1.CheckInCorrected": _check_in("correction"),
    "okr.v1.InitiativeCreated": _initiative_created,
    "okr.v1.InitiativeStarted": _initiative_change("started", _started),
    "okr.v1.InitiativeCompleted": _initiative_change("completed", _completed),
    "okr.v1.InitiativeDropped": _initiative_change("dropped", _dropped),
    "okr.v1.InitiativeSlipped": _initiative_change("slipped", _slipped),
}

#: The event types the fold reads (the reporting consumer's subscription).
EVENT_TYPES = frozenset(_APPLY)
