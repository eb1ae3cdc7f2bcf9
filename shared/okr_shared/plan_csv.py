"""The plan CSV format (docs/import-export.md): reading an import file into rows, and
writing a cycle's export as CSV (the import format plus score columns) or JSON.

Pure: no grpc, no I/O beyond the text given. Every problem of the file is a
``CsvProblem`` with the line a spreadsheet shows (the header is line 1), the column and
what to do; ``parse_plan`` collects all of them, not just the first.

    rows, problems = parse_plan(data_bytes, cycle="q3")
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
import re
from dataclasses import dataclass
from datetime import date

TYPES = ("objective", "key_result", "initiative", "person")
LEVELS = ("company", "team", "individual")
KINDS = ("increase_to", "decrease_to", "stay_at_or_above", "stay_at_or_below", "milestone", "percentage",
         "currency")

#: The columns of an import file, in the order the export writes them.
COLUMNS = ("type", "ref", "parent", "id", "cycle", "level", "team", "owner", "title", "description", "kind",
           "start_value", "target_value", "unit", "currency", "weight", "start_date", "due_date")
#: Columns every import file must have (the others may be left out).
REQUIRED_COLUMNS = ("type", "ref", "title")
#: Columns the export adds (figures computed by the reporting service); an import
#: accepts and ignores them, so an export can be imported again.
SCORE_COLUMNS = ("state", "status", "current_value", "progress", "score", "grade", "confidence")
#: Column → ImportRow field.
FIELD_OF = {"parent": "parent_ref", "cycle": "cycle_id", "team": "team_id", "currency": "currency_code"}
COLUMN_OF = {v: k for k, v in FIELD_OF.items()}
NUMBER_COLUMNS = ("start_value", "target_value", "weight")
DATE_COLUMNS = ("start_date", "due_date")
#: Rows per import (the server's limit too).
MAX_ROWS = 500
MAX_BYTES = 2 * 1024 * 1024

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class CsvProblem:
    """One problem of the file: its ``line`` (0: the file as a whole), the ``column``
    (may be empty) and the ``message`` saying what is wrong and what to do."""

    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "the file"
        return f"{where}{f' ({self.column})' if self.column else ''}: {self.message}"


def decode(data: bytes) -> tuple[str | None, CsvProblem | None]:
    """The file's text (UTF-8, a byte order mark dropped), or the problem naming where it is not UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        return None, CsvProblem(line, "", f"not UTF-8 (byte 0x{data[e.start]:02x} at character {column}) — save "
                                          "the file as CSV UTF-8 and import it again")
    return text.removeprefix("\ufeff"), None  # a spreadsheet's byte order mark


def suggest(word: str, options) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options``, or nothing."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def records(text: str, problems: list[CsvProblem]):
    """The file's lines as (line, cells): the header first, then every line that is not
    empty (an empty line is skipped, but counted). A quoting error is added to
    ``problems`` and ends the reading (the reader cannot resynchronise reliably)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line, first = 0, True
    while True:
        line += 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            problems.append(CsvProblem(line, "", f"bad CSV quoting ({e}) — a quoted cell must end with a quote; "
                                                 "write a quote inside a cell as two quotes \"\""))
            return
        if first or any(cell.strip() for cell in record):
            yield line, record
        first = False

def wrong_width(line: int, record: list[str], header: list[str]) -> CsvProblem:
    """The problem of a row whose number of cells is not the header's."""
    return CsvProblem(line, "", f"{len(record)} cells, but the header has {len(header)} columns — quote cells "
                                "that contain a comma, and give every row every column")


