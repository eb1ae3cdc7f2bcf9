"""``okr projections rebuild``: fold the whole event store into new reporting tables and
swap them in when complete (``bulk_rebuild.rebuild``).

``projections_group`` is the ``projections`` group holding ``rebuild_command``; main.py
imports this module only when ``okr projections`` runs (it pulls in the reporting
service's storage and rebuild engine).
"""

from __future__ import annotations

import sys

import click

from okr_services.reporting import bulk_rebuild, storage
from okr_shared.config import Settings
from okr_shared.eventstore import EventStore, make_engine


@click.command("rebuild")
@click.option("--database-url", envvar="OKR_DATABASE_URL", default=None,
              help="The event store (default: OKR_DATABASE_URL, else SQLite under OKR_DATA_DIR).")
@click.option("--reporting-database-url", envvar="OKR_REPORTING_DATABASE_URL", default=None,
              help="The reporting service's database (default: sqlite:///$OKR_DATA_DIR/reporting.db).")
@click.option("--chunk", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Events per page of the scan (history rows written per page).")
@click.option("--consumer", default=storage.CONSUMER, show_default=True,
              help="The consumer whose offset is set to the rebuilt position.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes folding tenant partitions in parallel (default: OKR_REBUILD_WORKERS, else one "
                   f"per CPU up to 4 from {bulk_rebuild.PARALLEL_FROM:,} events on, else 1).")
def rebuild_command(database_url, reporting_database_url, chunk, consumer, workers):
    """Rebuild the reporting read models from the event store; the live tables are
    replaced in one transaction only when the new ones are complete."""
    settings = Settings.from_env()
    store_url = database_url or settings.database_url
    if not reporting_database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        reporting_database_url = f"sqlite:///{settings.data_dir / 'reporting.db'}"
    store_engine, engine = make_engine(store_url), make_engine(reporting_database_url)
    store = EventStore(store_engine)
    head = store.head_position()
    try:
        with click.progressbar(length=max(head, 1), label="rebuilding read models", show_pos=True) as bar:
            state = {"done": 0}

            def progress(done, total):
                bar.update(max(0, done - state["done"]))
                state["done"] = done

            position = bulk_rebuild.rebuild(engine, store, progress=progress, chunk=chunk, consumer=consumer,
                                       to_position=head, workers=workers)
    except bulk_rebuild.RebuildFailed as e:
        click.echo(str(e), err=True)
        sys.exit(1)
    finally:
        store.close()
        store_engine.dispose()
        engine.dispose()
    click.echo(f"read models rebuilt up to position {position}; consumer {consumer} continues from there")


@click.group("projections")
def projections_group():
    """The reporting read models (projections)."""


projections_group.add_command(rebuild_command)
