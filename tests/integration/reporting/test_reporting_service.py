"""The reporting service for real: events from a store (SQLite and PostgreSQL) through the
outbox relay and the real RabbitMQ into the consumer layer and the service's own tables;
RPC and HTTP faces; rebuild with swap; as-of replay; the timer.

(Fixtures in reporting_fixtures.py.)
"""

# ruff: noqa: F811

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from nameko.exceptions import RemoteError
from sqlalchemy import inspect

from tests.fixtures.company_history import week_end, week_end_us
from okr_shared.eventstore import ANY, EventStore, NewEvent, make_engine
from okr_shared.readmodels.projections import fold, fold_as_of
from okr_services.reporting import bulk_rebuild, html, queries, storage

from .reporting_fixtures import TODAY, wait_until, world  # noqa: F401 - fixture


def normal(value):
    """What a value looks like after nameko's JSON serialisation."""
    return json.loads(json.dumps(value))


def get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("Content-Type"), response.read().decode()


def first_kr(events, tenant="acme"):
    return next(e.data["key_result_id"] for e in events
                if e.tenant_id == tenant and e.event_type == "okr.v1.CheckInRecorded")


# --------------------------------------------------------------- incremental = rebuild


def test_incremental_through_the_bus_equals_the_rebuild_byte_for_byte(world):
    incremental, offset = world.dump()
    assert offset == world.store.head_position() == len(world.events)
    assert sum(len(rows) for rows in incremental.values()) > 800
    assert storage.model_dumps(world.model()) == storage.model_dumps(fold(world.events))
    # a full rebuild of the same store into another database of the same backend
    other = make_engine(world.databases.new("rebuilt"))
    try:
        done = []
        position = bulk_rebuild.rebuild(other, world.store, chunk=250, consumer=world.queue,
                                   progress=lambda n, total: done.append((n, total)))
        assert position == len(world.events)
        assert done[-1] == (position, position) and len(done) >= 4
        assert [n for n, _ in done] == sorted(n for n, _ in done)
        with other.connect() as conn:
            assert storage.dump_tables(conn) == incremental  # tenant, key and doc text, row by row
            assert storage.offset_of(conn, world.queue) == position
    finally:
        other.dispose()


def test_redelivered_events_change_nothing(world):
    before = world.dump()
    stats = world.entrypoint().stats
    seen = stats.duplicates
    world.publish_again(*world.events[-5:], world.events[0], world.events[-1])
    wait_until(lambda: stats.duplicates >= seen + 7, timeout=10, message="7 duplicates")
    assert world.dump() == before


def test_a_failing_rebuild_leaves_the_live_tables_and_the_offset_untouched(world):
    before = world.dump()

    def fail_in_the_middle(done, total):
        if done < total:
            raise RuntimeError("disk full")

    def fail_at_the_swap():
        raise RuntimeError("killed just before the swap")

    for kwargs in ({"progress": fail_in_the_middle}, {"before_swap": fail_at_the_swap}):
        with pytest.raises(bulk_rebuild.RebuildFailed):
            bulk_rebuild.rebuild(world.reporting_engine, world.store, chunk=200, consumer=world.queue, **kwargs)
        assert world.dump() == before
        names = inspect(world.reporting_engine).get_table_names()
        assert not [n for n in names if n.endswith(bulk_rebuild.NEXT) or n.endswith(bulk_rebuild.OLD)]


# ------------------------------------------------------------------------------- rpc


