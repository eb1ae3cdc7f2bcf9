"""Dates are exactly YYYY-MM-DD (docs/api.md, "Limits"): the other forms Python's
date.fromisoformat takes are refused, naming the field."""

from __future__ import annotations

from datetime import date

import pytest

from okr_shared.domain import validation
from okr_shared.domain.errors import ValidationError


@pytest.mark.parametrize("text", ["2026-W49-1", "2026-W491", "2026-340", "20261207", "2026-12-7", "2026-02-30",
                                  "２０２６-12-07"])
def test_a_date_in_another_form_is_refused_naming_the_field(text):
    with pytest.raises(ValidationError) as caught:
        validation.iso_date("due_date", text)
    assert caught.value.field == "due_date"


def test_a_calendar_date_is_read():
    assert validation.iso_date("due_date", "2026-12-07") == date(2026, 12, 7)
