"""ExportBundle read in a plain process: a grpcio stream does not advance in the
eventlet-patched test process (tests/conftest.py), so ``export`` runs this module as a
script, which reads the stream with a channel of gRPC's default options (its 4 MiB
receive limit applies, as for any client) and prints the chunks.

    python audit_export_driver.py GATEWAY API_KEY MAX_CHUNK_BYTES
    # one JSON object: {"code", "details", "chunks": [base64 of each ExportChunk]}
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import grpc

from okr.v1 import audit_pb2, audit_pb2_grpc


class ExportRefused(Exception):
    """The stream ended with a status other than OK: ``code`` (a grpc.StatusCode name)."""

    def __init__(self, code: str, details: str, chunks: list):
        super().__init__(f"{code}: {details}")
        self.code, self.details, self.chunks = code, details, chunks


def export(gateway: str, key: str, max_chunk_bytes: int = 0) -> list[audit_pb2.ExportChunk]:
    """Every ExportChunk of the caller's export, in order (ExportRefused if it failed)."""
    done = subprocess.run([sys.executable, __file__, gateway, key, str(max_chunk_bytes)], capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    chunks = [audit_pb2.ExportChunk.FromString(base64.b64decode(c)) for c in out["chunks"]]
    if out["code"] != "OK":
        raise ExportRefused(out["code"], out["details"], chunks)
    return chunks


def _read(gateway: str, key: str, max_chunk_bytes: str) -> None:
    chunks, code, details = [], "OK", ""
    with grpc.insecure_channel(gateway) as channel:
        call = audit_pb2_grpc.AuditServiceStub(channel).ExportBundle(
            audit_pb2.ExportBundleRequest(max_chunk_bytes=int(max_chunk_bytes)),
            metadata=(("authorization", f"ApiKey {key}"),), timeout=120)
        try:
            for chunk in call:
                chunks.append(base64.b64encode(chunk.SerializeToString()).decode("ascii"))
        except grpc.RpcError as e:
            code, details = e.code().name, e.details() or ""
    json.dump({"code": code, "details": details, "chunks": chunks}, sys.stdout)


if __name__ == "__main__":
    _read(*sys.argv[1:])
