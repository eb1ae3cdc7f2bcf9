"""The directory service: the people and teams of each tenant
(docs/adr/0033-the-directory-people-and-teams-as-event-sourced-aggregates.md).

    nameko run --config services/config.yaml okr_services.directory.service

- **Commands**: one RPC per directory command (okr_shared.domain.commands, "the
  directory"), run on the event store by the shared executor as the goal service's are
  (keyword fields plus an optional ``command_id``; the same replies and refusals), and
  ``move_person_to_team`` (RemoveTeamMember then AddTeamMember, under command ids
  derived from the call's, so a retry finishes a move cut short). Before some commands
  the service checks what only the whole tenant knows, against its read model (which
  lags the store by milliseconds; docs/identity.md): user names and e-mail addresses
  are unique among the tenant's active people (PreconditionFailed ``user_name_taken`` /
  ``email_taken``), an active admin remains after a revocation or a deactivation
  (``last_admin``), a team with active child teams is not archived
  (``team_has_children``).
- **Read model**: ``@okr_event_handler("directory.read-model", ordered=True)`` on the
  directory event types, applied (``readmodel.apply_event``) in the consumer layer's
  transaction with its offset; a new, empty database catches up on the whole history
  from the store (the layer's gap filling).
- **Queries** (``queries``): get_person, list_people, get_team, list_teams and
  resolve_person (the gateway's view of a signed-in person: active, role, teams).

The tenant is the call's context data ``tenant_id`` (okr_services.dependencies.Caller):
another tenant's person or team answers exactly like one that does not exist.

Configuration (environment): ``OKR_DIRECTORY_DATABASE_URL`` (default
``sqlite:///$OKR_DATA_DIR/directory.db``) for the read model, ``OKR_DATABASE_URL`` for
the event store.
"""

from __future__ import annotations

from okr_shared.bus.consumer import ConsumerDatabase, okr_event_handler
from okr_shared.domain.commands import (
    AddPerson,
    AddTeamMember,
    ArchiveTeam,
    AssignManager,
    AssignTeamLead,
    CreateTeam,
    DeactivatePerson,
    GrantRole,
    MoveTeam,
    ReactivatePerson,
    RemoveTeamLead,
    RemoveTeamMember,
    RenameTeam,
    RevokeRole,
    UpdatePerson,
)
from okr_shared.domain.errors import PreconditionFailed
from okr_shared.service_layer.executor import created_id
from okr_services.dependencies import AggregateService
from okr_services.rpc import command, query

from . import queries, readmodel


class DirectoryDatabase(ConsumerDatabase):
    """The consumer database (``OKR_DIRECTORY_DATABASE_URL``, default
    ``sqlite:///$OKR_DATA_DIR/<service name>.db``) with the read model's tables migrated
    at start (histories ``consumer`` and ``directory``). Workers get this provider
    itself: ``.engine``, ``.transaction()``."""

    def setup(self):
        super().setup()
        readmodel.migrate_schema(self.engine)

    def get_dependency(self, worker_ctx):
        return self


def _command_rpc(command_class, fields: str, check=None):
    """The RPC of one command: runs ``command_class`` with the call's keyword arguments
    (``fields``: the command's fields, ``?`` marking the optional ones; plus
    ``command_id``?) as the caller, after ``check(self, tenant, fields)`` (a refusal
    raised there writes nothing)."""

    def run(self, **fields):
        if check is not None:
            check(self, self.caller.require_tenant(), fields)
        return self.aggregates.run(command_class, fields, self.caller)

    run.__doc__ = f"{command_class.__name__}: {fields}"
    return command(run)


# ------------------------------------------------------------ pre-command checks


def _text(value) -> str:
    return value.strip() if isinstance(value, str) else ""


def _check_unique(conn, tenant: str, person_id: str, user_name: str, email: str) -> None:
    """``user_name`` (empty: the e-mail address) and ``email`` held by no other active
    person of the tenant."""
    user_name = user_name or email
    if user_name and (holder := queries.holder_of(conn, tenant, "user_name", user_name, person_id)):
        raise PreconditionFailed("user_name_taken", f"user name {user_name!r} is taken by another active person "
                                                    f"({holder!r})")
    if email and (holder := queries.holder_of(conn, tenant, "email", email, person_id)):
        raise PreconditionFailed("email_taken", f"e-mail address {email!r} is taken by another active person "
                                                f"({holder!r})")


