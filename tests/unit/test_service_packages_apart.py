"""No service package imports another service's package (docs/architecture.md): what two
services both need lives in ``okr_shared`` (the read models: ``okr_shared.readmodels``);
the modules at the top of ``services/okr_services/`` that ``ALLOWED`` lists are shared
service code every service may import.

Checked from the source (AST), so a lazy import inside a function counts as much as one
at the top of a module: every ``import``/``from ... import`` statement (relative ones
resolved against the file's package) and every ``importlib.import_module(...)`` or
``__import__(...)`` of a constant name, in every module under
``services/okr_services/<service>/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services" / "okr_services"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "okr_shared"
#: Modules of okr_services every service may import: the RPC entrypoints and replies,
#: the shared nameko dependency providers, the thread-pool wrapper of pure functions.
#: (``run`` and ``run_config``, the ``make run`` supervisor, are no service's to import.)
ALLOWED = frozenset({"rpc", "dependencies", "off_the_hub"})


def service_packages(root: Path) -> list[str]:
    """The service packages under ``root`` (``okr_services``): its sub-packages."""
    return sorted(p.name for p in root.iterdir() if (p / "__init__.py").is_file())


def _package_of(path: Path, root: Path) -> list[str]:
    """The dotted package (as parts) a module file belongs to, ``root`` being the
    top-level package's folder."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return parts[:-1]  # a module's package; a package's __init__ is in the package itself


def imported_names(path: Path, root: Path) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of everything ``path`` imports. For ``from X
    import a`` both ``X`` and ``X.a`` are listed (``a`` may be a module)."""
    package = _package_of(path, root)
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value))
    return found


def foreign_imports(root: Path) -> list[str]:
    """Every import, under ``root`` (``okr_services``), of a service package by a module
    of another: ``"<file>:<line> imports <module>"``."""
    services = set(service_packages(root))
    out = []
    for service in sorted(services):
        for path in sorted((root / service).rglob("*.py")):
            for line, module in imported_names(path, root):
                parts = module.split(".")
                if len(parts) >= 2 and parts[0] == root.name and parts[1] not in ALLOWED | {service}:
                    out.append(f"{path.relative_to(root.parent)}:{line} imports {module}")
    return sorted(set(out))


def test_no_service_package_imports_another_services_package():
    assert foreign_imports(SERVICES) == []


def test_every_service_is_checked():
    assert {"gateway", "goal", "notification", "progress", "relay", "reporting"} <= set(service_packages(SERVICES))


def test_the_shared_read_models_import_no_service():
    imports = [f"{path.name}:{line} imports {module}" for path in sorted((SHARED / "readmodels").rglob("*.py"))
               for line, module in imported_names(path, SHARED) if module.split(".")[0] == "okr_services"]
    assert imports == []


def test_the_check_sees_every_way_of_importing(tmp_path):
    root = tmp_path / "okr_services"
    (root / "alpha" / "sub").mkdir(parents=True)
    (root / "beta").mkdir()
    for init in (root, root / "alpha", root / "alpha" / "sub", root / "beta"):
        (init / "__init__.py").write_text("")
    (root / "rpc.py").write_text("")
    (root / "alpha" / "ok.py").write_text(
        "import okr_services.rpc\nfrom okr_services import dependencies\nfrom okr_services.alpha import sub\n"
        "from . import sub\nfrom .sub import x\nfrom .. import off_the_hub as c\nimport okr_shared.readmodels\n")
    (root / "alpha" / "bad.py").write_text(
        "import okr_services.beta.service\n"
        "from okr_services.beta import storage\n"
        "from okr_services import beta\n"
        "from .. import beta as b\n"
        "def later():\n    from ..beta.service import Thing\n"
        "import importlib\nimportlib.import_module('okr_services.beta.rules')\n")
    (root / "alpha" / "sub" / "deep.py").write_text("from ...beta import storage\n")
    assert foreign_imports(root) == sorted([
        "okr_services/alpha/bad.py:1 imports okr_services.beta.service",
        "okr_services/alpha/bad.py:2 imports okr_services.beta",
        "okr_services/alpha/bad.py:2 imports okr_services.beta.storage",
        "okr_services/alpha/bad.py:3 imports okr_services.beta",
        "okr_services/alpha/bad.py:4 imports okr_services.beta",
        "okr_services/alpha/bad.py:6 imports okr_services.beta.service",
        "okr_services/alpha/bad.py:6 imports okr_services.beta.service.Thing",
        "okr_services/alpha/bad.py:8 imports okr_services.beta.rules",
        "okr_services/alpha/sub/deep.py:1 imports okr_services.beta",
        "okr_services/alpha/sub/deep.py:1 imports okr_services.beta.storage",
    ])
