"""Authentication: API keys on a SQLite file, bearer tokens (HS256, RS256) and the
``authorization`` metadata entry."""

import sqlite3
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from okr_services.gateway import auth
from okr_services.gateway.auth import JwtConfig, Principal, Unauthenticated
from okr_services.gateway.config import jwt_config
from okr_shared.db import migrate
from okr_shared.eventstore import make_engine

HS_SECRET = "s" * 40


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.delenv("OKR_API_KEY_PEPPER", raising=False)
    path = tmp_path / "gateway.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine, "gateway_keys")
    migrate(engine, "gateway_keys")  # idempotent
    yield engine, path
    engine.dispose()


# ------------------------------------------------------------------- API keys


def test_create_authenticate_list_revoke(db):
    engine, _ = db
    key, record = auth.create_key(engine, "acme", "alice", "member", description="laptop")
    assert key.startswith(f"okr_{record['key_id']}_") and len(record["key_id"]) == 12
    assert len(key.split("_", 2)[2]) >= 43  # 32 random bytes, URL-safe base64
    assert "secret_hash" not in record
    principal = auth.authenticate_api_key(engine, key)
    assert principal == Principal(tenant="acme", subject="alice", role="member", teams=(),
                                  delegated_key_results=(), via="api_key", key_id=record["key_id"])

    listed = auth.list_keys(engine)
    assert [r["key_id"] for r in listed] == [record["key_id"]]
    assert "secret_hash" not in listed[0] and listed[0]["description"] == "laptop"
    assert listed[0]["last_used_at_us"] is not None  # recorded on first use
    assert auth.list_keys(engine, tenant="globex") == []

    assert auth.revoke_key(engine, record["key_id"]) is True
    assert auth.revoke_key(engine, record["key_id"]) is False  # already revoked
    assert auth.revoke_key(engine, "000000000000") is False  # unknown
    with pytest.raises(Unauthenticated, match=f"API key {record['key_id']} was revoked"):
        auth.authenticate_api_key(engine, key)
    assert auth.get_key(engine, record["key_id"])["revoked_at_us"] is not None


def test_lead_and_service_keys_carry_their_scope(db):
    engine, _ = db
    key, _ = auth.create_key(engine, "acme", "lena", "lead", teams=["t1", "t2", "t1"])
    assert auth.authenticate_api_key(engine, key).teams == ("t1", "t2")
    key, _ = auth.create_key(engine, "acme", "svc-crm", "service", delegated_key_results=["kr-1"])
    p = auth.authenticate_api_key(engine, key)
    assert (p.role, p.delegated_key_results) == ("service", ("kr-1",))
    key, _ = auth.create_key(engine, "acme", "svc-feed", "service")  # streams only
    assert auth.authenticate_api_key(engine, key).delegated_key_results == ()


def test_only_the_hash_is_stored(db):
    engine, path = db
    key, record = auth.create_key(engine, "acme", "alice", "admin")
    secret = key.split("_", 2)[2]
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT * FROM gateway_api_keys").fetchall()
        (stored,) = conn.execute("SELECT secret_hash FROM gateway_api_keys").fetchone()
    dump = repr(rows)
    assert secret not in dump and key not in dump
    assert stored.startswith("sha256:") and len(stored) == len("sha256:") + 64
    # and nowhere in the file either
    assert secret.encode() not in path.read_bytes()


def test_pepper_makes_an_hmac_and_is_needed_to_verify(db, monkeypatch):
    engine, path = db
    monkeypatch.setenv("OKR_API_KEY_PEPPER", "pepper-from-the-vault")
    key, record = auth.create_key(engine, "acme", "alice", "member")
    with sqlite3.connect(path) as conn:
        (stored,) = conn.execute("SELECT secret_hash FROM gateway_api_keys").fetchone()
    assert stored.startswith("hmac-sha256:")
    assert auth.authenticate_api_key(engine, key).subject == "alice"
    monkeypatch.setenv("OKR_API_KEY_PEPPER", "another-pepper")
    with pytest.raises(Unauthenticated, match="^invalid API key$"):
        auth.authenticate_api_key(engine, key)
    monkeypatch.delenv("OKR_API_KEY_PEPPER")
    with pytest.raises(Unauthenticated, match="^invalid API key$"):
        auth.authenticate_api_key(engine, key)


@pytest.mark.parametrize("bad", [
    "", "nope", "okr_", "okr_abc_def", "okr_ZZZZZZZZZZZZ_" + "a" * 43, "okr_0123456789ab-" + "a" * 43,
    "okr_0123456789ab_short", "okr_0123456789ab_" + "a" * 42 + "!", "Okr_0123456789ab_" + "a" * 43,
])
def test_malformed_keys(db, bad):
    engine, _ = db
    with pytest.raises(Unauthenticated, match=r"malformed API key \(expected okr_<id>_<secret>\)"):
        auth.authenticate_api_key(engine, bad)


