"""The Alembic environment of every history under this folder (run by
okr_shared.db.migrate, which names the history's versions and version table)."""

from okr_shared.db.migrate import run_environment

run_environment()
