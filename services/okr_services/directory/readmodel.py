"""The directory's read model: the people and teams of each tenant as the directory
events left them, in the tables of the Alembic history ``directory``
(okr_shared.db.migrations.directory.tables_0001), next to the consumer layer's offsets in
the service's own database (``OKR_DIRECTORY_DATABASE_URL``).

``apply_event(conn, event)`` projects one directory event in the caller's transaction
(the consumer layer's: it commits with the offset). It is idempotent on its own too: an
event whose stream version is not above the row's ``version`` changes nothing, so a
replay of history already applied (a rebuild over live tables, a redelivery) leaves the
tables as they are.

What the events mean here (protos/okr/v1/events.proto, "Directory"): a person or a team
is a row from its first event on; ``RoleGranted`` / ``RoleRevoked`` edit the person's
``roles``; members and leads are rows of their own; ``TeamArchived`` makes the team
inactive and takes its members and leads out (an archived team has none).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, Table, delete, insert, select, update

from okr_shared.clock import now_us
from okr_shared.db import migrate
from okr_shared.db.migrations.consumer.tables_0001 import offsets
# the tables: the directory history's snapshot of its newest revision (docs/adr/0032-…)
from okr_shared.db.migrations.directory.tables_0001 import people, team_leads, team_members, teams

#: The ordered consumer's queue (and its name in okr_consumer_offsets).
CONSUMER = "directory.read-model"

PERSON_EVENTS = ("PersonAdded", "PersonDetailsChanged", "PersonManagerAssigned", "PersonDeactivated",
                 "PersonReactivated", "RoleGranted", "RoleRevoked")
TEAM_EVENTS = ("TeamCreated", "TeamRenamed", "TeamMoved", "TeamMemberAdded", "TeamMemberRemoved",
               "TeamLeadAssigned", "TeamLeadRemoved", "TeamArchived")
#: Every event type the projection applies (what the consumer binds).
EVENT_TYPES = tuple(f"okr.v1.{name}" for name in (*PERSON_EVENTS, *TEAM_EVENTS))

#: The roles a person can be granted, as the commands name them (``GrantRole.role``).
ROLES = ("ADMIN", "AUDITOR", "OBSERVER")
_ROLE_PREFIX = "DIRECTORY_ROLE_"

#: The details PersonAdded and PersonDetailsChanged carry, as columns.
_DETAILS = ("display_name", "email", "time_zone", "language", "user_name", "external_id")


@dataclass(frozen=True)
class DirectoryEvent:
    """An event as the projection needs it: what the bus's EventEnvelope and the store's
    StoredEvent both tell (``data``: the payload as the store keeps it, payload_to_dict)."""

    tenant_id: str
    stream_id: str
    version: int  # the stream version
    event_type: str  # okr.v1.PersonAdded
    data: dict[str, Any] = field(default_factory=dict)
    recorded_at_us: int = 0

    @classmethod
    def of_recorded(cls, e) -> "DirectoryEvent":
        """From the store's RecordedEvent."""
        return cls(e.tenant_id, e.stream_id, e.stream_version, e.event_type, e.data, e.recorded_at_us)

    @classmethod
    def of_envelope(cls, envelope) -> "DirectoryEvent":
        from okr_shared.readmodels.events import BusEvent

        event = BusEvent(envelope)
        return cls(event.tenant_id, event.stream_id, envelope.stream_version, event.event_type, event.data,
                   event.recorded_at_us)


def migrate_schema(engine: Engine) -> None:
    """The consumer layer's tables and the read model's, by the Alembic histories
    ``consumer`` and ``directory`` (idempotent; safe from several instances at once)."""
    migrate(engine, "consumer")
    migrate(engine, "directory")


def role_name(value: str) -> str:
    """``DIRECTORY_ROLE_ADMIN`` (a payload's enum) or ``ADMIN`` → ``ADMIN``."""
    return value[len(_ROLE_PREFIX):] if value.startswith(_ROLE_PREFIX) else value


def apply_event(conn, event: DirectoryEvent) -> bool:
    """Project one directory event onto the tables in ``conn``'s transaction. Returns
    whether it changed anything (False: another event type, or already applied)."""
    name = event.event_type.rpartition(".")[2]
    if name in PERSON_EVENTS:
        table, key, created, first, change = people, "person_id", "PersonAdded", _new_person, _person_change
    elif name in TEAM_EVENTS:
        table, key, created, first, change = teams, "team_id", "TeamCreated", _new_team, _team_change
    else:
        return False
    tenant, id = event.tenant_id, event.data.get(key, "")
    where = (table.c.tenant_id == tenant, table.c[key] == id)
    row = conn.execute(select(table).where(*where)).mappings().first()
    if name == created:
        if row is not None:
            return False
        conn.execute(insert(table).values(tenant_id=tenant, active=True, version=event.version,
                                          created_at_us=event.recorded_at_us, updated_at_us=event.recorded_at_us,
                                          **{key: id}, **first(event.data)))
        return True
    if row is None or row["version"] >= event.version:
        return False
    values = {"version": event.version, "updated_at_us": event.recorded_at_us, **change(conn, name, event, row)}
    conn.execute(update(table).where(*where).values(values))
    return True


