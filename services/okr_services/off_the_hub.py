"""``OffTheHub``: a module of pure functions whose calls run in eventlet's thread pool
(the reporting and notification services' boards, folds and rules)."""

from __future__ import annotations

import eventlet.tpool


class OffTheHub:
    """A module of pure functions whose calls run in eventlet's thread pool.

    A long pure-Python computation on the hub (a board, a tenant's timed rules) stops
    every green thread of the process until it returns — the event consumer too. In a
    thread the GIL is handed back at least every switch interval (5 ms), so the other
    green threads go on. Only for functions that touch nothing but their arguments (no
    I/O, no logging, no locks shared with green threads). ``OffTheHub(queries).board(...)``
    = ``eventlet.tpool.execute(queries.board, ...)``."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name: str):
        function = getattr(self._module, name)

        def off_the_hub(*args, **kwargs):
            return eventlet.tpool.execute(function, *args, **kwargs)

        off_the_hub.__name__ = off_the_hub.__qualname__ = name
        off_the_hub.__wrapped__ = function
        return off_the_hub