def read_table(data: bytes, check_header) -> tuple[list[str] | None, list[tuple[int, list[str]]], list[CsvProblem]]:
    """A CSV file's header (lower case) and its rows as (line, cells), with the problems
    of its form: size, UTF-8, quoting, a header ``check_header`` finds problems in (then
    no header and no rows), rows whose number of cells is not the header's (left out).
    No header (None): the file cannot be read; ``problems`` say why."""
    if len(data) > MAX_BYTES:
        return None, [], [CsvProblem(0, "", f"{len(data):,} bytes exceed the limit of {MAX_BYTES:,} — split the file")]
    text, problem = decode(data)
    if problem:
        return None, [], [problem]
    problems: list[CsvProblem] = []
    header, body = None, []
    for line, record in records(text, problems):
        if header is None:
            header = [h.strip().lower() for h in record]
            problems.extend(check_header(header))
            if problems:
                return None, [], problems
        elif len(record) != len(header):
            problems.append(wrong_width(line, record, header))
        else:
            body.append((line, record))
    if header is None and not problems:
        problems.append(CsvProblem(0, "", "the file is empty — it needs a header line and at least one row"))
    return header, body, problems


def in_file_order(problem: CsvProblem) -> tuple:
    """Sort key of the problems: by line, those of the file as a whole last."""
    return (problem.line == 0, problem.line)


def _check_plan_header(header: list[str]) -> list[CsvProblem]:
    if not any(header):
        return [CsvProblem(1, "", "the first line must be the header (type,ref,title,...) — see docs/import-export.md")]
    return check_header(header, set(COLUMNS) | set(SCORE_COLUMNS), COLUMNS, REQUIRED_COLUMNS)


def check_header(header: list[str], known, columns, required) -> list[CsvProblem]:
    """The problems of a header line: a column twice, a column not ``known`` (with a
    did-you-mean; ``columns`` are the ones the message lists), ``required`` ones missing."""
    problems, seen = [], set()
    for name in header:
        if name in seen:
            problems.append(CsvProblem(1, name, f"column {name!r} appears twice — keep one"))
        seen.add(name)
        if name not in known:
            problems.append(CsvProblem(1, name, f"unknown column {name!r}{suggest(name, known)} — the columns are "
                                                f"{', '.join(columns)} (docs/import-export.md)"))
    missing = [c for c in required if c not in seen]
    if missing:
        problems.append(CsvProblem(1, "", f"missing column{'s' if len(missing) > 1 else ''} "
                                          f"{', '.join(missing)} — add {'them' if len(missing) > 1 else 'it'} "
                                          "to the header line"))
    return problems


def _value(line: int, column: str, raw: str, problems: list[CsvProblem]):
    """The cell as its field's value, or None (empty, or a problem recorded)."""
    text = raw.strip()
    if not text:
        return None
    if column in ("type", "level", "kind"):
        options = {"type": TYPES, "level": LEVELS, "kind": KINDS}[column]
        word = text.lower().replace(" ", "_").replace("-", "_")
        if word not in options:
            problems.append(CsvProblem(line, column, f"{text!r} is not a {column}{suggest(word, options)} — use "
                                                     f"one of {', '.join(options)}"))
            return None
        return word.upper()
    if column in NUMBER_COLUMNS:
        if not _NUMBER.fullmatch(text) or not math.isfinite(float(text)):
            problems.append(CsvProblem(line, column, f"{text!r} is not a number — write it like 1250 or 12.5 "
                                                     "(a dot for decimals, no thousands separators or units)"))
            return None
        return float(text)
    if column in DATE_COLUMNS:
        try:
            if not _DATE.fullmatch(text):
                raise ValueError
            date.fromisoformat(text)
        except ValueError:
            problems.append(CsvProblem(line, column, f"{text!r} is not a date YYYY-MM-DD (e.g. 2026-03-31) — "
                                                     "fix the date"))
            return None
        return text
    return text


