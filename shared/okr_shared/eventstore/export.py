"""Export of one tenant's history as JSON lines (format: docs/audit-format.md)."""

from __future__ import annotations

import json
from typing import TextIO

from .canonical import FORMAT_TAG
from .store import EventStore

EXPORT_FORMAT = "okr.export.v1"


def export_jsonl(store: EventStore, tenant_id: str, out: TextIO) -> dict:
    """Write ``tenant_id``'s whole history to ``out``: a header line, one line per event
    in position order, and a trailer with the chain head. Returns the trailer.

    The chain head is read first and events are exported up to its position, so an
    export taken while appends go on is still a consistent, verifiable prefix.
    """
    head = store.chain_head(tenant_id) or {"last_position": 0, "last_hash": None, "event_count": 0}
    out.write(
        json.dumps({"format": EXPORT_FORMAT, "canonical": FORMAT_TAG.decode(), "tenant_id": tenant_id})
        + "\n"
    )
    if head["last_position"]:
        for ev in store.read_all(tenant_id=tenant_id, to_position=head["last_position"], batch_size=5000):
            # ASCII-only lines (non-ASCII escaped as \uXXXX): the file reads the same in
            # any encoding and no U+2028 can split a line; parsing restores the exact text.
            out.write(json.dumps(ev._asdict()) + "\n")
    out.write(json.dumps({"chain_head": head}) + "\n")
    return head
