"""``okr history KR``: who changed what, when and why (AuditService.GetHistory, every page)."""

from __future__ import annotations

import click

from .api import Api, api_options, emit_json, to_dict
from .text import iso_time, short, table


@click.command("history")
@click.argument("key_result", required=False)
@click.option("--stream", "stream_id", default=None, help="Any stream id instead of a key result, e.g. objective-o1.")
@click.option("--page-size", type=click.IntRange(1, 1000), default=200, show_default=True)
@api_options
def history_command(api: Api, key_result, stream_id, page_size):
    """Who changed KEY_RESULT, when, what and why (every page)."""
    from okr.v1 import audit_pb2

    if bool(key_result) == bool(stream_id):
        raise click.UsageError("give a KEY_RESULT or --stream (one of them)")
    stub, entries, token, listed = api.stub("audit"), [], "", ""
    while True:
        request = audit_pb2.GetHistoryRequest(page_size=page_size, page_token=token)
        if key_result:
            request.key_result_id = key_result
        else:
            request.stream_id = stream_id
        page = api.call(stub.GetHistory, request)
        listed = page.stream_id
        entries.extend(page.entries)
        token = page.next_page_token
        if not token:
            break
    if api.json:
        emit_json({"stream_id": listed, "entries": [to_dict(e) for e in entries]})
        return
    rows = []
    for e in entries:
        payload = dict(e.payload.items()) if e.payload else {}
        detail = ""
        if "value" in payload:
            detail = f"value {payload['value']:g}" + (f", confidence {int(payload['confidence'])}"
                                                      if "confidence" in payload else "")
            if payload.get("effective_date"):  # the day the value is about (may be back-dated)
                detail += f", for {payload['effective_date']}"
            if payload.get("comment"):
                detail += f", \"{short(payload['comment'], 30)}\""
        rows.append([e.position, iso_time(e.recorded_at), e.actor or "-", e.what or e.event_type.split(".")[-1],
                     short(e.reason, 30) or "-", detail or "-"])
    click.echo(f"history of {listed} ({len(entries)} events)")
    click.echo("\n".join(table(rows, ["position", "when", "who", "what", "why", "details"])))
