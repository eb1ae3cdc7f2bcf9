"""README.md's "Configuration" section is the complete and current list of environment
variables.

What a process of the platform reads is extracted from the sources, not listed here:

- Python under ``services/`` and ``shared/okr_shared/`` (AST): the name in
  ``os.environ.get(NAME)``, ``environ.get(NAME)`` (any mapping called ``environ``),
  ``os.getenv(NAME)``, ``os.environ[NAME]`` (reads only); click's ``envvar=NAME``; the
  consumer layer's ``url_env=NAME``; and every string constant that is exactly an
  ``OKR_*`` name (names handed to helpers, e.g. ``flag("OKR_SMTP_SSL")``);
- ``services/config.yaml``: nameko's ``${NAME:default}``;
- ``docker-compose.yml``: ``${NAME:-default}`` / ``${NAME}``;
- ``Makefile``: ``NAME ?= …`` (make takes it from the environment).

``PYTHONPATH`` (Python's own) is not the platform's configuration and is left out.

Test-only variables (read by ``tests/``, ``bench/`` and ``scripts/`` through
``environ.get`` / ``getenv`` / ``environ[…]``, e.g. ``OKR_TEST_*``) belong in the
section's separate "Tests, benchmarks and scripts" table, and nowhere else.

The README side: the rows of the Markdown tables between ``## Configuration`` and the next
``## `` heading; the first cell's backticked names are the documented variables
(``OKR_JWT_PUBLIC_KEY(_FILE)`` stands for both, as tests/unit/test_deploy_manifests.py
reads it). Every row needs a default and a meaning, and a literal default in the code
(``environ.get("OKR_TIMEZONE", "UTC")``, ``${OKR_MAX_WORKERS:10}``) must appear in its
row's default column.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROCESS_PYTHON = (ROOT / "services", ROOT / "shared" / "okr_shared")
TEST_PYTHON = (ROOT / "tests", ROOT / "bench", ROOT / "scripts")
TESTS_HEADING = "Tests, benchmarks and scripts"
#: Read, but not the platform's configuration: Python's own (``make run`` and the
#: benchmarks extend the module path of the processes they start).
NOT_CONFIGURATION = {"PYTHONPATH"}

OKR_NAME = re.compile(r"OKR_[A-Z0-9_]*[A-Z0-9]")
NAMEKO_VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::([^}]*))?\}")
COMPOSE_VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?[-?+][^}]*)?\}")
MAKE_VAR = re.compile(r"^(?:export\s+)?([A-Z_][A-Z0-9_]*)\s*\?=", re.M)


# ------------------------------------------------------------------ extraction


def _is_environ(node: ast.AST) -> bool:
    """``os.environ`` or any name/attribute called ``environ`` (``from_env(environ=…)``)."""
    return (isinstance(node, ast.Name) and node.id == "environ") or (
        isinstance(node, ast.Attribute) and node.attr == "environ")


def _name(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"[A-Z_][A-Z0-9_]*", node.value):
        return node.value
    return None


def _literal(node: ast.AST | None):
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float)) and not isinstance(node.value, bool):
        return str(node.value) if str(node.value) != "" else None
    return None


def env_reads(source: str, filename: str = "<source>", *, okr_constants: bool = True):
    """``(name, literal default or None, line)`` of every environment read in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "get" and _is_environ(func.value) or (
                    isinstance(func, ast.Attribute) and func.attr == "getenv"):
                name = _name(node.args[0]) if node.args else None
                if name:
                    found.append((name, _literal(node.args[1]) if len(node.args) > 1 else None, node.lineno))
            for kw in node.keywords:
                if kw.arg in ("envvar", "url_env") and _name(kw.value):
                    found.append((kw.value.value, None, node.lineno))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environ(node.value):
            name = _name(node.slice)
            if name:
                found.append((name, None, node.lineno))
        elif (okr_constants and isinstance(node, ast.Constant) and isinstance(node.value, str)
              and OKR_NAME.fullmatch(node.value)):
            found.append((node.value, None, node.lineno))
    return found


def _python_files(roots):
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield path