def test_rpc_queries_answer_per_tenant(world):
    model = fold(world.events)
    acme, globex, nobody = world.rpc(tenant_id="acme"), world.rpc(tenant_id="globex"), world.rpc(tenant_id="initech")
    acme_board = acme.board()
    assert acme_board == normal(queries.board(model, "acme", TODAY))
    assert sum(len(c["cards"]) for c in acme_board["key_results"]) > 10
    assert globex.board() == normal(queries.board(model, "globex", TODAY))
    assert acme.board(team_id="growth") == normal(queries.board(model, "acme", TODAY, team_id="growth"))
    empty = nobody.board()
    assert [c["status"] for c in empty["key_results"]] == [c["status"] for c in acme_board["key_results"]]
    assert all(not c["cards"] for c in empty["key_results"] + empty["initiatives"])

    kr_id = first_kr(world.events)
    assert acme.kr_history(kr_id) == normal(queries.kr_history(model, "acme", kr_id))
    assert acme.key_result_status(kr_id) == normal(queries.key_result_status(model, "acme", kr_id, TODAY))
    with pytest.raises(RemoteError) as refused:
        nobody.kr_history(kr_id)
    assert refused.value.exc_type == "NotFound"
    assert nobody.alignment_tree() == [] and nobody.key_result_statuses() == {}

    cycle = next(e.data["cycle_id"] for e in world.events if e.event_type == "okr.v1.CyclePlanned")
    assert acme.scorecard(cycle) == normal(queries.scorecard(model, "acme", cycle, TODAY))
    assert acme.alignment_tree(cycle_id=cycle) == normal(queries.alignment_tree(model, "acme", TODAY, cycle))
    objective = next(e.data["objective_id"] for e in world.events if e.event_type == "okr.v1.ObjectiveCreated")
    assert acme.objective_rollup(objective, include_children=True) == normal(
        queries.objective_rollup(model, "acme", objective, TODAY, include_children=True))
    assert acme.team_dashboard("growth") == normal(queries.team_dashboard(model, "acme", "growth", TODAY))
    assert acme.person_dashboard("carla") == normal(queries.person_dashboard(model, "acme", "carla", TODAY))
    with pytest.raises(RemoteError) as refused:
        world.rpc(actor="ana").board()
    assert refused.value.exc_type == "ValidationError"


def test_as_of_replays_the_week_6_board_without_touching_the_live_tables(world):
    before = world.dump()
    acme = world.rpc(tenant_id="acme")
    week6 = fold_as_of(world.events, recorded_before_us=week_end_us(6))
    expected = normal(queries.board(week6, "acme", week_end(6)))
    assert acme.as_of("board", time={"us": week_end_us(6)}) == expected
    assert acme.as_of("board", time=week_end(6).isoformat() + "T23:59:59.999999+00:00") == expected
    last = max(e.position for e in world.events if e.recorded_at_us < week_end_us(6))
    assert acme.as_of("board", position=last, today=week_end(6).isoformat()) == expected
    assert acme.as_of("board", position=last) == expected  # read on the day of its last event
    assert acme.as_of("model", time={"us": week_end_us(6)}) == normal(
        {t: {k: r for k, r in rows.items() if r["tenant"] == "acme"} for t, rows in week6.items()})
    week5 = fold_as_of(world.events, recorded_before_us=week_end_us(5))
    assert acme.diff({"us": week_end_us(5)}, {"us": week_end_us(6)}) == normal(
        queries.diff(week5, week6, "acme", week_end(5), week_end(6)))
    with pytest.raises(RemoteError) as refused:
        acme.as_of("nonsense", position=1)
    assert refused.value.exc_type == "ValidationError"
    assert world.dump() == before


# ------------------------------------------------------------------------------ http


