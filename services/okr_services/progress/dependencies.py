"""Dependencies of the progress service: the event store behind the service layer
(``Aggregates``) and who is calling (``Caller``). Both live in okr_services.common
because the goal service uses the same two."""

from okr_services.common import Aggregates, Caller

__all__ = ["Aggregates", "Caller"]
