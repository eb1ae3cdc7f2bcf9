"""``okr people ...``: the people of the directory over the gRPC API
(okr.v1.DirectoryService, docs/identity.md). Same options, exit codes and one-line
errors as the other API commands (api.py):

    okr people list [--query Q] [--team T] [--include-inactive] [--page-size N] [--all]
    okr people show ID
    okr people add --id ID --name NAME [--email E] [--manager M] [--time-zone TZ] [--language en|zh-CN]
                   [--user-name U] [--external-id X]
    okr people update ID [--name N] [--email E] [--time-zone TZ] [--language L] [--user-name U] [--external-id X]
    okr people set-manager ID MANAGER | --none
    okr people deactivate ID [--reason R]      okr people reactivate ID [--reason R]
    okr people grant ID ROLE                   okr people revoke ID ROLE     (admin | auditor | observer)
    okr people move ID --from TEAM --to TEAM

Every write sends a command id (``--command-id``; default: a new one per run), so a run
that ended with exit 6 (the outcome unknown) is safely run again with the id its error
names. What the writes share with ``okr teams`` (teams.py) is here: ``send``, the list
pages, ``command_id_option``.
"""

from __future__ import annotations

import uuid

import click

from .api import EXIT_UNAVAILABLE, Api, ApiError, api_options, emit_json, to_dict
from .text import short, table

ROLES = ("admin", "auditor", "observer")
LANGUAGES = ("en", "zh-CN")
STATE_HINT = "check it with `okr people show ID` or `okr teams show ID`"


def command_id_option(f):
    return click.option("--command-id", default="", help="Idempotency key (default: a new one per run); after exit 6 "
                                                         "run the command again with the one the error names.")(f)


def send(api: Api, rpc: str, request, done: str) -> None:
    """One DirectoryService write with its command id: ``done`` (what was done) on stdout,
    or the CommandResult with ``--json``. A timeout or an unreachable service ends with
    the command id to run it again with (the outcome is unknown; that id stores nothing
    twice)."""
    request.command_id = request.command_id or f"cli-{uuid.uuid4().hex}"
    api.state_hint = STATE_HINT
    try:
        result = api.call(getattr(api.stub("directory"), rpc), request)
    except ApiError as e:
        if e.code == EXIT_UNAVAILABLE:
            what = str(e).split(" — ")[0]
            raise ApiError(f"{what} — the outcome is unknown: run the same command again with --command-id "
                           f"{request.command_id} (it stores nothing twice)", e.code) from None
        raise
    if api.json:
        emit_json(to_dict(result) | {"already_stored": result.already_stored, "command_id": request.command_id})
        return
    again = " (already stored by an earlier call with this --command-id)" if result.already_stored else \
        ("" if result.last_position else " (nothing to change)")
    click.echo(f"{done}{again}")


def every_page(api: Api, rpc: str, request, items: str, everything: bool):
    """The items of one page (``everything``: of every page) and the last page's answer."""
    stub, found = api.stub("directory"), []
    while True:
        page = api.call(getattr(stub, rpc), request)
        found.extend(getattr(page, items))
        if not everything or not page.next_page_token:
            return found, page
        request.page_token = page.next_page_token


def list_options(f):
    f = click.option("--all", "everything", is_flag=True, help="Every page, not just the first.")(f)
    f = click.option("--page-token", default="", help="The next page (the token a list printed).")(f)
    f = click.option("--page-size", type=click.IntRange(1, 500), default=100, show_default=True)(f)
    return click.option("--query", default="", help="Case-insensitive part of a name, e-mail, user name or id.")(f)


def show_page(api: Api, found, page, key: str, headers: list[str], row) -> None:
    """A list: ``--json`` {key: [...], next_page_token, total_size}; else the table (``row``
    of each item), how many of how many, and the next page's token if there is one."""
    if api.json:
        emit_json({key: [message_dict(x) for x in found], "next_page_token": page.next_page_token,
                   "total_size": page.total_size})
        return
    if found:
        click.echo("\n".join(table([row(x) for x in found], headers)))
    more = f"; next page: --page-token {page.next_page_token} (or --all)" if page.next_page_token else ""
    click.echo(f"{len(found)} of {page.total_size} {key}{more}")


