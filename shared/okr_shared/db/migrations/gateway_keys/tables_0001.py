"""The gateway's API keys table as revision ``0001_gateway_keys`` creates it, and as
okr_services.gateway.auth uses it. A later change is a new revision with a snapshot of
its own (docs/adr/0032-one-definition-per-table.md), never an edit here."""

from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text

metadata = MetaData()

#: A key's id: 12 hex digits, the first part of the key's text after ``okr_``.
KEY_ID_LENGTH = 12

api_keys = Table(
    "gateway_api_keys",
    metadata,
    Column("key_id", String(KEY_ID_LENGTH), primary_key=True),
    Column("tenant", String(64), nullable=False, index=True),
    Column("subject", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("teams", Text, nullable=False),  # JSON list
    Column("delegated_key_results", Text, nullable=False),  # JSON list
    Column("secret_hash", String(200), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("revoked_at_us", BigInteger, nullable=True),
    Column("last_used_at_us", BigInteger, nullable=True),
    Column("description", Text, nullable=False, default=""),
)