def parse_plan(data: bytes, *, cycle: str | None = None, max_rows: int = MAX_ROWS) -> tuple[list[dict], list[CsvProblem]]:
    """The import rows of a CSV file (bytes): dicts with ``line``, ``type`` (OBJECTIVE |
    KEY_RESULT | INITIATIVE | PERSON), ``level``/``kind`` upper case, numbers as
    floats and the ImportRow field names (``parent_ref``, ``cycle_id``...), empty cells
    left out; and every problem found (then the rows are not to be sent). ``cycle``
    replaces the cycle of every objective row."""
    header, body, problems = read_table(data, _check_plan_header)
    if header is None:
        return [], problems
    rows: list[dict] = []
    for line, record in body:
        row: dict = {"line": line}
        for column, raw in zip(header, record):
            if column in SCORE_COLUMNS:
                continue
            value = _value(line, column, raw, problems)
            if value is not None:
                row[FIELD_OF.get(column, column)] = value
        if "type" not in row and not any(p.line == line and p.column == "type" for p in problems):
            problems.append(CsvProblem(line, "type", f"is empty — give one of {', '.join(TYPES)}"))
        if cycle and row.get("type") == "OBJECTIVE":
            row["cycle_id"] = cycle
        rows.append(row)
    if not rows and not problems:
        problems.append(CsvProblem(0, "", "the file has a header but no rows — add the objectives, key results "
                                          "and initiatives to import"))
    if len(rows) > max_rows:
        problems.append(CsvProblem(0, "", f"{len(rows)} rows exceed the limit of {max_rows} per import — split "
                                          "the file (parents before their children)"))
    problems.sort(key=in_file_order)
    return rows, problems


# ---------------------------------------------------------------------------- export


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if not value.is_integer() else str(int(value))
    return str(value)


def export_rows(plan: dict) -> list[dict]:
    """The export of a cycle (``plan``: the nested dict of ``cycle_plan``) as flat rows
    of COLUMNS + SCORE_COLUMNS: each objective, then its key results, each followed
    by its initiatives."""
    out = []
    cycle_id = plan["cycle"]["cycle_id"]
    for o in plan["objectives"]:
        out.append({"type": "objective", "ref": o["objective_id"], "parent": o.get("parent") or "",
                    "cycle": cycle_id, "level": (o.get("level") or "").lower(), "team": o.get("team_id") or "",
                    "owner": o.get("owner") or "", "title": o.get("title") or "",
                    "description": o.get("description") or "", "score": o.get("score"),
                    "grade": o.get("grade") or ""})
        for k in o["key_results"]:
            out.append({"type": "key_result", "ref": k["key_result_id"], "parent": o["objective_id"],
                        "cycle": cycle_id, "owner": k.get("owner") or "", "title": k.get("title") or "",
                        "kind": (k.get("kind") or "").lower(), "start_value": k.get("start_value"),
                        "target_value": k.get("target_value"), "unit": k.get("unit") or "",
                        "currency": k.get("currency_code") or "", "weight": k.get("weight"),
                        "due_date": k.get("due_date") or "", "status": k.get("status") or "",
                        "current_value": k.get("current_value"), "progress": k.get("progress"),
                        "score": k.get("score"), "grade": k.get("grade") or "", "confidence": k.get("confidence")})
            for i in k["initiatives"]:
                out.append({"type": "initiative", "ref": i["initiative_id"], "parent": k["key_result_id"],
                            "cycle": cycle_id, "owner": i.get("assignee") or "", "title": i.get("title") or "",
                            "start_date": i.get("start_date") or "", "due_date": i.get("due_date") or "",
                            "state": i.get("state") or "", "status": i.get("status") or ""})
    return out


def to_csv(plan: dict) -> str:
    """The cycle as CSV text: the import columns plus the score columns."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS) + list(SCORE_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in export_rows(plan):
        writer.writerow({k: _cell(row.get(k)) for k in writer.fieldnames})
    return buffer.getvalue()


def to_json(plan: dict) -> str:
    """The cycle as JSON: cycle → objectives → key results → initiatives."""
    return json.dumps(plan, indent=2, ensure_ascii=False) + "\n"