def _check_add_person(service, tenant: str, fields: dict) -> None:
    """A retry of a call that left the id to the service checks against the id the first
    call created (``created_id``), so the person it added does not count as another."""
    person_id, command_id = _text(fields.get("person_id")), fields.get("command_id")
    if not person_id and isinstance(command_id, str) and command_id:
        person_id = created_id(tenant, command_id)
    with service.db.engine.connect() as conn:
        _check_unique(conn, tenant, person_id, _text(fields.get("user_name")), _text(fields.get("email")).lower())


def _check_update_person(service, tenant: str, fields: dict) -> None:
    """Only what the update changes: the user name (empty: the e-mail address) and the
    e-mail address it leaves the person with, when it sets either (None keeps a field)."""
    changes_email, changes_user_name = fields.get("email") is not None, fields.get("user_name") is not None
    if not (changes_email or changes_user_name):
        return
    person_id = _text(fields.get("person_id"))
    with service.db.engine.connect() as conn:
        row = queries.person_row(conn, tenant, person_id) or {"user_name": "", "email": ""}
        email = _text(fields["email"]).lower() if changes_email else row["email"]
        user_name = _text(fields["user_name"]) if changes_user_name else row["user_name"]
        _check_unique(conn, tenant, person_id, user_name or email, email if changes_email else "")


def _check_admin_remains(conn, tenant: str, person_id: str, what: str) -> None:
    if not person_id:  # the command refuses it, naming person_id
        return
    row = queries.person_row(conn, tenant, person_id)
    if row is None or not row["active"] or "ADMIN" not in row["roles"]:
        return
    if queries.other_active_admins(conn, tenant, person_id) == 0:
        raise PreconditionFailed("last_admin", f"{what} would leave the tenant without an active admin "
                                               f"({person_id!r} is the last one)")


def _check_revoke_role(service, tenant: str, fields: dict) -> None:
    if readmodel.role_name(_text(fields.get("role")).upper()) != "ADMIN":
        return
    with service.db.engine.connect() as conn:
        _check_admin_remains(conn, tenant, _text(fields.get("person_id")), "revoking ADMIN")


def _check_deactivate_person(service, tenant: str, fields: dict) -> None:
    with service.db.engine.connect() as conn:
        _check_admin_remains(conn, tenant, _text(fields.get("person_id")), "deactivating this person")


def _check_archive_team(service, tenant: str, fields: dict) -> None:
    team_id = _text(fields.get("team_id"))
    if not team_id:  # the command refuses it, naming team_id
        return
    with service.db.engine.connect() as conn:
        children = queries.active_child_teams(conn, tenant, team_id)
    if children:
        raise PreconditionFailed("team_has_children", f"team {team_id!r} has active child teams "
                                                      f"({', '.join(children)}): move or archive them first")


def _move_reply(removed: dict, added: dict) -> dict:
    """The reply of a move: the addition's, with what both commands wrote."""
    return dict(added, positions=[*removed["positions"], *added["positions"]],
                event_types=[*removed["event_types"], *added["event_types"]],
                already_stored=bool(removed["already_stored"] and added["already_stored"]))


# ----------------------------------------------------------------------- service


