"""The directory CSV format (docs/import-export.md, "People and teams"): people, teams,
memberships, leads and role grants in one file, read and checked before anything is
sent, then turned into the DirectoryService calls that create what is missing, in the
order the references need.

Pure: no grpc, no I/O beyond the bytes given. Every problem is a ``plan_csv.CsvProblem``
with the line a spreadsheet shows (the header is line 1) and the column;
``parse_directory`` collects all of them (form, duplicates, references inside the file,
cycles), ``plan_directory`` those that need the tenant's current directory (references
to people and teams outside the file, rows that contradict what exists, e-mail
addresses and user names taken) and the steps to send.

    rows, problems = parse_directory(data)
    steps, already, problems = plan_directory(rows, existing, file_digest(data))

A file is a directory file when its header has the ``record`` column
(``is_directory_csv``); a plan file never has it.
"""

from __future__ import annotations

import csv
import hashlib
import re
import zoneinfo
from dataclasses import dataclass, field

from .plan_csv import CsvProblem, check_header, in_file_order, read_table, suggest

RECORDS = ("team", "person", "member", "lead", "role")
ROLES = ("admin", "auditor", "observer")
LANGUAGES = ("en", "zh-CN")
#: The columns of a directory file (any order; only ``record`` is required).
COLUMNS = ("record", "id", "name", "email", "manager", "time_zone", "language", "user_name", "external_id",
           "parent", "team", "person", "role")
#: record → (required columns, optional columns); every other column must be empty.
SHAPE = {
    "team": (("id", "name"), ("parent", "external_id")),
    "person": (("id", "name"), ("email", "manager", "time_zone", "language", "user_name", "external_id")),
    "member": (("team", "person"), ()),
    "lead": (("team", "person"), ()),
    "role": (("person", "role"), ()),
}
ID_COLUMNS = ("id", "manager", "parent", "team", "person")
MAX_ROWS = 5000
MAX_NAME = 200

_ID = re.compile(r"[!-~\u00a0-\U0010ffff]{1,200}")  # printable, no spaces (events.proto, "Directory")
_SPACE = re.compile(r"\s")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


@dataclass(frozen=True)
class Row:
    """One row of the file: its ``line``, its ``record`` (team | person | member | lead
    | role) and the non-empty cells (column → text; ``role`` lower case, ``language``
    as written in LANGUAGES, ``email`` lower case)."""

    line: int
    record: str
    cells: dict

    def __getitem__(self, column: str) -> str:
        return self.cells.get(column, "")

    @property
    def key(self) -> tuple:
        """What the row is about: ("team", id), ("person", id), ("member", team, person)..."""
        if self.record in ("team", "person"):
            return (self.record, self["id"])
        if self.record == "role":
            return ("role", self["person"], self["role"])
        return (self.record, self["team"], self["person"])


def is_directory_csv(data: bytes) -> bool:
    """True when the file's header line names the ``record`` column."""
    first = data.removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0].decode("utf-8", "replace")
    try:
        header = next(csv.reader([first]))
    except (csv.Error, StopIteration):
        return False
    return "record" in {h.strip().lower() for h in header}


def file_digest(data: bytes) -> str:
    """The file's content hash: the base of every command id of its import."""
    return hashlib.sha256(data).hexdigest()


def _check_header(header: list[str]) -> list[CsvProblem]:
    return check_header(header, COLUMNS, COLUMNS, ("record",))


