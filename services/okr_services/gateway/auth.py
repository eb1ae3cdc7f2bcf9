"""Authentication: who is calling (docs/adr/0012-authentication-and-roles.md).

Every call carries an ``authorization`` metadata entry, one of

- ``ApiKey okr_<key_id>_<secret>`` — an API key created with ``okr keys create``. The
  key id (12 hex characters) is public (``okr keys list`` shows it); the secret (32
  random bytes, URL-safe base64) is shown once and never stored: the table
  ``gateway_api_keys`` keeps ``sha256:<hex>`` of it, or ``hmac-sha256:<hex>`` keyed with
  a server-side pepper when ``OKR_API_KEY_PEPPER`` is set. A key is bound to one
  tenant, one principal (subject) and one role; revoking it refuses it from then on.
- ``Bearer <jwt>`` — a token signed by an identity provider, checked with PyJWT against
  ``JwtConfig`` (HS256 with a shared secret, or RS256 with the provider's public key;
  the algorithm is pinned, so ``alg: none`` and HS256-signed-with-the-public-key
  tokens are refused). Required claims: ``exp``, ``iss``, ``aud``, ``sub``, ``tenant``,
  ``role``; optional ``teams`` (a lead's teams) and ``delegated_key_results`` (a
  service's key results), ``jti`` (becomes ``Principal.key_id``).

Either way the result is a ``Principal``; ``policy.authorize`` decides what it may do.
Failures raise ``Unauthenticated`` with a message meant for the caller (it never says
which half of a key was wrong).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from okr_shared.clock import now_us
from okr_shared.db import migrate, write_transaction
# the table: the gateway_keys history's snapshot of its newest revision (docs/adr/0032-…)
from okr_shared.db.migrations.gateway_keys.tables_0001 import KEY_ID_LENGTH, api_keys
from okr_shared.eventstore.store import TENANT_RE

from .config import api_key_pepper

log = logging.getLogger(__name__)

#: The roles, most powerful first (policy.RULES has one entry per role).
ROLES = ("admin", "lead", "member", "viewer", "auditor", "service")

KEY_PREFIX = "okr_"
SECRET_BYTES = 32
#: How often (at most) a key's ``last_used_at_us`` is written: not on every call.
LAST_USED_RESOLUTION_US = 60_000_000

_KEY_ID_RE = re.compile(r"[0-9a-f]{12}")
_SECRET_RE = re.compile(r"[A-Za-z0-9_\-]{43,200}")
_NAME_RE = re.compile(r"[^\x00-\x1f\x7f\s][^\x00-\x1f\x7f]{0,199}")
_MIN_HMAC_SECRET_BYTES = 32
_MIN_RSA_BITS = 2048


class Unauthenticated(Exception):
    """No valid credentials: the message says what to fix (gRPC UNAUTHENTICATED)."""


class PermissionDenied(Exception):
    """Authenticated, but the role's rules do not allow this (gRPC PERMISSION_DENIED);
    the message names the rule."""


@dataclass(frozen=True)
class Principal:
    tenant: str
    subject: str
    role: str
    teams: tuple[str, ...] = ()
    delegated_key_results: tuple[str, ...] = ()
    via: str = "api_key"  # "api_key" | "jwt"
    key_id: str | None = None


# ------------------------------------------------------------------- validation


def _check_name(what: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value) or value != value.strip():
        raise ValueError(f"{what} must be 1-200 printable characters without surrounding spaces, not {value!r}")
    return value


def validate_identity(tenant: Any, subject: Any, role: Any, teams: Any = (),
                      delegated_key_results: Any = ()) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Check the fields a key (or a token) binds; ValueError names the first bad one.
    Returns teams and delegated key results as tuples (order kept, duplicates dropped).

    - tenant: the event store's tenant format (1-64 letters, digits, '_', '.', '-');
    - role: one of ROLES;
    - lead: at least one team; teams are for leads only;
    - service: delegated key results are for services only; a service without any may
      only stream events.
    """
    if not isinstance(tenant, str) or not TENANT_RE.fullmatch(tenant):
        raise ValueError(f"tenant {tenant!r} is not 1-64 letters, digits, '_', '.' or '-'")
    _check_name("subject", subject)
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if isinstance(teams, str) or isinstance(delegated_key_results, str):
        raise ValueError("teams and delegated key results are lists, not a string")
    teams_t = tuple(dict.fromkeys(_check_name("team id", t) for t in (teams or ())))
    krs_t = tuple(dict.fromkeys(_check_name("key result id", k) for k in (delegated_key_results or ())))
    if role == "lead" and not teams_t:
        raise ValueError("role lead needs at least one team (the teams they lead)")
    if role != "lead" and teams_t:
        raise ValueError(f"teams are only for role lead, not {role}")
    if role != "service" and krs_t:
        raise ValueError(f"delegated key results are only for role service, not {role}")
    return teams_t, krs_t


