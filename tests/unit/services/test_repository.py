"""Loading aggregates: snapshots and the in-process cache are optimisations behind one
interface — every way of loading gives the state of folding every event."""

import logging
from types import SimpleNamespace

import pytest

from okr_shared import domain
from okr_shared.domain import commands as c
from okr_shared.eventstore.snapshots import SnapshotStore
from okr_shared.service_layer import CallContext, Repository


def record(executor, call, n, key_result_id="members"):
    for i in range(n):
        executor.run(c.RecordCheckIn, {"key_result_id": key_result_id, "value": 100 + i, "confidence": i % 11,
                                       "comment": f"week {i}"}, call)


def snapshot_versions(engine):
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT stream_id, version FROM es_snapshots ORDER BY stream_id").all()


def test_every_way_of_loading_gives_the_state_of_folding_every_event(engine, executor, call, world):
    record(executor, call, 250)
    plain = Repository(engine, domain).load("kr-members", "acme")
    through_snapshot = Repository(engine, domain, SnapshotStore(engine)).load("kr-members", "acme")
    warm = executor.repository.load("kr-members", "acme")
    assert plain.version == through_snapshot.version == warm.version == 251
    assert plain.state == through_snapshot.state == warm.state
    assert len(plain.state.check_ins) == 250
    assert plain.tenant_id == through_snapshot.tenant_id == warm.tenant_id == "acme"


def test_a_snapshot_is_taken_every_100_events(engine, executor, call, world):
    record(executor, call, 98)
    assert snapshot_versions(engine) == []
    record(executor, call, 1)  # the stream's 100th event
    assert snapshot_versions(engine) == [("kr-members", 100)]
    record(executor, call, 101)
    assert snapshot_versions(engine) == [("kr-members", 200)]


def test_a_long_stream_without_snapshot_gets_one_when_loaded(engine, executor, call, world):
    record(executor, call, 120)
    SnapshotStore(engine).delete()
    Repository(engine, domain, SnapshotStore(engine)).load("kr-members", "acme")
    assert snapshot_versions(engine) == [("kr-members", 121)]


def test_a_snapshot_of_another_fold_version_is_ignored(engine, executor, call, world):
    record(executor, call, 3)
    snapshots = SnapshotStore(engine)
    bogus = {**Repository(engine, domain).load("kr-members", "acme").state.to_snapshot(), "target_value": 9999.0}
    snapshots.save("kr-members", "acme", 4, domain.SNAPSHOT_VERSION + 1, bogus)
    assert Repository(engine, domain, snapshots).load("kr-members", "acme").state.target_value == 500
    newer_fold = SimpleNamespace(fold=domain.fold, STATE_TYPES=domain.STATE_TYPES,
                                 SNAPSHOT_VERSION=domain.SNAPSHOT_VERSION + 1)
    assert Repository(engine, newer_fold, snapshots).load("kr-members", "acme").state.target_value == 9999.0


def test_an_unreadable_snapshot_is_ignored_with_a_warning(engine, executor, call, world, caplog):
    record(executor, call, 3)
    snapshots = SnapshotStore(engine)
    snapshots.save("kr-members", "acme", 4, domain.SNAPSHOT_VERSION, {"not": "a key result"})
    with caplog.at_level(logging.WARNING):
        loaded = Repository(engine, domain, snapshots).load("kr-members", "acme")
    assert loaded.version == 4 and len(loaded.state.check_ins) == 3
    assert "unreadable snapshot of kr-members" in caplog.text


def test_the_snapshot_store_keeps_the_newest_snapshot(engine):
    snapshots = SnapshotStore(engine)
    assert snapshots.save("kr-x", "acme", 200, 1, {"v": 200})
    assert not snapshots.save("kr-x", "acme", 100, 1, {"v": 100})  # a slow writer loses
    assert snapshots.load("kr-x", 1, tenant_id="acme").state == {"v": 200}
    assert snapshots.save("kr-x", "acme", 100, 2, {"v": "new fold"})  # another fold's row is replaced
    assert snapshots.load("kr-x", 1, tenant_id="acme") is None
    assert snapshots.load("kr-x", 2, tenant_id="acme").version == 100
    assert snapshots.delete() == 1