def test_http_json_and_the_board_page(world):
    model = fold(world.events)
    status, content_type, body = get(f"{world.http}/api/acme/board")
    assert status == 200 and content_type.startswith("application/json")
    assert json.loads(body) == normal(queries.board(model, "acme", TODAY))
    _, _, body = get(f"{world.http}/api/initech/board")
    assert all(not column["cards"] for column in json.loads(body)["key_results"])
    status, _, body = get(f"{world.http}/api/acme/board?team=growth")  # owner=: 400, test_bad_input.py
    assert json.loads(body) == normal(queries.board(model, "acme", TODAY, team_id="growth"))
    cycle = next(e.data["cycle_id"] for e in world.events if e.event_type == "okr.v1.CyclePlanned")
    status, _, body = get(f"{world.http}/api/acme/scorecard/{cycle}")
    assert json.loads(body) == normal(queries.scorecard(model, "acme", cycle, TODAY))
    kr_id = first_kr(world.events)
    status, _, body = get(f"{world.http}/api/acme/kr/{kr_id}/history")
    assert json.loads(body) == normal(queries.kr_history(model, "acme", kr_id))
    for missing in ("/api/acme/scorecard/no-such-cycle", f"/api/initech/kr/{kr_id}/history"):
        with pytest.raises(urllib.error.HTTPError) as e:
            get(world.http + missing)
        assert e.value.code == 404

    status, content_type, page = get(f"{world.http}/board/acme")
    assert status == 200 and content_type.startswith("text/html")
    assert '<meta http-equiv="refresh" content="30">' in page
    assert 'name="viewport"' in page and "<script" not in page
    board = queries.board(model, "acme", TODAY)
    for column in board["key_results"]:
        assert f'class="column" data-kind="kr" data-status="{column["status"]}"' in page
        for card in column["cards"]:
            assert f'data-kr-id="{card["id"]}"' in page
    assert page.count('class="card"') == sum(len(c["cards"]) for c in board["key_results"] + board["initiatives"])


def test_the_board_page_escapes_everything():
    card = {"id": 'kr-"1"', "kind": "kr", "title": "<script>alert(1)</script>", "owner": "a&b", "team": "<t>",
            "status": "ON_TRACK", "progress": 0.5, "expected": 0.4, "confidence": 7, "confidence_trend": "up",
            "days_since_check_in": 3, "due_date": "2026-03-31"}
    page = html.render_board({"tenant": "<acme>", "today": "2026-03-25", "filters": {"owner": "<x>"},
                              "key_results": [{"status": "ON_TRACK", "cards": [card]}], "initiatives": []})
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'data-kr-id="kr-&quot;1&quot;"' in page and "a&amp;b" in page and "&lt;acme&gt;" in page
    assert '<progress max="100" value="50">' in page and "3 d ago" in page


# ----------------------------------------------------------------------------- timer


def test_the_timer_refreshes_the_board_and_writes_nothing(world):
    head, before = world.store.head_position(), world.dump()
    cache = world.dependency("cache")
    seen = cache.refreshes
    wait_until(lambda: cache.refreshes >= seen + 3, timeout=10, message="three refreshes")
    assert world.store.head_position() == head
    assert world.dump() == before
    entry = cache.entries["acme"]
    assert entry["today"] == TODAY and entry["position"] == head
    assert entry["board"] == queries.board(fold(world.events), "acme", TODAY)
    assert set(cache.entries) == {"acme", "globex"}


def test_the_timer_computes_no_board_while_events_are_being_applied(world):
    cache = world.dependency("cache")
    wait_until(lambda: cache.entries.get("acme", {}).get("position") == world.offset(), timeout=10,
               message="a quiet refresh")
    entries, skipped, refreshes = cache.entries, cache.skipped, cache.refreshes
    cache.seen_position = -1  # as if the consumer had applied events since the last tick
    wait_until(lambda: cache.skipped > skipped, timeout=10, message="a skipped tick")
    assert cache.entries is entries  # nothing recomputed on that tick
    wait_until(lambda: cache.refreshes > refreshes, timeout=10, message="the next quiet tick")
    assert cache.entries is entries  # quiet, same position and day: nothing to recompute either


# ------------------------------------------------- rebuild on the live service, then on


def test_a_rebuild_that_the_consumer_overtook_catches_up_inside_the_swap(world):
    head = world.store.head_position()
    assert world.offset() == head
    # as if 25 events arrived (and were applied to the live tables) while it was folding
    position = bulk_rebuild.rebuild(world.reporting_engine, world.store, chunk=300, consumer=world.queue,
                               to_position=head - 25)
    assert position == head == world.offset()
    assert storage.model_dumps(world.model()) == storage.model_dumps(fold(world.events))


