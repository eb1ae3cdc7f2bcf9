"""Consumer layer: ordered consumers' offsets, unordered consumers' processed event ids,
dead letters (the tables of ``tables_0001``). Creates only the tables that are missing,
so a database made by the consumer layer before this history existed is adopted as it is.

Revision ID: 0001_consumer
Revises:
Create Date: 2026-12-06
"""

from okr_shared.db.migrations.consumer.tables_0001 import dead_letters, offsets, processed
from okr_shared.db.migrations.ops import create_missing, drop

revision = "0001_consumer"
down_revision = None


def upgrade() -> None:
    create_missing(offsets, processed, dead_letters)


def downgrade() -> None:
    drop(dead_letters, processed, offsets)
