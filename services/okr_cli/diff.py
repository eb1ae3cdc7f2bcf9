"""``okr diff --since TIME [--until TIME]``: what changed between two instants, the weekly
review (ReportingService.GetDiff)."""

from __future__ import annotations

import click

from .api import Api, api_options, emit_json, parse_instant, to_dict
from .text import short


@click.command("diff")
@click.option("--since", required=True, help="The earlier instant: position, date YYYY-MM-DD or ISO moment.")
@click.option("--until", default=None, help="The later instant (default: now, the live read model).")
@api_options
def diff_command(api: Api, since, until):
    """What changed between two instants: check-ins, status changes, adjustments, new key
    results, slipped initiatives (the weekly review)."""
    from okr.v1 import reporting_pb2

    request = reporting_pb2.GetDiffRequest(since=parse_instant(since, "--since"))
    if until:
        request.until.CopyFrom(parse_instant(until, "--until"))
    diff = api.call(api.stub("reporting").GetDiff, request)
    data = to_dict(diff)
    if api.json:
        emit_json(data)
        return
    click.echo(f"changes from {diff.today_before} to {diff.today_after}")
    sections = (("check-ins", "check_ins"), ("status changes", "status_changes"), ("adjustments", "adjustments"),
                ("new key results", "new_key_results"), ("slipped initiatives", "slipped_initiatives"))
    for title, key in sections:
        items = data.get(key, [])
        click.echo(f"{title}: {len(items)}")
        for item in items:
            click.echo("  " + short(_diff_line(key, item), 150))


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _diff_line(section: str, item: dict) -> str:
    g = item.get
    if section == "status_changes":
        before, after = g("from_status") or g("from") or "(new)", g("to_status") or g("to") or "?"
        return f"{g('key_result_id')}: {before} → {after} ({g('owner', '-')})"
    if section == "check_ins":
        return (f"{g('key_result_id', '?')}: {g('what', 'check_in')} value {_num(g('value'))}, confidence "
                f"{_num(g('confidence'))} by {g('author') or g('actor') or '-'} on {g('effective_date', '-')}"
                + ("" if g("in_force", True) else " (superseded)"))
    if section == "new_key_results":
        return f"{g('key_result_id')}: \"{g('title', '')}\" owned by {g('owner', '-')}"
    if section == "slipped_initiatives":
        return f"{g('initiative_id')}: {g('change')} (due {g('due_date', '-')}, {g('assignee', '-')})"
    if section == "adjustments":
        changes = g("changes") or {}
        what = ", ".join(f"{k} {_num(v.get('old'))} → {_num(v.get('new'))}" for k, v in changes.items()
                         if isinstance(v, dict))
        reason = f" — {g('reason')}" if g("reason") else ""
        return f"{g('key_result_id')}: {g('what', 'adjusted')} {what}".rstrip() + reason
    return ", ".join(f"{k}={_num(v)}" for k, v in item.items() if v not in ("", None, [], {}))

