"""reporting service: read models folded from the okr.v1 events — KR status, objective
roll-up and alignment tree, team and person dashboards, the kanban board, the cycle
scorecard, per-KR history and the weekly-review diff (docs/reporting.md).

The fold is shared with the notification service (``okr_shared.readmodels.projections``:
``project(model, event)``, ``fold(events)``, ``fold_as_of(events, position=,
recorded_before_us=)`` — one fold for the three ways in); this service's pure core,
free of nameko, SQLAlchemy and kombu, is ``queries``: board, dashboards, scorecard,
history, diff, roll-up and tree as pure functions of a folded model, a tenant and the
day ``today``.
"""

from okr_shared.readmodels.projections import EVENT_TYPES, TABLES, fold, fold_as_of, new_model, project, row_key

__all__ = ["EVENT_TYPES", "TABLES", "fold", "fold_as_of", "new_model", "project", "row_key"]
