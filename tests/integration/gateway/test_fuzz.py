"""Fuzzing the running gateway: many thousands of generated requests (fuzz_strategies.py:
hypothesis strategies derived from the protobuf descriptors, valid and invalid) for every
RPC, every role, both tenants, answer only the documented status codes — never UNKNOWN or
INTERNAL — and leave no partial write: the tenants' hash chains verify and the reporting
read models equal a rebuild from the store afterwards. Fixtures: gateway_fixtures.py.

    pytest -q -s tests/integration/gateway/test_fuzz.py   # -s prints the code table
"""

# ruff: noqa: F811

from __future__ import annotations

import collections
import math
import os
import time

import eventlet
import grpc
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from .fuzz_strategies import ids_for_tenant, requests_for, truncated
from .gateway_fixtures import PRINCIPALS, world  # noqa: F401 - fixture
from tests.infra import Databases
from okr.v1 import audit_pb2, directory_pb2, goal_pb2, progress_pb2, reporting_pb2, stream_pb2
from okr_services.reporting import bulk_rebuild, storage
from okr_shared.eventstore import make_engine
from .test_gateway import seeded  # noqa: F401 - fixture: acme and globex seeded

S = grpc.StatusCode

#: Calls per backend (OKR_FUZZ_CALLS_SQLITE / _POSTGRES to change them).
TARGET = {"sqlite": int(os.environ.get("OKR_FUZZ_CALLS_SQLITE", 10_000)),
          "postgres": int(os.environ.get("OKR_FUZZ_CALLS_POSTGRES", 1_500))}
CONCURRENCY = 1  # world.call is not safe concurrently (green locks in grpc from real threads)
STREAM_EVERY = 2  # one server-streaming call every STREAM_EVERY batches (each runs a subprocess)

#: The answers the API documents (docs/api.md). UNAVAILABLE and DEADLINE_EXCEEDED are not
#: expected with every service running; DEADLINE_EXCEEDED is allowed only for a followed
#: event stream, which runs until the fuzz's deadline.
ALLOWED = {S.OK, S.INVALID_ARGUMENT, S.NOT_FOUND, S.FAILED_PRECONDITION, S.ABORTED, S.PERMISSION_DENIED,
           S.UNAUTHENTICATED, S.ALREADY_EXISTS, S.OUT_OF_RANGE, S.RESOURCE_EXHAUSTED}
#: Hostile credentials: none, garbage, a well-formed unknown key, a wrong scheme.
BAD_KEYS = ["", "garbage", "okr_000000000000_" + "x" * 43, "ApiKey", "Bearer x.y.z", "okr_" + "9" * 12 + "_"]


