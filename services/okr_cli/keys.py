"""``okr keys``: create, list and revoke the gateway's API keys.

    okr keys create --tenant acme --subject alice --role member [--team T ...]
                    [--delegate-key-result KR ...] [--description TEXT]
    okr keys list [--tenant acme] [--json]
    okr keys revoke KEY_ID

Every command takes ``--database-url`` (default ``OKR_GATEWAY_DATABASE_URL``, else
``sqlite:///$OKR_DATA_DIR/gateway.db``). ``create`` prints the key on stdout, alone on
its line (it is shown this once: only its hash is stored); what it created goes to
stderr. ``revoke`` exits 1 for an unknown key id.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from okr_services.gateway import auth, config as gateway_config
from okr_shared.db import migrate
from okr_shared.eventstore import make_engine


def _engine(database_url: str | None):
    url = gateway_config.gateway_database_url(database_url)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    migrate(engine, "gateway_keys")
    return engine


database_option = click.option(
    "--database-url", default=None,
    help="SQLAlchemy URL of the gateway's database (default: OKR_GATEWAY_DATABASE_URL, "
         "else SQLite gateway.db under OKR_DATA_DIR).",
)


def _when(us: int | None) -> str:
    if us is None:
        return "-"
    return datetime.fromtimestamp(us / 1e6, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@click.group("keys")
def keys_group() -> None:
    """The gateway's API keys (only a hash of each secret is stored)."""


@keys_group.command("create")
@database_option
@click.option("--tenant", required=True, help="The tenant the key acts in.")
@click.option("--subject", required=True, help="The principal (a person such as alice, or a system such as svc-crm).")
@click.option("--role", required=True, type=click.Choice(auth.ROLES), help="The key's role.")
@click.option("--team", "teams", multiple=True, help="A team the lead leads (role lead; repeat).")
@click.option("--delegate-key-result", "delegated", multiple=True,
              help="A key result the service may check in on (role service; repeat).")
@click.option("--description", default="", help="What the key is for.")
def create_command(database_url, tenant, subject, role, teams, delegated, description):
    """Create an API key and print it (once: it cannot be shown again)."""
    engine = _engine(database_url)
    try:
        key, record = auth.create_key(engine, tenant, subject, role, teams=teams,
                                      delegated_key_results=delegated, description=description)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    finally:
        engine.dispose()
    extra = ""
    if record["teams"]:
        extra += f", teams {', '.join(record['teams'])}"
    if record["delegated_key_results"]:
        extra += f", key results {', '.join(record['delegated_key_results'])}"
    click.echo(f"created API key {record['key_id']} for {subject} ({role}{extra}) in tenant {tenant}; "
               "the key below is shown only this once:", err=True)
    click.echo(key)


@keys_group.command("list")
@database_option
@click.option("--tenant", default=None, help="Only this tenant's keys.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_command(database_url, tenant, as_json):
    """List API keys (ids, bindings and state; never the secrets)."""
    engine = _engine(database_url)
    try:
        records = auth.list_keys(engine, tenant)
    finally:
        engine.dispose()
    if as_json:
        for r in records:
            click.echo(json.dumps(r, sort_keys=True))
        return
    if not records:
        click.echo("no API keys")
        return
    header = ("KEY ID", "TENANT", "SUBJECT", "ROLE", "SCOPE", "CREATED", "LAST USED", "STATE", "DESCRIPTION")
    rows = []
    for r in records:
        scope = ",".join(r["teams"] or r["delegated_key_results"]) or "-"
        state = f"revoked {_when(r['revoked_at_us'])}" if r["revoked_at_us"] is not None else "active"
        rows.append((r["key_id"], r["tenant"], r["subject"], r["role"], scope, _when(r["created_at_us"]),
                     _when(r["last_used_at_us"]), state, r["description"]))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        click.echo("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


@keys_group.command("revoke")
@database_option
@click.argument("key_id")
def revoke_command(database_url, key_id):
    """Revoke KEY_ID: from now on it is refused (permanently)."""
    engine = _engine(database_url)
    try:
        if auth.revoke_key(engine, key_id):
            click.echo(f"revoked API key {key_id}")
            return
        record = auth.get_key(engine, key_id)
    finally:
        engine.dispose()
    if record is None:
        click.echo(f"no API key {key_id}", err=True)
        sys.exit(1)
    click.echo(f"API key {key_id} was already revoked at {_when(record['revoked_at_us'])}")
