"""Gateway: the API keys (the table of ``tables_0001``). Creates the table only when it
is missing, so a keys database made before this history existed is adopted as it is.

Revision ID: 0001_gateway_keys
Revises:
Create Date: 2026-12-06
"""

from okr_shared.db.migrations.gateway_keys.tables_0001 import api_keys
from okr_shared.db.migrations.ops import create_missing, drop

revision = "0001_gateway_keys"
down_revision = None


def upgrade() -> None:
    create_missing(api_keys)


def downgrade() -> None:
    drop(api_keys)
