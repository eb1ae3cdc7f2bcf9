"""``okr replay --as-of TIME|POSITION``: a read model as it was (AuditService.ReplayAsOf)."""

from __future__ import annotations

import json
import re

import click

from .api import Api, api_options, emit_json, parse_instant, valid_date
from .board import render_board


READ_MODELS = ("board", "team_dashboard", "person_dashboard", "scorecard", "kr_history", "key_result_status",
               "key_result_statuses", "objective_rollup", "alignment_tree", "model")


def _param(ctx, param, values):
    out = {}
    for item in values:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r}: give NAME=VALUE, e.g. cycle_id=q1")
        try:
            out[name] = json.loads(raw) if raw in ("true", "false") or re.fullmatch(r"-?\d+(\.\d+)?", raw) else raw
        except ValueError:
            out[name] = raw
    return out


@click.command("replay")
@click.option("--as-of", "as_of", required=True,
              help="A store position (inclusive), a date YYYY-MM-DD or a moment ISO-8601 (exclusive).")
@click.option("--read-model", type=click.Choice(READ_MODELS), default="board", show_default=True)
@click.option("--param", "params", multiple=True, callback=_param,
              help="A read model argument NAME=VALUE (repeatable), e.g. cycle_id=q1.")
@click.option("--today", default=None, callback=valid_date, help="Day the figures are computed on.")
@api_options
def replay_command(api: Api, as_of, read_model, params, today):
    """A read model as it was at an instant, replayed from the event store."""
    from google.protobuf.json_format import MessageToDict, ParseDict

    from okr.v1 import audit_pb2, reporting_pb2

    request = audit_pb2.ReplayAsOfRequest(read_model=audit_pb2.ReadModel.Value(f"READ_MODEL_{read_model.upper()}"),
                                          at=parse_instant(as_of, "--as-of"), today=today or "")
    request.params.update(params)
    answer = api.call(api.stub("audit").ReplayAsOf, request)
    result = MessageToDict(answer.result) if answer.HasField("result") else None
    if api.json:
        emit_json({"read_model": read_model, "today": answer.today, "position": answer.position, "result": result})
        return
    click.echo(f"{read_model} as of {as_of} (last event folded: position {answer.position}; "
               f"today {answer.today or '-'})")
    if read_model == "board" and isinstance(result, dict):
        board = ParseDict(result, reporting_pb2.Board(), ignore_unknown_fields=True)
        click.echo("\n".join(render_board(board)[1:]))
    else:
        emit_json(result)

