"""The reporting side's configuration: the environment variables of a projection
rebuild (``okr projections rebuild``) and of its worker processes, read here when asked
(ADR 0031; the reporting database's URL, ``OKR_REPORTING_DATABASE_URL``, is read by the
consumer layer through okr_shared.config).
"""

from __future__ import annotations

import os


def rebuild_workers() -> int | None:
    """``OKR_REBUILD_WORKERS``: how many worker processes fold a rebuild; None when
    unset (the rebuild decides from its size)."""
    configured = os.environ.get("OKR_REBUILD_WORKERS", "").strip()
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise ValueError(f"OKR_REBUILD_WORKERS must be a positive integer, not {configured!r}")
        return int(configured)
    return None


def rebuild_worker_urls() -> dict[str, str]:
    """A rebuild worker's ``OKR_REBUILD_STORE_URL`` and ``OKR_REBUILD_TARGET_URL`` (``""``
    when unset), set by the rebuild that starts it (``rebuild_worker_environment``)."""
    return {"OKR_REBUILD_STORE_URL": os.environ.get("OKR_REBUILD_STORE_URL", ""),
            "OKR_REBUILD_TARGET_URL": os.environ.get("OKR_REBUILD_TARGET_URL", "")}


def rebuild_worker_environment(store_url: str, target_url: str) -> dict[str, str]:
    """The environment a rebuild worker process starts with: this process's, with the
    two URLs (never on the command line) and without ``OKR_REBUILD_WORKERS``."""
    env = dict(os.environ, OKR_REBUILD_STORE_URL=store_url, OKR_REBUILD_TARGET_URL=target_url)
    env.pop("OKR_REBUILD_WORKERS", None)
    return env
