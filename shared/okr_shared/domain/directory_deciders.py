"""Deciders of the directory: people and teams (docs/adr/0033, docs/identity.md).

Registered on ``deciders.handle`` like the method's; ``target_stream`` names
``person-<person_id>`` or ``team-<team_id>``. What another stream must say (the manager
exists and is active, the new parent team is not below the team, the person to add is
active) is read through ``ctx.get``. A command that would change nothing — granting a
role already held, adding a member or a lead already there, details, a manager, a name
or a parent as they are — returns no events (the executor stores nothing and answers OK).

Left to the directory service, which needs its read model: unique user names and
e-mail addresses among the active people, at least one active admin left after a
revocation or deactivation (``last_admin``), and no archiving of a team with active
teams below it (``team_has_children``: a team's stream does not know its children).
"""

from __future__ import annotations

from okr.v1 import events_pb2 as ev

from . import commands as c
from . import validation as v
from .deciders import Context, _a, _exists, _new, handle
from .errors import NotFound, PreconditionFailed, ValidationError
from .state import Person, Team

ROLES = ("ADMIN", "AUDITOR", "OBSERVER")
#: How far a manager or parent chain is walked (each step reads a stream): a deeper
#: organisation is refused rather than read without end.
MAX_CHAIN = 100


# ----------------------------------------------------------------------- lookups


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
    _no_cycle(ctx, manager, person_id, "person", "manager_id",
              "manager_cycle", f"{manager_id!r} reports (through their managers) to {person_id!r}")
    return manager_id


def _no_cycle(ctx: Context, node, own_id: str, category: str, up: str, rule: str, why: str) -> None:
    """Walk up from ``node`` along ``up`` (manager_id, parent_team_id); reaching
    ``own_id`` would close a circle. Bounded by MAX_CHAIN steps."""
    seen: set[str] = set()
    id_field = f"{category}_id"
    while node is not None:
        node_id = getattr(node, id_field)
        if node_id == own_id:
            raise PreconditionFailed(rule, f"would form a circle: {why}")
        if node_id in seen:  # a circle already stored above (not through own_id): stop
            return
        seen.add(node_id)
        if len(seen) > MAX_CHAIN:
            raise PreconditionFailed(f"{rule.partition('_')[0]}_chain_too_long",
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
    _no_cycle(ctx, parent, team_id, "team", "parent_team_id",
              "team_cycle", f"{parent_team_id!r} is below {team_id!r}")
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
