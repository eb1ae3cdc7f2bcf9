"""Importing a plan: many objectives, key results and initiatives (for example from a
spreadsheet) as ONE all-or-nothing change (docs/import-export.md, ADR 0017).

Every row runs as the real domain command (``okr_shared.domain.handle``) against the
current state plus the rows before it, so an import accepts exactly what the single
commands accept, with the domain's own messages. All errors of all rows are collected
(each with its line); only a plan without errors is stored, with every event of every
row in one ``EventStore.append_batch`` transaction that also checks that the parents
and cycles the rows were decided on did not change meanwhile (else: decide again).

    importer = PlanImporter(executor)
    result = importer.run(rows, call, dry_run=False, command_id="import-2026q3")

A row is a dict: ``line`` (the file's line number), ``type`` (OBJECTIVE | KEY_RESULT |
INITIATIVE | PERSON), ``ref`` (the file's handle of the item, for references between
rows), ``parent_ref`` (a ref of this file, else the id of an existing item), ``id``
(the id to create; empty: generated), and the fields of the item (see ROW_FIELDS).
"""

from __future__ import annotations

import difflib
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..domain import commands as c
from ..domain.validation import identifier
from ..domain.errors import ConcurrencyConflict, DomainError, NotFound, PreconditionFailed, ValidationError
from ..eventstore import NO_STREAM, DuplicateEventIds, WrongExpectedVersion
from ..eventstore.lookups import events_by_id
from .context import CallContext, DecisionContext
from .executor import (
    COMMAND_NAMESPACE,
    CommandExecutor,
    command_id_reused,
    first_uses,
    import_event_id,
    new_event,
    request_fingerprint,
    same_request,
    stored_command,
)

_log = logging.getLogger(__name__)

#: At most this many rows per import (one event each): a bigger plan is split.
MAX_ROWS = 500
TYPES = ("OBJECTIVE", "KEY_RESULT", "INITIATIVE", "PERSON")
#: The fields a row may carry besides line, type, ref, parent_ref and id.
ROW_FIELDS = ("cycle_id", "level", "team_id", "owner", "title", "description", "kind", "start_value",
              "target_value", "unit", "currency_code", "weight", "due_date", "start_date")
_PLURAL = {"OBJECTIVE": "objectives", "KEY_RESULT": "key_results", "INITIATIVE": "initiatives",
           "PERSON": "people"}
_STREAM = {"OBJECTIVE": "objective", "KEY_RESULT": "kr", "INITIATIVE": "initiative"}
_KIND_WORD = {"OBJECTIVE": "objective", "KEY_RESULT": "key result", "INITIATIVE": "initiative"}
#: The kinds of item a row's parent_ref names.
_PARENT = {"KEY_RESULT": ("OBJECTIVE",), "INITIATIVE": ("KEY_RESULT",), "OBJECTIVE": ("OBJECTIVE", "KEY_RESULT")}
_DIRECTORY_EVENTS = ("okr.v1.ObjectiveCreated", "okr.v1.ObjectiveRestated", "okr.v1.ObjectiveArchived",
                     "okr.v1.KeyResultDefined", "okr.v1.KeyResultOwnerAssigned", "okr.v1.KeyResultArchived",
                     "okr.v1.InitiativeCreated")


@dataclass
class RowError:
    line: int
    field: str
    message: str
    code: str = "invalid_argument"

    def to_dict(self) -> dict:
        return {"line": self.line, "field": self.field, "message": self.message, "code": self.code}


@dataclass
class _Directory:
    """What the tenant already holds, for the checks no single command makes: the people
    known (owners and assignees so far) and the items by (parent, normalised title)."""

    people: set[str] = field(default_factory=set)
    objectives: dict[tuple, str] = field(default_factory=dict)  # (cycle, level, team, title) -> id
    key_results: dict[tuple, str] = field(default_factory=dict)  # (objective, title) -> id
    initiatives: dict[tuple, str] = field(default_factory=dict)  # (key result, title) -> id


def _norm(title: Any) -> str:
    return " ".join(str(title or "").split()).casefold()


def _text(row: Mapping, name: str) -> str:
    value = row.get(name)
    return "" if value is None else str(value).strip()


