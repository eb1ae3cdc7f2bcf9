"""Reporting: the read models (cycles, objectives, key results and their chart points,
initiatives, history). Creates only the tables that are missing, so a database made
before this history existed is adopted as it is."""

from okr_shared.db.migrations import read_models

revision = "0001_reporting"
down_revision = None

upgrade, downgrade = read_models.creating(
    "reporting_", ("cycles", "objectives", "key_results", "initiatives", "history", "key_result_points"))
