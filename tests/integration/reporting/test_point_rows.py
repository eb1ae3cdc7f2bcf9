"""A key result's chart points in rows of their own (storage.POINTS): the head row keeps
the rest, a check-in writes one point row and the head, whatever the chart's length; the
tables read back as exactly the fold's model on SQLite and PostgreSQL (keys that only a
byte-wise order keeps apart included); the incremental path's cache of key result rows
never serves a row the tables no longer hold; the old layout is split at start."""

from datetime import date, timedelta

import pytest
from sqlalchemy import select, text

from tests.fixtures.company_history import Script
from tests.infra import BACKENDS, Databases
from okr_shared.domain import commands as c
from okr_shared.eventstore import make_engine
from okr_shared.readmodels import storage as shared_storage
from okr_shared.readmodels.projections import POINTS
from okr_services.reporting import fold, storage

JAN1 = date(2026, 1, 1)

# ids a linguistic collation may order (or compare) apart from their bytes
KR_IDS = ("kr-1", "kr-10", "KR-1", "kr_1", "kr.1", "kr:1", "kr-1a", "kr-2")


def quarter() -> Script:
    s = Script("acme")
    s.run(date(2025, 12, 20), "ceo", c.PlanCycle("q1", "QUARTERLY", "Q1 2026", "2026-01-01", "2026-03-31"))
    s.run(date(2025, 12, 20), "gina", c.CreateObjective("o-growth", "q1", "TEAM", "Fill the pipeline", "gina",
                                                        team_id="growth"))
    s.run(JAN1, "ceo", c.ActivateCycle("q1"))
    return s


def kr(s: Script, kr_id: str) -> None:
    s.run(JAN1, "gina", c.DefineKeyResult(kr_id, "o-growth", f"KR {kr_id}", "INCREASE_TO", 0, 100, "gina",
                                          "2026-03-31"))


def check_in(s: Script, day: date, kr_id: str, value: float, check_in_id: str) -> None:
    s.run(day, "gina", c.RecordCheckIn(check_in_id, kr_id, value, 7, day.isoformat()))


def history():
    s = quarter()
    for kr_id in KR_IDS:
        kr(s, kr_id)
    day = JAN1
    for week in range(6):
        day = JAN1 + timedelta(days=7 * week + 1)
        for n, kr_id in enumerate(KR_IDS):
            check_in(s, day, kr_id, 10 * week + n, check_in_id=f"ci-{kr_id}-{week}")
    later = day + timedelta(days=1)
    # a correction, a correction of that correction, and another of the original
    s.run(later, "gina", c.CorrectCheckIn("fix-1", "ci-kr-1-2", "kr-1", 21, 6, "Typo"))
    s.run(later, "gina", c.CorrectCheckIn("fix-2", "fix-1", "kr-1", 22, 6, "Typo again"))
    s.run(later, "gina", c.CorrectCheckIn("fix-3", "ci-kr-1-2", "kr-1", 23, 5, "Recount"))
    s.run(later, "gina", c.CorrectCheckIn("fix-4", "ci-KR-1-0", "KR-1", 1, 7, "Late data", "2026-01-01"))
    return s.events()


@pytest.fixture(params=BACKENDS)
def engine(request, tmp_path):
    dbs = Databases(request.param, tmp_path, prefix="test_points")
    engine = make_engine(dbs.new("reporting"))
    storage.migrate_schema(engine)
    yield engine
    engine.dispose()
    dbs.drop()


def apply_all(engine, events):
    for event in events:
        with engine.begin() as conn:
            storage.apply_event(conn, event)


def model_of(engine):
    with engine.connect() as conn:
        return storage.load_model(conn, "acme")


def test_the_tables_read_back_as_the_fold_with_each_point_in_a_row_of_its_own(engine):
    events = history()
    apply_all(engine, events)
    expected = fold(events)
    assert storage.model_dumps(model_of(engine)) == storage.model_dumps(expected)
    krs, points = storage.LIVE["key_results"], storage.LIVE[POINTS]
    with engine.connect() as conn:
        heads = {key: storage.loads(doc) for key, doc in conn.execute(select(krs.c.key, krs.c.doc))}
        point_keys = sorted(row[0] for row in conn.execute(select(points.c.key)))
        one = shared_storage.load_rows(conn, storage.LIVE, "key_results", "acme", ["kr-1", "kr-10", "nope"])
    assert all("points" not in doc and "roots" not in doc for doc in heads.values())
    assert point_keys == sorted(f"{key}/{p['check_in_id']}" for key, doc in expected["key_results"].items()
                                for p in doc["points"])
    assert len(point_keys) == 6 * len(KR_IDS)  # corrections replace their chain's point
    if engine.dialect.name == "postgresql":  # the range of a key result's points is byte-wise
        with engine.connect() as conn:
            assert conn.execute(text(
                "SELECT collation_name FROM information_schema.columns WHERE table_schema = current_schema() "
                f"AND table_name = '{points.name}' AND column_name = 'key'")).scalar() == "C"
    assert set(one) == {"acme/kr-1", "acme/kr-10"}
    for key, doc in one.items():
        assert storage.model_dumps(doc) == storage.model_dumps(expected["key_results"][key])
    chain = expected["key_results"]["acme/kr-1"]
    assert {k: v for k, v in chain["roots"].items() if v == "ci-kr-1-2"} == {
        "ci-kr-1-2": "ci-kr-1-2", "fix-1": "ci-kr-1-2", "fix-2": "ci-kr-1-2", "fix-3": "ci-kr-1-2"}


