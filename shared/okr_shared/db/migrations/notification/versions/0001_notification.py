"""Notification: its own copies of the read models it evaluates rules on
(``notification_rm_*``), its delivery log and schedule, and its directory
(subscriptions, settings, people's time zones, key results' last statuses: the tables
of ``tables_0001``). Creates only the tables that are missing, so a database made
before this history existed is adopted as it is."""

from okr_shared.db.migrations import read_models
from okr_shared.db.migrations.notification.tables_0001 import (
    deliveries, kr_statuses, people, schedule, settings_table, subscriptions,
)
from okr_shared.db.migrations.ops import creating

revision = "0001_notification"
down_revision = None

_create_read_models, _drop_read_models = read_models.creating(
    "notification_rm_", ("cycles", "objectives", "key_results", "initiatives", "key_result_points"))
_create_own, _drop_own = creating(deliveries, schedule, subscriptions, settings_table, people, kr_statuses)


def upgrade() -> None:
    _create_read_models()
    _create_own()


def downgrade() -> None:
    _drop_own()
    _drop_read_models()
