"""What the first revisions of the histories do with a revision's table snapshot
(``<history>/tables_<revision>.py``, docs/adr/0032-one-definition-per-table.md)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def create_missing(*tables: sa.Table) -> None:
    """Create those of ``tables`` (of one MetaData) that do not exist yet, with their
    indexes: a table the database already has — made before its history existed, by the
    old ``ensure_schema`` — is adopted as it is, its rows and indexes untouched."""
    tables[0].metadata.create_all(op.get_bind(), tables=list(tables), checkfirst=True)


def drop(*tables: sa.Table) -> None:
    """Drop ``tables`` (with their indexes)."""
    tables[0].metadata.drop_all(op.get_bind(), tables=list(tables), checkfirst=False)