def process_variables() -> dict[str, list[tuple[str, str | None]]]:
    """name -> [(where, literal default)] for every variable a platform process reads."""
    found = defaultdict(list)
    for path in _python_files(PROCESS_PYTHON):
        rel = path.relative_to(ROOT)
        for name, default, line in env_reads(path.read_text(), str(rel)):
            if name not in NOT_CONFIGURATION:
                found[name].append((f"{rel}:{line}", default))
    config = ROOT / "services" / "config.yaml"
    for number, line in enumerate(config.read_text().splitlines(), 1):
        for name, default in NAMEKO_VAR.findall(line.split("#", 1)[0]):
            found[name].append((f"services/config.yaml:{number}", default or None))
    for number, line in enumerate((ROOT / "docker-compose.yml").read_text().splitlines(), 1):
        for name in COMPOSE_VAR.findall(line):
            found[name].append((f"docker-compose.yml:{number}", None))  # compose's own defaults: its section
    for match in MAKE_VAR.finditer((ROOT / "Makefile").read_text()):
        found[match.group(1)].append(("Makefile", None))
    return dict(found)


def variables_read_by_tests() -> dict[str, list[str]]:
    found = defaultdict(list)
    for path in _python_files(TEST_PYTHON):
        rel = path.relative_to(ROOT)
        for name, _, line in env_reads(path.read_text(), str(rel), okr_constants=False):
            if name not in NOT_CONFIGURATION:
                found[name].append(f"{rel}:{line}")
    return dict(found)


# ---------------------------------------------------------------------- README


def readme_tables() -> dict[str, dict[str, list[str]]]:
    """Subsection heading -> {variable: the cells of its row} of README.md's Configuration
    section (cells: variables, default, meaning)."""
    text = (ROOT / "README.md").read_text()
    assert "\n## Configuration" in text, "README.md has no '## Configuration' section"
    section = text.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    tables: dict[str, dict[str, list[str]]] = defaultdict(dict)
    heading = ""
    for line in section.splitlines():
        if line.startswith("### "):
            heading = line[4:].strip()
            continue
        if not line.startswith("|") or re.fullmatch(r"\|[\s|:-]+\|?", line.strip()):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0].lower() == "variable":
            continue
        names = []
        for name, suffix in re.findall(r"`([A-Z][A-Z0-9_]+)(\(_FILE\))?`", cells[0]):
            names.append(name)
            if suffix:
                names.append(name + "_FILE")
        assert names, f"README.md, Configuration / {heading}: a row without a `VARIABLE`: {line!r}"
        assert len(cells) >= 3 and cells[1] and cells[2], \
            f"README.md, Configuration / {heading}: {', '.join(names)} needs a default and a meaning: {line!r}"
        for name in names:
            tables[heading][name] = cells
    return dict(tables)


def documented(tables, *, tests: bool) -> dict[str, list[str]]:
    return {name: row for heading, rows in tables.items() if heading.startswith(TESTS_HEADING) == tests
            for name, row in rows.items()}


# ----------------------------------------------------------------------- tests


def test_the_extractor_sees_reads_through_every_door():
    source = '''
import os
from okr_shared.config import Settings
a = os.environ.get("ALPHA", "1")
b = environ.get("BETA")
c = os.getenv("GAMMA", "x")
d = os.environ["DELTA"]
os.environ["WRITTEN"] = "not a read"
os.environ.pop("POPPED", None)
flag("OKR_HANDED_TO_A_HELPER")
"prefix OKR_IN_A_SENTENCE is not a name"
click.option("--key", envvar="EPSILON")
ConsumerDatabase(url_env="ZETA")
'''
    names = {(n, d) for n, d, _ in env_reads(source)}
    assert names == {("ALPHA", "1"), ("BETA", None), ("GAMMA", "x"), ("DELTA", None), ("EPSILON", None),
                     ("ZETA", None), ("OKR_HANDED_TO_A_HELPER", None)}
    assert "OKR_HANDED_TO_A_HELPER" not in {n for n, _, _ in env_reads(source, okr_constants=False)}


def test_the_extraction_finds_the_known_readers():
    """Guards the extractor against finding nothing (and every check below passing)."""
    found = process_variables()
    for name, where in [("OKR_DATABASE_URL", "shared/okr_shared/config.py"),
                        ("OKR_SMTP_SSL", "services/okr_services/notification/config.py"),
                        ("OKR_MAX_WORKERS", "services/config.yaml"),
                        ("OKR_API_KEY", "services/okr_cli/api.py"),
                        ("OKR_REPORTING_DATABASE_URL", "services/okr_services/reporting/service.py"),
                        ("OKR_IMAGE", "docker-compose.yml"), ("VENV", "Makefile")]:
        assert any(w.startswith(where) for w, _ in found.get(name, [])), (name, found.get(name))
    assert ("OKR_TIMEZONE" in found and ("UTC" in {d for _, d in found["OKR_TIMEZONE"]}))
    assert "OKR_TEST_POSTGRES_URL" in variables_read_by_tests()
    assert not any(name.startswith("OKR_TEST_") for name in found), "tests leaked into the process scan"


