"""The gateway's key cache never vouches for a second credential: a call with more than
one ``authorization`` entry is refused, whether or not its key was cached (docs/api.md)."""

import itertools
import time

import jwt
import pytest

from okr_services.gateway import auth
from okr_services.gateway.auth import JwtConfig, Unauthenticated
from okr_services.gateway.config import GatewayConfig
from okr_services.gateway.server import Gateway
from okr_shared.eventstore import make_engine

HS_SECRET = "s" * 40
JWT = JwtConfig(algorithm="HS256", key=HS_SECRET, issuer="idp", audience="okr")


class Context:
    """The part of a grpc ServicerContext that authentication reads."""

    def __init__(self, *metadata):
        self.metadata = tuple(metadata)

    def invocation_metadata(self):
        return self.metadata


@pytest.fixture
def gateway(tmp_path, monkeypatch):
    monkeypatch.delenv("OKR_API_KEY_PEPPER", raising=False)
    engine = make_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    gateway = Gateway(GatewayConfig(key_cache_s=3600), rpc=object(), jwt_config=JWT, keys_engine=engine)
    yield gateway
    engine.dispose()


def token(sub="bob"):
    now = int(time.time())
    claims = {"sub": sub, "tenant": "acme", "role": "member", "iss": "idp", "aud": "okr", "iat": now,
              "exp": now + 600}
    return jwt.encode(claims, HS_SECRET, algorithm="HS256")


def test_one_credential_authenticates_and_a_cached_key_answers_from_the_cache(gateway):
    key, _ = auth.create_key(gateway.keys_engine, "acme", "alice", "member")
    entry = ("authorization", f"ApiKey {key}")
    assert gateway._principal(Context(entry)).subject == "alice"
    assert f"ApiKey {key}" in gateway._keys
    assert gateway._principal(Context(("x-request-id", "1"), entry)).subject == "alice"
    assert gateway._principal(Context(("authorization", f"Bearer {token()}"))).subject == "bob"


def test_two_credentials_are_refused_in_every_combination_even_after_the_key_was_cached(gateway):
    alice, _ = auth.create_key(gateway.keys_engine, "acme", "alice", "member")
    carol, _ = auth.create_key(gateway.keys_engine, "acme", "carol", "admin")
    entries = [f"ApiKey {alice}", f"ApiKey {carol}", f"Bearer {token()}", "ApiKey okr_000000000000_" + "x" * 43,
               "garbage"]
    for value in entries[:3]:  # every valid credential is in the cache (or verified) first
        gateway._principal(Context(("authorization", value)))
    for first, second in itertools.product(entries, repeat=2):  # both orders, also the same one twice
        with pytest.raises(Unauthenticated, match="^more than one authorization entry"):
            gateway._principal(Context(("authorization", first), ("authorization", second)))
