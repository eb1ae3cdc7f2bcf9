"""An in-memory world for domain tests: streams of (event_type, data) and a context
that folds them, so a command runs exactly as the services run it, minus I/O."""

from __future__ import annotations

from datetime import date

import pytest

from okr_shared.contracts import event_type_of, payload_to_dict
from okr_shared.domain import fold, handle, target_stream


class World:
    def __init__(self, today: date = date(2026, 2, 10), actor: str = "ana"):
        self.today = today
        self.actor = actor
        self.streams: dict[str, list[tuple[str, dict]]] = {}

    # the Context protocol of the deciders
    def get(self, stream_id: str):
        return fold(self.streams.get(stream_id, ()))

    def run(self, command) -> list:
        """Decide and append; returns the event messages (as the services would)."""
        stream = target_stream(command)
        events = handle(command, self.get(stream), self)
        self.streams.setdefault(stream, []).extend((event_type_of(m), payload_to_dict(m)) for m in events)
        return events

    def snapshot(self) -> dict:
        return {k: list(v) for k, v in self.streams.items()}


def refused(w: World, command, error, match: str):
    """Run ``command``, which must raise ``error`` matching ``match`` and write nothing."""
    before = w.snapshot()
    with pytest.raises(error, match=match) as info:
        w.run(command)
    assert w.snapshot() == before, "a refused command writes nothing"
    return info.value
