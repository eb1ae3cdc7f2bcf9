"""One clock (issue 19): ``now_us`` and ``utc_today`` are defined once, in
okr_shared/clock.py, and every module imports them from there (a method of a clock
object — the notification service's ``Clock.now_us`` — is that object's own)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for top in ("shared/okr_shared", "services", "bench", "scripts") for p in (ROOT / top).rglob("*.py")]
CLOCK = ROOT / "shared/okr_shared/clock.py"
NAMES = {"now_us", "_now_us", "utc_today", "_utc_today"}


def module_level_clocks(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [f"{path}:{node.lineno} {node.name}" for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name in NAMES]


def test_now_us_and_utc_today_are_defined_only_in_the_clock_module():
    assert sorted(n.split()[-1] for n in module_level_clocks(CLOCK)) == ["now_us", "utc_today"]
    others = [found for path in SOURCES if path != CLOCK for found in module_level_clocks(path)]
    assert others == []


def test_the_check_sees_a_second_clock(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import time\n\ndef _now_us() -> int:\n    return time.time_ns() // 1000\n")
    assert [found.split()[-1] for found in module_level_clocks(sample)] == ["_now_us"]
