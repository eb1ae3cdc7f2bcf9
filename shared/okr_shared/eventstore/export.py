"""Export of one tenant's history as JSON lines (format: docs/audit-format.md)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator
from typing import TextIO

from .canonical import FORMAT_TAG
from .store import EventStore

EXPORT_FORMAT = "okr.export.v1"

#: Chunk sizes of a streamed export (ExportBundleRequest.max_chunk_bytes, audit.proto):
#: the default, and the bounds a requested size is brought within (never refused). The
#: cap leaves 1 KiB of the 4 MiB default gRPC message limit for the chunk's framing, its
#: sequence number and the chain head of the last chunk.
CHUNK_DEFAULT = 1 << 20
CHUNK_MIN = 1024
CHUNK_MAX = (4 << 20) - 1024


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


def chunk_size(requested: int) -> int:
    """The chunk size served for a requested one: 0 is the default, anything else is
    brought within CHUNK_MIN .. CHUNK_MAX."""
    return CHUNK_DEFAULT if not requested else min(max(requested, CHUNK_MIN), CHUNK_MAX)


def chunk_lines(lines: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Whole lines packed in order into chunks of at most ``size`` bytes, as many as fit;
    a line longer than ``size`` goes alone into a chunk of its own. Yields at least one
    chunk (empty if there are no lines)."""
    pending: list[bytes] = []
    pending_bytes = 0
    for line in lines:
        if pending and pending_bytes + len(line) > size:
            yield b"".join(pending)
            pending, pending_bytes = [], 0
        pending.append(line)
        pending_bytes += len(line)
    yield b"".join(pending)


def export_chunks(store: EventStore, tenant_id: str, max_chunk_bytes: int = 0) -> Iterator[tuple[bytes, dict | None]]:
    """The export of ``tenant_id`` (export_jsonl) in chunks of whole lines of at most
    ``chunk_size(max_chunk_bytes)`` bytes: ``(data, None)`` for each chunk but the last,
    ``(data, chain_head)`` for the last. The whole file is written (to a temporary file)
    before the first chunk, so a slow reader never holds the store's read open."""
    size = chunk_size(max_chunk_bytes)
    with tempfile.TemporaryFile("w+", encoding="ascii", newline="") as out:
        head = export_jsonl(store, tenant_id, out)
        out.seek(0)
        chunks = chunk_lines((line.encode("ascii") for line in out), size)
        data = next(chunks)
        for following in chunks:
            yield data, None
            data = following
        yield data, head
