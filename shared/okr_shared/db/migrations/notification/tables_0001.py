"""The notification service's own tables as revision ``0001_notification`` creates them
(its copies of the read models are okr_shared.db.migrations.read_models'), and as its
delivery log (``okr_services.notification.delivery``) and directory (``.directory``) use
them. A later change is a new revision with a snapshot of its own
(docs/adr/0032-one-definition-per-table.md), never an edit here."""

from sqlalchemy import Column, Index, Integer, MetaData, PrimaryKeyConstraint, String, Table, Text, UniqueConstraint

from ..columns import sha256, tenant_id, time_us

metadata = MetaData()

# ------------------------------------------------------------------ the delivery log

deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("id", String(40), nullable=False),
    tenant_id("tenant"),
    Column("dedupe_key", String(1000), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("target", Text, nullable=False),
    sha256("target_hash"),
    Column("target_display", String(300), nullable=False),
    Column("rule", String(128), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("period", String(64), nullable=False),
    Column("recipient", String(256), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    time_us("next_attempt_at_us", nullable=True),
    time_us("claimed_until_us", nullable=True),
    Column("claim_token", String(32), nullable=True),
    Column("last_error", Text, nullable=True),
    time_us("created_at_us"),
    time_us("updated_at_us"),
    time_us("sent_at_us", nullable=True),
    PrimaryKeyConstraint("id", name="pk_notification_deliveries"),
    UniqueConstraint("dedupe_key", "channel", "target_hash", name="uq_notification_deliveries_key"),
)
Index("ix_notification_deliveries_due", deliveries.c.status, deliveries.c.next_attempt_at_us)
Index("ix_notification_deliveries_log", deliveries.c.tenant, deliveries.c.created_at_us, deliveries.c.id)

schedule = Table(
    "notification_schedule",
    metadata,
    tenant_id("tenant"),
    Column("rule", String(128), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("last_period", String(64), nullable=False),
    time_us("updated_at_us"),
    PrimaryKeyConstraint("tenant", "rule", "subject", name="pk_notification_schedule"),
)

# ------------------------------------------------------------------ the directory

subscriptions = Table(
    "notification_subscriptions", metadata,
    Column("id", String(40), primary_key=True),
    tenant_id("tenant"),
    Column("subscriber", String(200), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("target", Text, nullable=False),
    Column("secret", Text, nullable=False, default=""),
    Column("rules", Text, nullable=True),
    time_us("created_at_us"),
    Index("ix_notification_subscriptions_lookup", "tenant", "subscriber"),
)

settings_table = Table(
    "notification_settings", metadata,
    tenant_id("tenant", primary_key=True),
    Column("doc", Text, nullable=False),
    time_us("updated_at_us"),
)

people = Table(
    "notification_people", metadata,
    tenant_id("tenant", primary_key=True),
    Column("person", String(200), primary_key=True),
    Column("timezone", String(64), nullable=False),
)

kr_statuses = Table(
    "notification_kr_status", metadata,
    tenant_id("tenant", primary_key=True),
    Column("key_result_id", String(200), primary_key=True),
    Column("status", String(32), nullable=False),
    time_us("updated_at_us"),
)
