"""The server-rendered kanban board page: plain HTML and CSS, no JavaScript, readable on
a phone (columns stack on a narrow screen), refreshed by the browser every 30 s
(``<meta http-equiv="refresh">``). Every value from the model is escaped.

Stable hooks for page tests: ``<section class="board" data-tenant=…>``, each column
``<div class="column" data-kind="kr|initiative" data-status="ON_TRACK">`` with
``<span class="count">``, each card ``<article class="card" data-kind="kr"
data-kr-id="…">`` (initiatives: ``data-initiative-id``) with ``.title``, ``.owner``,
``.progress`` (``<progress>`` and ``.progress-label``), ``.pace``, ``.confidence``,
``.since-check-in``, ``.due``.
"""

from __future__ import annotations

from html import escape

REFRESH_SECONDS = 30

_LABELS = {
    "ON_TRACK": "On track", "AT_RISK": "At risk", "OFF_TRACK": "Off track",
    "CHECK_IN_OVERDUE": "Check-in overdue", "STALLED": "Stalled", "DONE": "Done",
    "TODO": "To do", "DOING": "Doing", "OVERDUE": "Overdue", "DROPPED": "Dropped",
}

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;padding:.75rem;background:#f4f5f7;color:#172b4d}
header h1{font-size:1.25rem;margin:0 0 .25rem}
header p{margin:0 0 .75rem;color:#5e6c84;font-size:.85rem}
h2{font-size:1rem;margin:1rem 0 .5rem}
.columns{display:grid;grid-template-columns:repeat(auto-fit,minmax(12rem,1fr));gap:.75rem;align-items:start}
.column{background:#ebecf0;border-radius:6px;padding:.5rem}
.column h3{font-size:.9rem;margin:0 0 .5rem;display:flex;justify-content:space-between}
.column[data-status=ON_TRACK] h3,.column[data-status=DONE] h3{color:#006644}
.column[data-status=AT_RISK] h3{color:#974f0c}
.column[data-status=OFF_TRACK] h3,.column[data-status=OVERDUE] h3{color:#bf2600}
.column[data-status=CHECK_IN_OVERDUE] h3,.column[data-status=STALLED] h3{color:#5243aa}
.card{background:#fff;border-radius:4px;padding:.5rem;margin:0 0 .5rem;box-shadow:0 1px 1px rgba(9,30,66,.25);border-left:3px solid #c1c7d0}
.card[data-status=ON_TRACK],.card[data-status=DONE]{border-left-color:#36b37e}
.card[data-status=AT_RISK]{border-left-color:#ffab00}
.card[data-status=OFF_TRACK],.card[data-status=OVERDUE]{border-left-color:#de350b}
.card[data-status=CHECK_IN_OVERDUE],.card[data-status=STALLED]{border-left-color:#6554c0}
.card[data-status=DOING]{border-left-color:#0065ff}
.card .title{font-weight:600;font-size:.9rem;margin:0 0 .25rem;overflow-wrap:anywhere}
.card dl{display:grid;grid-template-columns:auto minmax(0,1fr);gap:.1rem .5rem;margin:.25rem 0 0;font-size:.8rem}
.card dt{color:#5e6c84;white-space:nowrap}.card dd{margin:0;min-width:0}
.card dd.progress{display:flex;align-items:center;gap:.4rem}
.card progress{flex:1 1 auto;width:0;min-width:0;height:.6rem}
.card progress:indeterminate{display:none}
.empty{color:#5e6c84;font-size:.8rem;margin:0}
@media (max-width:40rem){.columns{grid-template-columns:1fr}body{padding:.5rem}}
"""


def _pct(value) -> str:
    return "–" if value is None else f"{round(value * 100)}%"


def _text(value) -> str:
    return "–" if value is None or value == "" else escape(str(value))


def _card(card: dict) -> str:
    kind = card.get("kind", "kr")
    id_attr = "data-kr-id" if kind == "kr" else "data-initiative-id"
    progress = card.get("progress")
    bar = (f'<progress max="100" value="{round(max(0.0, min(1.0, progress)) * 100)}"></progress>'
           if progress is not None else '<progress max="100"></progress>')
    rows = [
        ("owner", "Owner", _text(card.get("owner"))),
        ("progress", "Progress", f'{bar}<span class="progress-label">{_pct(progress)}</span>'),
        ("pace", "Pace", f"expected {_pct(card.get('expected'))}"),
    ]
    if kind == "kr":
        confidence = card.get("confidence")
        trend = card.get("confidence_trend")
        rows.append(("confidence", "Confidence",
                     _text(confidence) + (f' <span class="trend">({escape(str(trend))})</span>' if trend else "")))
        days = card.get("days_since_check_in")
        rows.append(("since-check-in", "Last check-in", "never" if days is None else f"{int(days)} d ago"))
    else:
        rows.append(("state", "State", _text(card.get("state"))))
        if card.get("slips"):
            rows.append(("slips", "Slipped", f"{int(card['slips'])}×"))
    rows.append(("due", "Due", _text(card.get("due_date"))))
    body = "".join(f'<dt>{label}</dt><dd class="{cls}">{value}</dd>' for cls, label, value in rows)
    team = card.get("team") or ""
    return (f'<article class="card" data-kind="{escape(kind)}" {id_attr}="{escape(str(card.get("id", "")))}" '
            f'data-status="{escape(str(card.get("status", "")))}" data-team="{escape(team)}">'
            f'<p class="title">{escape(str(card.get("title", "")))}</p><dl>{body}</dl></article>')


def _column(kind: str, column: dict) -> str:
    status = str(column["status"])
    cards = column["cards"]
    inner = "".join(_card(c) for c in cards) or '<p class="empty">Nothing here</p>'
    return (f'<div class="column" data-kind="{kind}" data-status="{escape(status)}">'
            f'<h3><span class="name">{escape(_LABELS.get(status, status))}</span>'
            f'<span class="count">{len(cards)}</span></h3>{inner}</div>')


def render_board(board: dict, refresh_seconds: int = REFRESH_SECONDS) -> str:
    """The board page of a ``queries.board`` result."""
    tenant = escape(str(board.get("tenant", "")))
    filters = board.get("filters") or {}
    shown = ", ".join(f"{escape(k)}={escape(str(v))}" for k, v in filters.items() if v)
    krs = "".join(_column("kr", c) for c in board.get("key_results", []))
    initiatives = "".join(_column("initiative", c) for c in board.get("initiatives", []))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{int(refresh_seconds)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>OKR board – {tenant}</title><style>{CSS}</style></head>"
        f'<body><section class="board" data-tenant="{tenant}" data-today="{escape(str(board.get("today", "")))}">'
        f'<header><h1>OKR board – {tenant}</h1><p>as of <time>{escape(str(board.get("today", "")))}</time>'
        f'{" · " + shown if shown else ""} · refreshes every {int(refresh_seconds)} s</p></header>'
        f'<h2>Key results</h2><div class="columns key-results">{krs}</div>'
        f'<h2>Initiatives</h2><div class="columns initiatives">{initiatives}</div>'
        "</section></body></html>\n"
    )