def test_the_cli_command_rebuilds_with_a_progress_bar(world):
    from click.testing import CliRunner

    from okr_cli.projections import projections_group, rebuild_command

    other_url = world.databases.new("cli")
    result = CliRunner().invoke(projections_group, ["rebuild", "--database-url", world.es_url,
                                                    "--reporting-database-url", other_url, "--chunk", "300",
                                                    "--consumer", world.queue])
    assert result.exit_code == 0, result.output
    assert "rebuilding read models" in result.output
    assert f"rebuilt up to position {len(world.events)}" in result.output
    assert rebuild_command.name == "rebuild"
    other = make_engine(other_url)
    try:
        with other.connect() as conn:
            assert storage.dump_tables(conn) == world.dump()[0]
    finally:
        other.dispose()


def test_a_rebuild_in_worker_processes_equals_the_incremental_tables(world):
    """Three workers: acme and globex fall in different partitions and one is empty; the
    workers run unpatched, so on PostgreSQL they load with COPY."""
    assert len({bulk_rebuild.partition_of(t, 3) for t in ("acme", "globex")}) == 2
    other_url = world.databases.new("workers")
    other = make_engine(other_url)
    try:
        done = []
        position = bulk_rebuild.rebuild(other, world.store, chunk=97, consumer=world.queue, workers=3,
                                   progress=lambda n, total: done.append(n))
        assert position == len(world.events)
        assert done == sorted(done) and done[-1] == position
        with other.connect() as conn:
            assert storage.dump_tables(conn) == world.dump()[0]
            assert storage.offset_of(conn, world.queue) == position
        names = inspect(other).get_table_names()
        assert not [n for n in names if n.endswith(bulk_rebuild.NEXT) or n.endswith(bulk_rebuild.OLD)]
    finally:
        other.dispose()


def test_a_failed_worker_fails_the_rebuild_and_leaves_the_live_tables(world, monkeypatch):
    import sys

    before = world.dump()
    monkeypatch.setattr(bulk_rebuild, "WORKER_COMMAND",
                        [sys.executable, "-c", "import sys; sys.exit('worker says: disk full')"])
    with pytest.raises(bulk_rebuild.RebuildFailed, match="worker 0 of 2 exited with 1: worker says: disk full"):
        bulk_rebuild.rebuild(world.reporting_engine, world.store, consumer=world.queue, workers=2)
    assert world.dump() == before
    names = inspect(world.reporting_engine).get_table_names()
    assert not [n for n in names if n.endswith(bulk_rebuild.NEXT) or n.endswith(bulk_rebuild.OLD)]


def test_the_rebuild_worker_explains_what_it_needs():
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("OKR_REBUILD_")}
    run = [sys.executable, "-m", "okr_services.reporting.rebuild_worker"]
    missing = subprocess.run([*run, "0", "2", "10", "100"], env=env, capture_output=True, text=True)
    assert missing.returncode == 2
    assert "OKR_REBUILD_STORE_URL and OKR_REBUILD_TARGET_URL not set" in missing.stderr
    wrong = subprocess.run([*run, "2", "2", "10", "100"], env=env, capture_output=True, text=True)
    assert wrong.returncode == 2 and "0 <= PARTITION < PARTITIONS" in wrong.stderr