def test_unknown_key_and_wrong_secret_are_the_same_invalid(db):
    engine, _ = db
    key, record = auth.create_key(engine, "acme", "alice", "member")
    with pytest.raises(Unauthenticated, match="^invalid API key$"):
        auth.authenticate_api_key(engine, "okr_0123456789ab_" + "a" * 43)
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    with pytest.raises(Unauthenticated, match="^invalid API key$"):
        auth.authenticate_api_key(engine, wrong)
    # a revoked key's state is only told to whoever holds its secret
    auth.revoke_key(engine, record["key_id"])
    with pytest.raises(Unauthenticated, match="^invalid API key$"):
        auth.authenticate_api_key(engine, wrong)


@pytest.mark.parametrize("kwargs, message", [
    (dict(tenant="ac me", subject="alice", role="member"), "tenant"),
    (dict(tenant="", subject="alice", role="member"), "tenant"),
    (dict(tenant="a" * 65, subject="alice", role="member"), "tenant"),
    (dict(tenant="acme", subject="", role="member"), "subject"),
    (dict(tenant="acme", subject="al\nice", role="member"), "subject"),
    (dict(tenant="acme", subject="alice", role="root"), "role 'root' is not one of"),
    (dict(tenant="acme", subject="lena", role="lead"), "role lead needs at least one team"),
    (dict(tenant="acme", subject="alice", role="member", teams=["t1"]), "teams are only for role lead"),
    (dict(tenant="acme", subject="alice", role="member", delegated_key_results=["kr"]),
     "delegated key results are only for role service"),
])
def test_create_validates(db, kwargs, message):
    engine, _ = db
    with pytest.raises(ValueError, match=message):
        auth.create_key(engine, **kwargs)
    assert auth.list_keys(engine) == []


# ------------------------------------------------------------------------ JWT


def _claims(**overrides):
    now = int(time.time())
    # expires in a day: parametrized claims are built when the suite is collected, minutes before use
    claims = {"iss": "https://id.example", "aud": "okr-api", "sub": "alice", "exp": now + 86_400,
              "iat": now, "tenant": "acme", "role": "member"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture(scope="module")
def rsa_keys():
    def make():
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        return private, pem

    return make(), make()


@pytest.fixture
def hs_config():
    return JwtConfig(algorithm="HS256", key=HS_SECRET, issuer="https://id.example", audience="okr-api")


@pytest.fixture
def rs_config(rsa_keys):
    (_, pem), _ = rsa_keys
    return JwtConfig(algorithm="RS256", key=pem, issuer="https://id.example", audience="okr-api")


def test_hs256_valid(hs_config):
    token = jwt.encode(_claims(role="lead", teams=["t1"], jti="tok-1"), HS_SECRET, algorithm="HS256")
    p = auth.authenticate_jwt(hs_config, token)
    assert p == Principal(tenant="acme", subject="alice", role="lead", teams=("t1",),
                          delegated_key_results=(), via="jwt", key_id="tok-1")


def test_rs256_valid(rs_config, rsa_keys):
    (private, _), _ = rsa_keys
    token = jwt.encode(_claims(sub="svc-crm", role="service", delegated_key_results=["kr-1"]),
                       private, algorithm="RS256")
    p = auth.authenticate_jwt(rs_config, token)
    assert (p.subject, p.role, p.delegated_key_results, p.via) == ("svc-crm", "service", ("kr-1",), "jwt")


@pytest.mark.parametrize("claims, message", [
    (_claims(exp=int(time.time()) - 3600), "bearer token expired"),
    (_claims(iss="https://evil.example"), "wrong issuer"),
    (_claims(aud="someone-else"), "wrong audience"),
    (_claims(exp=None), "lacks the 'exp' claim"),
    (_claims(iss=None), "lacks the 'iss' claim"),
    (_claims(aud=None), "lacks the 'aud' claim"),
    (_claims(sub=None), "lacks the 'sub' claim"),
    (_claims(tenant=None), "lacks the 'tenant' claim"),
    (_claims(role=None), "lacks the 'role' claim"),
    (_claims(role="root"), "claims are invalid: role 'root'"),
    (_claims(tenant="no such tenant!"), "claims are invalid: tenant"),
    (_claims(role="lead"), "claims are invalid: role lead needs at least one team"),
    (_claims(nbf=int(time.time()) + 3600), "not valid yet"),
])
def test_hs256_refused(hs_config, claims, message):
    token = jwt.encode(claims, HS_SECRET, algorithm="HS256")
    with pytest.raises(Unauthenticated, match=message):
        auth.authenticate_jwt(hs_config, token)


def test_leeway_allows_small_clock_skew(hs_config):
    token = jwt.encode(_claims(exp=int(time.time()) - 5), HS_SECRET, algorithm="HS256")
    assert auth.authenticate_jwt(hs_config, token).subject == "alice"


def test_wrong_key_is_a_bad_signature(hs_config, rs_config, rsa_keys):
    token = jwt.encode(_claims(), "x" * 40, algorithm="HS256")
    with pytest.raises(Unauthenticated, match="signature is invalid"):
        auth.authenticate_jwt(hs_config, token)
    _, (other_private, _) = rsa_keys
    token = jwt.encode(_claims(), other_private, algorithm="RS256")
    with pytest.raises(Unauthenticated, match="signature is invalid"):
        auth.authenticate_jwt(rs_config, token)


def test_alg_none_refused(hs_config, rs_config):
    token = jwt.encode(_claims(), None, algorithm="none")
    for config in (hs_config, rs_config):
        with pytest.raises(Unauthenticated, match="accepts (HS256|RS256) only"):
            auth.authenticate_jwt(config, token)


def test_hs256_token_against_rs256_config_refused(rs_config, rsa_keys):
    """The classic confusion: an HS256 token whose HMAC key is the server's public key."""
    (_, pem), _ = rsa_keys
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(_claims()).encode())
    signature = hmac.new(pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + b64(signature)
    with pytest.raises(Unauthenticated, match="accepts RS256 only"):
        auth.authenticate_jwt(rs_config, token)


def test_rs256_token_against_hs256_config_refused(hs_config, rsa_keys):
    (private, _), _ = rsa_keys
    token = jwt.encode(_claims(), private, algorithm="RS256")
    with pytest.raises(Unauthenticated, match="accepts HS256 only"):
        auth.authenticate_jwt(hs_config, token)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "Bearer x"])
