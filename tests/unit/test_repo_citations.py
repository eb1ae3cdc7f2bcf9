"""Code speaks of the repo only: no file of the tree (code, tests, docs, the Makefile,
deploy/, bench/) cites a document that is not in the repository — the design notes the
project started from live outside it. Reasons worth keeping are in docs/ and docs/adr/
(the runtime facts of eventlet, grpcio and nameko: ADR 0030)."""

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Citations of documents outside the repository (spelt in pieces so that this file does
#: not match itself). ``docs/architecture.md`` is the repo's own: only the upper-case
#: name of the outside one is refused.
OUTSIDE = [
    re.compile("NAMEKO" + r"[-_ ]?" + "NOTES", re.IGNORECASE),
    re.compile(r"shared/" + "design"),
    re.compile(r"\b" + "ARCHITECTURE" + r"\.md\b"),
    re.compile(r"\b" + "STYLE" + r"\.md\b"),
    re.compile("design" + r"\s+" + "brief", re.IGNORECASE),
]

#: What is not the project's own text: environments, caches, build and run output.
SKIPPED_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", "node_modules"}
SKIPPED_TOP = {("data",), ("bench", "results")}  # .gitignore: local runs' output


def _tree_files():
    for dirpath, dirnames, filenames in os.walk(ROOT):
        here = Path(dirpath).relative_to(ROOT)
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS and not d.endswith(".egg-info")
                       and (here / d).parts not in SKIPPED_TOP]
        for name in filenames:
            if Path(name).suffix not in {".pyc", ".png", ".jpg", ".gz", ".db", ".sqlite"}:
                yield here / name, Path(dirpath, name)


def _citations(text: str) -> list[str]:
    return [m.group(0) for pattern in OUTSIDE for m in pattern.finditer(text)]


def test_no_file_of_the_tree_cites_a_document_outside_the_repository():
    found = []
    for rel, path in _tree_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary
        for lineno, line in enumerate(text.splitlines(), 1):
            if hits := _citations(line):
                found.append(f"{rel}:{lineno}: {', '.join(hits)}")
    assert not found, "cite docs/ or docs/adr/ instead:\n" + "\n".join(found)


def test_the_check_recognises_each_kind_of_citation():
    for cited in ("(" + "NAMEKO" + "-NOTES.md)", "../shared/" + "design/x.md", "ARCHITECTURE" + ".md",
                  "see " + "STYLE" + ".md", "the " + "design " + "brief"):
        assert _citations(cited), cited
    for own in ("docs/architecture.md", "../shared/okr_shared/contracts.py", "docs/adr/0030-…"):
        assert not _citations(own), own


def test_the_scan_covers_code_tests_docs_and_deployment():
    seen = {rel.as_posix() for rel, _ in _tree_files()}
    for expected in ("Makefile", "pyproject.toml", "docs/architecture.md", "tests/conftest.py",
                     "services/okr_services/gateway/server.py", "shared/okr_shared/bus/consumer.py",
                     "deploy/k8s/34-relay.yaml"):
        assert expected in seen, expected
