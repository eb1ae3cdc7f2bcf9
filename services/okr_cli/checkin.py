"""``okr checkin KR VALUE --confidence N``: record a check-in (ProgressService.RecordCheckIn)."""

from __future__ import annotations

import click

from .api import Api, api_options, emit_json, to_dict, valid_date


@click.command("checkin")
@click.argument("key_result")
@click.argument("value", type=float)
@click.option("--confidence", type=int, required=True, help="Confidence of reaching the target, 0-10.")
@click.option("--date", "effective_date", default=None, callback=valid_date,
              help="Day the value applies to, YYYY-MM-DD (default: today).")
@click.option("--comment", default="", help="Free-text comment.")
@click.option("--command-id", default="", help="Idempotency key: retry with the same one after exit 6.")
@click.option("--check-in-id", default="", help="Id of the new check-in (default: generated).")
@api_options
def checkin_command(api: Api, key_result, value, confidence, effective_date, comment, command_id, check_in_id):
    """Record a check-in of VALUE on KEY_RESULT (you are its author)."""
    from okr.v1 import progress_pb2

    result = api.call(api.stub("progress").RecordCheckIn, progress_pb2.RecordCheckInRequest(
        check_in_id=check_in_id, key_result_id=key_result, value=value, confidence=confidence,
        effective_date=effective_date or "", comment=comment, command_id=command_id))
    if api.json:
        emit_json(to_dict(result))
        return
    again = " (already stored by an earlier call with this --command-id)" if result.already_stored else ""
    click.echo(f"check-in {result.created_id} recorded on {key_result}{again}: stream {result.stream_id} "
               f"version {result.stream_version}, position {result.last_position}")
