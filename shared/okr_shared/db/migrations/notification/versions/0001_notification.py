"""Notification: its own copies of the read models it evaluates rules on
(``notification_rm_*``), its delivery log and schedule, and its directory
(subscriptions, settings, people's time zones, key results' last statuses). Creates
only the tables that are missing, so a database made before this history existed is
adopted as it is.

Revision ID: 0001_notification
Revises:
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from okr_shared.db.migrations.read_models import create_missing

revision = "0001_notification"
down_revision = None
branch_labels = None
depends_on = None

READ_MODELS = ("cycles", "objectives", "key_results", "initiatives", "key_result_points")
OWN = ("notification_deliveries", "notification_schedule", "notification_subscriptions",
       "notification_settings", "notification_people", "notification_kr_status")


def upgrade() -> None:
    create_missing("notification_rm_", READ_MODELS)
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "notification_deliveries" not in existing:
        op.create_table(
            "notification_deliveries",
            sa.Column("id", sa.String(40), nullable=False),
            sa.Column("tenant", sa.String(64), nullable=False),
            sa.Column("dedupe_key", sa.String(1000), nullable=False),
            sa.Column("channel", sa.String(64), nullable=False),
            sa.Column("target", sa.Text, nullable=False),
            sa.Column("target_hash", sa.String(64), nullable=False),
            sa.Column("target_display", sa.String(300), nullable=False),
            sa.Column("rule", sa.String(128), nullable=False),
            sa.Column("subject", sa.String(256), nullable=False),
            sa.Column("period", sa.String(64), nullable=False),
            sa.Column("recipient", sa.String(256), nullable=False),
            sa.Column("payload", sa.Text, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("next_attempt_at_us", sa.BigInteger, nullable=True),
            sa.Column("claimed_until_us", sa.BigInteger, nullable=True),
            sa.Column("claim_token", sa.String(32), nullable=True),
            sa.Column("last_error", sa.Text, nullable=True),
            sa.Column("created_at_us", sa.BigInteger, nullable=False),
            sa.Column("updated_at_us", sa.BigInteger, nullable=False),
            sa.Column("sent_at_us", sa.BigInteger, nullable=True),
            sa.PrimaryKeyConstraint("id", name="pk_notification_deliveries"),
            sa.UniqueConstraint("dedupe_key", "channel", "target_hash", name="uq_notification_deliveries_key"),
        )
        op.create_index("ix_notification_deliveries_due", "notification_deliveries",
                        ["status", "next_attempt_at_us"])
        op.create_index("ix_notification_deliveries_log", "notification_deliveries",
                        ["tenant", "created_at_us", "id"])
    if "notification_schedule" not in existing:
        op.create_table(
            "notification_schedule",
            sa.Column("tenant", sa.String(64), nullable=False),
            sa.Column("rule", sa.String(128), nullable=False),
            sa.Column("subject", sa.String(256), nullable=False),
            sa.Column("last_period", sa.String(64), nullable=False),
            sa.Column("updated_at_us", sa.BigInteger, nullable=False),
            sa.PrimaryKeyConstraint("tenant", "rule", "subject", name="pk_notification_schedule"),
        )
    if "notification_subscriptions" not in existing:
        op.create_table(
            "notification_subscriptions",
            sa.Column("id", sa.String(40), primary_key=True),
            sa.Column("tenant", sa.String(64), nullable=False),
            sa.Column("subscriber", sa.String(200), nullable=False),
            sa.Column("channel", sa.String(20), nullable=False),
            sa.Column("target", sa.Text, nullable=False),
            sa.Column("secret", sa.Text, nullable=False),
            sa.Column("rules", sa.Text, nullable=True),
            sa.Column("created_at_us", sa.BigInteger, nullable=False),
        )
        op.create_index("ix_notification_subscriptions_lookup", "notification_subscriptions",
                        ["tenant", "subscriber"])
    if "notification_settings" not in existing:
        op.create_table(
            "notification_settings",
            sa.Column("tenant", sa.String(64), primary_key=True),
            sa.Column("doc", sa.Text, nullable=False),
            sa.Column("updated_at_us", sa.BigInteger, nullable=False),
        )
    if "notification_people" not in existing:
        op.create_table(
            "notification_people",
            sa.Column("tenant", sa.String(64), primary_key=True),
            sa.Column("person", sa.String(200), primary_key=True),
            sa.Column("timezone", sa.String(64), nullable=False),
        )
    if "notification_kr_status" not in existing:
        op.create_table(
            "notification_kr_status",
            sa.Column("tenant", sa.String(64), primary_key=True),
            sa.Column("key_result_id", sa.String(200), primary_key=True),
            sa.Column("status", sa.String(32), nullable=False),
            sa.Column("updated_at_us", sa.BigInteger, nullable=False),
        )


def downgrade() -> None:
    for table in reversed(OWN):
        op.drop_table(table)
    for name in reversed(READ_MODELS):
        op.drop_table(f"notification_rm_{name}")
