"""Process-wide runtime settings shared by the long-running processes (the nameko
services, the relay, the gateway)."""

from __future__ import annotations

import gc
import threading

_frozen = threading.Event()


def freeze_startup_objects() -> None:
    """Move every object alive now (modules, classes, the containers, the gRPC server)
    out of the garbage collector's reach, once per process: a full collection then no
    longer walks them. Without it a full collection stalls the whole process now and
    then — ~30 ms in a service (bench/kr_load.py), 53-98 ms in the gateway at 200
    check-ins/s (~107,000 objects; every call in flight waits: ADR 0018). Objects made
    later are collected as usual."""
    if not _frozen.is_set():
        _frozen.set()
        gc.collect()
        gc.freeze()
