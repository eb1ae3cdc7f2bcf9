"""okr_shared.retry: the one backoff rule its four users share."""

from __future__ import annotations

import pytest

from okr_shared.retry import exponential_delay


@pytest.mark.parametrize("attempt, expected", [(1, 0.1), (2, 0.2), (3, 0.4), (6, 3.2), (7, 5.0), (50, 5.0)])
def test_the_delay_doubles_from_base_up_to_the_cap(attempt, expected):
    assert exponential_delay(attempt, 0.1, 5.0) == pytest.approx(expected)


def test_another_factor_and_a_power_that_would_overflow_give_the_cap():
    assert exponential_delay(3, 2.0, 600.0, factor=3.0) == 18.0
    assert exponential_delay(10**6, 2.0, 600.0, factor=10.0) == 600.0
