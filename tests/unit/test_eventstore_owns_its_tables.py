"""Only the event store touches its tables (issue 19, docs/architecture.md): no module
of the platform outside ``shared/okr_shared/eventstore/`` names one of the store's
tables in its code or imports the store's table definitions — callers go through
``okr_shared.eventstore``'s API (``EventStore``, ``reads``, ``lookups``, ``outbox``,
``lease``, ``snapshots``).

Read from the sources (AST), so a new package (wherever it lives) is covered: every
``.py`` file of the repository except the tests, the benchmarks (which seed a store in
bulk to measure it) and the generated protobuf code. Docstrings may name a table (they
explain, they do not query); every other string constant may not.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from okr_shared.eventstore import schema
from okr_shared.eventstore.migrate import VERSION_TABLE

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "shared" / "okr_shared" / "eventstore"
OUTSIDE_THE_PLATFORM = {"tests", "bench", ".venv", "okr", "node_modules", "build", "dist"}
TABLES = sorted({*schema.metadata.tables, VERSION_TABLE})
NAMED = re.compile(r"\b(" + "|".join(map(re.escape, TABLES)) + r")\b")
SCHEMA_MODULE = "okr_shared.eventstore.schema"


def platform_modules() -> list[Path]:
    found = []
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        if any(part in OUTSIDE_THE_PLATFORM or part.startswith(".") for part in parts[:-1]):
            continue
        if path.is_relative_to(STORE):
            continue
        found.append(path)
    return sorted(found)


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    # a package's modules import relative to the folder holding the package
    for top in ("shared", "services"):
        if parts and parts[0] == top:
            parts = parts[1:]
    return ".".join(parts)


def _imported(node: ast.ImportFrom, module: str) -> list[str]:
    """The absolute names an ``from … import …`` brings in."""
    if node.level:
        base = module.split(".")[: -node.level]
        origin = ".".join([*base, node.module] if node.module else base)
    else:
        origin = node.module or ""
    return [origin, *(f"{origin}.{alias.name}" for alias in node.names)]


def uses_of_the_store_tables(path: Path, module: str | None = None) -> list[str]:
    """Every use of the store's tables in the module at ``path`` (named ``module``;
    default: from its place in the repository), as "file:line: what"."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    docstrings = _docstrings(tree)
    module = module or _module_of(path)
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            for table in NAMED.findall(node.value):
                found.append(f"{where}:{node.lineno}: names table {table}")
        elif isinstance(node, ast.Import):
            found += [f"{where}:{node.lineno}: imports {alias.name}"
                      for alias in node.names if alias.name == SCHEMA_MODULE]
        elif isinstance(node, ast.ImportFrom):
            if SCHEMA_MODULE in _imported(node, module):
                found.append(f"{where}:{node.lineno}: imports {SCHEMA_MODULE}")
    return found


def test_no_module_outside_the_event_store_uses_its_tables():
    modules = platform_modules()
    assert any(p.name == "relay.py" for p in modules)  # the walk reaches the platform's code
    found = [use for path in modules for use in uses_of_the_store_tables(path)]
    assert found == [], "SQL on the event store's tables outside okr_shared/eventstore/:\n" + "\n".join(found)


def test_the_check_sees_sql_and_imports_of_the_tables(tmp_path):
    # the check itself must be able to fail: a module with each kind of use
    sample = tmp_path / "sample.py"
    sample.write_text('"""Reads es_events (a docstring: allowed)."""\n'
                      "from ..eventstore import schema\n"
                      "import okr_shared.eventstore.schema\n"
                      "SQL = 'SELECT position FROM es_relay_checkpoints'\n", encoding="utf-8")
    found = uses_of_the_store_tables(sample, "okr_shared.service_layer.sample")
    assert sorted(use.split(": ", 1)[1] for use in found) == [
        f"imports {SCHEMA_MODULE}", f"imports {SCHEMA_MODULE}", "names table es_relay_checkpoints",
    ]