def _methods():
    stubs = {"okr.v1.GoalService": "goal", "okr.v1.ProgressService": "progress",
             "okr.v1.ReportingService": "reporting", "okr.v1.AuditService": "audit", "okr.v1.EventStream": "stream",
             "okr.v1.DirectoryService": "directory"}
    unary, streaming = [], []
    for module in (goal_pb2, progress_pb2, reporting_pb2, audit_pb2, stream_pb2, directory_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                entry = (stubs[service.full_name], service.full_name, method)
                (streaming if method.server_streaming else unary).append(entry)
    return unary, streaming


UNARY, STREAMING = _methods()
#: Each hypothesis example is a batch of len(UNARY) calls (one per unary RPC), plus a
#: streaming call every STREAM_EVERY examples.


@st.composite
def call_to(draw, entry):
    """One call of the RPC ``entry`` (stub, service, method): (…, tenant, role, bad key or
    None, request); a third of them well-formed and mostly as admin (so that commands
    succeed and the store grows), the rest anything."""
    stub, service, method = entry
    valid = draw(st.integers(0, 2)) == 0
    request = draw(requests_for(method.input_type, hostile=not valid))
    tenant = draw(st.sampled_from(["acme", "acme", "globex"]))
    if valid:
        request = ids_for_tenant(request, tenant)
    roles = sorted(PRINCIPALS)
    role = draw(st.sampled_from(["admin"] * 5 + roles if valid else roles))
    key = draw(st.sampled_from(BAD_KEYS)) if not valid and draw(st.integers(0, 49)) == 0 else None
    return stub, service, method, tenant, role, key, request


#: A batch: every unary RPC once, in a random order (the methods are covered uniformly).
batches = st.permutations(UNARY).flatmap(lambda order: st.tuples(*(call_to(entry) for entry in order)))
stream_calls = st.sampled_from(STREAMING).flatmap(call_to)


class Tally:
    def __init__(self):
        self.codes = collections.Counter()  # (method, code) -> n
        self.bad = []  # (method, role, code, details, request)
        self.calls = 0


def _one(w, tally: Tally, call) -> None:
    stub, service, method, tenant, role, key, request = call
    name = f"{service.rpartition('.')[2]}/{method.name}"
    if method.server_streaming:
        follow = bool(getattr(request, "follow", False))
        if key is not None:
            key = None  # the stream driver takes the role's key only
        _, error = w.stream(f"/{service}/{method.name}", request, tenant=tenant, role=role, limit=50,
                            timeout=3 if follow else 10)
    else:
        follow = False
        _, error = w.call(getattr(w.stub(stub), method.name), request, tenant=tenant, role=role, key=key,
                          timeout=10)
    code = S.OK if error is None else error.code()
    tally.calls += 1
    tally.codes[(name, code.name)] += 1
    if code in ALLOWED or (follow and code == S.DEADLINE_EXCEEDED):
        return
    tally.bad.append((name, f"{tenant}/{role}" + (f" key={key!r}" if key is not None else ""), code.name,
                      (error.details() or "")[:300], truncated(request)))


def _summary(backend: str, tally: Tally, seconds: float) -> str:
    codes = sorted({c for _, c in tally.codes})
    methods = sorted({m for m, _ in tally.codes})
    width = max(len(m) for m in methods)
    lines = [f"\nfuzz on {backend}: {tally.calls} calls in {seconds:.1f}s ({tally.calls / seconds:.0f}/s)",
             " " * width + " " + " ".join(f"{c[:9]:>9}" for c in codes)]
    for m in methods:
        lines.append(f"{m:<{width}} " + " ".join(f"{tally.codes.get((m, c), 0) or '':>9}" for c in codes))
    totals = collections.Counter()
    for (_, c), n in tally.codes.items():
        totals[c] += n
    lines.append(f"{'total':<{width}} " + " ".join(f"{totals[c]:>9}" for c in codes))
    return "\n".join(lines)


def test_fuzzed_requests_get_documented_codes_and_leave_no_partial_writes(seeded, tmp_path_factory):
    w = seeded
    target = TARGET[w.backend]
    tally = Tally()
    pool = eventlet.GreenPool(CONCURRENCY)

    examples = [0]

    per_example = len(UNARY) + 1 / STREAM_EVERY

    @settings(max_examples=max(1, math.ceil(target / per_example)), deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(batches, stream_calls)
    def batch(triples, stream_call):
        examples[0] += 1
        if examples[0] % STREAM_EVERY == 0:  # the streaming RPCs: a smaller share
            triples = triples + (stream_call,)
        for _ in pool.imap(lambda c: _one(w, tally, c), triples):
            pass

    started = time.monotonic()
    while tally.calls < target:  # hypothesis may stop short of max_examples; go on until there
        batch()
    seconds = time.monotonic() - started
    print(_summary(w.backend, tally, seconds))

    assert not tally.bad, f"{len(tally.bad)} calls answered outside the documented codes, e.g.:\n" + "\n".join(
        f"  {m} as {who}: {code} {details!r}\n    {request}" for m, who, code, details, request in tally.bad[:15])
    assert tally.calls >= target, f"only {tally.calls} calls made (hypothesis stopped early?)"
    assert sum(n for (_, c), n in tally.codes.items() if c == "OK") > 0.02 * tally.calls  # not all refusals

    # no partial writes: (1) each tenant's chain verifies
    for tenant in ("acme", "globex"):
        verified, error = w.call(w.stub("audit").VerifyChain, audit_pb2.VerifyChainRequest(), tenant=tenant,
                                 role="auditor")
        assert error is None, f"{error.code()}: {error.details()}"
        assert verified.ok and verified.events_checked > 0, f"{tenant}: {verified}"
        assert w.store.verify(tenant).ok
    # (2) the live read models equal a rebuild of the store into a fresh database
    w.reporting_caught_up(timeout=60)
    databases = Databases(w.backend, tmp_path_factory.mktemp("fuzz-rebuild"), prefix="gw_fuzz")
    other = make_engine(databases.new("rebuilt"))
    try:
        head = w.store.head_position()
        position = bulk_rebuild.rebuild(other, w.store, consumer=w.reporting_queue + "-check", workers=1)
        assert position == head
        with w.reporting_engine.connect() as conn:
            live = storage.dump_tables(conn)
        with other.connect() as conn:
            rebuilt = storage.dump_tables(conn)
        for table in storage.TABLES:
            assert live[table] == rebuilt[table], f"read model {table}: live and rebuilt differ"
        print(f"store head {head}; read-model rows: " + ", ".join(f"{t}={len(live[t])}" for t in storage.TABLES))
    finally:
        other.dispose()
        databases.drop()