def test_every_variable_a_process_reads_is_in_the_readme():
    tables = readme_tables()
    process_rows = documented(tables, tests=False)
    found = process_variables()
    missing = {name: list(dict.fromkeys(w for w, _ in places)) for name, places in sorted(found.items())
               if name not in process_rows}
    assert not missing, "README.md, section Configuration: add a row (variable | default | meaning) for " + "; ".join(
        f"{name} (read at {', '.join(places[:3])})" for name, places in missing.items())


def test_every_documented_variable_is_still_read():
    tables = readme_tables()
    found = process_variables()
    stale = sorted(set(documented(tables, tests=False)) - set(found))
    assert not stale, f"README.md, section Configuration documents variables no process reads any more: {stale}"


def test_literal_defaults_in_the_code_are_the_documented_ones():
    rows = documented(readme_tables(), tests=False)
    wrong = []
    for name, places in sorted(process_variables().items()):
        for where, default in dict.fromkeys(places):
            if default is not None and default not in rows.get(name, ["", ""])[1]:
                wrong.append(f"{name}: the default {default!r} ({where}) is not in its row's default column")
    assert not wrong, "README.md, section Configuration: " + "; ".join(wrong)


def test_test_only_variables_have_their_own_table():
    tables = readme_tables()
    assert any(h.startswith(TESTS_HEADING) for h in tables), f"README.md: no '### {TESTS_HEADING}' table"
    process = set(process_variables())
    test_rows = documented(tables, tests=True)
    used = {name: list(dict.fromkeys(places)) for name, places in variables_read_by_tests().items()
            if name not in process}
    missing = sorted(set(used) - set(test_rows))
    assert not missing, f"README.md, Configuration / {TESTS_HEADING}: add " + "; ".join(
        f"{name} (read at {', '.join(used[name][:2])})" for name in missing)
    stale = sorted(set(test_rows) - set(used))
    assert not stale, (f"README.md, Configuration / {TESTS_HEADING} lists variables no test, benchmark or script "
                       f"reads, or that a process reads (document those above): {stale}")


def test_each_variable_has_one_row():
    seen: dict[str, str] = {}
    twice = []
    for heading, rows in readme_tables().items():
        for name in rows:
            if name in seen:
                twice.append(f"{name} ({seen[name]} and {heading})")
            seen[name] = heading
    assert not twice, f"README.md, section Configuration: documented twice: {twice}"


def _readme(tmp_path, monkeypatch, row: str) -> None:
    (tmp_path / "README.md").write_text(
        "# x\n\n## Configuration\n\n### Some process\n\n| variable | default | meaning |\n|---|---|---|\n"
        f"{row}\n\n## Next\n\n| `NOT_IN_IT` | a | b |\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)


@pytest.mark.parametrize("row, names", [
    ("| `OKR_JWT_PUBLIC_KEY(_FILE)` | unset | the key |", {"OKR_JWT_PUBLIC_KEY", "OKR_JWT_PUBLIC_KEY_FILE"}),
    ("| `A_B`, `C_D` | `1`, `2` | two at once |", {"A_B", "C_D"}),
])
def test_the_readme_parser_reads_a_row(tmp_path, monkeypatch, row, names):
    _readme(tmp_path, monkeypatch, row)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert readme_tables() == {"Some process": dict.fromkeys(names, cells)}


@pytest.mark.parametrize("row, message", [
    ("| `A_B` | | the meaning |", "A_B needs a default and a meaning"),
    ("| `A_B` | `1` |", "A_B needs a default and a meaning"),
    ("| a_b | `1` | lower case |", "a row without a `VARIABLE`"),
])
def test_the_readme_parser_refuses_an_incomplete_row(tmp_path, monkeypatch, row, message):
    _readme(tmp_path, monkeypatch, row)
    with pytest.raises(AssertionError, match=re.escape(message)):
        readme_tables()