def show_one(api: Api, item, title: str, details) -> None:
    """``show``: the item as JSON, or its title line and ``label: value`` lines."""
    if api.json:
        emit_json(message_dict(item))
        return
    click.echo(title)
    for label, value in details:
        click.echo(f"  {label + ':':<12} {value or '-'}")


def role_value(role: str) -> int:
    from okr.v1 import events_pb2

    return events_pb2.DirectoryRole.Value(f"DIRECTORY_ROLE_{role.upper()}")


def role_names(roles) -> list[str]:
    from okr.v1 import events_pb2

    return [events_pb2.DirectoryRole.Name(r).removeprefix("DIRECTORY_ROLE_").lower() for r in roles]


def message_dict(message) -> dict:
    """A Person or Team as JSON: every field (the empty ones too), a Person's roles as words."""
    from google.protobuf.json_format import MessageToDict

    data = MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return data | {"roles": role_names(message.roles)} if "roles" in data else data


@click.group("people")
def people_group():
    """The people of the directory: list, show, add, update, managers, leavers, roles, moves."""


@people_group.command("list")
@list_options
@click.option("--team", default="", help="Only members of this team.")
@click.option("--include-inactive", is_flag=True, help="Also people who left.")
@api_options
def list_command(api: Api, query, team, include_inactive, page_size, page_token, everything):
    """People of your tenant, by name then id."""
    from okr.v1 import directory_pb2

    request = directory_pb2.ListPeopleRequest(query=query, team_id=team, include_inactive=include_inactive,
                                              page_size=page_size, page_token=page_token)
    found, page = every_page(api, "ListPeople", request, "people", everything)
    show_page(api, found, page, "people", ["id", "name", "email", "manager", "teams", "roles", "active"],
              lambda p: [p.person_id, short(p.display_name, 30), p.email or "-", p.manager_id or "-",
                         ",".join(p.team_ids) or "-", ",".join(role_names(p.roles)) or "-",
                         "yes" if p.active else "left"])


@people_group.command("show")
@click.argument("person_id")
@api_options
def show_command(api: Api, person_id):
    """One person: details, teams, the teams they lead, roles."""
    from okr.v1 import directory_pb2

    p = api.call(api.stub("directory").GetPerson, directory_pb2.GetPersonRequest(person_id=person_id))
    show_one(api, p, f"{p.person_id}: {p.display_name}{'' if p.active else ' (left)'}", (
        ("e-mail", p.email), ("user name", p.user_name), ("manager", p.manager_id), ("time zone", p.time_zone),
        ("language", p.language), ("external id", p.external_id), ("teams", ", ".join(p.team_ids)),
        ("leads", ", ".join(p.lead_of_team_ids)), ("roles", ", ".join(role_names(p.roles))),
        ("version", str(p.version)), ("added", p.created_at), ("changed", p.updated_at)))


@people_group.command("add")
@click.option("--id", "person_id", required=True, help="The person's id in your tenant.")
@click.option("--name", required=True, help="Name as shown to others.")
@click.option("--email", default="", help="E-mail address.")
@click.option("--manager", default="", help="Their manager's person id.")
@click.option("--time-zone", default="", help="IANA time zone, e.g. Europe/Madrid (default: the tenant's).")
@click.option("--language", type=click.Choice(LANGUAGES), default=None, help="Language of their pages.")
@click.option("--user-name", default="", help="Sign-in name (default: the e-mail address).")
@click.option("--external-id", default="", help="The identity provider's id.")
@command_id_option
@api_options
def add_command(api: Api, person_id, name, email, manager, time_zone, language, user_name, external_id, command_id):
    """Add a person (active from now on)."""
    from okr.v1 import directory_pb2

    send(api, "AddPerson", directory_pb2.AddPersonRequest(
        person_id=person_id, display_name=name, email=email, manager_id=manager, time_zone=time_zone,
        language=language or "", user_name=user_name, external_id=external_id, command_id=command_id),
        f"person {person_id} added")