def test_malformed_tokens(hs_config, token):
    with pytest.raises(Unauthenticated, match="malformed bearer token"):
        auth.authenticate_jwt(hs_config, token)


def test_config_validation(rsa_keys, tmp_path):
    (_, pem), _ = rsa_keys
    with pytest.raises(ValueError, match="HS256 or RS256|one of HS256, RS256"):
        JwtConfig(algorithm="none", key=HS_SECRET, issuer="i", audience="a")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        JwtConfig(algorithm="HS256", key="short", issuer="i", audience="a")
    with pytest.raises(ValueError, match="not a PEM key"):
        JwtConfig(algorithm="HS256", key=pem, issuer="i", audience="a")
    with pytest.raises(ValueError, match="PEM"):
        JwtConfig(algorithm="RS256", key=HS_SECRET, issuer="i", audience="a")
    with pytest.raises(ValueError, match="issuer and audience"):
        JwtConfig(algorithm="HS256", key=HS_SECRET, issuer="", audience="a")

    assert jwt_config({}) is None
    c = jwt_config({"OKR_JWT_SECRET": HS_SECRET, "OKR_JWT_ISSUER": "i", "OKR_JWT_AUDIENCE": "a"})
    assert (c.algorithm, c.leeway_s) == ("HS256", 30.0)
    key_file = tmp_path / "idp.pem"
    key_file.write_text(pem)
    c = jwt_config({"OKR_JWT_ALGORITHM": "RS256", "OKR_JWT_PUBLIC_KEY_FILE": str(key_file),
                            "OKR_JWT_ISSUER": "i", "OKR_JWT_AUDIENCE": "a", "OKR_JWT_LEEWAY_S": "5"})
    assert (c.algorithm, c.key, c.leeway_s) == ("RS256", pem, 5.0)
    with pytest.raises(ValueError, match="needs OKR_JWT_PUBLIC_KEY"):
        jwt_config({"OKR_JWT_ALGORITHM": "RS256", "OKR_JWT_SECRET": HS_SECRET})
    assert HS_SECRET not in repr(JwtConfig(algorithm="HS256", key=HS_SECRET, issuer="i", audience="a"))


# ------------------------------------------------------------ authenticate()


def test_authenticate_reads_the_authorization_entry(db, hs_config):
    engine, _ = db
    key, _ = auth.create_key(engine, "acme", "alice", "member")
    token = jwt.encode(_claims(sub="bob"), HS_SECRET, algorithm="HS256")
    assert auth.authenticate({"authorization": f"ApiKey {key}"}, engine, hs_config).subject == "alice"
    assert auth.authenticate([("x-request-id", "1"), ("authorization", f"Bearer {token}")],
                             engine, hs_config).subject == "bob"
    assert auth.authenticate({"Authorization": f"bearer {token}"}, engine, hs_config).via == "jwt"

    for metadata in ({}, [], None, {"authorization": ""}, [("x-request-id", "1")]):
        with pytest.raises(Unauthenticated, match=r"^missing credentials: send 'authorization: ApiKey <key>' "
                                                  r"or 'Bearer <token>'$"):
            auth.authenticate(metadata, engine, hs_config)
    with pytest.raises(Unauthenticated, match="unsupported authorization scheme 'basic'"):
        auth.authenticate({"authorization": "Basic YWxpY2U6cHc="}, engine, hs_config)
    with pytest.raises(Unauthenticated, match="more than one"):
        auth.authenticate([("authorization", f"ApiKey {key}"), ("authorization", f"Bearer {token}")],
                          engine, hs_config)
    with pytest.raises(Unauthenticated, match="no JWT configuration"):
        auth.authenticate({"authorization": f"Bearer {token}"}, engine, None)
    with pytest.raises(Unauthenticated, match="malformed API key"):
        auth.authenticate({"authorization": "ApiKey"}, engine, hs_config)