def test_the_bulk_fold_over_raw_rows_is_the_fold(world):
    from okr_shared.readmodels.projections import fold_rows, new_model, rows_as_of

    rows = [row for page in world.store.scan(batch_size=50) for row in page]
    assert [r[0] for r in rows] == list(range(1, len(world.events) + 1))
    model = new_model()
    assert fold_rows(model, rows) == len(world.events)
    assert storage.model_dumps(model) == storage.model_dumps(fold(world.events))
    # as-of over raw rows, with and without the history table
    middle = world.events[len(world.events) // 2]
    for cut in ({"position": middle.position}, {"recorded_before_us": middle.recorded_at_us}):
        expected = fold_as_of(world.events, **cut)
        full, lean = new_model(), new_model(history=False)
        fold_rows(full, rows_as_of(world.store.scan(batch_size=64), **cut))
        fold_rows(lean, rows_as_of(world.store.scan(batch_size=64), **cut))
        assert storage.model_dumps(full) == storage.model_dumps(expected)
        assert "history" not in lean
        assert storage.model_dumps(lean) == storage.model_dumps({k: v for k, v in expected.items() if k != "history"})


def test_the_service_builds_models_and_folds_replays_in_the_thread_pool(world, monkeypatch):
    """Through the running service: a query's model is built by ``build_model`` and an
    as-of replay folded by ``fold_page``, both through their OffTheHub wrappers (the
    thread pool; tests/unit/reporting/test_queries_off_the_hub.py shows the hub runs
    meanwhile) — and the answers are those of the plain fold."""
    from okr_services.reporting import service as reporting_service

    calls = []

    class Spy:
        def __init__(self, off_the_hub):
            self.off_the_hub = off_the_hub

        def __getattr__(self, name):
            function = getattr(self.off_the_hub, name)
            assert function.__wrapped__ is not None  # an OffTheHub wrapper

            def spy(*args, **kwargs):
                calls.append(name)
                return function(*args, **kwargs)
            return spy

    monkeypatch.setattr(reporting_service, "_storage", Spy(reporting_service._storage))
    monkeypatch.setattr(reporting_service, "_projections", Spy(reporting_service._projections))
    acme = world.rpc(tenant_id="acme")
    week6 = fold_as_of(world.events, recorded_before_us=week_end_us(6))
    assert acme.as_of("board", time={"us": week_end_us(6)}) == normal(queries.board(week6, "acme", week_end(6)))
    assert "fold_page" in calls and "build_model" not in calls
    calls.clear()
    kr_id = first_kr(world.events)
    assert acme.key_result_status(kr_id) == normal(queries.key_result_status(
        fold(world.events), "acme", kr_id, TODAY))
    assert calls == ["build_model"]


def test_the_page_by_page_as_of_fold_is_the_as_of_fold(world):
    """The service folds an as-of replay page by page (each page in the thread pool):
    the same model and the same last recorded time, wherever the pages and the cut fall
    (a cut on a page's first or last row, inside one, past the end)."""
    from okr_shared.readmodels.projections import fold_page, new_model

    events = world.events
    cuts = [{"position": events[i].position} for i in (0, 49, 50, 63, 64, len(events) // 2, len(events) - 1)]
    cuts += [{"recorded_before_us": events[i].recorded_at_us} for i in (1, len(events) // 3, len(events) - 1)]
    cuts += [{"position": events[-1].position + 10}, {}]
    for cut in cuts:
        position, before = cut.get("position"), cut.get("recorded_before_us")
        expected = fold_as_of(events, **cut)
        kept = [e for e in events if (position is None or e.position <= position)
                and (before is None or e.recorded_at_us < before)]
        for batch_size in (1, 50, 64, 5000):
            model, last_us, pages_read = new_model(), None, 0
            for page in world.store.scan(batch_size=batch_size):
                pages_read += 1
                page_us, ended = fold_page(model, page, position, before)
                last_us = page_us if page_us is not None else last_us
                if ended:
                    break
            assert storage.model_dumps(model) == storage.model_dumps(expected), (cut, batch_size)
            assert last_us == (kept[-1].recorded_at_us if kept else None), (cut, batch_size)
            # reading stops at the page holding the first row past the cut
            assert pages_read == min(len(kept) // batch_size + 1, -(-len(events) // batch_size)), (cut, batch_size)


def test_copy_loads_any_text_exactly(world):
    """The COPY path (unpatched processes) escapes backslashes, tabs, newlines and
    carriage returns in keys and documents."""
    if world.backend != "postgres":
        pytest.skip("COPY is PostgreSQL's")
    import psycopg2.extensions

    tricky = [("acme", "acme/k\\1\t\n\r", storage.dumps({"tenant": "acme", "t": "a\\b\tc\nd\re \"q\" é ✓ \\N"})),
              ("acme", "acme/\\N", storage.dumps({"tenant": "acme", "t": "\\N"}))]
    engine = world.reporting_engine
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE copy_probe (tenant varchar(64), key varchar(400), doc text)")
    raw = engine.raw_connection()
    callback = psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(None)
    try:
        bulk_rebuild._copy_rows(raw.driver_connection, "copy_probe", tricky)
    finally:
        psycopg2.extensions.set_wait_callback(callback)
        raw.close()
    try:
        with engine.connect() as conn:
            assert [tuple(r) for r in conn.exec_driver_sql("SELECT tenant, key, doc FROM copy_probe ORDER BY key")] \
                == sorted(tricky, key=lambda r: r[1])
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE copy_probe")


def test_rebuild_swaps_in_and_the_consumer_continues_after_it(world):
    position = bulk_rebuild.rebuild(world.reporting_engine, world.store, chunk=500, consumer=world.queue)
    assert position == world.store.head_position() == world.offset()
    assert storage.model_dumps(world.model()) == storage.model_dumps(fold(world.events))
    # a new check-in: relay → bus → consumer, applied on the rebuilt tables
    template = next(e for e in reversed(world.events)
                    if e.tenant_id == "acme" and e.event_type == "okr.v1.CheckInRecorded")
    data = dict(template.data, check_in_id="ci-after-rebuild", value=template.data["value"] + 1)
    writer = EventStore(world.store.engine)
    writer.append(template.stream_id, ANY, [NewEvent(template.event_type, data, tenant_id="acme",
                                                     metadata={"actor": "ana"})])
    world.caught_up()
    everything = list(world.store.read_all())
    assert everything[-1].data["check_in_id"] == "ci-after-rebuild"
    assert storage.model_dumps(world.model()) == storage.model_dumps(fold(everything))
    acme = world.rpc(tenant_id="acme")
    history = acme.kr_history(template.data["key_result_id"])
    assert any(entry.get("check_in_id") == "ci-after-rebuild" or "ci-after-rebuild" in json.dumps(entry)
               for entry in history["entries"])


def test_a_rebuild_while_events_flow_swaps_in_without_losing_one(world):
    template = next(e for e in reversed(world.events)
                    if e.tenant_id == "acme" and e.event_type == "okr.v1.CheckInRecorded")
    writer = EventStore(world.store.engine)
    first = world.store.head_position() + 1

    def produce():
        for i in range(60):
            data = dict(template.data, check_in_id=f"ci-flow-{i}", value=float(i))
            writer.append(template.stream_id, ANY, [NewEvent(template.event_type, data, tenant_id="acme",
                                                             metadata={"actor": "ana"})])
            time.sleep(0.005)

    heads = []

    def progress(done, total):  # yields to the producer, the relay and the consumer between chunks
        heads.append(world.store.head_position())
        time.sleep(0.02)

    producing = threading.Thread(target=produce)
    producing.start()
    try:
        rebuilt = bulk_rebuild.rebuild(world.reporting_engine, world.store, chunk=100, consumer=world.queue,
                                  progress=progress)
    finally:
        producing.join()
    assert heads[-1] > heads[0] >= first - 1  # events were stored while it folded
    world.caught_up()
    everything = list(world.store.read_all())
    assert everything[-1].position == first + 59 and rebuilt >= heads[0]
    assert storage.model_dumps(world.model()) == storage.model_dumps(fold(everything))


def test_a_restarted_service_continues_from_its_tables_and_offset(world):
    template = next(e for e in reversed(world.events)
                    if e.tenant_id == "acme" and e.event_type == "okr.v1.CheckInRecorded")
    writer = EventStore(world.store.engine)
    world.stop_service()
    for i in range(5):  # stored and published while the service is down: they wait in its queue
        data = dict(template.data, check_in_id=f"ci-while-down-{i}", value=float(i))
        writer.append(template.stream_id, ANY, [NewEvent(template.event_type, data, tenant_id="acme",
                                                         metadata={"actor": "ana"})])
    world.start_service()
    world.caught_up()
    assert storage.model_dumps(world.model()) == storage.model_dumps(fold(list(world.store.read_all())))
    status, _, _ = get(f"{world.http}/board/acme")
    assert status == 200
