"""The gateway's API keys table as revision ``0001_gateway_keys`` creates it, and as
okr_services.gateway.auth uses it. A later change is a new revision with a snapshot of
its own (docs/adr/0032-one-definition-per-table.md), never an edit here."""

from sqlalchemy import Column, MetaData, String, Table, Text

from ..columns import tenant_id, time_us

metadata = MetaData()

#: A key's id: 12 hex digits, the first part of the key's text after ``okr_``.
KEY_ID_LENGTH = 12

api_keys = Table(
    "gateway_api_keys",
    metadata,
    Column("key_id", String(KEY_ID_LENGTH), primary_key=True),
    tenant_id("tenant", index=True),
    Column("subject", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("teams", Text, nullable=False),  # JSON list
    Column("delegated_key_results", Text, nullable=False),  # JSON list
    Column("secret_hash", String(200), nullable=False),
    time_us("created_at_us"),
    time_us("revoked_at_us", nullable=True),
    time_us("last_used_at_us", nullable=True),
    Column("description", Text, nullable=False, default=""),
)
