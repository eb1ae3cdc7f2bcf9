"""What a revision does with the tables of its snapshot (``tables_<revision>.py``,
docs/adr/0032-one-definition-per-table.md): create them, drop them — the first revision
of every history, the event store's included."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op


def create(*tables: sa.Table, adopt: bool = True) -> None:
    """Create ``tables`` (of one MetaData) with their indexes. ``adopt``: only those that
    do not exist yet — a table the database already has (made before its history
    existed, by the old ``ensure_schema``) is kept as it is, its rows and indexes
    untouched; else one that exists is an error."""
    tables[0].metadata.create_all(op.get_bind(), tables=list(tables), checkfirst=adopt)


def drop(*tables: sa.Table) -> None:
    """Drop ``tables`` (with their indexes)."""
    tables[0].metadata.drop_all(op.get_bind(), tables=list(tables), checkfirst=False)


def creating(*tables: sa.Table, adopt: bool = True) -> tuple[Callable[[], None], Callable[[], None]]:
    """The ``upgrade`` and ``downgrade`` of a revision that creates ``tables`` (``create``)
    and, going down, drops them, last first."""
    def upgrade() -> None:
        create(*tables, adopt=adopt)

    def downgrade() -> None:
        drop(*reversed(tables))

    return upgrade, downgrade
