"""The demo company of ``okr demo`` and ``make run``: its planner (company.py: pure, the
company as domain commands) and its seeding (seeding.py: those commands through the
public gRPC API)."""
