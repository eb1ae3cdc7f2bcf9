"""What the benchmark scripts share: their size and backend options, PostgreSQL schemas
of a run's own, and the run's last line (one JSON object with every figure). Imported by the scripts as ``common``
(``python bench/x.py`` puts bench/ first on the path)."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path


def add_size_options(parser, full: dict) -> None:
    """One ``--<size>`` option per size of ``full`` (``_`` spelt ``-``), overriding it."""
    for k in full:
        parser.add_argument(f"--{k.replace('_', '-')}", dest=k, type=int, default=None, help=f"override (full: {full[k]})")


def chosen_sizes(args, full: dict, quick: dict) -> dict:
    """The run's sizes: ``quick`` with --quick, else ``full``; each one given as an
    option (``add_size_options``) wins."""
    sizes = dict(quick if args.quick else full)
    for k in full:
        if getattr(args, k) is not None:
            sizes[k] = getattr(args, k)
    return sizes


def chosen_backends(parser, spec: str) -> list[str]:
    """The backends of a comma list (``sqlite,postgres``); another name is a usage error."""
    backends = [b.strip() for b in spec.split(",") if b.strip()]
    for b in backends:
        if b not in ("sqlite", "postgres"):
            parser.error(f"unknown backend {b!r}")
    return backends


class Schemas:
    """PostgreSQL schemas of a bench run's own in ``url``'s database: ``new(prefix)``
    creates one and returns the URL selecting it (``options=-csearch_path=…``, so the
    processes a bench starts with that URL see it); ``drop()`` drops them all."""

    def __init__(self, url: str):
        self.url = url
        self.names: list[str] = []

    def new(self, prefix: str) -> str:
        from sqlalchemy import make_url, text

        from okr_shared.eventstore import make_engine

        schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
        admin = make_engine(self.url)
        try:
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        finally:
            admin.dispose()
        self.names.append(schema)
        return (make_url(self.url).update_query_dict({"options": f"-csearch_path={schema}"})
                .render_as_string(hide_password=False))

    def drop(self) -> None:
        if not self.names:
            return
        from sqlalchemy import text

        from okr_shared.eventstore import make_engine

        admin = make_engine(self.url)
        with admin.begin() as conn:
            for schema in self.names:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
        self.names.clear()


def run_figures(load_before: list[float], started: float) -> dict:
    """The run's load average before and after, and its duration (``started``: a
    ``time.perf_counter()`` reading)."""
    return {
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.perf_counter() - started, 1),
    }


def print_summary(summary: dict, out: str | None = None) -> None:
    """Print ``summary`` as the run's last line (compact JSON); also write it to ``out``."""
    line = json.dumps(summary, separators=(",", ":"))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(line + "\n")
    print(line, flush=True)