def _cell(line: int, record: str, column: str, text: str, problems: list[CsvProblem]) -> str | None:
    """The cell's value as the row keeps it, or None (a problem recorded)."""
    if column in ID_COLUMNS:
        if _SPACE.search(text) or not _ID.fullmatch(text):
            problems.append(CsvProblem(line, column, f"{text[:40]!r} is not an id (1-200 printable characters, no "
                                                     "spaces) — fix the id"))
            return None
        return text
    if column == "name":
        if len(text) > MAX_NAME:
            problems.append(CsvProblem(line, column, f"{len(text)} characters, at most {MAX_NAME} — shorten it"))
            return None
        return " ".join(text.split())
    if column == "email":
        if not _EMAIL.fullmatch(text):
            problems.append(CsvProblem(line, column, f"{text!r} is not an e-mail address (like ana@acme.example) — "
                                                     "fix it or leave the cell empty"))
            return None
        return text.lower()
    if column == "time_zone":
        try:
            zoneinfo.ZoneInfo(text)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            zones = zoneinfo.available_timezones()
            problems.append(CsvProblem(line, column, f"{text!r} is not an IANA time zone{suggest(text, zones)} — "
                                                     "write it like Europe/Madrid or Asia/Shanghai, or leave it empty"))
            return None
        return text
    if column == "language":
        match = [lang for lang in LANGUAGES if lang.lower() == text.lower().replace("_", "-")]
        if not match:
            problems.append(CsvProblem(line, column, f"{text!r} is not a language of the platform — use "
                                                     f"{' or '.join(LANGUAGES)}, or leave it empty"))
            return None
        return match[0]
    if column == "role":
        word = text.lower()
        if word not in ROLES:
            problems.append(CsvProblem(line, column, f"{text!r} is not a role{suggest(word, ROLES)} — use one of "
                                                     f"{', '.join(ROLES)} (a lead is a lead row)"))
            return None
        return word
    return text


def _row(line: int, header: list[str], record: list[str], problems: list[CsvProblem]) -> Row | None:
    cells = {column: raw.strip() for column, raw in zip(header, record) if raw.strip()}
    kind = cells.pop("record", "").lower()
    if kind not in RECORDS:
        what = f"{kind!r} is not a record{suggest(kind, RECORDS)}" if kind else "is empty"
        problems.append(CsvProblem(line, "record", f"{what} — give one of {', '.join(RECORDS)}"))
        return None
    required, optional = SHAPE[kind]
    before = len(problems)
    for column in required:
        if column not in cells:
            problems.append(CsvProblem(line, column, f"is empty — a {kind} row needs {' and '.join(required)}"))
    values = {}
    for column, text in cells.items():
        if column not in required and column not in optional:
            problems.append(CsvProblem(line, column, f"is not used by a {kind} row — leave it empty (a {kind} row "
                                                     f"has {', '.join(required + optional)})"))
            continue
        value = _cell(line, kind, column, text, problems)
        if value is not None:
            values[column] = value
    return Row(line, kind, values) if len(problems) == before else None


def _check_file(rows: list[Row]) -> list[CsvProblem]:
    """Duplicates, references between the rows, cycles — everything the file alone decides."""
    problems: list[CsvProblem] = []
    first: dict[tuple, int] = {}
    for row in rows:
        if row.key in first:
            what = {"team": "team", "person": "person"}.get(row.record)
            column = "id" if what else ""
            label = f"{what} {row.key[1]!r}" if what else "the same " + row.record + " row"
            problems.append(CsvProblem(row.line, column, f"{label} appears twice (line {first[row.key]} first) — "
                                                         "keep one row"))
        else:
            first[row.key] = row.line
    for column in ("email", "user_name"):
        owner: dict[str, int] = {}
        for row in rows:
            value = row[column].lower()
            if row.record == "person" and value:
                if value in owner:
                    problems.append(CsvProblem(row.line, column, f"{row[column]!r} is also the {column} of line "
                                                                 f"{owner[value]} — two people cannot share it"))
                else:
                    owner[value] = row.line
    teams = {r["id"]: r for r in rows if r.record == "team"}
    people = {r["id"]: r for r in rows if r.record == "person"}
    for link, items in (("parent", teams), ("manager", people)):
        for row in items.values():
            seen, current = [row["id"]], row[link]
            while current in items:
                if current in seen:
                    if current == row["id"]:
                        problems.append(CsvProblem(row.line, link, f"{row[link]!r} leads back to {row['id']!r} "
                                                                   f"({' → '.join(seen + [current])}) — a "
                                                                   f"{'team cannot be below itself' if link == 'parent' else 'person cannot manage themselves'}"))
                    break
                seen.append(current)
                current = items[current][link]
    return problems


