"""The ``okr`` command (operator side, for now: the event store).

    okr migrate                 create or upgrade the schema at OKR_DATABASE_URL
    okr store-demo              end-to-end event store demonstration on SQLite (make demo)
    okr demo                    seed a realistic company through the gRPC API (okr_shared.demo)
    okr verify [--tenant T]     recompute the hash chain; exit 1 names the first bad event
    okr export TENANT FILE      write a tenant's history as verifiable JSON lines
    okr import FILE.csv         import a plan over the API (plan_cli.py; export --cycle C too)
    okr projections rebuild     rebuild the reporting read models from the store
    okr keys create|list|revoke API keys of the gRPC gateway (only their hash is stored)
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import click

from okr.v1 import events_pb2

from .config import Settings
from .contracts import event_type_of, payload_to_dict, stream_id_for
from .eventstore import NO_STREAM, EventStore, NewEvent, export_jsonl, make_engine, migrate


def _store(database_url: str | None) -> EventStore:
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


class _OneLineErrors(click.Group):
    """The ``okr`` group: a usage error (unknown option or command, a bad or missing
    argument) is ONE line on stderr — what is wrong and where the help is — and exit 2,
    instead of click's three-line usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:  # non-standalone: click returns a ctx.exit(n)'s n (commands return nothing)
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:  # `okr keys`: the group's help, as click does
            e.show()
            sys.exit(e.exit_code)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else (prog_name or "okr")
            message = e.format_message().rstrip(".")
            click.echo(f"error: {message[:1].lower()}{message[1:]} — see `{where} --help`", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) and not isinstance(code, bool) else 0)


@click.group(cls=_OneLineErrors)
def main() -> None:
    """okr — the OKR platform's command line."""


@main.command("migrate")
@database_option
def migrate_command(database_url):
    """Create or upgrade the event store schema (Alembic)."""
    store = _store(database_url)
    migrate(store.engine)
    click.echo(f"event store schema is current at {store.engine.url.render_as_string(hide_password=True)}")


@main.command()
@database_option
@click.option("--tenant", default=None, help="Verify one tenant's chain only.")
def verify(database_url, tenant):
    """Recompute the hash chain; exit status 1 names the first event at fault."""
    result = _store(database_url).verify(tenant)
    click.echo(str(result))
    sys.exit(0 if result.ok else 1)


@main.command()
@database_option
@click.argument("tenant")
@click.argument("output", type=click.File("w", encoding="utf-8"))
def export(database_url, tenant, output):
    """Write TENANT's history to OUTPUT as JSON lines (docs/audit-format.md)."""
    head = export_jsonl(_store(database_url), tenant, output)
    click.echo(f"exported {head['event_count']} events of {tenant}; chain head {head['last_hash']}", err=True)


@main.command("store-demo")
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


class _ProjectionsGroup(click.Group):
    """``okr projections``: the reporting service's commands, imported only when used
    (they pull in nameko and eventlet, which the other commands do not need)."""

    def list_commands(self, ctx):
        return ["rebuild"]

    def get_command(self, ctx, name):
        if name != "rebuild":
            return None
        from okr_services.reporting.rebuild import rebuild_command

        return rebuild_command


main.add_command(_ProjectionsGroup("projections", help="The reporting read models (projections)."))

from .api_cli import register_api_commands  # noqa: E402 - grpc and the stubs are imported only when one runs

register_api_commands(main)  # board, checkin, history, replay, diff, audit verify|export, events tail

from .demo import demo_command  # noqa: E402 - okr demo: the demo company through the API

main.add_command(demo_command)

from .plan_cli import register_plan_commands  # noqa: E402 - import / export --cycle over the API

register_plan_commands(main)  # okr import FILE.csv; okr export --cycle C (okr export TENANT FILE kept)



class _KeysGroup(click.Group):
    """``okr keys``: the gateway's API keys, imported only when used."""

    _commands = ("create", "list", "revoke")

    def list_commands(self, ctx):
        return list(self._commands)

    def get_command(self, ctx, name):
        if name not in self._commands:
            return None
        from okr_services.gateway.keys_cli import keys_group

        return keys_group.get_command(ctx, name)


main.add_command(_KeysGroup("keys", help="API keys of the gRPC gateway: create (shown once), list, revoke."))


if __name__ == "__main__":
    main(prog_name="okr")  # python -m okr_shared.cli: the messages say `okr ...` as installed
