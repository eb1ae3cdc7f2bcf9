"""The reporting fold: one pure function for incremental updates, rebuilds and as-of replays."""

import json
import random
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date
from types import SimpleNamespace

from tests.fixtures.company_history import company_history, drafts, record, week_end, week_end_us
from tests.fixtures.directory import directory_changes
from okr_shared.contracts import EVENT_TYPES, envelope_from_recorded
from okr_shared.readmodels.events import BusEvent
from okr_shared.readmodels.projections import fold_rows
from okr_services.reporting import TABLES, fold, fold_as_of, new_model, project
from okr_shared.readmodels.projections import POINTS
from okr_services.reporting import queries as q
from okr_shared.domain import fold as fold_aggregate

from .scenes import JAN1, check_in, kr, quarter


def dump(model) -> str:
    return json.dumps(model, sort_keys=True)


# ------------------------------------------------------------------ the consumer layer


class Consumer:
    """The consumer layer's contract in miniature (okr_shared.bus.consumer): a position at
    or below the offset is a duplicate; a jump in positions first fetches the missing
    range from the store and applies it in order. The rows ``project`` reports are written
    to the service's tables together with the offset; a restart reloads the model from
    those tables only."""

    def __init__(self, store):
        self.store = {e.position: e for e in store}
        self.offset = 0
        self.model = new_model()
        self.tables = new_model()  # the service's own tables: only what project reported
        self.duplicates = self.fetched = 0

    def receive(self, event) -> None:
        if event.position <= self.offset:
            self.duplicates += 1
            return
        for position in range(self.offset + 1, event.position):
            self.fetched += 1
            self._apply(self.store[position])
        self._apply(event)

    def restart(self) -> None:
        self.model = json.loads(json.dumps(self.tables))

    def _apply(self, event) -> None:
        for table, key in project(self.model, event):
            if table == POINTS:  # a part of its key result's row (stored apart by the service)
                continue
            doc = self.model[table].get(key)
            if doc is None:
                self.tables[table].pop(key, None)
            else:
                self.tables[table][key] = json.loads(json.dumps(doc))
        self.offset = event.position


def deliveries(events, rng: random.Random, duplicate_share=0.25, window=10.0):
    """What the bus hands over: every event at least once, a quarter of them twice, each
    arriving up to ``window`` positions early or late."""
    messages = list(events) + [e for e in events if rng.random() < duplicate_share]
    return sorted(messages, key=lambda e: e.position + rng.uniform(-window, window))


# ------------------------------------------------------------------------------- tests


def test_the_generated_history_folds_into_every_table(history):
    model = fold(history)
    kinds = Counter(e.event_type for e in history)
    assert set(model) == set(TABLES)
    assert len(model["cycles"]) == kinds["okr.v1.CyclePlanned"] == 4
    assert len(model["objectives"]) == kinds["okr.v1.ObjectiveCreated"]
    assert len(model["key_results"]) == kinds["okr.v1.KeyResultDefined"]
    assert len(model["initiatives"]) == kinds["okr.v1.InitiativeCreated"]
    assert len(model["history"]) == sum(1 for e in history if e.stream_id.startswith(("kr-", "initiative-")))
    assert {doc["kind"] for doc in model["key_results"].values()} == {
        "INCREASE_TO", "DECREASE_TO", "STAY_AT_OR_ABOVE", "STAY_AT_OR_BELOW", "MILESTONE", "PERCENTAGE", "CURRENCY"}
    assert all(key.startswith("acme/") for table in model.values() for key in table)


def test_the_effective_check_ins_are_those_of_the_domain_aggregate(history):
    model = fold(history)
    streams = defaultdict(list)
    for e in history:
        streams[e.stream_id].append((e.event_type, e.data))
    for key, doc in model["key_results"].items():
        aggregate = fold_aggregate(streams[f"kr-{doc['key_result_id']}"])
        expected = [(c.check_in_id, c.effective_date.isoformat(), c.value, c.confidence)
                    for c in aggregate.effective_check_ins()]
        assert [(p["latest_id"], p["effective_date"], p["value"], p["confidence"]) for p in doc["points"]] == expected


def test_every_figure_of_a_key_result_agrees_with_the_domain_scorecard(history):
    model = fold(history)
    streams = defaultdict(list)
    for e in history:
        streams[e.stream_id].append((e.event_type, e.data))
    cycles = {d["cycle_id"]: date.fromisoformat(d["start_date"]) for d in model["cycles"].values()}
    for week in (1, 4, 6, 9, 12):
        today = week_end(week)
        for kr_id, status in q.key_result_statuses(model, "acme", today).items():
            aggregate = fold_aggregate(streams[f"kr-{kr_id}"])
            expected = aggregate.scorecard(cycles[aggregate.cycle_id], today)
            assert {k: status[k] for k in expected if k != "expected_progress"} == {
                k: v for k, v in expected.items() if k != "expected_progress"}


