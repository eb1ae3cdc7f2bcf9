"""Canonical bytes and the per-tenant hash chain (the format of docs/audit-format.md).

canonical(event) = for each field, in this order:
    format tag "okr.event.v1", position, tenant_id, stream_id, stream_version,
    event_id, event_type, schema_version, recorded_at_us, data_json, metadata_json
  the field's UTF-8 bytes (integers as decimal ASCII) preceded by their length as a
  4-byte unsigned big-endian integer.

hash = SHA-256(previous hash of the same tenant (32 raw bytes; 32 zero bytes for the
tenant's first event) || canonical(event)), stored as lowercase hex.

data_json and metadata_json are hashed exactly as stored; they are written once by
``dumps`` below (sorted keys, no whitespace, UTF-8), so no JSON re-canonicalisation is
ever needed to verify.
"""

from __future__ import annotations

import hashlib
import json
from struct import Struct

FORMAT_TAG = b"okr.event.v1"
GENESIS_HASH = bytes(32)

_len = Struct(">I").pack
_TAG_FIELD = _len(len(FORMAT_TAG)) + FORMAT_TAG


_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(obj) -> str:
    """Serialise a JSON object the one way the store writes it."""
    return _encoder.encode(obj)


loads = json.loads


def canonical_bytes(
    position: int,
    tenant_id: str,
    stream_id: str,
    stream_version: int,
    event_id: str,
    event_type: str,
    schema_version: int,
    recorded_at_us: int,
    data_json: str,
    metadata_json: str,
) -> bytes:
    """The bytes of one event that the chain hash covers."""
    fields = (
        str(position).encode(),
        tenant_id.encode(),
        stream_id.encode(),
        str(stream_version).encode(),
        event_id.encode(),
        event_type.encode(),
        str(schema_version).encode(),
        str(recorded_at_us).encode(),
        data_json.encode(),
        metadata_json.encode(),
    )
    return _TAG_FIELD + b"".join([_len(len(f)) + f for f in fields])


def chain_hash(prev_hash: bytes, canonical: bytes) -> bytes:
    """SHA-256(prev_hash || canonical) as 32 raw bytes."""
    return hashlib.sha256(prev_hash + canonical).digest()


def chain_records(records: list, prev: bytes, position: int, tenant_id: str, stream_id: str, current: int,
                  rows: list[tuple], now: int) -> bytes:
    """Append to ``records`` the stored rows of ``rows`` (from ``_prepare``) written at
    ``position`` on, after stream version ``current``, chained from ``prev``; return the
    last hash."""
    for i, (event_id, event_type, schema_version, data, meta) in enumerate(rows):
        version = current + 1 + i
        prev = chain_hash(prev, canonical_bytes(
            position + i, tenant_id, stream_id, version, event_id, event_type, schema_version, now, data, meta,
        ))
        records.append((position + i, tenant_id, stream_id, version, event_id, event_type,
                        schema_version, data, meta, now, prev.hex()))
    return prev
