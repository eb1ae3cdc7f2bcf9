"""``okr keys``: create prints the key once, list shows it without the secret, revoke
makes authentication fail — on SQLite and on PostgreSQL (the ``database`` fixture)."""

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import make_url, text

from okr_services.gateway import auth
from okr_cli.keys import keys_group
from okr_services.gateway.config import gateway_database_url


def _cli_url(database) -> str:
    """A URL the CLI can open that reaches the fixture's database (on PostgreSQL, the
    test's own schema through libpq's ``options``)."""
    if database.backend == "sqlite":
        return database.url
    url = make_url(database.url).update_query_dict({"options": f"-csearch_path={database.schema}"})
    return url.render_as_string(hide_password=False)


def _run(*args):
    result = CliRunner().invoke(keys_group, list(args), catch_exceptions=False)
    return result


def test_create_list_revoke(database):
    url = _cli_url(database)
    created = _run("create", "--database-url", url, "--tenant", "acme", "--subject", "alice",
                   "--role", "member", "--description", "alice's laptop")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("okr_") and "\n" not in key
    key_id, secret = key[4:16], key[17:]
    assert f"created API key {key_id} for alice (member) in tenant acme" in created.stderr
    assert "shown only this once" in created.stderr

    # the fixture's own engine (another connection, same database) authenticates it
    principal = auth.authenticate_api_key(database.engine, key)
    assert (principal.tenant, principal.subject, principal.role, principal.key_id) == ("acme", "alice", "member", key_id)
    assert auth.authenticate({"authorization": f"ApiKey {key}"}, database.engine, None).subject == "alice"

    lead = _run("create", "--database-url", url, "--tenant", "acme", "--subject", "lena", "--role", "lead",
                "--team", "t1", "--team", "t2")
    assert lead.exit_code == 0, lead.output
    assert "teams t1, t2" in lead.stderr

    listed = _run("list", "--database-url", url)
    assert listed.exit_code == 0, listed.output
    assert key_id in listed.stdout and "alice" in listed.stdout and "active" in listed.stdout
    assert "t1,t2" in listed.stdout and "alice's laptop" in listed.stdout
    assert secret not in listed.stdout and key not in listed.stdout
    as_json = [json.loads(line) for line in _run("list", "--database-url", url, "--json").stdout.splitlines()]
    assert {r["subject"] for r in as_json} == {"alice", "lena"}
    assert all("secret_hash" not in r and secret not in json.dumps(r) for r in as_json)
    assert _run("list", "--database-url", url, "--tenant", "globex").stdout.strip() == "no API keys"

    # the database holds only the hash
    with database.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM gateway_api_keys")).fetchall()
    assert len(rows) == 2 and secret not in repr(rows)

    revoked = _run("revoke", "--database-url", url, key_id)
    assert revoked.exit_code == 0 and f"revoked API key {key_id}" in revoked.stdout
    with pytest.raises(auth.Unauthenticated, match=f"API key {key_id} was revoked"):
        auth.authenticate_api_key(database.engine, key)
    assert "revoked" in _run("list", "--database-url", url, "--tenant", "acme").stdout
    again = _run("revoke", "--database-url", url, key_id)
    assert again.exit_code == 0 and "already revoked" in again.stdout
    unknown = _run("revoke", "--database-url", url, "000000000000")
    assert unknown.exit_code == 1 and "no API key 000000000000" in unknown.stderr


def test_create_refuses_bad_bindings(database):
    url = _cli_url(database)
    lead = _run("create", "--database-url", url, "--tenant", "acme", "--subject", "lena", "--role", "lead")
    assert lead.exit_code == 2 and "role lead needs at least one team" in lead.output
    tenant = _run("create", "--database-url", url, "--tenant", "ac me", "--subject", "a", "--role", "viewer")
    assert tenant.exit_code == 2 and "tenant 'ac me'" in tenant.output
    role = _run("create", "--database-url", url, "--tenant", "acme", "--subject", "a", "--role", "root")
    assert role.exit_code == 2
    assert auth.list_keys(database.engine) == []


def test_default_database_url(monkeypatch, tmp_path):
    monkeypatch.delenv("OKR_GATEWAY_DATABASE_URL", raising=False)
    monkeypatch.setenv("OKR_DATA_DIR", str(tmp_path))
    assert gateway_database_url() == f"sqlite:///{tmp_path / 'gateway.db'}"
    monkeypatch.setenv("OKR_GATEWAY_DATABASE_URL", "sqlite:///elsewhere.db")
    assert gateway_database_url() == "sqlite:///elsewhere.db"
    assert gateway_database_url("sqlite:///given.db") == "sqlite:///given.db"
    monkeypatch.delenv("OKR_GATEWAY_DATABASE_URL")
    created = _run("create", "--tenant", "acme", "--subject", "svc-crm", "--role", "service",
                   "--delegate-key-result", "kr-1")
    assert created.exit_code == 0, created.output
    assert (tmp_path / "gateway.db").exists()
    listed = _run("list")
    assert "svc-crm" in listed.stdout and "kr-1" in listed.stdout