# --------------------------------------------------------------------- API keys

_PUBLIC_COLUMNS = [c for c in api_keys.c if c.name != "secret_hash"]



def _pepper(pepper: str | bytes | None) -> bytes | None:
    if pepper is None:
        pepper = api_key_pepper()
    if pepper is None:
        return None
    return pepper.encode() if isinstance(pepper, str) else pepper


def hash_secret(secret: str, pepper: str | bytes | None = None) -> str:
    """What is stored for a secret: ``hmac-sha256:<hex>`` with the pepper (argument, or
    ``OKR_API_KEY_PEPPER``), else ``sha256:<hex>``."""
    p = _pepper(pepper)
    if p is not None:
        return "hmac-sha256:" + hmac.new(p, secret.encode(), hashlib.sha256).hexdigest()
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def _secret_matches(secret: str, stored: str, pepper: str | bytes | None) -> bool:
    scheme = stored.split(":", 1)[0]
    if scheme == "hmac-sha256":
        p = _pepper(pepper)
        if p is None:  # stored with a pepper the server no longer has: never matches
            log.warning("API key hashed with a pepper, but OKR_API_KEY_PEPPER is not set")
            return False
        candidate = "hmac-sha256:" + hmac.new(p, secret.encode(), hashlib.sha256).hexdigest()
    elif scheme == "sha256":
        candidate = "sha256:" + hashlib.sha256(secret.encode()).hexdigest()
    else:
        return False
    return hmac.compare_digest(candidate.encode(), stored.encode())


def _record(row) -> dict:
    d = dict(row._mapping)
    d.pop("secret_hash", None)
    d["teams"] = json.loads(d["teams"])
    d["delegated_key_results"] = json.loads(d["delegated_key_results"])
    return d


def create_key(engine: Engine, tenant: str, subject: str, role: str, teams: Iterable[str] = (),
               delegated_key_results: Iterable[str] = (), description: str = "",
               pepper: str | bytes | None = None) -> tuple[str, dict]:
    """Create an API key. Returns the key string (``okr_<key_id>_<secret>``: show it once,
    it cannot be recovered) and the stored record (without the hash). ValueError when a
    field is invalid (``validate_identity``)."""
    teams_t, krs_t = validate_identity(tenant, subject, role, tuple(teams or ()), tuple(delegated_key_results or ()))
    if not isinstance(description, str) or len(description) > 1000:
        raise ValueError("description must be a string of at most 1000 characters")
    migrate(engine, "gateway_keys")
    secret = secrets.token_urlsafe(SECRET_BYTES)
    row = {
        "tenant": tenant, "subject": subject, "role": role,
        "teams": json.dumps(list(teams_t)), "delegated_key_results": json.dumps(list(krs_t)),
        "secret_hash": hash_secret(secret, pepper), "created_at_us": now_us(),
        "revoked_at_us": None, "last_used_at_us": None, "description": description,
    }
    for attempt in range(5):  # a key id collision (2^-48) is retried with a new id
        key_id = secrets.token_hex(KEY_ID_LENGTH // 2)
        try:
            with write_transaction(engine) as conn:
                conn.execute(api_keys.insert().values(key_id=key_id, **row))
            break
        except SQLAlchemyError:
            if attempt == 4 or get_key(engine, key_id) is None:
                raise
    record = {k: v for k, v in row.items() if k != "secret_hash"}
    record.update(key_id=key_id, teams=list(teams_t), delegated_key_results=list(krs_t))
    return f"{KEY_PREFIX}{key_id}_{secret}", record


def get_key(engine: Engine, key_id: str) -> dict | None:
    """One key's record (never the hash), or None."""
    with engine.connect() as conn:
        row = conn.execute(select(*_PUBLIC_COLUMNS).where(api_keys.c.key_id == key_id)).first()
    return _record(row) if row is not None else None


def list_keys(engine: Engine, tenant: str | None = None) -> list[dict]:
    """Every key's record (or one tenant's), oldest first; never the hash."""
    query = select(*_PUBLIC_COLUMNS).order_by(api_keys.c.tenant, api_keys.c.created_at_us, api_keys.c.key_id)
    if tenant is not None:
        query = query.where(api_keys.c.tenant == tenant)
    with engine.connect() as conn:
        return [_record(r) for r in conn.execute(query)]


def revoke_key(engine: Engine, key_id: str) -> bool:
    """Revoke a key; True if this call revoked it, False if it is unknown or was
    already revoked. Revocation is permanent (create a new key instead)."""
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(api_keys)
            .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at_us.is_(None))
            .values(revoked_at_us=now_us())
        )
    return result.rowcount == 1


