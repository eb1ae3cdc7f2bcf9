"""``okr audit verify|export``: the tenant's hash chain, verified on the server or exported
as the okr.export.v1 file (docs/audit-format.md)."""

from __future__ import annotations

import contextlib
import os
import sys

import click

from .api import EXIT_NO, EXIT_OK, EXIT_UNAVAILABLE, Api, ApiError, api_options, emit_json, to_dict


@click.group("audit")
def audit_group():
    """The tenant's hash chain: verify it, export it (okr.export.v1)."""


@audit_group.command("verify")
@click.option("--expected-head", default="", help="An anchored chain hash (64 hex) that must be in the chain.")
@click.option("--expected-position", type=click.IntRange(1), default=None,
              help="The position the anchor was recorded at (needs --expected-head).")
@api_options
def audit_verify_command(api: Api, expected_head, expected_position):
    """Recompute the tenant's hash chain on the server; exit 1 when it is broken or the
    anchor (an earlier chain head: the latest or an older one) does not match."""
    from okr.v1 import audit_pb2

    request = audit_pb2.VerifyChainRequest(expected_head=expected_head, expected_head_position=expected_position or 0)
    answer = api.call(api.stub("audit").VerifyChain, request)
    if api.json:
        emit_json(to_dict(answer) | {"ok": answer.ok})
    elif answer.ok:
        head = answer.chain_head
        anchor = (f"; expected head matched at position {answer.expected_head_position} "
                  f"({answer.events_after_anchor} later event(s) verified)" if answer.anchor_matched else "")
        click.echo(f"chain ok: {answer.events_checked} events checked; head {head.last_hash or '-'} at position "
                   f"{head.last_position} ({head.event_count} events){anchor}")
    else:
        where = f" at position {answer.first_bad_position} (event {answer.first_bad_event_id})" \
            if answer.first_bad_position else ""
        click.echo(f"chain BROKEN{where}: {answer.reason} ({answer.events_checked} events checked)")
    sys.exit(EXIT_OK if answer.ok else EXIT_NO)


@audit_group.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@click.option("--chunk-bytes", type=click.IntRange(1024, 4 * 1024 * 1024), default=None,
              help="Preferred chunk size (default: the server's, 1 MiB).")
@api_options
def audit_export_command(api: Api, file, chunk_bytes):
    """Write the tenant's whole history to FILE (okr.export.v1 JSON lines) and print the
    chain head to anchor; verify it offline with examples/verify_export.py."""
    import grpc

    from okr.v1 import audit_pb2

    stub = api.stub("audit")
    call = stub.ExportBundle(audit_pb2.ExportBundleRequest(max_chunk_bytes=chunk_bytes or 0), metadata=api.metadata)
    partial = f"{file}.part"
    written, head, expected_seq = 0, None, 0
    show = not api.json and sys.stderr.isatty()
    try:
        bar = click.progressbar(length=1, label="exporting", file=sys.stderr, show_eta=False, show_percent=False,
                                item_show_func=lambda _: f"{written:,} bytes") if show else contextlib.nullcontext()
        with open(partial, "wb") as out, bar:
            for chunk in call:
                if chunk.sequence != expected_seq:
                    raise ApiError(f"the export lost chunk {expected_seq} — run it again", EXIT_UNAVAILABLE)
                expected_seq += 1
                out.write(chunk.data)
                written += len(chunk.data)
                if show:
                    bar.render_progress()
                if chunk.HasField("chain_head"):
                    head = chunk.chain_head
    except grpc.RpcError as e:
        _remove(partial)
        raise api.error(e) from None
    except BaseException:
        _remove(partial)
        raise
    if head is None:
        _remove(partial)
        raise ApiError("the export was cut off (no chain head in the last chunk) — run it again", EXIT_UNAVAILABLE)
    os.replace(partial, file)
    if api.json:
        emit_json({"file": file, "bytes": written, "chain_head": to_dict(head) | {
            "last_position": head.last_position, "event_count": head.event_count, "last_hash": head.last_hash}})
        return
    click.echo(f"exported {head.event_count} events ({written:,} bytes) to {file}")
    click.echo(f"chain head: {head.last_hash or '-'} at position {head.last_position} — anchor it outside the platform")
    click.echo(f"verify offline: python examples/verify_export.py {file}"
               + (f" --expect-head {head.last_hash}" if head.last_hash else ""))


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass

