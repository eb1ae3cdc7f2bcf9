"""The test suite is one package tree, ``tests``: every folder under tests/ that holds a
Python file (and every folder above it, up to tests/ itself) has an ``__init__.py``, so a
test module imports a helper as ``tests.infra`` or ``from .consumer_fixtures import ...``
rather than as a top-level name that only resolves through pytest's rootdir insertion
(and could collide with a module of the same name in another folder). Data-only folders
(tests/fixtures/databases) are not packages."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def python_folders(root: Path) -> set[Path]:
    """Folders under ``root`` holding a ``.py`` file, with their parents up to ``root``."""
    folders: set[Path] = set()
    for path in root.rglob("*.py"):
        if any(part.startswith((".", "__pycache__")) for part in path.relative_to(root).parts):
            continue
        folder = path.parent
        while True:
            folders.add(folder)
            if folder == root:
                break
            folder = folder.parent
    return folders


def folders_without_init(root: Path) -> list[str]:
    return sorted(str(f.relative_to(root.parent)) for f in python_folders(root)
                  if not (f / "__init__.py").is_file())


def test_every_test_folder_is_a_package():
    missing = folders_without_init(TESTS)
    assert not missing, f"test folders without __init__.py: {missing}"


def test_the_suite_is_imported_as_the_tests_package():
    # pytest names a module after its package path when every folder is a package
    assert __name__ == "tests.unit.test_tests_are_packages"


def test_the_check_names_a_folder_without_init(tmp_path):
    root = tmp_path / "tests"
    (root / "unit" / "deep").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "__init__.py").write_text("")
    (root / "unit" / "deep" / "__init__.py").write_text("")
    (root / "unit" / "deep" / "test_x.py").write_text("")
    (root / "data" / "rows.sql").write_text("")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "cache.py").write_text("")
    assert folders_without_init(root) == ["tests/unit"]  # a parent of a package counts; data does not
