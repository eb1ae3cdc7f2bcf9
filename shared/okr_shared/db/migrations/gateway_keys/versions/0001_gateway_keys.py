"""Gateway: the API keys (the table of ``tables_0001``). Creates the table only when it
is missing, so a keys database made before this history existed is adopted as it is."""

from okr_shared.db.migrations.gateway_keys.tables_0001 import api_keys
from okr_shared.db.migrations.ops import creating

revision = "0001_gateway_keys"
down_revision = None

upgrade, downgrade = creating(api_keys)