def _sign_in_name(details: dict) -> str:
    """The name a person signs in with, lower-cased: their user name, else their e-mail
    address (PersonAdded.user_name: "empty: the e-mail address")."""
    return (details["user_name"] or details["email"]).lower()


def _new_person(d: dict) -> dict:
    details = {k: d.get(k, "") for k in _DETAILS}
    return dict(details, manager_id=d.get("manager_id", ""), roles="[]", user_name_lower=_sign_in_name(details))


def _person_change(conn, name: str, event: DirectoryEvent, row) -> dict:
    d = event.data
    if name == "PersonDetailsChanged":
        details = {k: d.get(k, "") for k in _DETAILS}
        return dict(details, user_name_lower=_sign_in_name(details))
    if name == "PersonManagerAssigned":
        return {"manager_id": d.get("new_manager_id", "")}
    if name in ("PersonDeactivated", "PersonReactivated"):
        return {"active": name == "PersonReactivated"}
    roles = set(json.loads(row["roles"]))  # RoleGranted / RoleRevoked
    role = role_name(d.get("role", ""))
    if name == "RoleGranted":
        roles.add(role)
    else:
        roles.discard(role)
    return {"roles": json.dumps(sorted(roles))}


def _new_team(d: dict) -> dict:
    return {"name": d.get("name", ""), "parent_team_id": d.get("parent_team_id", ""),
            "external_id": d.get("external_id", "")}


def _team_change(conn, name: str, event: DirectoryEvent, row) -> dict:
    d, tenant, team_id = event.data, event.tenant_id, row["team_id"]
    person_id = d.get("person_id", "")
    if name == "TeamRenamed":
        return {"name": d.get("new_name", ""), "external_id": d.get("external_id", "")}
    if name == "TeamMoved":
        return {"parent_team_id": d.get("new_parent_team_id", "")}
    if name in ("TeamMemberAdded", "TeamLeadAssigned"):
        _add_pair(conn, team_members if name == "TeamMemberAdded" else team_leads, tenant, team_id, person_id)
        return {}
    if name in ("TeamMemberRemoved", "TeamLeadRemoved"):
        _remove_pairs(conn, team_members if name == "TeamMemberRemoved" else team_leads, tenant, team_id, person_id)
        return {}
    for table in (team_members, team_leads):  # TeamArchived: no members, no leads from now on
        _remove_pairs(conn, table, tenant, team_id)
    return {"active": False}


def _add_pair(conn, table: Table, tenant: str, team_id: str, person_id: str) -> None:
    exists = conn.execute(select(table.c.person_id).where(
        table.c.tenant_id == tenant, table.c.team_id == team_id, table.c.person_id == person_id)).first()
    if exists is None:
        conn.execute(insert(table).values(tenant_id=tenant, team_id=team_id, person_id=person_id))


def _remove_pairs(conn, table: Table, tenant: str, team_id: str, person_id: str | None = None) -> None:
    where = [table.c.tenant_id == tenant, table.c.team_id == team_id]
    if person_id is not None:
        where.append(table.c.person_id == person_id)
    conn.execute(delete(table).where(*where))


def rebuild(engine: Engine, store, consumer: str = CONSUMER) -> int:
    """The read model made again from the event store ``store``, in one transaction on
    ``engine`` (the service stopped, or its consumer goes on from the offset this sets):
    every row deleted, every directory event up to the store's head applied in order, the
    consumer's offset set to that head. Returns the events applied. (An empty database
    needs none of this: the consumer catches up on the whole history by itself.)"""
    head = store.head_position()
    applied = 0
    with engine.begin() as conn:
        clear(conn)
        for recorded in store.read_all(1, to_position=head, event_types=EVENT_TYPES):
            applied += apply_event(conn, DirectoryEvent.of_recorded(recorded))
        conn.execute(delete(offsets).where(offsets.c.consumer == consumer))
        conn.execute(insert(offsets).values(consumer=consumer, last_position=head, updated_at_us=now_us()))
    return applied


def clear(conn, tenant: str | None = None) -> None:
    """Delete the read model's rows (a tenant's, or all): before a rebuild, and tests."""
    for table in (team_leads, team_members, teams, people):
        conn.execute(delete(table) if tenant is None else delete(table).where(table.c.tenant_id == tenant))
