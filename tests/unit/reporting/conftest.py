import pytest

from tests.fixtures.company_history import company_history


@pytest.fixture(scope="session")
def history():
    """The generated 12-week history of acme (seed 2026)."""
    return company_history()
