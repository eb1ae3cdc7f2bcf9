"""``okr import`` and ``okr export --cycle``: plans in and out over the gRPC API
(docs/import-export.md). Same options, exit codes and one-line errors as the other API
commands (api.py):

    okr import FILE.csv [--dry-run] [--cycle C] [--command-id ID]
    okr export --cycle C [--format csv|json] [-o FILE] [--today D]
    okr export TENANT FILE                     (unchanged: the operator's history export)

An import is all or nothing on the server (GoalService.ImportPlan): every problem of the
file is one line ``error: FILE line N (column): what — what to do`` on stderr and exit 5,
and nothing is stored. A re-run of the same file (same --cycle) is recognised and
stores nothing more: the command id defaults to a hash of the rows sent.

A file whose header has the ``record`` column is a directory file (people, teams,
memberships, leads, roles): directory_import.py, every row checked first, then sent
through DirectoryService (not one transaction; a re-run finishes what is missing).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import click

from okr_shared import directory_csv, plan_csv

from .api import EXIT_INVALID, Api, ApiError, api_options, emit_json, valid_date
from .store import export_history
from .text import optional

_LEVEL_RANK = {"COMPANY": 0, "TEAM": 1, "INDIVIDUAL": 2}


def _import_request(rows: list[dict], dry_run: bool, command_id: str):
    from okr.v1 import events_pb2, goal_pb2

    request = goal_pb2.ImportPlanRequest(dry_run=dry_run, command_id=command_id)
    for row in rows:
        r = request.rows.add(line=row["line"])
        for name, value in row.items():
            if name in ("line",):
                continue
            if name == "type":
                r.type = goal_pb2.ImportItemType.Value(f"IMPORT_ITEM_TYPE_{value}")
            elif name == "level":
                r.level = events_pb2.ObjectiveLevel.Value(f"OBJECTIVE_LEVEL_{value}")
            elif name == "kind":
                r.kind = events_pb2.KeyResultKind.Value(f"KEY_RESULT_KIND_{value}")
            else:
                setattr(r, name, value)
    return request


def default_command_id(rows: list[dict]) -> str:
    """The import's idempotency key: a hash of the rows as sent (so re-running the same
    file is recognised; another --cycle is another import)."""
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return f"import-{digest[:40]}"


#: A command's field as the file's column (the server names the command's fields).
_COLUMN_OF_FIELD = {**plan_csv.COLUMN_OF, "assignee": "owner", "objective_id": "id", "key_result_id": "id",
                    "initiative_id": "id"}


def _column(field: str) -> str:
    return _COLUMN_OF_FIELD.get(field, field)


def _problem_line(file: str, problem) -> str:
    return f"{os.path.basename(file)} {problem} (nothing was imported)"


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--dry-run", is_flag=True, help="Check the whole file on the server; store nothing.")
@click.option("--cycle", default=None, help="Put every objective of the file in this cycle (replaces the "
                                            "file's cycle column).")
@click.option("--command-id", default="", help="Idempotency key (default: derived from the rows, so a re-run "
                                                "of the same file stores nothing more).")
@api_options
def import_command(api: Api, file, dry_run, cycle, command_id):
    """Import FILE (CSV: objectives, key results, initiatives — all or nothing; or people
    and teams, a file with a `record` column; docs/import-export.md), every error with
    its line."""
    with open(file, "rb") as f:
        data = f.read()
    if directory_csv.is_directory_csv(data):
        if cycle:
            raise click.UsageError("--cycle is for plan files; this is a people and teams file (record column)")
        from .directory_import import import_directory

        import_directory(api, file, data, dry_run, command_id)
        return
    rows, problems = plan_csv.parse_plan(data, cycle=cycle)
    if problems:
        for problem in problems[:-1]:
            click.echo(f"error: {_problem_line(file, problem)}", err=True)
        raise ApiError(_problem_line(file, problems[-1]), EXIT_INVALID)
    command_id = command_id or default_command_id(rows)
    result = api.call(api.stub("goal").ImportPlan, _import_request(rows, dry_run, command_id))
    if result.errors:
        lines = [f"{os.path.basename(file)} line {e.line}{f' ({_column(e.field)})' if e.field else ''}: "
                 f"{e.message} — fix the file and import it again (nothing was imported)" for e in result.errors]
        if api.json:
            emit_json(_result_dict(result))
        for line in lines[:-1]:
            click.echo(f"error: {line}", err=True)
        raise ApiError(lines[-1], EXIT_INVALID)
    if api.json:
        emit_json(_result_dict(result))
        return
    what = (f"{result.objectives} objectives, {result.key_results} key results, {result.initiatives} "
            f"initiatives" + (f", {result.people} people declared" if result.people else ""))
    if not result.dry_run and not result.committed:
        click.echo(f"nothing to import: {os.path.basename(file)} only declares people (a person is known once "
                   "they own or are assigned something)")
        return
    if result.dry_run:
        click.echo(f"dry run: {os.path.basename(file)} is valid — an import would create {what}; nothing stored")
    elif result.already_stored:
        click.echo(f"already imported (command id {command_id}): {what}; nothing more stored")
    else:
        click.echo(f"imported {what} (positions {result.first_position}-{result.last_position})")
    for item in result.items:
        if item.type != 4:  # people declare, they create nothing
            click.echo(f"  line {item.line}: {item.ref} → {item.id}")


def _result_dict(result) -> dict:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(result, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


# ---------------------------------------------------------------------------- export


def cycle_plan(api: Api, cycle_id: str, today: str = "") -> dict:
    """The cycle's objectives → key results → initiatives with their scores, from the
    goal service (the cycle, each objective's statement and parent) and the reporting
    read models (statuses, scores, grades, the initiatives on the board)."""
    from okr.v1 import goal_pb2, reporting_pb2

    goal, reporting = api.stub("goal"), api.stub("reporting")
    cycle = api.call(goal.GetCycle, goal_pb2.GetCycleRequest(cycle_id=cycle_id))
    statuses = api.call(reporting.ListKeyResultStatuses,
                        reporting_pb2.ListKeyResultStatusesRequest(cycle_id=cycle_id, today=today)).statuses
    scorecard = api.call(reporting.GetScorecard, reporting_pb2.GetScorecardRequest(cycle_id=cycle_id, today=today))
    tree = api.call(reporting.GetAlignmentTree, reporting_pb2.GetAlignmentTreeRequest(cycle_id=cycle_id, today=today))
    board = api.call(reporting.GetBoard, reporting_pb2.GetBoardRequest(cycle_id=cycle_id, today=today))

    objective_ids = []

    def walk(node):
        if node.cycle_id == cycle_id and node.objective_id not in objective_ids:
            objective_ids.append(node.objective_id)
        for kr in node.key_results:
            for child in kr.aligned:
                walk(child)
        for child in node.children:
            walk(child)

    for root in tree.roots:
        walk(root)
    grades = {item.id: item for item in scorecard.objectives.items}
    initiatives: dict[str, list] = {}
    for column in board.initiatives:
        for card in column.cards:
            if card.cycle in ("", cycle_id):
                initiatives.setdefault(card.key_result, []).append({
                    "initiative_id": card.id, "title": card.title, "assignee": card.owner,
                    "start_date": card.start_date, "due_date": card.due_date, "state": card.state,
                    "status": column.status})
    krs: dict[str, list] = {}
    for s in statuses:
        if s.archived:
            continue
        krs.setdefault(s.objective_id, []).append({
            "key_result_id": s.key_result_id, "title": s.title,
            "kind": reporting_pb2.KeyResultStatus.DESCRIPTOR.fields_by_name["kind"].enum_type
            .values_by_number[s.kind].name.removeprefix("KEY_RESULT_KIND_"),
            "start_value": s.start_value, "target_value": s.target_value, "unit": s.unit,
            "currency_code": s.currency_code, "weight": s.weight, "owner": s.owner, "due_date": s.due_date,
            "current_value": optional(s, "current_value"), "progress": s.progress, "score": optional(s, "score"),
            "grade": s.grade, "status": s.status, "confidence": optional(s, "confidence"),
            "initiatives": sorted(initiatives.get(s.key_result_id, []), key=lambda i: i["initiative_id"])})
    objectives = []
    for objective_id in objective_ids:
        o = api.call(goal.GetObjective, goal_pb2.GetObjectiveRequest(objective_id=objective_id))
        scored = grades.get(objective_id)
        objectives.append({
            "objective_id": o.objective_id, "title": o.title, "description": o.description,
            "level": goal_pb2.Objective.DESCRIPTOR.fields_by_name["level"].enum_type
            .values_by_number[o.level].name.removeprefix("OBJECTIVE_LEVEL_"),
            "team_id": o.team_id, "owner": o.owner, "parent": o.parent_objective_id or o.parent_key_result_id,
            "score": optional(scored, "score") if scored is not None else None,
            "grade": scored.grade if scored is not None else "",
            "key_results": sorted(krs.get(objective_id, []), key=lambda k: k["key_result_id"])})
    objectives.sort(key=lambda o: (_LEVEL_RANK.get(o["level"], 3), o["objective_id"]))
    state = goal_pb2.Cycle.DESCRIPTOR.fields_by_name["state"].enum_type.values_by_number[cycle.state].name
    return {"cycle": {"cycle_id": cycle.cycle_id, "name": cycle.name, "state": state.removeprefix("CYCLE_STATE_"),
                      "start_date": cycle.start_date, "end_date": cycle.end_date},
            "today": scorecard.today, "objectives": objectives}


@click.command("export")
@click.argument("tenant", required=False)
@click.argument("output", required=False)
@click.option("--cycle", default=None, help="Export this cycle with scores over the API (CSV or JSON).")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("-o", "--output", "out_file", default=None, help="Write to this file (default: stdout).")
@click.option("--today", default=None, callback=valid_date, help="Day the scores are computed on, YYYY-MM-DD.")
@click.option("--database-url", envvar="OKR_DATABASE_URL", default=None,
              help="Without --cycle: the event store to export TENANT's history from.")
@api_options
def export_command(api: Api, tenant, output, cycle, fmt, out_file, today, database_url):
    """Export a cycle with scores: ``okr export --cycle C [--format csv|json] [-o FILE]``
    (objectives, key results, initiatives; the CSV imports again). Without --cycle:
    ``okr export TENANT FILE`` writes TENANT's event history (JSON lines, read from the
    store at --database-url; docs/audit-format.md)."""
    if not cycle:
        if not (tenant and output):
            raise click.UsageError("give --cycle C (a cycle with scores) or TENANT FILE (a tenant's history)")
        export_history(database_url, tenant, output)
        return
    if tenant or output:
        raise click.UsageError("with --cycle, write to a file with -o FILE (no TENANT FILE arguments)")
    if api.json:
        fmt = "json"
    plan = cycle_plan(api, cycle, today or "")
    text = plan_csv.to_json(plan) if fmt == "json" else plan_csv.to_csv(plan)
    if out_file:
        partial = f"{out_file}.part"
        with open(partial, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(partial, out_file)
        n = sum(1 + len(o["key_results"]) + sum(len(k["initiatives"]) for k in o["key_results"])
                for o in plan["objectives"])
        click.echo(f"exported cycle {cycle} ({n} items, scores as of {plan['today']}) to {out_file}", err=True)
    else:
        sys.stdout.write(text)


PLAN_COMMANDS = (import_command, export_command)


__all__ = ["PLAN_COMMANDS", "cycle_plan", "default_command_id"]
