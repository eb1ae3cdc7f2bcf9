"""``okr board``: the kanban board in the terminal (ReportingService.GetBoard)."""

from __future__ import annotations

import click

from .api import Api, api_options, emit_json, to_dict, valid_date
from .text import optional, percent, short, table


def render_board(board) -> list[str]:
    """An okr.v1.Board as terminal lines: a header, then a table per status column
    (key results, then initiatives); ``okr replay`` prints a replayed board with it too."""
    lines = [f"board on {board.today}" + "".join(
        f", {k} {v}" for k, v in (("cycle", board.filters.cycle_id), ("team", board.filters.team_id),
                                  ("owner", board.filters.owner)) if v)]
    for title, columns, kr in (("KEY RESULTS", board.key_results, True), ("INITIATIVES", board.initiatives, False)):
        lines.append("")
        lines.append(f"== {title} ==")
        for column in columns:
            lines.append(f"[{column.status}] ({len(column.cards)})")
            if not column.cards:
                continue
            rows = []
            for c in column.cards:
                if kr:
                    conf = optional(c, "confidence")
                    days = optional(c, "days_since_check_in")
                    rows.append([c.id, short(c.title), c.owner or "-", percent(optional(c, "progress")),
                                 "-" if conf is None else f"{conf}/10" + {"up": " ↑", "down": " ↓"}.get(
                                     c.confidence_trend, ""),
                                 "-" if days is None else f"{days}d"])
                else:
                    rows.append([c.id, short(c.title), c.owner or "-", percent(optional(c, "progress")),
                                 c.state or "-", c.due_date or "-"])
            headers = (["id", "title", "owner", "progress", "confidence", "since check-in"] if kr
                       else ["id", "title", "assignee", "progress", "state", "due"])
            lines.extend("  " + line for line in table(rows, headers))
    return lines



@click.command("board")
@click.option("--cycle", default="", help="Only this cycle (default: every cycle that is not closed).")
@click.option("--team", default="", help="Only cards of this team's objectives.")
@click.option("--owner", default="", help="Only key results owned by / initiatives assigned to this person.")
@click.option("--today", default=None, callback=valid_date, help="Day to compute statuses on, YYYY-MM-DD.")
@api_options
def board_command(api: Api, cycle, team, owner, today):
    """The kanban board: one column per status, cards with owner, progress,
    confidence and days since the last check-in."""
    from okr.v1 import reporting_pb2

    board = api.call(api.stub("reporting").GetBoard,
                     reporting_pb2.GetBoardRequest(cycle_id=cycle, team_id=team, owner=owner, today=today or ""))
    if api.json:
        emit_json(to_dict(board))
    else:
        click.echo("\n".join(render_board(board)))

