"""``okr teams ...``: the teams of the directory over the gRPC API
(okr.v1.DirectoryService, docs/identity.md). Same options, exit codes, one-line errors
and command ids as ``okr people`` (people.py):

    okr teams list [--query Q] [--parent P] [--include-archived] [--page-size N] [--all]
    okr teams show ID
    okr teams create --id ID --name NAME [--parent P] [--external-id X]
    okr teams rename ID NAME
    okr teams move ID --parent P | --top-level
    okr teams archive ID [--reason R]
    okr teams add-member TEAM PERSON         okr teams remove-member TEAM PERSON
    okr teams add-lead TEAM PERSON           okr teams remove-lead TEAM PERSON
"""

from __future__ import annotations

import click

from .api import Api, api_options
from .people import command_id_option, every_page, list_options, send, show_one, show_page
from .text import short


@click.group("teams")
def teams_group():
    """The teams of the directory: list, show, create, rename, move, archive, members, leads."""


@teams_group.command("list")
@list_options
@click.option("--parent", default="", help="Only teams directly below this one.")
@click.option("--include-archived", is_flag=True, help="Also archived teams.")
@api_options
def list_command(api: Api, query, parent, include_archived, page_size, page_token, everything):
    """Teams of your tenant, by name then id."""
    from okr.v1 import directory_pb2

    request = directory_pb2.ListTeamsRequest(query=query, parent_team_id=parent, include_archived=include_archived,
                                             page_size=page_size, page_token=page_token)
    found, page = every_page(api, "ListTeams", request, "teams", everything)
    show_page(api, found, page, "teams", ["id", "name", "parent", "leads", "members", "active"],
              lambda t: [t.team_id, short(t.name, 30), t.parent_team_id or "-", ",".join(t.lead_ids) or "-",
                         len(t.member_ids), "yes" if t.active else "archived"])


@teams_group.command("show")
@click.argument("team_id")
@api_options
def show_command(api: Api, team_id):
    """One team: its parent, leads, members and the teams below it."""
    from okr.v1 import directory_pb2

    t = api.call(api.stub("directory").GetTeam, directory_pb2.GetTeamRequest(team_id=team_id))
    show_one(api, t, f"{t.team_id}: {t.name}{'' if t.active else ' (archived)'}", (
        ("parent", t.parent_team_id), ("external id", t.external_id), ("leads", ", ".join(t.lead_ids)),
        ("members", ", ".join(t.member_ids)), ("below", ", ".join(t.child_team_ids)), ("version", str(t.version)),
        ("created", t.created_at), ("changed", t.updated_at)))


@teams_group.command("create")
@click.option("--id", "team_id", required=True, help="The team's id in your tenant.")
@click.option("--name", required=True, help="Its name.")
@click.option("--parent", default="", help="The team it is part of (default: top level).")
@click.option("--external-id", default="", help="The identity provider's id of the group it mirrors.")
@command_id_option
@api_options
def create_command(api: Api, team_id, name, parent, external_id, command_id):
    """Create a team."""
    from okr.v1 import directory_pb2

    send(api, "CreateTeam", directory_pb2.CreateTeamRequest(team_id=team_id, name=name, parent_team_id=parent,
                                                            external_id=external_id, command_id=command_id),
         f"team {team_id} created" + (f" below {parent}" if parent else ""))


@teams_group.command("rename")
@click.argument("team_id")
@click.argument("name")
@command_id_option
@api_options
def rename_command(api: Api, team_id, name, command_id):
    """Give TEAM_ID the name NAME."""
    from okr.v1 import directory_pb2

    send(api, "RenameTeam", directory_pb2.RenameTeamRequest(team_id=team_id, name=name, command_id=command_id),
         f"team {team_id} renamed to {name!r}")


@teams_group.command("move")
@click.argument("team_id")
@click.option("--parent", default=None, help="Its parent team from now on.")
@click.option("--top-level", is_flag=True, help="No parent from now on.")
@command_id_option
@api_options
def move_command(api: Api, team_id, parent, top_level, command_id):
    """Put a team under another parent (--parent P) or at the top level (--top-level)."""
    from okr.v1 import directory_pb2

    if bool(parent) == top_level:
        raise click.UsageError("give --parent P or --top-level (one of them)")
    send(api, "MoveTeam", directory_pb2.MoveTeamRequest(team_id=team_id, parent_team_id=parent or "",
                                                        command_id=command_id),
         f"team {team_id} moved " + (f"below {parent}" if parent else "to the top level"))


@teams_group.command("archive")
@click.argument("team_id")
@click.option("--reason", default="", help="Why (kept in the history).")
@command_id_option
@api_options
def archive_command(api: Api, team_id, reason, command_id):
    """Dissolve a team (no team may be below it)."""
    from okr.v1 import directory_pb2

    send(api, "ArchiveTeam", directory_pb2.ArchiveTeamRequest(team_id=team_id, reason=reason, command_id=command_id),
         f"team {team_id} archived")


def _link_command(name: str, rpc: str, done: str, doc: str):
    @teams_group.command(name, help=doc)
    @click.argument("team_id")
    @click.argument("person_id")
    @command_id_option
    @api_options
    def command(api: Api, team_id, person_id, command_id):
        from okr.v1 import directory_pb2

        request = getattr(directory_pb2, f"{rpc}Request")(team_id=team_id, person_id=person_id, command_id=command_id)
        send(api, rpc, request, done.format(team=team_id, person=person_id))

    return command


add_member_command = _link_command("add-member", "AddTeamMember", "{person} is a member of {team}",
                                   "Make PERSON_ID a member of TEAM_ID.")
remove_member_command = _link_command("remove-member", "RemoveTeamMember", "{person} is no longer a member of {team}",
                                      "Take PERSON_ID out of TEAM_ID.")
add_lead_command = _link_command("add-lead", "AssignTeamLead", "{person} leads {team}",
                                 "Make PERSON_ID a lead of TEAM_ID (and so of every team below it).")
remove_lead_command = _link_command("remove-lead", "RemoveTeamLead", "{person} no longer leads {team}",
                                    "PERSON_ID no longer leads TEAM_ID.")
