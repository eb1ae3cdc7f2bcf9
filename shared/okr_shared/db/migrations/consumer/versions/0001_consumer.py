"""Consumer layer: ordered consumers' offsets, unordered consumers' processed event ids,
dead letters (the tables of ``tables_0001``). Creates only the tables that are missing,
so a database made by the consumer layer before this history existed is adopted as it is."""

from okr_shared.db.migrations.consumer.tables_0001 import dead_letters, offsets, processed
from okr_shared.db.migrations.ops import creating

revision = "0001_consumer"
down_revision = None

upgrade, downgrade = creating(offsets, processed, dead_letters)
