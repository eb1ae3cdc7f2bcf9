"""The read models more than one service keeps, each in tables of its own: the fold of
the okr.v1 events (``projections``), their rows in a service's database (``storage``),
a key result's status on a day (``status``) and the bus envelope seen as the fold's
event (``events``). docs/reporting.md, docs/notifications.md.

Nothing here imports a service: the reporting and notification services import this.
"""
