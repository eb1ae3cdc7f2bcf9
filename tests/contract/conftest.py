"""Fixtures of the contract suite (the helpers: contract_suite.py)."""

from __future__ import annotations

import pytest

from contract_suite import Suite


@pytest.fixture(scope="session")
def suite(tmp_path_factory):
    """The whole suite as `make run` starts it, shared by the contract tests of a session."""
    base = tmp_path_factory.mktemp("contract")
    running = Suite(base / "data", metrics=True)  # the gateway's /metrics: test_validation_decoding.py
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture
def tenant(suite):
    """A fresh tenant with an admin key: (tenant id, key)."""
    return suite.new_tenant("admin")