def test_the_rows_project_reports_are_the_rows_it_wrote():
    s = quarter()
    kr(s, "kr-1")
    check_in(s, date(2026, 1, 8), "kr-1", 10)
    *before, last = s.events()
    model = fold(before)
    assert project(model, last) == {("key_results", "acme/kr-1"), ("history", f"acme/kr-kr-1/{last.position}"),
                                    (POINTS, "acme/kr-1/ci-kr-1-2026-01-08")}
    assert model["key_results"]["acme/kr-1"]["points"][-1]["check_in_id"] == "ci-kr-1-2026-01-08"


def test_event_types_the_fold_does_not_know_change_nothing():
    model = fold(quarter().events())
    before = dump(model)
    unknown = SimpleNamespace(position=99, tenant_id="acme", stream_id="x-1", event_type="okr.v1.SomethingNew",
                              data={"x": 1}, metadata={}, recorded_at_us=0)
    assert project(model, unknown) == set()
    assert dump(model) == before


def test_directory_events_are_skipped_by_every_path_of_the_fold():
    """People and teams are not the reporting fold's: their events (all 15 types, amid a
    quarter's) change no row, whether they come one by one from the bus, in a rebuild
    or as raw store rows."""
    s = quarter()
    kr(s, "kr-1")
    check_in(s, date(2026, 1, 8), "kr-1", 10)
    written = directory_changes(s, date(2026, 1, 8))
    check_in(s, date(2026, 1, 15), "kr-1", 20)
    events = s.events()
    directory = [e for e in events if e.stream_id.startswith(("person-", "team-"))]
    assert {e.event_type for e in directory} == {t for t in EVENT_TYPES if t.startswith(DIRECTORY_PREFIXES)}
    assert len(directory) == len(written)
    expected = dump(fold([e for e in events if e not in directory]))

    model = new_model()
    for event in events:
        touched = project(model, BusEvent(envelope_from_recorded(event)))
        assert touched == set() or event not in directory
    assert dump(model) == expected
    assert dump(fold(events)) == expected
    rows = [(e.position, e.tenant_id, e.stream_id, e.event_type, e.data_json, e.metadata_json, e.recorded_at_us)
            for e in events]
    raw = new_model()
    assert fold_rows(raw, rows) == events[-1].position
    assert dump(raw) == expected


DIRECTORY_PREFIXES = ("okr.v1.Person", "okr.v1.Role", "okr.v1.Team")


def test_an_event_about_a_row_never_seen_is_ignored():
    s = quarter()
    kr(s, "kr-1")
    check_in(s, JAN1, "kr-1", 10)
    events = s.events()
    model = fold([e for e in events if e.event_type != "okr.v1.KeyResultDefined"])
    assert model["key_results"] == {} and model["history"] == {}


def test_rebuild_equals_incremental_delivery_with_duplicates_gaps_and_restarts():
    store = record(drafts("acme") + drafts("globex", seed=7))  # two tenants, interleaved in time
    rng = random.Random(42)
    consumer = Consumer(store)
    for n, event in enumerate(deliveries(store, rng)):
        consumer.receive(event)
        if n % 97 == 0:
            consumer.restart()
    rebuilt = dump(fold(store))
    assert consumer.offset == len(store) and consumer.duplicates > 100 and consumer.fetched > 100
    assert dump(consumer.tables) == rebuilt
    assert dump(consumer.model) == rebuilt


def test_fold_as_of_a_position_is_the_fold_of_the_prefix(history):
    position = history[len(history) // 2].position
    assert dump(fold_as_of(history, position=position)) == dump(fold(history[:position]))


def test_fold_as_of_an_instant_is_the_fold_of_the_events_recorded_before_it(history):
    instant = week_end_us(6)
    assert dump(fold_as_of(history, recorded_before_us=instant)) == dump(
        fold([e for e in history if e.recorded_at_us < instant]))


def test_fold_as_of_never_touches_a_live_model(history):
    live = fold(history)
    before = dump(live)
    fold_as_of(history, position=100)
    assert dump(live) == before


def test_as_of_week_6_equals_a_store_that_only_ever_saw_six_weeks(history):
    as_of = fold_as_of(history, recorded_before_us=week_end_us(6))
    six_weeks = fold(company_history(until=week_end(6)))
    assert dump(as_of) == dump(six_weeks)


def test_documents_are_plain_json(history):
    model = fold(history)
    assert json.loads(dump(model)) == model


def test_the_core_imports_no_framework():
    code = ("import sys, okr_services.reporting, okr_services.reporting.queries, okr_shared.readmodels.projections, "
            "okr_shared.readmodels.status; "
            "print(sorted(m for m in ('nameko', 'sqlalchemy', 'kombu', 'eventlet') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
