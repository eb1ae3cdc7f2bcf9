"""The directory service's read model as revision ``0001_directory`` creates it, and as
okr_services.directory (its projection and queries) uses it: the people and teams of
each tenant (docs/adr/0033-the-directory-people-and-teams-as-event-sourced-aggregates.md),
fed from the bus. A later change is a new revision with a snapshot of its own
(docs/adr/0032-one-definition-per-table.md), never an edit here.

- ``directory_people``: one row per person; ``roles`` is the JSON list of the roles
  granted (``["ADMIN", "AUDITOR"]``, sorted); ``version`` the person's stream version.
  ``user_name_lower`` is the name they sign in with, lower-cased: ``user_name``, else
  ``email`` (the uniqueness check of user names compares it, on every backend the same
  way).
- ``directory_teams``: one row per team; ``version`` the team's stream version.
- ``directory_team_members`` / ``directory_team_leads``: one row per (team, person).
"""

from sqlalchemy import BigInteger, Boolean, Column, Index, MetaData, PrimaryKeyConstraint, String, Table, Text

from ..columns import tenant_id, time_us

metadata = MetaData()

#: Widths: a directory id (person, team: 1-200 printable characters), a name, an e-mail.
ID_LENGTH = 200
NAME_LENGTH = 200
EMAIL_LENGTH = 320


def _id(name: str, **kwargs) -> Column:
    kwargs.setdefault("nullable", False)
    return Column(name, String(ID_LENGTH), **kwargs)


def _aggregate_columns() -> list[Column]:
    """What a person's and a team's row both end with: active (or left / archived), the
    stream version the row reflects, when it was created and last changed."""
    return [Column("active", Boolean, nullable=False), Column("version", BigInteger, nullable=False),
            time_us("created_at_us"), time_us("updated_at_us")]


people = Table(
    "directory_people",
    metadata,
    tenant_id(),
    _id("person_id"),
    Column("display_name", String(NAME_LENGTH), nullable=False),
    Column("email", String(EMAIL_LENGTH), nullable=False),
    _id("manager_id"),
    Column("time_zone", String(64), nullable=False),
    Column("language", String(35), nullable=False),
    Column("user_name", String(EMAIL_LENGTH), nullable=False),
    Column("user_name_lower", String(EMAIL_LENGTH), nullable=False),
    Column("external_id", String(ID_LENGTH), nullable=False),
    Column("roles", Text, nullable=False),  # JSON list
    *_aggregate_columns(),
    PrimaryKeyConstraint("tenant_id", "person_id", name="pk_directory_people"),
)
Index("ix_directory_people_user_name", people.c.tenant_id, people.c.user_name_lower)
Index("ix_directory_people_email", people.c.tenant_id, people.c.email)
Index("ix_directory_people_external_id", people.c.tenant_id, people.c.external_id)
Index("ix_directory_people_order", people.c.tenant_id, people.c.display_name, people.c.person_id)

teams = Table(
    "directory_teams",
    metadata,
    tenant_id(),
    _id("team_id"),
    Column("name", String(NAME_LENGTH), nullable=False),
    _id("parent_team_id"),
    Column("external_id", String(ID_LENGTH), nullable=False),
    *_aggregate_columns(),
    PrimaryKeyConstraint("tenant_id", "team_id", name="pk_directory_teams"),
)
Index("ix_directory_teams_parent", teams.c.tenant_id, teams.c.parent_team_id)
Index("ix_directory_teams_order", teams.c.tenant_id, teams.c.name, teams.c.team_id)


def _pairs(name: str) -> Table:
    table = Table(name, metadata, tenant_id(), _id("team_id"), _id("person_id"),
                  PrimaryKeyConstraint("tenant_id", "team_id", "person_id", name=f"pk_{name}"))
    Index(f"ix_{name}_person", table.c.tenant_id, table.c.person_id)
    return table


team_members = _pairs("directory_team_members")
team_leads = _pairs("directory_team_leads")
