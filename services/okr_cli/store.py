"""The ``okr`` commands that work on an event store database directly (the operator's,
next to the database; docs/operations.md):

    okr migrate                 create or upgrade the schema at OKR_DATABASE_URL
    okr verify [--tenant T]     recompute the hash chain; exit 1 names the first bad event
    okr store-demo              end-to-end event store demonstration on SQLite (make demo)

and ``export_history``, the ``okr export TENANT FILE`` form of plan.py's ``okr export``.
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import click

from okr.v1 import events_pb2
from okr_shared.config import Settings
from okr_shared.contracts import event_type_of, payload_to_dict, stream_id_for
from okr_shared.eventstore import NO_STREAM, EventStore, NewEvent, export_jsonl, make_engine, migrate


def open_store(database_url: str | None) -> EventStore:
    """The event store at ``database_url`` (default: OKR_DATABASE_URL, else SQLite under
    OKR_DATA_DIR; a SQLite file's folder is created)."""
    url = database_url or Settings.from_env().database_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return EventStore(make_engine(url))


database_option = click.option(
    "--database-url", envvar="OKR_DATABASE_URL", default=None,
    help="SQLAlchemy URL of the event store (default: SQLite under OKR_DATA_DIR).",
)


def _event(message, tenant_id: str, metadata: dict) -> NewEvent:
    return NewEvent(event_type_of(message), payload_to_dict(message), tenant_id=tenant_id, metadata=metadata)

@click.command("migrate")
@database_option
def migrate_command(database_url):
    """Create or upgrade the event store schema (Alembic)."""
    store = open_store(database_url)
    migrate(store.engine)
    click.echo(f"event store schema is current at {store.engine.url.render_as_string(hide_password=True)}")


@click.command()
@database_option
@click.option("--tenant", default=None, help="Verify one tenant's chain only.")
def verify(database_url, tenant):
    """Recompute the hash chain; exit status 1 names the first event at fault."""
    result = open_store(database_url).verify(tenant)
    click.echo(str(result))
    sys.exit(0 if result.ok else 1)


def export_history(database_url: str | None, tenant: str, output: str) -> None:
    """``okr export TENANT FILE``: TENANT's history as JSON lines (docs/audit-format.md)
    to OUTPUT (``-``: stdout), read from the store at ``database_url``."""
    store = open_store(database_url)
    if output == "-":
        head = export_jsonl(store, tenant, sys.stdout)
    else:
        with open(output, "w", encoding="utf-8") as out:
            head = export_jsonl(store, tenant, out)
    click.echo(f"exported {head['event_count']} events of {tenant}; chain head {head['last_hash']}", err=True)


@click.command("store-demo")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=lambda: Settings.from_env().data_dir, show_default="./data")
def store_demo(data_dir: Path):
    """Append a quarter of check-ins to an embedded SQLite store, read them back,
    verify the chain and export it — the event store end to end."""
    data_dir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{data_dir / 'okr.db'}"
    store = EventStore(make_engine(url))
    migrate(store.engine)
    click.echo(f"event store: {url} (head at position {store.head_position()})")

    tenant, run = "demo", uuid.uuid4().hex[:8]
    kr_id, objective_id = f"{run}-kr", f"{run}-obj"
    meta = {"actor": "ana@demo", "correlation_id": str(uuid.uuid4())}
    start = date.today() - timedelta(weeks=12)
    defined = events_pb2.KeyResultDefined(
        key_result_id=kr_id, objective_id=objective_id, title="Weekly active teams from 40 to 120",
        kind=events_pb2.KEY_RESULT_KIND_INCREASE_TO, start_value=40, target_value=120, unit="teams",
        weight=1.0, owner="ana@demo", due_date=str(start + timedelta(weeks=13)),
    )
    kr = stream_id_for(defined)
    t0 = time.perf_counter()
    store.append(kr, NO_STREAM, [_event(defined, tenant, meta)])
    for week in range(1, 13):
        check_in = events_pb2.CheckInRecorded(
            check_in_id=str(uuid.uuid4()), key_result_id=kr_id, objective_id=objective_id,
            value=40 + 6 * week, confidence=7, comment=f"week {week}", author="ana@demo",
            effective_date=str(start + timedelta(weeks=week)),
        )
        store.append(kr, week, [_event(check_in, tenant, meta)])
    elapsed = time.perf_counter() - t0
    events = list(store.read_stream(kr, tenant_id=tenant))
    click.echo(f"appended {len(events)} events to stream {kr} in {elapsed * 1000:.1f} ms:")
    for e in events[:2] + events[-1:]:
        click.echo(f"  #{e.position:<6} v{e.stream_version:<3} {e.event_type:<24} {e.data_json[:50]}… hash {e.hash[:12]}…")
    result = store.verify()
    click.echo(f"verify: {result}")
    export_path = data_dir / f"export-{tenant}.jsonl"
    with export_path.open("w", encoding="utf-8") as out:
        head = export_jsonl(store, tenant, out)
    click.echo(f"export: {export_path} ({head['event_count']} events, chain head {head['last_hash'][:16]}…)")
    click.echo(f"re-verify it without the server: python examples/verify_export.py {export_path}")
    sys.exit(0 if result.ok else 1)


STORE_COMMANDS = (migrate_command, verify, store_demo)
