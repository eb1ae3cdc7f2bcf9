"""The one backoff rule of the library and the services: a delay that grows by
``factor`` per attempt from ``base`` and stops growing at ``cap``. Each user keeps its
own policy around it (how many attempts, jitter, what sleeping means): the command
executor's conflict retries, the consumer layer's handler retries, the relay's
reconnects and the notification deliveries."""

from __future__ import annotations


def exponential_delay(attempt: int, base: float, cap: float, factor: float = 2.0) -> float:
    """``min(cap, base * factor ** (attempt - 1))``: ``base`` for the first attempt,
    ``cap`` once the growth passes it (also where the power would overflow)."""
    try:
        return min(cap, base * factor ** (attempt - 1))
    except OverflowError:
        return cap