def parse_directory(data: bytes, *, max_rows: int = MAX_ROWS) -> tuple[list[Row], list[CsvProblem]]:
    """The rows of a directory file (bytes) and every problem the file alone shows:
    header, UTF-8, quoting, cell counts, records, required and misplaced cells, ids,
    names, e-mail addresses, time zones, languages, roles, duplicates, cycles. With a
    problem, no row is to be sent."""
    header, body, problems = read_table(data, _check_header)
    if header is None:
        return [], problems
    rows: list[Row] = []
    for line, record in body:
        row = _row(line, header, record, problems)
        if row is not None:
            rows.append(row)
    if not rows and not problems:
        problems.append(CsvProblem(0, "", "the file has a header but no rows — add the teams and people to import"))
    if len(rows) > max_rows:
        problems.append(CsvProblem(0, "", f"{len(rows)} rows exceed the limit of {max_rows} per import — split "
                                          "the file (teams and managers in the first part)"))
    problems.extend(_check_file(rows))
    problems.sort(key=in_file_order)
    return rows, problems


# ---------------------------------------------------------------------------- plan


@dataclass
class Existing:
    """The tenant's directory as the import needs it (from ListPeople / ListTeams, the
    people who left and archived teams included): id → the read shape as a dict with
    the proto's field names (``roles`` as lower-case words)."""

    people: dict = field(default_factory=dict)
    teams: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One DirectoryService call of the import: the ``rpc`` name, its request fields
    (``command_id`` included) and the ``row`` it comes from."""

    row: Row
    rpc: str
    request: dict


#: A person row's column → the Person field it states.
PERSON_FIELD = {"name": "display_name", "email": "email", "manager": "manager_id", "time_zone": "time_zone",
                "language": "language", "user_name": "user_name", "external_id": "external_id"}
TEAM_FIELD = {"name": "name", "parent": "parent_team_id", "external_id": "external_id"}


def command_id(digest: str, row: Row) -> str:
    """A step's idempotency key: the file's hash and what the row is about, so a re-run
    of the same file after an interruption is recognised call by call."""
    key = hashlib.sha256("\x1f".join(row.key).encode()).hexdigest()
    return f"dirimport-{digest[:24]}-{key[:24]}"


def _depth(items: dict, link: str, start: str) -> int:
    depth, current, seen = 0, items[start][link], {start}
    while current in items and current not in seen:
        seen.add(current)
        depth, current = depth + 1, items[current][link]
    return depth


def _differences(row: Row, current: dict, fields: dict) -> list[CsvProblem]:
    problems = []
    for column, name in fields.items():
        mine, theirs = row[column], current.get(name, "") or ""
        if mine and mine.lower() != str(theirs).lower():
            problems.append(CsvProblem(row.line, column, f"{row.record} {row['id']!r} already exists with {column} "
                                                         f"{theirs!r} (the file says {mine!r}) — change it with "
                                                         f"`okr {'people update' if row.record == 'person' else 'teams'}"
                                                         f" ...` or make the row match"))
    return problems


def plan_directory(rows: list[Row], existing: Existing, digest: str) -> tuple[list[Step], list[Row], list[CsvProblem]]:
    """What the import sends, in dependency order (teams by depth below their parents,
    people by depth below their managers, then memberships, leads, roles), the rows
    already true in the tenant's directory (nothing sent for them: a re-run after an
    interruption, or a fixed file, finishes what is missing), and every problem that
    needs the directory: references to unknown people or teams, rows that contradict
    an existing person or team, archived teams and people who left, e-mail addresses
    and user names another active person has."""
    problems: list[CsvProblem] = []
    teams = {r["id"]: r for r in rows if r.record == "team"}
    people = {r["id"]: r for r in rows if r.record == "person"}
    already: list[Row] = []

    def known(kind: str, ref: str, row: Row, column: str) -> bool:
        mine, theirs = (teams, existing.teams) if kind == "team" else (people, existing.people)
        if ref in mine:
            return True
        if ref not in theirs:
            problems.append(CsvProblem(row.line, column, f"unknown {kind} {ref!r}: not a {kind} row of this file nor a "
                                                         f"{kind} of your tenant{suggest(ref, [*mine, *theirs])} — "
                                                         f"add a {kind} row or fix the id"))
            return False
        if not theirs[ref].get("active", True):
            state = "archived" if kind == "team" else "deactivated (left)"
            problems.append(CsvProblem(row.line, column, f"{kind} {ref!r} is {state} — "
                                                         f"{'choose another team' if kind == 'team' else 'reactivate them first (okr people reactivate)'}"))
            return False
        return True

    taken = {}
    for pid, p in existing.people.items():
        if p.get("active", True):
            for column, name in (("email", "email"), ("user_name", "user_name")):
                if p.get(name):
                    taken[(column, p[name].lower())] = pid

    def exists(row: Row, items: dict, fields: dict, inactive: str) -> bool:
        """The row's team or person exists: already true (nothing to send), or problems."""
        current = items.get(row["id"])
        if current is None:
            return False
        found = _differences(row, current, fields)
        if not current.get("active", True):
            found.append(CsvProblem(row.line, "id", f"{row.record} {row['id']!r} {inactive}"))
        problems.extend(found)
        if not found:
            already.append(row)
        return True

    team_steps, person_steps, link_steps = [], [], []
    for row in rows:
        cid = command_id(digest, row)
        if row.record == "team":
            if row["parent"]:
                known("team", row["parent"], row, "parent")
            if exists(row, existing.teams, TEAM_FIELD, "exists and is archived — give the new team another id"):
                continue
            team_steps.append((_depth(teams, "parent", row["id"]), Step(row, "CreateTeam", {
                "team_id": row["id"], "name": row["name"], "parent_team_id": row["parent"],
                "external_id": row["external_id"], "command_id": cid})))
        elif row.record == "person":
            if row["manager"]:
                known("person", row["manager"], row, "manager")
            for column in ("email", "user_name"):
                other = taken.get((column, row[column].lower())) if row[column] else None
                if other is not None and other != row["id"]:
                    problems.append(CsvProblem(row.line, column, f"{row[column]!r} belongs to {other!r}, an active "
                                                                 f"person of your tenant — two people cannot share it"))
            if exists(row, existing.people, PERSON_FIELD, "exists and left — reactivate them (okr people "
                                                          "reactivate) or remove the row"):
                continue
            person_steps.append((_depth(people, "manager", row["id"]), Step(row, "AddPerson", {
                "person_id": row["id"], "display_name": row["name"], "email": row["email"],
                "manager_id": row["manager"], "time_zone": row["time_zone"], "language": row["language"],
                "user_name": row["user_name"], "external_id": row["external_id"], "command_id": cid})))
        else:
            ok = known("person", row["person"], row, "person")
            if row.record != "role":
                ok = known("team", row["team"], row, "team") and ok
            if not ok:
                continue
            person = existing.people.get(row["person"], {})
            if row.record == "member":
                done = row["team"] in person.get("team_ids", ())
                step = Step(row, "AddTeamMember", {"team_id": row["team"], "person_id": row["person"],
                                                   "command_id": cid})
            elif row.record == "lead":
                done = row["team"] in person.get("lead_of_team_ids", ())
                step = Step(row, "AssignTeamLead", {"team_id": row["team"], "person_id": row["person"],
                                                    "command_id": cid})
            else:
                done = row["role"] in person.get("roles", ())
                step = Step(row, "GrantRole", {"person_id": row["person"], "role": row["role"], "command_id": cid})
            if done:
                already.append(row)
            else:
                link_steps.append(({"member": 0, "lead": 1, "role": 2}[row.record], step))
    ordered = [s for _, s in sorted(team_steps, key=lambda t: t[0])] + \
              [s for _, s in sorted(person_steps, key=lambda t: t[0])] + \
              [s for _, s in sorted(link_steps, key=lambda t: t[0])]
    problems.sort(key=in_file_order)
    return ordered, already, problems