def test_snapshots_are_per_tenant(engine):
    """The same stream id in two tenants is two streams (ADR 0023): two snapshots."""
    snapshots = SnapshotStore(engine)
    assert snapshots.save("kr-x", "acme", 200, 1, {"v": "acme"})
    assert snapshots.save("kr-x", "globex", 100, 1, {"v": "globex"})  # not "older than acme's"
    assert snapshots.load("kr-x", 1, tenant_id="acme").state == {"v": "acme"}
    assert snapshots.load("kr-x", 1, tenant_id="globex").state == {"v": "globex"}
    assert snapshots.load("kr-x", 1, tenant_id="initech") is None
    assert snapshots.delete("kr-x", tenant_id="globex") == 1
    assert snapshots.load("kr-x", 1, tenant_id="acme").version == 200


def test_a_failing_snapshot_write_does_not_fail_the_command(executor, call, world, caplog):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    executor.repository.snapshots.save = broken
    with caplog.at_level(logging.WARNING):
        record(executor, call, 110)
    assert executor.read("kr", "members", call)["version"] == 111
    assert "could not save the snapshot of kr-members" in caplog.text


def test_a_kept_state_still_sees_events_appended_by_another_process(executor, other_executor, call, world):
    assert executor.repository.load("kr-members", "acme").version == 1  # now kept in executor's cache
    record(other_executor, call, 2)
    loaded = executor.repository.load("kr-members", "acme")
    assert loaded.version == 3 and len(loaded.state.check_ins) == 2


def test_states_handed_out_are_copies(executor, call, world):
    record(executor, call, 1)
    state = executor.repository.load("kr-members", "acme").state
    state.check_ins.clear()
    state.target_value = 0
    again = executor.repository.load("kr-members", "acme").state
    assert len(again.check_ins) == 1 and again.target_value == 500


def test_the_cache_keeps_only_the_most_recently_used_streams(engine, executor, call, world):
    repository = Repository(engine, domain, cache_size=2)
    for stream_id in ("cycle-2026-q3", "objective-grow", "kr-members"):
        repository.load(stream_id, "acme")
    assert list(repository._cache) == [("acme", "objective-grow"), ("acme", "kr-members")]


def test_the_cache_keeps_each_tenants_stream_apart(engine, executor, call, world):
    """Another tenant's stream of the same id is another stream: its own cached state."""
    other = CallContext(actor="bo", tenant_id="globex")
    repository = executor.repository
    assert repository.load("kr-members", "acme").version == 1
    assert repository.load("kr-members", "globex").state is None  # not acme's cached one
    executor.run(c.PlanCycle, dict(cycle_id="2026-q3", cadence="QUARTERLY", name="Globex Q3",
                                   start_date="2026-07-01", end_date="2026-09-30"), other)
    assert repository.load("cycle-2026-q3", "globex").state.name == "Globex Q3"
    assert repository.load("cycle-2026-q3", "acme").state.name == "2026 Q3"
    repository.forget("cycle-2026-q3", "globex")
    assert ("acme", "cycle-2026-q3") in repository._cache and ("globex", "cycle-2026-q3") not in repository._cache


def test_a_stream_that_does_not_exist_loads_as_nothing(executor):
    loaded = executor.repository.load("kr-nope", "acme")
    assert (loaded.state, loaded.version, loaded.tenant_id) == (None, 0, "acme")


@pytest.mark.parametrize("every", [0, -1])
def test_snapshot_interval_must_be_positive(engine, every):
    with pytest.raises(ValueError):
        Repository(engine, domain, snapshot_every=every)


