"""Snapshots of folded stream state (derived data; safe to empty at any time): the
table of ``tables_0002``."""

from okr_shared.db.migrations.ops import creating
from okr_shared.eventstore.migrations.tables_0002 import snapshots

revision = "0002_snapshots"
down_revision = "0001_event_store"

upgrade, downgrade = creating(snapshots, adopt=False)
