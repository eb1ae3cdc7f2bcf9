"""How the ``okr`` commands show answers in a terminal: tables, shortened text, percentages,
timestamps (the JSON output of ``--json`` is okr_cli.api.emit_json)."""

from __future__ import annotations

from datetime import timezone


def percent(value) -> str:
    """A fraction as a whole percentage; ``-`` for none."""
    return "-" if value is None else f"{value * 100:.0f}%"


def optional(message, field):
    """An optional (proto3 ``optional``) field's value, None when unset."""
    return getattr(message, field) if message.HasField(field) else None


def table(rows: list[list[str]], headers: list[str]) -> list[str]:
    """Left-aligned columns, as wide as their widest cell: the header line, then a line per row."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*headers).rstrip()] + [fmt.format(*map(str, r)).rstrip() for r in rows]


def short(text: str, width: int = 48) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def iso_time(ts) -> str:
    """A protobuf Timestamp as ISO-8601 UTC to the second (``...Z``)."""
    return ts.ToDatetime(tzinfo=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")

