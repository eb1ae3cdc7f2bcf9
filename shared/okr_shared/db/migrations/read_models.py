"""The shape of a read-model table, as the first revisions of the ``reporting`` and
``notification`` histories create it: ``(tenant, key, doc)`` with a unique
``(tenant, key)`` index named ``ux_<table>_<token>`` (a rebuild swaps tables, and index
names must stay unique in a PostgreSQL schema: each set of tables gets a token of its
own, docs/adr/0009-reporting-storage-and-rebuild.md). Part of those revisions: a
later change of shape is a new revision, never an edit here."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from alembic import op

#: A key result's chart points: their keys compare byte by byte (PostgreSQL's default
#: collations may not; SQLite's BINARY does), docs/adr/0019-chart-points-in-rows-of-their-own.md.
POINTS = "key_result_points"


def create_missing(prefix: str, names: Iterable[str]) -> None:
    """Create the read-model tables ``<prefix><name>`` that do not exist yet."""
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    token = uuid.uuid4().hex[:8]
    for name in names:
        table = f"{prefix}{name}"
        if table in existing:
            continue
        key = sa.String(400).with_variant(sa.String(400, collation="C"), "postgresql") if name == POINTS \
            else sa.String(400)
        op.create_table(
            table,
            sa.Column("tenant", sa.String(64), nullable=False),
            sa.Column("key", key, nullable=False),
            sa.Column("doc", sa.Text, nullable=False),
        )
        op.create_index(f"ux_{table}_{token}", table, ["tenant", "key"], unique=True)