@people_group.command("update")
@click.argument("person_id")
@click.option("--name", default=None, help="Name as shown to others.")
@click.option("--email", default=None, help="E-mail address ('' to clear).")
@click.option("--time-zone", default=None, help="IANA time zone ('' for the tenant's).")
@click.option("--language", type=click.Choice([*LANGUAGES, ""]), default=None, help="Language ('' for the tenant's).")
@click.option("--user-name", default=None, help="Sign-in name.")
@click.option("--external-id", default=None, help="The identity provider's id.")
@command_id_option
@api_options
def update_command(api: Api, person_id, name, email, time_zone, language, user_name, external_id, command_id):
    """Change a person's details; the options left out keep their value."""
    from okr.v1 import directory_pb2

    changes = {k: v for k, v in (("display_name", name), ("email", email), ("time_zone", time_zone),
                                 ("language", language), ("user_name", user_name), ("external_id", external_id))
               if v is not None}
    if not changes:
        raise click.UsageError("give at least one of --name, --email, --time-zone, --language, --user-name, "
                               "--external-id")
    send(api, "UpdatePerson", directory_pb2.UpdatePersonRequest(person_id=person_id, command_id=command_id,
                                                                **changes),
         f"person {person_id} updated ({', '.join(changes)})")


@people_group.command("set-manager")
@click.argument("person_id")
@click.argument("manager", required=False)
@click.option("--none", "no_manager", is_flag=True, help="No manager from now on.")
@command_id_option
@api_options
def set_manager_command(api: Api, person_id, manager, no_manager, command_id):
    """Give PERSON_ID the manager MANAGER (or --none)."""
    from okr.v1 import directory_pb2

    if bool(manager) == no_manager:
        raise click.UsageError("give a MANAGER or --none (one of them)")
    send(api, "AssignManager", directory_pb2.AssignManagerRequest(person_id=person_id, manager_id=manager or "",
                                                                  command_id=command_id),
         f"person {person_id}: " + (f"manager {manager}" if manager else "no manager"))


def _activity_command(name: str, rpc: str, done: str, doc: str):
    @people_group.command(name, help=doc)
    @click.argument("person_id")
    @click.option("--reason", default="", help="Why (kept in the history).")
    @command_id_option
    @api_options
    def command(api: Api, person_id, reason, command_id):
        from okr.v1 import directory_pb2

        request = getattr(directory_pb2, f"{rpc}Request")(person_id=person_id, reason=reason, command_id=command_id)
        send(api, rpc, request, f"person {person_id} {done}")

    return command


deactivate_command = _activity_command("deactivate", "DeactivatePerson", "deactivated",
                                       "A person left: no sign-in, their sessions end; their history stays.")
reactivate_command = _activity_command("reactivate", "ReactivatePerson", "reactivated", "A person who left is back.")


def _role_command(name: str, rpc: str, verb: str, doc: str):
    @people_group.command(name, help=doc)
    @click.argument("person_id")
    @click.argument("role", type=click.Choice(ROLES, case_sensitive=False))
    @command_id_option
    @api_options
    def command(api: Api, person_id, role, command_id):
        from okr.v1 import directory_pb2

        request = getattr(directory_pb2, f"{rpc}Request")(person_id=person_id, role=role_value(role),
                                                          command_id=command_id)
        send(api, rpc, request, f"person {person_id}: {role.lower()} {verb}")

    return command


grant_command = _role_command("grant", "GrantRole", "granted", "Grant PERSON_ID a ROLE (admin, auditor, observer).")
revoke_command = _role_command("revoke", "RevokeRole", "revoked", "Take a granted ROLE back from PERSON_ID.")


@people_group.command("move")
@click.argument("person_id")
@click.option("--from", "from_team", required=True, help="The team they leave.")
@click.option("--to", "to_team", required=True, help="The team they join.")
@command_id_option
@api_options
def move_command(api: Api, person_id, from_team, to_team, command_id):
    """Move a person from one team to another (run again with its --command-id, it
    finishes a move cut short)."""
    from okr.v1 import directory_pb2

    send(api, "MovePersonToTeam", directory_pb2.MovePersonToTeamRequest(
        person_id=person_id, from_team_id=from_team, to_team_id=to_team, command_id=command_id),
        f"person {person_id} moved from {from_team} to {to_team}")
