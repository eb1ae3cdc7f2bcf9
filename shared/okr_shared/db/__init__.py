"""The platform's SQL databases other than the event store (which owns its own,
okr_shared.eventstore): their write transactions and the SQLite write lock
(``transactions``), and their schemas, each from an Alembic history of its own
(``migrate``; the revisions are in ``migrations/<database>/versions/``, the tables as a
revision leaves them in ``migrations/<database>/tables_<revision>.py``, which the code
imports too: docs/adr/0032-one-definition-per-table.md)."""

from .migrate import HISTORIES, migrate
from .transactions import sqlite_write_lock, write_transaction

__all__ = ["HISTORIES", "migrate", "sqlite_write_lock", "write_transaction"]
