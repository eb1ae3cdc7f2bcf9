"""The import graph, read from the source (AST, nothing imported): the layers of
docs/architecture.md point down only, the top-level packages import each other without
a circle, and no module takes a private (``_name``) helper out of another module.

    okr_cli        the command line          may import okr_services, okr_shared, okr
    okr_services   the services, the launcher  may import okr_shared, okr
    okr_shared     the library               may import okr (the generated protobuf code)
    okr            generated code            imports nothing of ours

An import inside a function counts like one at the top: a lazy import is still an arrow.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"okr_shared": ROOT / "shared" / "okr_shared", "okr_services": ROOT / "services" / "okr_services",
            "okr_cli": ROOT / "services" / "okr_cli"}
# Which top-level package may import which (besides itself): the layers, top to bottom.
MAY_IMPORT = {"okr_cli": {"okr_services", "okr_shared", "okr"}, "okr_services": {"okr_shared", "okr"},
              "okr_shared": {"okr"}}
# Where the private-name rule is checked: every Python file of ours (tests too).
SOURCES = ("shared/okr_shared", "services", "tests", "bench", "scripts", "examples", "deploy")


def _module_name(path: Path, root: Path, package: str) -> str:
    parts = [package, *path.with_suffix("").relative_to(root).parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str | None):
    """(imported module, [names imported from it], line) of every import in ``path``;
    relative imports resolved against ``module`` (None: a script, relative imports are
    not possible)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                assert module is not None, f"{path}:{node.lineno}: a relative import outside a package"
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([target] if target else [])])
            yield target, [a.name for a in node.names], node.lineno


def _package_modules():
    for package, root in PACKAGES.items():
        for path in sorted(root.rglob("*.py")):
            yield package, path, _module_name(path, root, package)


def test_the_packages_exist_where_the_layers_say():
    for package, root in PACKAGES.items():
        assert (root / "__init__.py").is_file(), f"{package} is not at {root.relative_to(ROOT)}"


def test_every_import_points_down_the_layers():
    upward = []
    for package, path, module in _package_modules():
        for target, _, line in _imports(path, module):
            top = target.split(".")[0]
            if top in MAY_IMPORT and top != package and top not in MAY_IMPORT[package]:
                upward.append(f"{path.relative_to(ROOT)}:{line}: {package} imports {target}")
    assert upward == [], "imports pointing up the layers (docs/architecture.md):\n" + "\n".join(upward)


def test_no_circle_between_the_top_level_packages():
    graph: dict[str, set[str]] = defaultdict(set)
    for package, path, module in _package_modules():
        for target, _, _ in _imports(path, module):
            top = target.split(".")[0]
            if top in PACKAGES and top != package:
                graph[package].add(top)

    def reaches(start: str, goal: str, seen=()) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, (*seen, n))) for n in graph[start])

    circles = sorted(p for p in PACKAGES if reaches(p, p))
    assert circles == [], f"packages on an import circle: {circles} (graph: {dict(graph)})"


def _python_files():
    for folder in SOURCES:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _own_module(path: Path) -> str | None:
    """The dotted name of ``path``: up through the folders that are packages (None: a
    script outside any package)."""
    top = path.parent
    if not (top / "__init__.py").is_file():
        return None
    while (top.parent / "__init__.py").is_file():
        top = top.parent
    return _module_name(path, top, top.name)


def test_no_module_imports_a_private_name_of_another():
    found = []
    for path in _python_files():
        if ".venv" in path.parts:
            continue
        module = _own_module(path)
        for target, names, line in _imports(path, module):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            private += [p for p in target.split(".") if p.startswith("_") and not p.startswith("__")]
            if private and target != module:
                found.append(f"{path.relative_to(ROOT)}:{line}: from {target} import {', '.join(private)}")
    assert found == [], ("private helpers imported from another module — make them public in their "
                         "proper home, or move them:\n" + "\n".join(found))


def test_the_checks_see_an_upward_and_a_private_import(tmp_path):
    """The reader itself: a relative import resolves, a private name is seen (a check
    that sees nothing would pass on any tree)."""
    source = tmp_path / "mod.py"
    source.write_text("from ..service_layer import _helper\nimport okr_services.run\n\n"
                      "def f():\n    from .x import y as _z\n")
    imports = list(_imports(source, "okr_shared.demo.mod"))
    assert imports == [("okr_shared.service_layer", ["_helper"], 1), ("okr_services.run", [], 2),
                       ("okr_shared.demo.x", ["y"], 5)]
