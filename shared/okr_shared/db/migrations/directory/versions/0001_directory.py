"""Directory: the read model of people, teams, members and leads (the tables of
``tables_0001``)."""

from okr_shared.db.migrations.directory.tables_0001 import people, team_leads, team_members, teams
from okr_shared.db.migrations.ops import creating

revision = "0001_directory"
down_revision = None

upgrade, downgrade = creating(people, teams, team_members, team_leads)