class _Overlay:
    """The decision context of one row: the tenant's stored state with the states the
    rows before it created laid over it; remembers the stored version of every stream
    read (the batch then expects them unchanged)."""

    def __init__(self, executor: CommandExecutor, tenant_id: str):
        self.executor, self.tenant_id = executor, tenant_id
        self.pending: dict[str, Any] = {}
        self.read_versions: dict[str, int] = {}
        self._loaded: dict[str, Any] = {}

    def get(self, stream_id: str):
        if stream_id in self.pending:
            return self.pending[stream_id]
        if stream_id not in self._loaded:
            loaded = self.executor.repository.load(stream_id, self.tenant_id)
            self._loaded[stream_id] = loaded.state
            self.read_versions[stream_id] = loaded.version
        return self._loaded[stream_id]


class PlanImporter:
    """Validates and stores a plan through the executor's store, repository and domain."""

    def __init__(self, executor: CommandExecutor, *, max_rows: int = MAX_ROWS, max_attempts: int | None = None):
        self.executor = executor
        self.max_rows = max_rows
        self.max_attempts = max_attempts or executor.retry.max_attempts
        #: Called between deciding and storing (tests inject a concurrent change here).
        self.before_store = None

    # ------------------------------------------------------------------ entry

    def run(self, rows: Sequence[Mapping], call: CallContext, *, dry_run: bool = False,
            command_id: str | None = None) -> dict:
        """Import ``rows``; returns the result dict (ImportPlanResult of goal.proto).
        Errors in rows are returned (``errors``), not raised: nothing is stored then.
        Raises ValidationError for a malformed request (no rows, too many, bad
        command_id) and ConcurrencyConflict when the parents kept changing."""
        tenant_id = call.require_tenant()
        call.require_actor()
        command_id = self.executor._command_id(command_id)
        rows = self._check_request(rows)
        metadata = call.event_metadata(command_id)
        if command_id is not None:  # dry_run is not part of it: a dry run stores nothing
            metadata.update(request_fingerprint("ImportPlan", {"rows": rows}, metadata["actor"]))
        event_id = self._event_ids(tenant_id, command_id)
        conflicted = ""
        for attempt in range(1, self.max_attempts + 1):
            if command_id is not None and not dry_run:
                done = self._stored(rows, tenant_id, command_id, event_id, metadata)
                if done is not None:
                    return done
            overlay = _Overlay(self.executor, tenant_id)
            items, errors, batch = self._decide(rows, overlay, tenant_id, command_id, metadata, event_id)
            result = self._result(rows, items, errors, dry_run)
            if errors or dry_run or not batch:  # not batch: people only, nothing to store
                return result
            if self.before_store is not None:
                self.before_store()
            expect = {s: v for s, v in overlay.read_versions.items() if s not in overlay.pending}
            try:
                stored = self.executor.store.append_batch(batch, expect=expect)
            except WrongExpectedVersion as conflict:
                _log.info("import: %s (attempt %d of %d)", conflict, attempt, self.max_attempts)
                conflicted = conflict.stream_id
                self.executor.repository.forget(conflict.stream_id, tenant_id)
                if attempt < self.max_attempts:
                    self.executor.retry.backoff(attempt)
                continue
            except DuplicateEventIds:  # stored meanwhile by another request with this command id
                self._stored(rows, tenant_id, command_id, event_id, metadata)
                raise command_id_reused(command_id) from None
            if stored[0].already_stored:  # by a concurrent call: the same import, or other rows?
                done = self._stored(rows, tenant_id, command_id, event_id, metadata)
                if done is not None:
                    return done
            result["committed"] = True
            result["already_stored"] = all(r.already_stored for r in stored)
            result["first_position"] = stored[0].first_position
            result["last_position"] = stored[-1].last_position
            return result
        raise ConcurrencyConflict(conflicted, self.max_attempts)

    # --------------------------------------------------------------- request

    def _check_request(self, rows) -> list[dict]:
        if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Sequence):
            raise ValidationError("rows", "must be a list of rows")
        if not rows:
            raise ValidationError("rows", "the plan has no rows; give at least one objective, key result "
                                          "or initiative")
        if len(rows) > self.max_rows:
            raise ValidationError("rows", f"{len(rows)} rows exceed the limit of {self.max_rows} per import; "
                                          "split the file into several imports")
        out = []
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise ValidationError(f"rows[{i}]", "must be an object")
            row = dict(row)
            line = row.get("line")
            row["line"] = line if isinstance(line, int) and not isinstance(line, bool) and line > 0 else i + 2
            out.append(row)
        return out

    @staticmethod
    def _event_ids(tenant_id: str, command_id: str | None):
        if command_id is None:
            return lambda _i: uuid.uuid4()
        return lambda i: import_event_id(tenant_id, command_id, i)

    def _new_id(self, tenant_id: str, command_id: str | None, ref: str) -> str:
        if command_id is None:
            return str(uuid.uuid4())
        return str(uuid.uuid5(COMMAND_NAMESPACE, f"{tenant_id}\x1f{command_id}\x1fref\x1f{ref}"))

    # ---------------------------------------------------------------- decide

    def _decide(self, rows, overlay: _Overlay, tenant_id, command_id, metadata, event_id):
        errors: list[RowError] = []
        directory = self._directory(tenant_id)
        directory.people.add(metadata["actor"])
        refs: dict[str, dict] = {}  # ref -> {"line", "type", "id", "ok"}
        all_refs: dict[str, int] = {}
        for row in reversed(rows):
            if _text(row, "ref") and str(row.get("type") or "").upper() in _STREAM:
                all_refs[_text(row, "ref")] = row["line"]
        seen_content: dict[tuple, int] = {}
        for row in rows:  # people first: a person row may come after the rows naming them
            if str(row.get("type") or "").upper() == "PERSON":
                person = _text(row, "owner") or _text(row, "ref")
                if not person:
                    errors.append(RowError(row["line"], "owner", "a person row names the person in the owner "
                                                                  "column"))
                else:
                    directory.people.add(person)
        items, batch = [], []
        today = self.executor.today()
        n_events = 0
        for row in rows:
            line, kind = row["line"], str(row.get("type") or "").upper()
            before = len(errors)

            def fail(field_name, message, code="invalid_argument", line=line):
                errors.append(RowError(line, field_name, message, code))

            if kind not in TYPES:
                fail("type", f"must be one of {', '.join(t.lower() for t in TYPES)}, not {row.get('type')!r}")
                continue
            if kind == "PERSON":
                items.append({"line": line, "type": kind, "ref": _text(row, "ref"),
                              "id": _text(row, "owner") or _text(row, "ref")})
                continue
            ref = _text(row, "ref")
            if not ref:
                fail("ref", "is required: a handle for this row that other rows can name as parent_ref")
                continue
            if ref in refs:
                fail("ref", f"{ref!r} is already used on line {refs[ref]['line']}: a duplicate row, or give it "
                            "another ref")
                continue
            item_id = _text(row, "id") or self._new_id(tenant_id, command_id, ref)
            refs[ref] = {"line": line, "type": kind, "id": item_id, "ok": False}
            parent_id = self._parent(row, kind, refs, all_refs, overlay, fail)
            if len(errors) > before:
                continue
            owner = _text(row, "owner")
            if owner and owner not in directory.people:
                fail("owner", self._unknown_person(owner, directory.people), "not_found")
            try:
                command = self._command(kind, row, item_id, parent_id)
            except DomainError as e:
                fail(*_error_fields(e))
                continue
            key = self._content_key(kind, command, overlay)
            if key is not None:
                existing = {"OBJECTIVE": directory.objectives, "KEY_RESULT": directory.key_results,
                            "INITIATIVE": directory.initiatives}[kind].get(key)
                if existing is not None:
                    fail("title", f"the tenant already has this {_KIND_WORD[kind]} ({existing!r}, same title and "
                                  "parent): a duplicate row — remove it or change the title", "failed_precondition")
                elif (kind, key) in seen_content:
                    fail("title", f"duplicates line {seen_content[(kind, key)]} (same {_KIND_WORD[kind]} title "
                                  "and parent): remove one of them", "failed_precondition")
                else:
                    seen_content[(kind, key)] = line
            if len(errors) > before:
                continue
            try:
                stream_id = self.executor.domain.target_stream(command)  # checks the id
                target = overlay.get(stream_id)
                # a fresh context per row: it caches what it reads, and rows create streams
                ctx = DecisionContext(today, metadata["actor"], overlay.get)
                messages = self.executor.domain.handle(command, target, ctx)
            except DomainError as e:
                fail(*_error_fields(e))
                continue
            if stream_id in overlay.pending:  # cannot happen with unique refs and ids, but never append twice
                fail("id", f"{item_id!r} is created by an earlier row too")
                continue
            events = [new_event(m, tenant_id, metadata, event_id(n_events + i)) for i, m in enumerate(messages)]
            n_events += len(events)
            overlay.pending[stream_id] = self.executor.domain.fold(
                [(e.event_type, e.data) for e in events], None)
            batch.append((stream_id, NO_STREAM, events))
            refs[ref]["ok"] = True
            items.append({"line": line, "type": kind, "ref": ref, "id": item_id})
        return items, errors, batch

    def _parent(self, row, kind: str, refs: dict, all_refs: dict, overlay: _Overlay, fail) -> tuple[str, str]:
        """(kind of parent, id of parent) named by parent_ref: a ref of this file (an
        earlier row), else an existing item; ("", "") when none is given."""
        parent = _text(row, "parent_ref")
        if not parent:
            if kind != "OBJECTIVE":
                what = "objective" if kind == "KEY_RESULT" else "key result"
                fail("parent_ref", f"is required: the ref (or existing id) of the {what} this row belongs to")
            return "", ""
        allowed = _PARENT[kind]
        try:
            identifier("parent_ref", parent)
        except ValidationError as e:
            fail(e.field, e.message)
            return "", ""
        if parent in refs:
            target = refs[parent]
            if target["type"] not in allowed:
                fail("parent_ref", f"{parent!r} (line {target['line']}) is {_a(_KIND_WORD[target['type']])}; "
                                   f"{_a(_KIND_WORD[kind])} belongs to {' or '.join(_a(_KIND_WORD[t]) for t in allowed)}")
            elif not target["ok"]:
                fail("parent_ref", f"{parent!r} (line {target['line']}) has errors; fix that row first")
            return target["type"], target["id"]
        for t in allowed:
            if overlay.get(f"{_STREAM[t]}-{parent}") is not None:
                return t, parent
        later = all_refs.get(parent)
        if later is not None:
            fail("parent_ref", f"{parent!r} is defined on a later line ({later}); put parents before their children")
        else:
            fail("parent_ref", f"unknown parent {parent!r}: neither a ref of an earlier row nor an existing "
                               f"{' or '.join(_KIND_WORD[t] for t in allowed)} of your tenant", "not_found")
        return "", ""

    @staticmethod
    def _command(kind: str, row: Mapping, item_id: str, parent: tuple[str, str]):
        text = lambda name: _text(row, name)  # noqa: E731
        if kind == "OBJECTIVE":
            parent_kind, parent_id = parent
            return c.CreateObjective(
                objective_id=item_id, cycle_id=text("cycle_id"), level=text("level").upper(), title=text("title"),
                owner=text("owner"), team_id=text("team_id"), description=text("description"),
                parent_objective_id=parent_id if parent_kind == "OBJECTIVE" else "",
                parent_key_result_id=parent_id if parent_kind == "KEY_RESULT" else "")
        if kind == "KEY_RESULT":
            for name in ("start_value", "target_value"):
                if row.get(name) is None:
                    raise ValidationError(name, "is required for a key result (a number)")
            weight = row.get("weight")
            return c.DefineKeyResult(
                key_result_id=item_id, objective_id=parent[1], title=text("title"), kind=text("kind").upper(),
                start_value=row["start_value"], target_value=row["target_value"], owner=text("owner"),
                due_date=text("due_date"), unit=text("unit"), currency_code=text("currency_code"),
                weight=1.0 if weight is None else weight)
        return c.CreateInitiative(
            initiative_id=item_id, key_result_id=parent[1], title=text("title"), assignee=text("owner"),
            start_date=text("start_date"), due_date=text("due_date"))

    @staticmethod
    def _content_key(kind: str, command, overlay: _Overlay):
        title = _norm(getattr(command, "title", ""))
        if not title:
            return None
        if kind == "OBJECTIVE":
            return (command.cycle_id, command.level, command.team_id, title)
        if kind == "KEY_RESULT":
            return (command.objective_id, title)
        return (command.key_result_id, title)

    @staticmethod
    def _unknown_person(owner: str, people: set[str]) -> str:
        close = difflib.get_close_matches(owner, sorted(people), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return (f"unknown person {owner!r}: not an owner or assignee in your tenant yet, nor declared by a "
                f"person row of this file — {hint}to declare a new person, add a row of type person with owner "
                f"{owner!r}")

    # ------------------------------------------------------------- directory

    def _directory(self, tenant_id: str) -> _Directory:
        """One pass over the tenant's creation, restatement, owner and archive events."""
        d = _Directory()
        objectives: dict[str, list] = {}  # id -> [cycle, level, team, title, archived]
        krs: dict[str, list] = {}
        for e in self.executor.store.read_all(tenant_id=tenant_id, event_types=_DIRECTORY_EVENTS, batch_size=5000):
            data, t = e.data, e.event_type
            if t == "okr.v1.ObjectiveCreated":
                d.people.add(data.get("owner", ""))
                objectives[data["objective_id"]] = [data.get("cycle_id", ""),
                                                    str(data.get("level", "")).removeprefix("OBJECTIVE_LEVEL_"),
                                                    data.get("team_id", ""), _norm(data.get("title")), False]
            elif t == "okr.v1.ObjectiveRestated" and data.get("objective_id") in objectives:
                objectives[data["objective_id"]][3] = _norm(data.get("new_title"))
            elif t == "okr.v1.ObjectiveArchived" and data.get("objective_id") in objectives:
                objectives[data["objective_id"]][4] = True
            elif t == "okr.v1.KeyResultDefined":
                d.people.add(data.get("owner", ""))
                krs[data["key_result_id"]] = [data.get("objective_id", ""), _norm(data.get("title")), False]
            elif t == "okr.v1.KeyResultOwnerAssigned":
                d.people.add(data.get("new_owner", ""))
            elif t == "okr.v1.KeyResultArchived" and data.get("key_result_id") in krs:
                krs[data["key_result_id"]][2] = True
            elif t == "okr.v1.InitiativeCreated":
                d.people.add(data.get("assignee", ""))
                d.initiatives[(data.get("key_result_id", ""), _norm(data.get("title")))] = data["initiative_id"]
        for oid, (cycle, level, team, title, archived) in objectives.items():
            if not archived:
                d.objectives[(cycle, level, team, title)] = oid
        for kid, (objective, title, archived) in krs.items():
            if not archived:
                d.key_results[(objective, title)] = kid
        d.people.discard("")
        return d

    # ---------------------------------------------------------------- result

    def _result(self, rows, items, errors, dry_run) -> dict:
        counts = {plural: 0 for plural in _PLURAL.values()}
        for item in items:
            counts[_PLURAL[item["type"]]] += 1
        return {"dry_run": bool(dry_run), "committed": False, "already_stored": False, "rows": len(rows),
                **counts, "items": [] if errors else items, "errors": [e.to_dict() for e in errors],
                "first_position": 0, "last_position": 0}

    def _stored(self, rows, tenant_id, command_id, event_id, metadata) -> dict | None:
        """The result of an earlier import of these rows with this command id, or None
        when none was stored; PreconditionFailed ``command_id_reused`` when the command
        id was used for other rows, by another actor or for a single command."""
        with self.executor.repository.engine.connect() as conn:
            command, first = first_uses(conn, tenant_id, command_id)
            if command is not None:
                raise command_id_reused(command_id, stored_command(command.metadata))
            if first is None:
                return None
            if not same_request(first.metadata, metadata):
                raise command_id_reused(command_id, stored_command(first.metadata))
            items, streams = [], []
            for row in rows:
                kind = str(row.get("type") or "").upper()
                ref = _text(row, "ref")
                if kind == "PERSON":
                    items.append({"line": row["line"], "type": kind, "ref": ref, "id": _text(row, "owner") or ref})
                elif kind in _STREAM:
                    item_id = _text(row, "id") or self._new_id(tenant_id, command_id, ref)
                    items.append({"line": row["line"], "type": kind, "ref": ref, "id": item_id})
                    streams.append(f"{_STREAM[kind]}-{item_id}")
            ids = [str(event_id(i)) for i in range(len(streams))]
            found = {r.event_id: (r.stream_id, r.position)
                     for r in events_by_id(conn, tenant_id, ids, ("event_id", "stream_id", "position"))}
        if [found.get(i, ("",))[0] for i in ids] != streams or len(found) != len(ids):
            # an import stored before fingerprints existed, of other rows
            raise command_id_reused(command_id, "ImportPlan")
        result = self._result(rows, items, [], False)
        result.update(committed=True, already_stored=True, first_position=found[ids[0]][1],
                      last_position=found[ids[-1]][1])
        return result


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _error_fields(e: DomainError) -> tuple[str, str, str]:
    """(field, message, code) of a domain refusal, for a row error."""
    if isinstance(e, ValidationError):
        return e.field, e.message, e.code
    if isinstance(e, NotFound):
        field_name = {"cycle": "cycle_id", "objective": "parent_ref", "key result": "parent_ref"}.get(e.kind, "id")
        return field_name, str(e), e.code
    if isinstance(e, PreconditionFailed):
        return e.rule, e.message, e.code
    return "row", str(e), getattr(e, "code", "invalid_argument")


__all__ = ["MAX_ROWS", "PlanImporter", "RowError"]
