"""The reporting service runs its queries (pure, CPU-bound over a loaded model) in
eventlet's thread pool: while one computes, the process's other green threads — the
event consumer — keep running (on the hub they all stood still until it returned)."""

import time

import eventlet

from okr_services.notification import rules
from okr_services.notification import service as notification_service
from okr_shared.readmodels import projections
from okr_shared.readmodels import storage as shared_storage
from okr_services.reporting import queries, service, storage


def busy(seconds: float, answer):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:  # pure Python CPU work, like a big board
        pass
    return answer


def test_a_long_query_leaves_the_other_green_threads_running(monkeypatch):
    monkeypatch.setattr(queries, "board", lambda model, tenant, today, **kw: busy(0.4, {"tenant": tenant, **kw}))
    ticks = []

    def consumer():
        while len(ticks) < 1000:
            ticks.append(time.perf_counter())
            eventlet.sleep(0.002)

    thread = eventlet.spawn(consumer)
    eventlet.sleep(0.01)
    started = time.perf_counter()
    assert service._queries.board({}, "acme", None, team_id="growth") == {"tenant": "acme", "team_id": "growth"}
    finished = time.perf_counter()
    thread.kill()
    during = [t for t in ticks if started < t < finished]
    assert finished - started >= 0.4
    assert len(during) >= 20, f"the other green thread ran {len(during)} times in {finished - started:.2f} s"


def test_a_query_that_raises_raises_in_the_caller(monkeypatch):
    def refused(*args, **kwargs):
        raise ValueError("cycle_id: no such cycle")

    monkeypatch.setattr(queries, "scorecard", refused)
    try:
        service._queries.scorecard({}, "acme", "q9")
    except ValueError as e:
        assert str(e) == "cycle_id: no such cycle"
    else:
        raise AssertionError("the error was lost")


def test_the_notification_service_computes_its_timed_rules_off_the_hub(monkeypatch):
    monkeypatch.setattr(rules, "timed", lambda *args: busy(0.3, [("rule", "subject", "period", [])]))
    answers = []
    assert _runs_off_the_hub(lambda: answers.append(notification_service._rules.timed({}, "acme", None, {}, {})),
                             0.3) >= 15
    assert answers == [[("rule", "subject", "period", [])]]


def _runs_off_the_hub(call, seconds: float) -> int:
    """How often another green thread ran while ``call()`` (taking ``seconds``) ran."""
    ticks = []

    def other():
        while True:
            ticks.append(time.perf_counter())
            eventlet.sleep(0.002)

    thread = eventlet.spawn(other)
    eventlet.sleep(0.01)
    started = time.perf_counter()
    call()
    finished = time.perf_counter()
    thread.kill()
    assert finished - started >= seconds
    return len([t for t in ticks if started < t < finished])


def test_loading_a_tenants_model_and_replaying_its_history_run_off_the_hub(monkeypatch):
    """The reporting service parses a loaded model (``build_model``) and folds an as-of
    replay's pages (``fold_page``) in the thread pool — a large tenant's model or
    history no longer stops the event consumer; the notification service builds the
    model of its timed rules the same way."""
    monkeypatch.setattr(storage, "build_model", lambda raw: busy(0.3, {"built": raw}))
    monkeypatch.setattr(projections, "fold_page", lambda model, page, *limits: busy(0.3, (7, True)))
    answers = []
    assert _runs_off_the_hub(lambda: answers.append(service._storage.build_model({"x": []})), 0.3) >= 15
    assert _runs_off_the_hub(lambda: answers.append(service._projections.fold_page({}, [], None, None)), 0.3) >= 15
    assert answers == [{"built": {"x": []}}, (7, True)]
    assert notification_service._storage.build_model.__wrapped__ is shared_storage.build_model
