"""Fixtures of the contract suite (the helpers: contract_suite.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .contract_suite import Suite

HERE = Path(__file__).resolve().parent
_running: list[Suite] = []


@pytest.fixture(scope="session")
def suite(tmp_path_factory):
    """The whole suite as `make run` starts it, shared by the contract tests of a session.

    It runs under `make run`'s own service names on the broker's default vhost, so it must
    not outlive the contract tests: another `make run` started by a later test (the run
    and browser tests) would share its RPC queues. pytest_runtest_teardown below stops it
    after the last contract test; the session's end is only the fallback."""
    base = tmp_path_factory.mktemp("contract")
    running = Suite(base / "data", metrics=True)  # the gateway's /metrics: test_validation_decoding.py
    _running.append(running)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def pytest_runtest_teardown(item, nextitem):
    """After the last test of tests/contract (in collection order), stop the suite."""
    if _running and (nextitem is None or HERE not in Path(str(nextitem.path)).resolve().parents):
        for running in _running:
            running.stop()


@pytest.fixture
def tenant(suite):
    """A fresh tenant with an admin key: (tenant id, key)."""
    return suite.new_tenant("admin")