_MALFORMED = "malformed API key (expected okr_<id>_<secret>)"
_INVALID = "invalid API key"
_DUMMY_HASH = "sha256:" + "0" * 64


def parse_key(key_string: str) -> tuple[str, str]:
    """(key_id, secret) of a key string; Unauthenticated when it is not one."""
    if not isinstance(key_string, str) or not key_string.startswith(KEY_PREFIX):
        raise Unauthenticated(_MALFORMED)
    rest = key_string[len(KEY_PREFIX):]
    key_id, sep, secret = rest[:KEY_ID_LENGTH], rest[KEY_ID_LENGTH:KEY_ID_LENGTH + 1], rest[KEY_ID_LENGTH + 1:]
    if sep != "_" or not _KEY_ID_RE.fullmatch(key_id) or not _SECRET_RE.fullmatch(secret):
        raise Unauthenticated(_MALFORMED)
    return key_id, secret


def authenticate_api_key(engine: Engine, key_string: str, pepper: str | bytes | None = None) -> Principal:
    """The principal of a valid, unrevoked API key; Unauthenticated otherwise. An unknown
    key id and a wrong secret are the same "invalid API key" (a key's revocation is only
    reported to whoever holds its secret)."""
    key_id, secret = parse_key(key_string)
    with engine.connect() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
    if row is None:
        _secret_matches(secret, _DUMMY_HASH, pepper)  # same work as for a known id
        raise Unauthenticated(_INVALID)
    if not _secret_matches(secret, row.secret_hash, pepper):
        raise Unauthenticated(_INVALID)
    if row.revoked_at_us is not None:
        raise Unauthenticated(f"API key {key_id} was revoked")
    now = now_us()
    if row.last_used_at_us is None or now - row.last_used_at_us >= LAST_USED_RESOLUTION_US:
        try:
            with write_transaction(engine) as conn:
                conn.execute(update(api_keys).where(api_keys.c.key_id == key_id).values(last_used_at_us=now))
        except SQLAlchemyError as e:  # bookkeeping only: never refuse a valid key for it
            log.warning("could not record the use of API key %s: %s", key_id, e)
    return Principal(
        tenant=row.tenant, subject=row.subject, role=row.role,
        teams=tuple(json.loads(row.teams)), delegated_key_results=tuple(json.loads(row.delegated_key_results)),
        via="api_key", key_id=key_id,
    )


# ------------------------------------------------------------------------- JWT

JWT_ALGORITHMS = ("HS256", "RS256")


@dataclass(frozen=True)
class JwtConfig:
    """How bearer tokens are checked. ``key``: the shared secret (HS256) or the
    issuer's public key in PEM (RS256). ``issuer`` and ``audience`` are required: a
    token must name both exactly. ``leeway_s``: clock skew allowed on exp/nbf/iat."""

    algorithm: str
    key: str | bytes = field(repr=False)
    issuer: str
    audience: str
    leeway_s: float = 30.0

    def __post_init__(self):
        if self.algorithm not in JWT_ALGORITHMS:
            raise ValueError(f"JWT algorithm must be one of {', '.join(JWT_ALGORITHMS)}, not {self.algorithm!r}")
        if not self.issuer or not self.audience:
            raise ValueError("JWT issuer and audience are required (OKR_JWT_ISSUER, OKR_JWT_AUDIENCE)")
        if self.leeway_s < 0:
            raise ValueError("JWT leeway must not be negative")
        key = self.key.encode() if isinstance(self.key, str) else self.key
        if self.algorithm == "HS256":
            if b"-----BEGIN" in key:
                raise ValueError("HS256 needs a shared secret, not a PEM key (use RS256 for public keys)")
            if len(key) < _MIN_HMAC_SECRET_BYTES:
                raise ValueError(f"the HS256 secret must be at least {_MIN_HMAC_SECRET_BYTES} bytes")
        else:
            from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            try:
                public = load_pem_public_key(key)
            except Exception as e:
                raise ValueError(f"RS256 needs the issuer's RSA public key in PEM: {e}") from e
            if not isinstance(public, RSAPublicKey):
                raise ValueError("RS256 needs an RSA public key")
            if public.key_size < _MIN_RSA_BITS:
                raise ValueError(f"the RSA key must have at least {_MIN_RSA_BITS} bits")


_REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]


