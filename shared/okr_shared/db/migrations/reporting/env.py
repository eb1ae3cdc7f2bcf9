"""Alembic environment of the reporting database (run by okr_shared.db.migrate)."""

from okr_shared.db.migrate import run_environment

run_environment()
