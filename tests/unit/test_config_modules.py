"""The environment is read in the configuration modules only (ADR 0031): one per process
kind, each reading when asked. A business module under ``shared/`` or ``services/`` that
touches ``os.environ``, ``os.getenv`` or a name ``environ`` fails here, naming the file
and line: it should ask its configuration module instead.

Checked from the source (AST): ``os.environ`` / ``os.getenv`` / ``os.putenv`` as
attributes, ``from os import environ`` (or ``getenv``), and any use of a name
``environ`` (a mapping handed around in place of the environment).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = (ROOT / "services", ROOT / "shared" / "okr_shared")

#: The configuration modules, one per process kind (docs/architecture.md, "Configuration").
CONFIG_MODULES = frozenset({
    "shared/okr_shared/config.py",                    # library level: every process kind
    "services/okr_services/gateway/config.py",        # the gateway (and `okr keys`)
    "services/okr_services/notification/config.py",   # the notification service
    "services/okr_services/reporting/config.py",      # projection rebuilds and their workers
    "services/okr_services/run_config.py",            # `make run`, the suite's supervisor
})

_OS_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def environment_reads(source: str, filename: str = "<source>") -> list[int]:
    """The lines of ``source`` that touch the process environment."""
    lines = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Attribute) and node.attr in _OS_NAMES and isinstance(node.value, ast.Name) \
                and node.value.id == "os":
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and any(
                alias.name in _OS_NAMES for alias in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.Name) and node.id == "environ":
            lines.append(node.lineno)
        elif isinstance(node, ast.arg) and node.arg == "environ":
            lines.append(node.lineno)
    return sorted(set(lines))


def readers_outside_config(roots=SOURCES, root=ROOT) -> list[str]:
    found = []
    for base in roots:
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if "__pycache__" in path.parts or rel in CONFIG_MODULES:
                continue
            found += [f"{rel}:{line}" for line in environment_reads(path.read_text(), rel)]
    return found


def test_only_the_configuration_modules_read_the_environment():
    found = readers_outside_config()
    assert not found, ("the environment is read outside the configuration modules (ADR 0031; read it in the "
                       "process kind's config module and call that): " + ", ".join(found))


def test_every_configuration_module_exists_and_reads_the_environment():
    for rel in sorted(CONFIG_MODULES):
        path = ROOT / rel
        assert path.is_file(), f"{rel}: listed as a configuration module, but missing"
        assert environment_reads(path.read_text(), rel), f"{rel}: a configuration module that reads nothing"


def test_a_read_in_a_business_module_is_reported(tmp_path):
    package = tmp_path / "services" / "okr_services" / "alpha"
    package.mkdir(parents=True)
    (package / "clean.py").write_text("import os\n\npath = os.path.join('a', 'b')\n")
    (package / "reads.py").write_text(
        "import os\n"
        "from os import getenv\n"
        "a = os.environ.get('OKR_A', '1')\n"
        "b = os.getenv('OKR_B')\n"
        "def f(environ=None):\n"
        "    return environ\n")
    (package / "config.py").write_text("import os\nx = os.environ.get('OKR_X')\n")
    found = readers_outside_config(roots=(tmp_path / "services",), root=tmp_path)
    assert found == ["services/okr_services/alpha/config.py:2",
                     "services/okr_services/alpha/reads.py:2", "services/okr_services/alpha/reads.py:3",
                     "services/okr_services/alpha/reads.py:4", "services/okr_services/alpha/reads.py:5",
                     "services/okr_services/alpha/reads.py:6"]


def test_the_allowed_modules_are_not_reported(tmp_path):
    config = tmp_path / "services" / "okr_services" / "gateway" / "config.py"
    config.parent.mkdir(parents=True)
    config.write_text("import os\nx = os.environ.get('OKR_X')\n")
    assert readers_outside_config(roots=(tmp_path / "services",), root=tmp_path) == []
