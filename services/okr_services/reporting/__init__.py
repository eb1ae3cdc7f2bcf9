"""reporting service: read models folded from the okr.v1 events — KR status, objective
roll-up and alignment tree, team and person dashboards, the kanban board, the cycle
scorecard, per-KR history and the weekly-review diff (docs/reporting.md).

The pure core, free of nameko, SQLAlchemy and kombu:

- ``projections``: ``project(model, event)`` (one event, returns the rows it wrote),
  ``fold(events)`` (rebuild) and ``fold_as_of(events, position=, recorded_before_us=)``
  (as-of replay) — one fold for the three ways in;
- ``queries``: board, dashboards, scorecard, history, diff, roll-up and tree as pure
  functions of a folded model, a tenant and the day ``today``.
"""

from .projections import EVENT_TYPES, TABLES, fold, fold_as_of, new_model, project, row_key

__all__ = ["EVENT_TYPES", "TABLES", "fold", "fold_as_of", "new_model", "project", "row_key"]
