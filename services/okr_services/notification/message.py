"""What the notification service sends, independent of how (channels.py) and when
(rules.py, delivery.py).

A ``Notification`` is one rule firing for one subject in one period, addressed to one
recipient (a person or a team); the delivery layer turns it into one delivery per
channel the recipient subscribed to, each with a dedupe key, so a redelivered event or
a restart never sends it twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Notification:
    tenant: str
    rule: str  # e.g. "kr_stalled", "checkin_reminder", "team_digest"
    subject: str  # what it is about: a key result id, an initiative id, a team id, a cycle id
    period: str  # the rule's period: an ISO week "2026-W09", a day "2026-03-02", an event position "p123"
    recipient: str  # a person ("alice") or a team ("team:growth")
    title: str  # one line, plain text
    text: str  # the plain-text body (may hold several lines)
    html: str = ""  # the HTML body for e-mail ("" = derived from text)
    severity: str = "info"  # "info" | "warning" | "alert"
    link: str = ""  # where to act (the board, the KR's history)
    facts: tuple[tuple[str, str], ...] = ()  # (label, value) pairs for chat cards
    data: dict[str, Any] = field(default_factory=dict)  # machine-readable, for generic webhooks

    @property
    def dedupe_key(self) -> str:
        """Exactly one notification per (rule, subject, period) and recipient."""
        return f"{self.tenant}|{self.rule}|{self.subject}|{self.period}|{self.recipient}"


class DeliveryError(Exception):
    """A channel could not deliver. ``retryable``: worth another attempt (timeouts,
    connection errors, 5xx, 429); not retryable: the receiver refused the message for good
    (4xx other than 408/429, a rejected address)."""

    def __init__(self, reason: str, retryable: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
