"""Reporting: the read models (cycles, objectives, key results and their chart points,
initiatives, history). Creates only the tables that are missing, so a database made
before this history existed is adopted as it is.

Revision ID: 0001_reporting
Revises:
Create Date: 2026-12-06
"""

from okr_shared.db.migrations.read_models import create_missing_read_models, drop_read_models

revision = "0001_reporting"
down_revision = None

TABLES = ("cycles", "objectives", "key_results", "initiatives", "history", "key_result_points")


def upgrade() -> None:
    create_missing_read_models("reporting_", TABLES)


def downgrade() -> None:
    drop_read_models("reporting_", TABLES)