def test_a_state_types_own_snapshot_codec_is_preferred(engine, executor, call, world, monkeypatch):
    record(executor, call, 3)
    monkeypatch.setattr(domain.KeyResult, "to_snapshot", lambda self: {"compact": self.to_dict()}, raising=False)
    monkeypatch.setattr(domain.KeyResult, "from_snapshot", classmethod(lambda cls, d: cls.from_dict(d["compact"])),
                        raising=False)
    loaded = Repository(engine, domain, SnapshotStore(engine), snapshot_every=1).load("kr-members", "acme")
    assert set(SnapshotStore(engine).load("kr-members", domain.SNAPSHOT_VERSION, tenant_id="acme").state) == {"compact"}
    assert Repository(engine, domain, SnapshotStore(engine)).load("kr-members", "acme").state == loaded.state


def test_a_kept_states_one_query_fails_as_a_sqlalchemy_error_and_the_next_load_works(engine, executor, call, world):
    # The hot path runs on the DBAPI cursor (perf); its errors must look like the other
    # path's (callers and the gateway see SQLAlchemy's exceptions, not sqlite3's).
    from sqlalchemy import exc as sa_exc

    record(executor, call, 2)
    repository = executor.repository
    assert repository.load("kr-members", "acme").version > 0  # kept now
    good = repository._tail._query.sql
    repository._tail._query.sql = good.replace("es_events", "es_no_such_table")
    with pytest.raises(sa_exc.OperationalError, match="es_no_such_table"):
        repository.load("kr-members", "acme")
    repository._tail._query.sql = good
    record(executor, call, 1)
    assert len(repository.load("kr-members", "acme").state.check_ins) == 3


# -- snapshots written in the background (the services' BackgroundSnapshots) ----------


def _loaded(stream_id, version):
    from okr_shared.service_layer.repository import Loaded

    return Loaded(stream_id, {"v": version}, version, "acme", 0)


def test_the_background_writer_writes_the_newest_state_per_stream_oldest_stream_first():
    from okr_shared.service_layer.repository import BackgroundSnapshots

    saved = []
    writer = BackgroundSnapshots(lambda loaded: saved.append((loaded.stream_id, loaded.version)), pace=0)
    for stream, version in (("kr-a", 100), ("kr-b", 100), ("kr-a", 200), ("kr-a", 150), ("kr-c", 100)):
        writer.submit(_loaded(stream, version))
    assert writer.pending == 3
    writer.start()
    writer.stop()
    assert saved == [("kr-b", 100), ("kr-a", 200), ("kr-c", 100)]  # kr-a's 150 came after its 200
    assert (writer.written, writer.pending) == (3, 0)


def test_the_background_writer_survives_a_failing_write_and_bounds_what_waits(caplog):
    from okr_shared.service_layer.repository import BackgroundSnapshots

    saved = []

    def save(loaded):
        if loaded.stream_id == "kr-bad":
            raise OSError("disk full")
        saved.append(loaded.stream_id)

    writer = BackgroundSnapshots(save, pace=0, max_pending=2)
    for stream in ("kr-bad", "kr-ok", "kr-dropped"):
        writer.submit(_loaded(stream, 100))
    assert (writer.pending, writer.dropped) == (2, 1)
    with caplog.at_level(logging.WARNING):
        writer.start()
        writer.stop()
    assert saved == ["kr-ok"] and writer.written == 1
    assert "could not save the snapshot of kr-bad at version 100" in caplog.text


def test_with_a_background_writer_a_due_snapshot_is_handed_over_not_written_by_the_command(
        engine, executor, call, world):
    from okr_shared.service_layer.repository import BackgroundSnapshots

    writer = executor.repository.snapshot_writer = BackgroundSnapshots(executor.repository.save_snapshot, pace=0)
    record(executor, call, 99)  # the stream's 100th event
    assert snapshot_versions(engine) == [] and writer.pending == 1
    writer.start()
    writer.stop()
    assert snapshot_versions(engine) == [("kr-members", 100)]
    assert executor.read("kr", "members", call)["version"] == 100
