"""The shape of a read-model table, as the first revisions of the ``reporting`` and
``notification`` histories create it: ``(tenant, key, doc)`` with a unique
``(tenant, key)`` index named ``ux_<table>_<token>`` (a rebuild swaps tables, and index
names must stay unique in a PostgreSQL schema: each set of tables gets a token of its
own, docs/adr/0009-reporting-storage-and-rebuild.md). Part of those revisions: a
later change of shape is a new revision, never an edit here."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

import sqlalchemy as sa

from .columns import tenant_id
from .ops import create, drop

#: A key result's chart points: their keys compare byte by byte (PostgreSQL's default
#: collations may not; SQLite's BINARY does), docs/adr/0019-chart-points-in-rows-of-their-own.md.
POINTS = "key_result_points"


def columns(name: str) -> list[sa.Column]:
    """The columns of the read-model table of model table ``name`` (new objects on each
    call: a Column belongs to one table); okr_shared.readmodels.storage builds its tables
    on them."""
    key = sa.String(400).with_variant(sa.String(400, collation="C"), "postgresql") if name == POINTS \
        else sa.String(400)
    return [
        tenant_id("tenant"),
        sa.Column("key", key, nullable=False),
        sa.Column("doc", sa.Text, nullable=False),
    ]


def read_model_tables(prefix: str, names: Iterable[str]) -> list[sa.Table]:
    """The read-model tables ``<prefix><name>``, their indexes named after a new token."""
    metadata, token = sa.MetaData(), uuid.uuid4().hex[:8]
    tables = []
    for name in names:
        table = sa.Table(f"{prefix}{name}", metadata, *columns(name))
        sa.Index(f"ux_{table.name}_{token}", table.c.tenant, table.c.key, unique=True)
        tables.append(table)
    return tables


def creating(prefix: str, names: Iterable[str]) -> tuple[Callable[[], None], Callable[[], None]]:
    """The ``upgrade`` and ``downgrade`` of a revision that creates the read-model tables
    ``<prefix><name>`` that do not exist yet (their indexes named after a token of the
    upgrade's) and, going down, drops them, last first."""
    names = tuple(names)

    def upgrade() -> None:
        create(*read_model_tables(prefix, names))

    def downgrade() -> None:
        drop(*reversed(read_model_tables(prefix, names)))

    return upgrade, downgrade
