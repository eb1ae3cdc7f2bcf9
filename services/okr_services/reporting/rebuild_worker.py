"""One partition of a parallel rebuild (``bulk_rebuild.rebuild(workers=N)`` starts N of these):

    OKR_REBUILD_STORE_URL=... OKR_REBUILD_TARGET_URL=... \
        python -m okr_services.reporting.rebuild_worker PARTITION PARTITIONS HEAD CHUNK

Folds the events up to HEAD of the tenants in PARTITION into the ``reporting_*_next``
tables the parent created; prints ``progress <position>`` after each page and ``done
<json row counts>`` at the end; exits non-zero (the error on stderr) on any failure.
The database URLs come from the environment so credentials never show in a process list.
"""

from __future__ import annotations

import json
import sys
import warnings

warnings.simplefilter("ignore", Warning)  # eventlet's deprecation notice, imported by the bus layer

from okr_shared.eventstore import EventStore, make_engine  # noqa: E402

from . import bulk_rebuild, config  # noqa: E402


def main(argv: list[str]) -> int:
    try:
        partition, partitions, head, chunk = (int(a) for a in argv)
        if not (0 <= partition < partitions and head >= 0 and chunk >= 1):
            raise ValueError
    except ValueError:
        print(f"rebuild_worker: expected PARTITION PARTITIONS HEAD CHUNK (0 <= PARTITION < PARTITIONS, "
              f"HEAD >= 0, CHUNK >= 1), got {' '.join(argv) or 'nothing'}", file=sys.stderr)
        return 2
    urls = config.rebuild_worker_urls()
    missing = [name for name, url in urls.items() if not url]
    if missing:
        print(f"rebuild_worker: {' and '.join(missing)} not set (the worker is started by "
              f"`okr projections rebuild`, which sets them)", file=sys.stderr)
        return 2
    store_engine = make_engine(urls["OKR_REBUILD_STORE_URL"])
    engine = make_engine(urls["OKR_REBUILD_TARGET_URL"])
    store = EventStore(store_engine)
    try:
        def progress(done, total):
            print(f"progress {done}", flush=True)

        counts = bulk_rebuild.fold_partition(engine, store, head, partition=partition, partitions=partitions,
                                        chunk=chunk, progress=progress)
        print(f"done {json.dumps(counts)}", flush=True)
        return 0
    finally:
        store.close()
        store_engine.dispose()
        engine.dispose()


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as e:  # the parent shows the last line of stderr
        import traceback

        traceback.print_exc()
        print(f"rebuild_worker failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
