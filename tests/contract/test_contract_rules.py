"""The contract suite's own rule: its tests use only the generated stubs, gRPC and the
documents — never the project's own modules (so what they show is what an integrator
with nothing but protos/ and docs/ would see)."""

from __future__ import annotations

import ast
from pathlib import Path

HERE = Path(__file__).resolve().parent
FORBIDDEN = ("okr_shared", "okr_services")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_contract_module_imports_the_projects_own_code():
    offenders = {path.name: sorted(m for m in imported_modules(path) if m.split(".")[0] in FORBIDDEN)
                 for path in HERE.rglob("*.py")}
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_the_rule_sees_an_import_of_the_project():
    sample = HERE / "__sample_for_rule__.py"
    sample.write_text("import os\nfrom okr_shared.eventstore import EventStore\n")
    try:
        assert "okr_shared.eventstore" in imported_modules(sample)
    finally:
        sample.unlink()