@functools.cache
def _jwt_refusals() -> dict:
    """PyJWT's error classes -> what the refusal says (``e``: the error, ``config``)."""
    import jwt

    return {
        jwt.ExpiredSignatureError: "bearer token expired",
        jwt.InvalidIssuerError: "bearer token has the wrong issuer (expected {config.issuer})",
        jwt.InvalidAudienceError: "bearer token has the wrong audience (expected {config.audience})",
        jwt.InvalidSignatureError: "bearer token signature is invalid",
        jwt.MissingRequiredClaimError: "bearer token lacks the {e.claim!r} claim",
        jwt.ImmatureSignatureError: "bearer token is not valid yet",
        jwt.InvalidAlgorithmError: "bearer token algorithm not accepted (expected {config.algorithm})",
        jwt.DecodeError: "malformed bearer token",
        jwt.InvalidTokenError: "invalid bearer token: {e}",
    }


def _jwt_refusal(e: Exception, config: JwtConfig) -> str:
    """Why ``jwt.decode`` refused a token: the message of the most specific class of
    ``e`` in the table (an InvalidSignatureError is also a DecodeError)."""
    refusals = _jwt_refusals()
    cls = next(cls for cls in type(e).__mro__ if cls in refusals)
    return refusals[cls].format(e=e, config=config)


def authenticate_jwt(config: JwtConfig, token: str) -> Principal:
    """The principal a valid bearer token names; Unauthenticated (saying why) otherwise."""
    import jwt

    if not isinstance(token, str) or not token:
        raise Unauthenticated("malformed bearer token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise Unauthenticated("malformed bearer token") from None
    if header.get("alg") != config.algorithm:
        raise Unauthenticated(
            f"bearer token signed with {header.get('alg')!r}; this server accepts {config.algorithm} only"
        )
    try:
        claims = jwt.decode(
            token, config.key, algorithms=[config.algorithm], audience=config.audience,
            issuer=config.issuer, leeway=config.leeway_s,
            options={"require": _REQUIRED_CLAIMS, "verify_signature": True, "strict_aud": False},
        )
    except jwt.InvalidTokenError as e:
        raise Unauthenticated(_jwt_refusal(e, config)) from None
    for claim in ("tenant", "role"):
        if claim not in claims:
            raise Unauthenticated(f"bearer token lacks the {claim!r} claim")
    try:
        teams, krs = validate_identity(
            claims["tenant"], claims["sub"], claims["role"],
            claims.get("teams") or (), claims.get("delegated_key_results") or (),
        )
    except (ValueError, TypeError) as e:
        raise Unauthenticated(f"bearer token claims are invalid: {e}") from None
    jti = claims.get("jti")
    return Principal(
        tenant=claims["tenant"], subject=claims["sub"], role=claims["role"], teams=teams,
        delegated_key_results=krs, via="jwt", key_id=jti if isinstance(jti, str) else None,
    )


# ------------------------------------------------------------------ the entry


MISSING = "missing credentials: send 'authorization: ApiKey <key>' or 'Bearer <token>'"


TWO_CREDENTIALS = "more than one authorization entry: send exactly one credential"


def authorization_entry(metadata) -> str | None:
    """The value of the one ``authorization`` entry of ``metadata`` (a dict, or gRPC's
    list of (key, value) pairs), None when there is none. More than one entry is
    Unauthenticated, whatever they hold — ApiKey or Bearer, valid or not, equal or not:
    a call has exactly one principal (docs/api.md), so no cache or shortcut may pick one.
    """
    if metadata is None:
        return None
    items = metadata.items() if isinstance(metadata, Mapping) else metadata
    values = []
    for k, v in items:
        if isinstance(k, str) and k.lower() == "authorization":
            values.append(v.decode() if isinstance(v, bytes) else v)
    if len(values) > 1:
        raise Unauthenticated(TWO_CREDENTIALS)
    return values[0] if values else None


def authenticate(metadata, engine: Engine | None, jwt_config: JwtConfig | None) -> Principal:
    """The caller of a request, from its ``authorization`` metadata (a dict, or gRPC's
    list of (key, value) pairs): ``ApiKey <key>`` (checked against ``engine``'s
    ``gateway_api_keys``) or ``Bearer <jwt>`` (checked with ``jwt_config``)."""
    value = authorization_entry(metadata)
    if value is None or not str(value).strip():
        raise Unauthenticated(MISSING)
    scheme, _, credential = str(value).strip().partition(" ")
    credential = credential.strip()
    scheme = scheme.lower()
    if scheme == "apikey":
        if engine is None:
            raise Unauthenticated("API keys are not accepted by this server")
        return authenticate_api_key(engine, credential)
    if scheme == "bearer":
        if jwt_config is None:
            raise Unauthenticated("bearer tokens are not accepted by this server (no JWT configuration)")
        return authenticate_jwt(jwt_config, credential)
    raise Unauthenticated(f"unsupported authorization scheme {scheme!r}: " + MISSING.split(": ", 1)[1])
