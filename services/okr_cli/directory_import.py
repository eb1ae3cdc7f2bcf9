"""``okr import PEOPLE.csv``: a directory file (people, teams, memberships, leads, roles;
okr_shared.directory_csv, docs/import-export.md "People and teams") through
DirectoryService. ``okr import`` (plan.py) comes here when the file's header has the
``record`` column.

Every row is checked before anything is sent: the file alone (form, duplicates,
references between its rows, cycles), then against the tenant's directory (ListPeople
and ListTeams, every page): references to people and teams outside the file, rows that
contradict what exists, e-mail addresses and user names taken. One problem: every
problem is a line ``error: FILE line N (column): what — what to do``, exit 5, nothing
sent. Then the calls go in dependency order, each with a command id derived from the
file's hash and the row; rows already true in the directory send nothing. There is no
ImportDirectory RPC, so this is NOT one transaction: a refusal or an interruption
midway leaves the rows before it stored — running the same (or the fixed) file again
finishes the rest without duplicates.
"""

from __future__ import annotations

import os
from collections import Counter

import click

from okr_shared import directory_csv

from .api import EXIT_INVALID, Api, ApiError, emit_json
from .people import STATE_HINT, message_dict, role_value

#: What each step creates, for the summary.
_NOUN = {"CreateTeam": "teams", "AddPerson": "people", "AddTeamMember": "memberships", "AssignTeamLead": "leads",
         "GrantRole": "role grants"}
_ORDER = tuple(_NOUN.values())


def existing_directory(api: Api) -> directory_csv.Existing:
    """The tenant's people and teams (people who left and archived teams too), every page."""
    from okr.v1 import directory_pb2

    stub, existing = api.stub("directory"), directory_csv.Existing()
    for rpc, request, items, key, into in (
            ("ListPeople", directory_pb2.ListPeopleRequest(include_inactive=True, page_size=500), "people",
             "person_id", existing.people),
            ("ListTeams", directory_pb2.ListTeamsRequest(include_archived=True, page_size=500), "teams", "team_id",
             existing.teams)):
        while True:
            page = api.call(getattr(stub, rpc), request)
            for item in getattr(page, items):
                into[getattr(item, key)] = message_dict(item)
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
    return existing


def _request(step: directory_csv.Step):
    from okr.v1 import directory_pb2

    fields = dict(step.request)
    if "role" in fields:
        fields["role"] = role_value(fields["role"])
    return getattr(directory_pb2, f"{step.rpc}Request")(**fields)


def _summary(counts: Counter) -> str:
    return ", ".join(f"{counts[noun]} {noun}" for noun in _ORDER if counts[noun]) or "nothing"


def _fail(name: str, problems) -> None:
    lines = [f"{name} {p} (nothing was imported)" for p in problems]
    for line in lines[:-1]:
        click.echo(f"error: {line}", err=True)
    raise ApiError(lines[-1], EXIT_INVALID)


def import_directory(api: Api, file: str, data: bytes, dry_run: bool, command_id: str) -> None:
    """Check the whole file, then (unless ``dry_run``) send what is missing."""
    name = os.path.basename(file)
    rows, problems = directory_csv.parse_directory(data)
    if problems:
        _fail(name, problems)
    api.state_hint = STATE_HINT
    digest = directory_csv.file_digest(command_id.encode() if command_id else data)
    steps, already, problems = directory_csv.plan_directory(rows, existing_directory(api), digest)
    if problems:
        _fail(name, problems)
    planned = Counter(_NOUN[s.rpc] for s in steps)
    if dry_run:
        if api.json:
            emit_json({"dry_run": True, "file": name, "would_create": dict(planned), "already_there": len(already),
                       "steps": [{"line": s.row.line, "rpc": s.rpc, **s.request} for s in steps]})
            return
        click.echo(f"dry run: {name} is valid — an import would create {_summary(planned)}; "
                   f"{len(already)} row(s) already in the directory; nothing stored")
        for step in steps:
            click.echo(f"  line {step.row.line}: {step.rpc} {' '.join(step.row.key[1:])}")
        return
    stub, created, retried = api.stub("directory"), Counter(), 0
    for done, step in enumerate(steps):
        try:
            result = api.call(getattr(stub, step.rpc), _request(step))
        except ApiError as e:
            what, _, todo = str(e).partition(" — ")
            stored = f"{done} of {len(steps)} calls were stored ({_summary(created) if done else 'none'})"
            raise ApiError(f"{name} line {step.row.line}: {what} — {stored}; fix the cause and import the file again: "
                           "what is stored is recognised and not sent twice", e.code) from None
        created[_NOUN[step.rpc]] += 1
        retried += result.already_stored
    if api.json:
        emit_json({"dry_run": False, "file": name, "created": dict(created), "already_stored": retried,
                   "already_there": len(already)})
        return
    if not steps:
        click.echo(f"already imported: every row of {name} is in the directory; nothing sent")
        return
    again = f" ({retried} stored by an earlier run of this file)" if retried else ""
    click.echo(f"imported {name}: {_summary(created)}{again}; {len(already)} row(s) were already in the directory")
