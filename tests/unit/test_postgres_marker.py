"""Every test that runs on the PostgreSQL server carries the ``postgres`` marker, so that
``pytest -m "not postgres"`` runs without it (README, "Tests"). Checked on the suite's
own collection: a backend parameter named ``postgres`` left unmarked would be selected
by ``-m "not postgres"`` and is reported here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


def backend_params(test_id: str) -> set[str]:
    """The parameter ids of a collected test (``a[sqlite-x]`` → {"sqlite", "x"})."""
    match = re.search(r"\[(.*)\]$", test_id)
    return set(match.group(1).split("-")) if match else set()


@pytest.mark.slow
def test_not_postgres_selects_no_test_with_a_postgres_backend():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not postgres", "-p", "no:cacheprovider",
         str(TESTS)], capture_output=True, text=True, timeout=240, cwd=TESTS.parent)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    summary = re.search(r"(\d+)/(\d+) tests collected \((\d+) deselected\)", done.stdout)
    assert summary, done.stdout[-500:]
    assert int(summary.group(3)) > 0, "the postgres runs were deselected"
    assert sum("sqlite" in backend_params(i) for i in ids) > 100, "the backend-parametrised tests were collected"
    unmarked = [i for i in ids if "postgres" in backend_params(i)]
    assert unmarked == [], f"runs on PostgreSQL without the postgres marker: {unmarked[:20]}"
