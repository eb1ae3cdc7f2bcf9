"""Notification: its own copies of the read models it evaluates rules on
(``notification_rm_*``), its delivery log and schedule, and its directory
(subscriptions, settings, people's time zones, key results' last statuses: the tables
of ``tables_0001``). Creates only the tables that are missing, so a database made
before this history existed is adopted as it is.

Revision ID: 0001_notification
Revises:
Create Date: 2026-12-06
"""

from okr_shared.db.migrations.notification.tables_0001 import (
    deliveries, kr_statuses, people, schedule, settings_table, subscriptions,
)
from okr_shared.db.migrations.ops import create_missing, drop
from okr_shared.db.migrations.read_models import create_missing_read_models, drop_read_models

revision = "0001_notification"
down_revision = None

READ_MODELS = ("cycles", "objectives", "key_results", "initiatives", "key_result_points")
OWN = (deliveries, schedule, subscriptions, settings_table, people, kr_statuses)


def upgrade() -> None:
    create_missing_read_models("notification_rm_", READ_MODELS)
    create_missing(*OWN)


def downgrade() -> None:
    drop(*reversed(OWN))
    drop_read_models("notification_rm_", READ_MODELS)
