"""The platform's SQL databases other than the event store (which owns its own,
okr_shared.eventstore): their write transactions and the SQLite write lock
(``transactions``), and their schemas, each from an Alembic history of its own
(``migrate``; the revisions are in ``migrations/<database>/versions/``)."""

from .migrate import HISTORIES, migrate
from .transactions import sqlite_write_lock, write_transaction

__all__ = ["HISTORIES", "migrate", "sqlite_write_lock", "write_transaction"]
