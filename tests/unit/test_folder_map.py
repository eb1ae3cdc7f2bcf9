"""docs/architecture.md's "Every folder in one line" names every folder of the repository
(every folder holding a file git tracks), and only folders that exist: a newcomer can look
any folder up there. A row's ``*`` stands for one folder name."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[2]
HEADING = "## Every folder in one line"
ROW = re.compile(r"^\| `([^`]+)/` \| (.+) \|$")


def tracked_folders() -> set[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                         capture_output=True).stdout.decode()
    folders: set[str] = set()
    for path in filter(None, out.split("\0")):
        for parent in PurePosixPath(path).parents:
            if str(parent) != ".":
                folders.add(str(parent))
    return folders


def folder_rows() -> dict[str, str]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert HEADING in text, f"docs/architecture.md has no {HEADING!r} section"
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = ROW.match(line.strip())
        if m:
            rows[m.group(1)] = m.group(2).strip()
    return rows


def _pattern(row: str) -> re.Pattern:
    return re.compile("^" + "/".join("[^/]+" if part == "*" else re.escape(part)
                                     for part in row.split("/")) + "$")


def test_every_tracked_folder_has_its_line():
    rows = folder_rows()
    patterns = [_pattern(r) for r in rows]
    missing = sorted(f for f in tracked_folders() if not any(p.match(f) for p in patterns))
    assert not missing, f"folders without a line in docs/architecture.md: {missing}"


def test_every_line_names_a_folder_that_exists_and_says_something():
    folders = tracked_folders()
    for row, text in folder_rows().items():
        assert any(_pattern(row).match(f) for f in folders), f"docs/architecture.md names a folder that is gone: {row}/"
        assert len(text.split()) >= 3, f"{row}/: say what lives there"


def test_the_rows_are_read():
    # the extraction must see the section's rows (a format change must not pass unread)
    assert len(folder_rows()) >= 20
