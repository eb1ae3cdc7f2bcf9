"""The one clock of the library and the services: wall time in the forms the code
stores and compares (microseconds since the Unix epoch, UTC; today's date in UTC).

A component that needs a controllable clock takes a callable defaulting to ``now_us``
(the event store's ``clock``, the notification service's ``Clock``), so tests fix the
time without patching this module."""

from __future__ import annotations

import time
from datetime import date, datetime, timezone


def now_us() -> int:
    """Microseconds since the Unix epoch (UTC): ``recorded_at_us`` and every stored time."""
    return time.time_ns() // 1000


def utc_today() -> date:
    """Today in UTC: the default day of a plan, a check-in or a command."""
    return datetime.now(timezone.utc).date()
