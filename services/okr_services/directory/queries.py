"""The directory's reads, over its read model (``readmodel``), for one tenant at a time:
another tenant's person or team answers exactly like one that does not exist.

- ``get_person`` / ``get_team``: one row with its relations, or NotFound("person" /
  "team", id);
- ``list_people`` / ``list_teams``: pages in a stable order (people by display name then
  id, teams by name then id), a case-insensitive substring ``query``, ``page_size`` 1-500
  (0: 100), an opaque ``page_token`` (the last row's sort key, base64url of JSON) and the
  ``total_size`` of every match;
- ``resolve_person``: what the gateway needs to authorise a signed-in person (ADR 0033
  "Roles are derived");
- the facts the service checks before a command (``holder_of``, ``other_active_admins``,
  ``active_child_teams``).

Instants are ISO-8601 UTC (``2026-12-07T23:51:40.123456Z``).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, func, or_, select

from okr_shared.db.migrations.directory.tables_0001 import people, team_leads, team_members, teams
from okr_shared.domain.errors import NotFound, ValidationError

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


def iso_utc(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------------ paging


def page_size_of(value) -> int:
    """``page_size``: 1-500; 0 or None: 100; anything else: ValidationError naming it."""
    if value is None or value == 0:
        return DEFAULT_PAGE_SIZE
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
        raise ValidationError("page_size", f"must be a whole number from 1 to {MAX_PAGE_SIZE} (0: "
                                           f"{DEFAULT_PAGE_SIZE}), not {value!r}")
    return value


def encode_token(key: tuple[str, str]) -> str:
    """The next page's token: the last row's sort key, base64url of JSON (opaque to callers)."""
    return base64.urlsafe_b64encode(json.dumps(list(key), ensure_ascii=False).encode()).decode().rstrip("=")


def decode_token(token) -> tuple[str, str] | None:
    """The sort key a ``page_token`` holds; empty/None: the first page. Anything but a token
    this module made: ValidationError naming ``page_token``."""
    if token is None or token == "":
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    except (TypeError, ValueError, binascii.Error, UnicodeDecodeError):
        key = None
    if not (isinstance(key, list) and len(key) == 2 and all(isinstance(k, str) for k in key)):
        raise ValidationError("page_token", "not a page token of this list (pass next_page_token as it came)")
    return key[0], key[1]


def _page(conn, base, order: tuple, query_columns: tuple, query, page_size, page_token):
    """One page of ``base`` (a select of the rows that match the filters) in ``order``
    (two columns: the sort key), searched by ``query`` over ``query_columns``: (rows,
    next token, total)."""
    size = page_size_of(page_size)
    after = decode_token(page_token)
    if query:
        needle = str(query).lower()
        base = base.where(or_(*(func.lower(c).contains(needle, autoescape=True) for c in query_columns)))
    total = conn.execute(select(func.count()).select_from(base.subquery())).scalar_one()
    first, second = order
    if after is not None:
        base = base.where(or_(first > after[0], and_(first == after[0], second > after[1])))
    rows = conn.execute(base.order_by(first, second).limit(size + 1)).mappings().all()
    more = len(rows) > size
    rows = rows[:size]
    token = encode_token((rows[-1][first.name], rows[-1][second.name])) if more else ""
    return rows, token, total


# ------------------------------------------------------------------------ people


def _ids_by(conn, table, tenant: str, key_column: str, keys: list[str], value_column: str) -> dict[str, list[str]]:
    """``{key: sorted values}`` of a pair table (members or leads) for the keys given."""
    out: dict[str, list[str]] = {k: [] for k in keys}
    if not keys:
        return out
    rows = conn.execute(select(table.c[key_column], table.c[value_column]).where(
        table.c.tenant_id == tenant, table.c[key_column].in_(keys)).order_by(table.c[value_column]))
    for key, value in rows:
        out[key].append(value)
    return out


def _people(conn, tenant: str, rows) -> list[dict[str, Any]]:
    ids = [r["person_id"] for r in rows]
    member_of = _ids_by(conn, team_members, tenant, "person_id", ids, "team_id")
    lead_of = _ids_by(conn, team_leads, tenant, "person_id", ids, "team_id")
    return [{
        "person_id": r["person_id"], "display_name": r["display_name"], "email": r["email"],
        "manager_id": r["manager_id"], "time_zone": r["time_zone"], "language": r["language"],
        "user_name": r["user_name"], "external_id": r["external_id"], "active": bool(r["active"]),
        "team_ids": member_of[r["person_id"]], "lead_of_team_ids": lead_of[r["person_id"]],
        "roles": json.loads(r["roles"]), "version": r["version"],
        "created_at": iso_utc(r["created_at_us"]), "updated_at": iso_utc(r["updated_at_us"]),
    } for r in rows]


def _person_row(conn, tenant: str, person_id):
    return conn.execute(select(people).where(people.c.tenant_id == tenant,
                                             people.c.person_id == (person_id or ""))).mappings().first()


def get_person(conn, tenant: str, person_id) -> dict[str, Any]:
    row = _person_row(conn, tenant, person_id)
    if row is None:
        raise NotFound("person", person_id or "")
    return _people(conn, tenant, [row])[0]


def list_people(conn, tenant: str, query: str = "", team_id: str = "", include_inactive: bool = False,
                page_size=0, page_token: str = "") -> dict[str, Any]:
    """A page of the tenant's people (active ones unless ``include_inactive``; members of
    ``team_id`` if given), by display name then id."""
    base = select(people).where(people.c.tenant_id == tenant)
    if not include_inactive:
        base = base.where(people.c.active.is_(True))
    if team_id:
        base = base.where(people.c.person_id.in_(select(team_members.c.person_id).where(
            team_members.c.tenant_id == tenant, team_members.c.team_id == team_id)))
    rows, token, total = _page(conn, base, (people.c.display_name, people.c.person_id),
                               (people.c.display_name, people.c.email, people.c.user_name, people.c.person_id),
                               query, page_size, page_token)
    return {"people": _people(conn, tenant, rows), "next_page_token": token, "total_size": total}


# ------------------------------------------------------------------------- teams


def _teams(conn, tenant: str, rows) -> list[dict[str, Any]]:
    ids = [r["team_id"] for r in rows]
    leads = _ids_by(conn, team_leads, tenant, "team_id", ids, "person_id")
    members = _ids_by(conn, team_members, tenant, "team_id", ids, "person_id")
    children = _ids_by(conn, teams, tenant, "parent_team_id", ids, "team_id")
    return [{
        "team_id": r["team_id"], "name": r["name"], "parent_team_id": r["parent_team_id"],
        "external_id": r["external_id"], "active": bool(r["active"]), "lead_ids": leads[r["team_id"]],
        "member_ids": members[r["team_id"]], "child_team_ids": children[r["team_id"]], "version": r["version"],
        "created_at": iso_utc(r["created_at_us"]), "updated_at": iso_utc(r["updated_at_us"]),
    } for r in rows]


def get_team(conn, tenant: str, team_id) -> dict[str, Any]:
    row = conn.execute(select(teams).where(teams.c.tenant_id == tenant,
                                           teams.c.team_id == (team_id or ""))).mappings().first()
    if row is None:
        raise NotFound("team", team_id or "")
    return _teams(conn, tenant, [row])[0]


def list_teams(conn, tenant: str, query: str = "", parent_team_id: str = "", include_archived: bool = False,
               page_size=0, page_token: str = "") -> dict[str, Any]:
    """A page of the tenant's teams (active ones unless ``include_archived``; the
    children of ``parent_team_id`` if given), by name then id."""
    base = select(teams).where(teams.c.tenant_id == tenant)
    if not include_archived:
        base = base.where(teams.c.active.is_(True))
    if parent_team_id:
        base = base.where(teams.c.parent_team_id == parent_team_id)
    rows, token, total = _page(conn, base, (teams.c.name, teams.c.team_id), (teams.c.name, teams.c.team_id),
                               query, page_size, page_token)
    return {"teams": _teams(conn, tenant, rows), "next_page_token": token, "total_size": total}


# ---------------------------------------------------------------- authorisation


#: The derived roles, first wins (ADR 0033): a grant of ADMIN, leading a team, a grant of
#: AUDITOR, a grant of OBSERVER (the gateway's "viewer"), else every active person's.
ROLE_PRECEDENCE = ("admin", "lead", "auditor", "viewer", "member")


def derived_role(granted: list[str], leads_a_team: bool) -> str:
    if "ADMIN" in granted:
        return "admin"
    if leads_a_team:
        return "lead"
    if "AUDITOR" in granted:
        return "auditor"
    if "OBSERVER" in granted:
        return "viewer"
    return "member"


def teams_below(conn, tenant: str, roots: list[str]) -> list[str]:
    """``roots`` and every active team below them (sorted), walking the child teams."""
    seen = set(roots)
    frontier = list(roots)
    while frontier:
        children = conn.execute(select(teams.c.team_id).where(
            teams.c.tenant_id == tenant, teams.c.parent_team_id.in_(frontier), teams.c.active.is_(True))).scalars()
        frontier = [t for t in children if t not in seen]
        seen.update(frontier)
    return sorted(seen)


def resolve_person(conn, tenant: str, person_id) -> dict[str, Any]:
    """``{"active", "role", "teams", "person"}``: whether the person may act at all, the
    role the gateway applies (``ROLE_PRECEDENCE``), the teams whose OKRs a lead writes
    (those they lead, active, and every team below them) and the person as
    ``get_person`` gives it. NotFound("person", id) for an unknown id."""
    person = get_person(conn, tenant, person_id)
    led = list(conn.execute(select(team_leads.c.team_id).join(
        teams, and_(teams.c.tenant_id == team_leads.c.tenant_id, teams.c.team_id == team_leads.c.team_id)).where(
        team_leads.c.tenant_id == tenant, team_leads.c.person_id == person["person_id"],
        teams.c.active.is_(True))).scalars())
    return {"active": person["active"], "role": derived_role(person["roles"], bool(led)),
            "teams": teams_below(conn, tenant, led), "person": person}


# ------------------------------------------------------------- command checks


def holder_of(conn, tenant: str, column: str, value: str, except_person: str = "") -> str | None:
    """The id of another ACTIVE person of the tenant whose ``column`` (``user_name`` —
    compared case-insensitively — or ``email``) is ``value``; None if none."""
    if column == "user_name":
        where = people.c.user_name_lower == value.lower()
    else:
        where = people.c.email == value
    return conn.execute(select(people.c.person_id).where(
        people.c.tenant_id == tenant, people.c.active.is_(True), where, people.c.person_id != except_person)
        .order_by(people.c.person_id).limit(1)).scalar()


def person_row(conn, tenant: str, person_id) -> dict[str, Any] | None:
    """The person's row (``roles`` parsed), or None."""
    row = _person_row(conn, tenant, person_id)
    return None if row is None else dict(row, roles=json.loads(row["roles"]))


def other_active_admins(conn, tenant: str, person_id: str) -> int:
    """How many active people of the tenant but ``person_id`` hold ADMIN."""
    rows = conn.execute(select(people.c.roles).where(
        people.c.tenant_id == tenant, people.c.active.is_(True), people.c.person_id != person_id,
        people.c.roles.contains('"ADMIN"', autoescape=True))).scalars()
    return sum(1 for roles in rows if "ADMIN" in json.loads(roles))


def active_child_teams(conn, tenant: str, team_id: str) -> list[str]:
    return list(conn.execute(select(teams.c.team_id).where(
        teams.c.tenant_id == tenant, teams.c.parent_team_id == team_id, teams.c.active.is_(True))
        .order_by(teams.c.team_id)).scalars())
