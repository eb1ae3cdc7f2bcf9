"""The reporting service runs its queries (pure, CPU-bound over a loaded model) in
eventlet's thread pool: while one computes, the process's other green threads — the
event consumer — keep running (on the hub they all stood still until it returned).

Each test's stand-in query holds its worker thread until another green thread has run
(or 10 s have passed): a query run on the hub would wait the 10 s out, because nothing
else can run there, and report that it did. So the tests prove the point by the order
of events, not by counting timer ticks, and a loaded machine cannot fail them."""

import eventlet
from eventlet import patcher

from okr_services.notification import rules
from okr_services.notification import service as notification_service
from okr_shared.readmodels import projections
from okr_shared.readmodels import storage as shared_storage
from okr_services.reporting import queries, service, storage

_OsEvent = patcher.original("threading").Event  # a real OS-thread event: the query runs in a worker thread


class OffTheHub:
    """A stand-in for a CPU-bound call: ``hold(answer)`` blocks its (worker) thread until
    a green thread spawned by ``running(call)`` has run while the call was under way."""

    def __init__(self, patience: float = 10):
        self.patience = patience
        self.other_ran = _OsEvent()
        self.held = _OsEvent()
        self.waited = None

    def hold(self, answer):
        self.held.set()
        self.waited = self.other_ran.wait(self.patience)
        return answer

    def running(self, call):
        def other():
            while not self.held.is_set():  # a green thread of the process, as the event consumer is
                eventlet.sleep(0.001)
            self.other_ran.set()

        thread = eventlet.spawn(other)
        try:
            result = call()
        finally:
            thread.kill()
        assert self.waited is True, "the call ran on the hub: no other green thread ran while it ran"
        return result


def test_the_probe_reports_a_call_run_on_the_hub():
    probe = OffTheHub(patience=0.3)
    try:
        probe.running(lambda: probe.hold("answer"))  # called on the hub: no thread pool
    except AssertionError as e:
        assert "ran on the hub" in str(e)
    else:
        raise AssertionError("a call on the hub went unnoticed")


def test_a_long_query_leaves_the_other_green_threads_running(monkeypatch):
    probe = OffTheHub()
    monkeypatch.setattr(queries, "board", lambda model, tenant, today, **kw: probe.hold({"tenant": tenant, **kw}))
    answer = probe.running(lambda: service._queries.board({}, "acme", None, team_id="growth"))
    assert answer == {"tenant": "acme", "team_id": "growth"}


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
    probe = OffTheHub()
    monkeypatch.setattr(rules, "timed", lambda *args: probe.hold([("rule", "subject", "period", [])]))
    answer = probe.running(lambda: notification_service._rules.timed({}, "acme", None, {}, {}))
    assert answer == [("rule", "subject", "period", [])]


def test_loading_a_tenants_model_and_replaying_its_history_run_off_the_hub(monkeypatch):
    """The reporting service parses a loaded model (``build_model``) and folds an as-of
    replay's pages (``fold_page``) in the thread pool — a large tenant's model or
    history no longer stops the event consumer; the notification service builds the
    model of its timed rules the same way."""
    build, fold = OffTheHub(), OffTheHub()
    monkeypatch.setattr(storage, "build_model", lambda raw: build.hold({"built": raw}))
    monkeypatch.setattr(projections, "fold_page", lambda model, page, *limits: fold.hold((7, True)))
    assert build.running(lambda: service._storage.build_model({"x": []})) == {"built": {"x": []}}
    assert fold.running(lambda: service._projections.fold_page({}, [], None, None)) == (7, True)
    assert notification_service._storage.build_model.__wrapped__ is shared_storage.build_model
