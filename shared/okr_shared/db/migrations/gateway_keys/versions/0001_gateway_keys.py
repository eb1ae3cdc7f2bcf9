"""Gateway: the API keys (okr_services.gateway.auth). Creates the table only when it is
missing, so a keys database made before this history existed is adopted as it is.

Revision ID: 0001_gateway_keys
Revises:
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_gateway_keys"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "gateway_api_keys" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "gateway_api_keys",
        sa.Column("key_id", sa.String(12), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("teams", sa.Text, nullable=False),  # JSON list
        sa.Column("delegated_key_results", sa.Text, nullable=False),  # JSON list
        sa.Column("secret_hash", sa.String(200), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("revoked_at_us", sa.BigInteger, nullable=True),
        sa.Column("last_used_at_us", sa.BigInteger, nullable=True),
        sa.Column("description", sa.Text, nullable=False),
    )
    op.create_index("ix_gateway_api_keys_tenant", "gateway_api_keys", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_gateway_api_keys_tenant", table_name="gateway_api_keys")
    op.drop_table("gateway_api_keys")