def make_service(name: str = "directory", *, queue: str = readmodel.CONSUMER, db_url: str | None = None,
                 event_store_url: str | None = None, **handler_options):
    """The directory service class. Production: ``DirectoryService`` (this module's
    defaults). Tests give their own name, queue, exchanges (``exchange=``,
    ``dead_letter_exchange=``) and databases."""

    class DirectoryService(AggregateService):
        db = DirectoryDatabase(db_url, url_env="OKR_DIRECTORY_DATABASE_URL", event_store_url=event_store_url)

        # ------------------------------------------------------------ people

        add_person = _command_rpc(AddPerson, "person_id?, display_name, email?, manager_id?, time_zone?, "
                                             "language?, user_name? (default: email), external_id?",
                                  _check_add_person)
        update_person = _command_rpc(UpdatePerson, "person_id, display_name?, email?, time_zone?, language?, "
                                                   "user_name?, external_id? (None keeps a field)",
                                     _check_update_person)
        assign_manager = _command_rpc(AssignManager, "person_id, manager_id? (empty: none)")
        deactivate_person = _command_rpc(DeactivatePerson, "person_id, reason?", _check_deactivate_person)
        reactivate_person = _command_rpc(ReactivatePerson, "person_id, reason?")
        grant_role = _command_rpc(GrantRole, "person_id, role (ADMIN | AUDITOR | OBSERVER)")
        revoke_role = _command_rpc(RevokeRole, "person_id, role (ADMIN | AUDITOR | OBSERVER)", _check_revoke_role)

        # ------------------------------------------------------------- teams

        create_team = _command_rpc(CreateTeam, "team_id?, name, parent_team_id?, external_id?")
        rename_team = _command_rpc(RenameTeam, "team_id, name")
        move_team = _command_rpc(MoveTeam, "team_id, parent_team_id? (empty: top level)")
        archive_team = _command_rpc(ArchiveTeam, "team_id, reason?", _check_archive_team)
        add_team_member = _command_rpc(AddTeamMember, "team_id, person_id")
        remove_team_member = _command_rpc(RemoveTeamMember, "team_id, person_id")
        assign_team_lead = _command_rpc(AssignTeamLead, "team_id, person_id")
        remove_team_lead = _command_rpc(RemoveTeamLead, "team_id, person_id")

        @command
        def move_person_to_team(self, person_id=None, from_team_id=None, to_team_id=None, command_id=None):
            """MovePersonToTeam: person_id, from_team_id, to_team_id, command_id? — RemoveTeamMember
            (``<command_id>:remove``) then AddTeamMember (``<command_id>:add``): a retry
            with the same command id finishes a move cut short and stores nothing twice."""
            def sub(suffix):
                return None if not command_id else f"{command_id}:{suffix}"

            removed = self.aggregates.run(RemoveTeamMember, {"team_id": from_team_id, "person_id": person_id,
                                                             "command_id": sub("remove")}, self.caller)
            added = self.aggregates.run(AddTeamMember, {"team_id": to_team_id, "person_id": person_id,
                                                        "command_id": sub("add")}, self.caller)
            return _move_reply(removed, added)

        # ----------------------------------------------------------- queries

        def _read(self, query_fn, *args, **kwargs):
            tenant = self.caller.require_tenant()
            with self.db.engine.connect() as conn:
                return query_fn(conn, tenant, *args, **kwargs)

        @query
        def get_person(self, person_id=None):
            """One person with team_ids, lead_of_team_ids, roles, version, created_at/updated_at."""
            return self._read(queries.get_person, person_id)

        @query
        def list_people(self, query="", team_id="", include_inactive=False, page_size=0, page_token=""):
            """A page of people by display name then id: {people, next_page_token, total_size}."""
            return self._read(queries.list_people, query or "", team_id or "", bool(include_inactive),
                              page_size, page_token or "")

        @query
        def get_team(self, team_id=None):
            """One team with lead_ids, member_ids, child_team_ids, version, created_at/updated_at."""
            return self._read(queries.get_team, team_id)

        @query
        def list_teams(self, query="", parent_team_id="", include_archived=False, page_size=0, page_token=""):
            """A page of teams by name then id: {teams, next_page_token, total_size}."""
            return self._read(queries.list_teams, query or "", parent_team_id or "", bool(include_archived),
                              page_size, page_token or "")

        @query
        def resolve_person(self, person_id=None):
            """The gateway's view of a person: {active, role, teams, person}."""
            return self._read(queries.resolve_person, person_id)

        # ------------------------------------------------------------ events

        @okr_event_handler(queue, event_types=readmodel.EVENT_TYPES, ordered=True, **handler_options)
        def on_event(self, envelope, conn):
            readmodel.apply_event(conn, readmodel.DirectoryEvent.of_envelope(envelope))

    DirectoryService.name = name
    return DirectoryService


DirectoryService = make_service()