def test_a_check_in_writes_its_point_and_the_head_however_long_the_chart(tmp_path, monkeypatch):
    engine = make_engine(f"sqlite:///{tmp_path}/r.db")
    storage.migrate_schema(engine)
    s = quarter()
    kr(s, "kr-long")
    for n in range(300):
        check_in(s, JAN1 + timedelta(days=1 + n // 4), "kr-long", n, check_in_id=f"ci-{n}")
    *before, last = s.events()
    apply_all(engine, before)
    written, point_reads = [], []
    write_text, kr_points = shared_storage._write_text, shared_storage._kr_points
    monkeypatch.setattr(shared_storage, "_write_text", lambda conn, t, tenant, key, doc: (
        written.append((t.name, key, len(doc))), write_text(conn, t, tenant, key, doc)))
    monkeypatch.setattr(shared_storage, "_kr_points", lambda *a: point_reads.append(a[-1]) or kr_points(*a))
    with engine.begin() as conn:
        touched = storage.apply_event(conn, last)
    assert touched == {("key_results", "acme/kr-long"), (POINTS, "acme/kr-long/ci-299"),
                       ("history", f"acme/kr-kr-long/{last.position}")}
    assert sorted(name for name, _, _ in written) == sorted(["reporting_key_results", "reporting_history",
                                                             "reporting_key_result_points"])
    assert max(size for _, _, size in written) < 2000  # the whole row with 300 points: ~45 KB
    assert point_reads == []  # the row came from the cache: no point read either
    assert storage.model_dumps(model_of(engine)) == storage.model_dumps(fold(s.events()))
    engine.dispose()


def test_a_rolled_back_check_in_leaves_nothing_behind_in_the_cache(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/r.db")
    storage.migrate_schema(engine)
    events = history()
    apply_all(engine, events[:-6])
    with pytest.raises(RuntimeError, match="after the apply"):
        with engine.begin() as conn:
            storage.apply_event(conn, events[-6])  # applied in place to the cached row ...
            raise RuntimeError("a failure after the apply")  # ... and rolled back
    apply_all(engine, events[-6:-3])

    def refused(conn, t, tenant, key, doc):
        raise RuntimeError("the database refused the write")

    write_text = shared_storage._write_text
    shared_storage._write_text = refused  # a failure inside apply_event, after the fold changed the row
    try:
        with pytest.raises(RuntimeError, match="refused"), engine.begin() as conn:
            storage.apply_event(conn, events[-3])
    finally:
        shared_storage._write_text = write_text
    apply_all(engine, events[-3:])
    assert storage.model_dumps(model_of(engine)) == storage.model_dumps(fold(events))
    engine.dispose()


def test_a_row_changed_by_another_writer_is_read_from_the_tables(tmp_path):
    url = f"sqlite:///{tmp_path}/r.db"
    a, b = make_engine(url), make_engine(url)  # two pools: two processes' caches
    storage.migrate_schema(a)
    events = history()
    check_ins = [i for i, e in enumerate(events) if e.data.get("key_result_id") == "kr-1"]
    split = check_ins[-3]
    apply_all(a, events[:split])  # a has kr-1 in its cache
    apply_all(b, events[split:split + 1])  # the other instance applies one kr-1 event
    apply_all(a, events[split + 1:])  # a continues: it must see b's point
    assert storage.model_dumps(model_of(a)) == storage.model_dumps(fold(events))
    a.dispose()
    b.dispose()


def test_the_cache_keeps_the_most_recently_written_rows_only():
    cache = shared_storage._KeyResultCache(size=2)
    for key in ("a", "b", "c"):
        cache.put(key, f"head-{key}", {"key": key})
    assert cache.take("a", "head-a") is None
    assert cache.take("b", "head-other") is None  # another head text: not served (and dropped)
    assert cache.take("b", "head-b") is None
    assert cache.take("c", "head-c") == {"key": "c"}
    assert cache.take("c", "head-c") is None  # taken: the fold changes it in place


def test_rows_of_the_old_layout_are_split_at_start(engine):
    events = history()
    expected = fold(events)
    krs = storage.LIVE["key_results"]
    with engine.begin() as conn:
        conn.execute(text(f'DROP TABLE "{storage.LIVE[POINTS].name}"'))
        # a database of that layout predates the migration histories (okr_shared.db)
        conn.execute(text("DROP TABLE alembic_version_reporting"))
        for table in ("cycles", "objectives", "key_results", "initiatives"):
            for key, doc in expected[table].items():
                storage.write_row(conn, storage.LIVE[table], key, doc)  # key results with their points
    with engine.connect() as conn:
        assert "points" in storage.loads(conn.execute(select(krs.c.doc).where(krs.c.key == "acme/kr-1")).scalar())
    storage.migrate_schema(engine)
    model = model_of(engine)
    assert storage.model_dumps({t: model[t] for t in ("cycles", "objectives", "key_results", "initiatives")}) == \
        storage.model_dumps({t: expected[t] for t in ("cycles", "objectives", "key_results", "initiatives")})
    assert storage.move_points_out(engine) == 0  # already split: nothing to do
    apply_all(engine, quarter_check_in(events))
    assert model_of(engine)["key_results"]["acme/kr-2"]["points"][-1]["check_in_id"] == "ci-after-upgrade"


def quarter_check_in(events):
    """One more check-in on kr-2 after ``events``."""
    s = quarter()
    for kr_id in KR_IDS:
        kr(s, kr_id)
    check_in(s, date(2026, 3, 1), "kr-2", 99, check_in_id="ci-after-upgrade")
    return [s.events()[-1]._replace(position=events[-1].position + 1)]
