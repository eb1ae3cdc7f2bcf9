"""The plan importer (okr_shared.service_layer.importer) on the real event store, SQLite
and PostgreSQL (the ``database`` fixture of tests/conftest.py): every row is the real
domain command, all errors come back with their lines, and nothing is stored unless the
whole plan is valid — also when the plan's parent changes between deciding and storing."""

from __future__ import annotations

from datetime import date

import pytest

from okr_shared.domain import commands as c
from okr_shared.domain.errors import ConcurrencyConflict, PreconditionFailed, ValidationError
from okr_shared.service_layer import CallContext, RetryPolicy, command_executor
from okr_shared.service_layer.importer import PlanImporter

CALL = CallContext(actor="ada", tenant_id="acme")


@pytest.fixture
def executor(database):
    executor = command_executor(database.engine, today=lambda: date(2026, 1, 20), cache_size=0,
                                retry=RetryPolicy(max_attempts=3, sleep=lambda _s: None))
    executor.execute(c.PlanCycle("q1", "QUARTERLY", "Q1", "2026-01-01", "2026-03-31"), CALL)
    executor.execute(c.CreateObjective("o-company", "q1", "COMPANY", "Win the market", "ceo"), CALL)
    yield executor
    executor.store.close()


def plan():
    return [
        {"line": 2, "type": "PERSON", "owner": "newbie"},
        {"line": 3, "type": "OBJECTIVE", "ref": "o1", "cycle_id": "q1", "level": "TEAM", "team_id": "growth",
         "owner": "ceo", "title": "Grow the funnel", "parent_ref": "o-company"},
        {"line": 4, "type": "KEY_RESULT", "ref": "k1", "parent_ref": "o1", "title": "Signups 100 → 400",
         "kind": "INCREASE_TO", "start_value": 100.0, "target_value": 400.0, "owner": "newbie",
         "due_date": "2026-03-31", "unit": "signups"},
        {"line": 5, "type": "INITIATIVE", "ref": "i1", "parent_ref": "k1", "title": "Launch referral",
         "owner": "ceo", "start_date": "2026-01-10", "due_date": "2026-02-10"},
    ]


def test_a_valid_plan_is_stored_in_one_transaction(executor):
    head = executor.store.head_position()
    result = PlanImporter(executor).run(plan(), CALL, command_id="imp-1")
    assert result["committed"] and not result["errors"]
    assert (result["objectives"], result["key_results"], result["initiatives"], result["people"]) == (1, 1, 1, 1)
    assert (result["first_position"], result["last_position"]) == (head + 1, head + 3)
    ids = {i["ref"]: i["id"] for i in result["items"]}
    kr = executor.read("kr", ids["k1"], CALL)
    assert kr["objective_id"] == ids["o1"] and kr["owner"] == "newbie" and kr["target_value"] == 400
    assert executor.read("objective", ids["o1"], CALL)["parent_objective_id"] == "o-company"
    assert executor.read("initiative", ids["i1"], CALL)["key_result_id"] == ids["k1"]
    assert executor.store.verify().ok


def test_a_resent_import_stores_nothing_more(executor):
    first = PlanImporter(executor).run(plan(), CALL, command_id="imp-1")
    head = executor.store.head_position()
    again = PlanImporter(executor).run(plan(), CALL, command_id="imp-1")
    assert again["already_stored"] and again["items"] == first["items"]
    assert executor.store.head_position() == head


def test_a_command_id_used_for_other_rows_is_refused(executor):
    PlanImporter(executor).run(plan(), CALL, command_id="imp-1")
    head = executor.store.head_position()
    other = plan()
    other[2]["ref"] = "k-other"
    other[3]["parent_ref"] = "k-other"
    with pytest.raises(PreconditionFailed, match="already used for a different request") as refused:
        PlanImporter(executor).run(other, CALL, command_id="imp-1")
    assert refused.value.rule == "command_id_reused"
    assert executor.store.head_position() == head


def test_a_command_id_used_for_the_same_items_with_other_fields_is_refused(executor):
    PlanImporter(executor).run(plan(), CALL, command_id="imp-1")
    head = executor.store.head_position()
    other = plan()
    other[3]["title"] = "Launch the referral programme"  # same refs, so the same ids and streams
    with pytest.raises(PreconditionFailed, match=r"\(ImportPlan\)") as refused:
        PlanImporter(executor).run(other, CALL, command_id="imp-1")
    assert refused.value.rule == "command_id_reused"
    with pytest.raises(PreconditionFailed, match="command_id_reused"):  # by another actor
        PlanImporter(executor).run(plan(), CallContext(actor="bob", tenant_id="acme"), command_id="imp-1")
    assert executor.store.head_position() == head


def test_an_import_stored_without_a_fingerprint_is_still_idempotent(executor, monkeypatch):
    from okr_shared.service_layer import importer

    with monkeypatch.context() as old_version:  # what the version before fingerprints wrote
        old_version.setattr(importer, "request_fingerprint", lambda *_args: {})
        first = PlanImporter(executor).run(plan(), CALL, command_id="imp-old")
    head = executor.store.head_position()
    again = PlanImporter(executor).run(plan(), CALL, command_id="imp-old")
    assert again["already_stored"] and again["items"] == first["items"]
    other = plan()
    other[2]["ref"] = "k-other"
    other[3]["parent_ref"] = "k-other"
    with pytest.raises(PreconditionFailed, match="command_id_reused"):  # other items: still told apart
        PlanImporter(executor).run(other, CALL, command_id="imp-old")
    assert executor.store.head_position() == head


def test_a_dry_run_stores_nothing(executor):
    head = executor.store.head_position()
    result = PlanImporter(executor).run(plan(), CALL, dry_run=True)
    assert result["dry_run"] and not result["committed"] and not result["errors"] and result["key_results"] == 1
    assert executor.store.head_position() == head


def test_every_error_is_reported_with_its_line_and_nothing_is_stored(executor):
    rows = plan()
    rows[1]["owner"] = "cee"  # unknown person (line 3), did you mean ceo
    rows[2]["due_date"] = "2026-13-01"  # bad date on line 4 (its parent o1 has errors first)
    rows.append({"line": 7, "type": "KEY_RESULT", "ref": "k2", "parent_ref": "o-company", "title": "NPS",
                 "kind": "DECREASE_TO", "start_value": 10.0, "target_value": 20.0, "owner": "ceo",
                 "due_date": "2026-03-01"})
    head = executor.store.head_position()
    result = PlanImporter(executor).run(rows, CALL)
    errors = {(e["line"], e["field"]) for e in result["errors"]}
    assert (3, "owner") in errors and (7, "target_value") in errors and (4, "parent_ref") in errors
    owner = next(e for e in result["errors"] if e["line"] == 3)
    assert "did you mean 'ceo'" in owner["message"]
    assert not result["committed"] and result["items"] == []
    assert executor.store.head_position() == head


def test_duplicates_in_the_file_and_in_the_tenant_are_refused(executor):
    rows = plan() + [{"line": 6, "type": "OBJECTIVE", "ref": "o1", "cycle_id": "q1", "level": "COMPANY",
                      "owner": "ceo", "title": "x"},
                     {"line": 7, "type": "OBJECTIVE", "ref": "o9", "cycle_id": "q1", "level": "TEAM",
                      "team_id": "growth", "owner": "ceo", "title": "grow the  FUNNEL", "parent_ref": "o-company"}]
    result = PlanImporter(executor).run(rows, CALL)
    messages = {e["line"]: e["message"] for e in result["errors"]}
    assert "already used on line 3" in messages[6] and "duplicates line 3" in messages[7]
    PlanImporter(executor).run(plan(), CALL)
    again = PlanImporter(executor).run(plan()[:2], CALL)
    assert "already has this objective" in again["errors"][0]["message"] and again["errors"][0]["line"] == 3


def test_a_concurrent_change_after_validation_is_decided_again_and_stores_nothing(executor):
    importer = PlanImporter(executor)
    head = executor.store.head_position()

    def archive_the_parent():  # between deciding and storing, someone archives o-company
        importer.before_store = None
        executor.execute(c.ArchiveObjective("o-company", "merged"), CALL)

    importer.before_store = archive_the_parent
    result = importer.run(plan(), CALL)
    assert not result["committed"] and result["errors"][0]["line"] == 3
    assert "archived" in result["errors"][0]["message"]
    assert executor.store.head_position() == head + 1  # only the archive


def test_a_parent_that_keeps_changing_aborts_without_storing(executor):
    importer = PlanImporter(executor)
    n = [0]

    def keep_changing():
        n[0] += 1  # a change to the parent objective each time the plan is about to be stored
        executor.store.append("objective-o-company", executor.store.stream_version("objective-o-company", tenant_id="acme"),
                              [_restated(n[0])])

    importer.before_store = keep_changing
    with pytest.raises(ConcurrencyConflict, match="objective-o-company"):
        importer.run(plan(), CALL)
    assert n[0] == 3  # decided three times (max_attempts), then gave up
    assert not any(e.event_type == "okr.v1.KeyResultDefined" for e in executor.store.read_all())


def _restated(n):
    from okr_shared.eventstore import NewEvent

    return NewEvent("okr.v1.ObjectiveRestated", {"objective_id": "o-company", "cycle_id": "q1",
                                                 "old_title": "Win the market", "new_title": "Win the market",
                                                 "new_description": f"take {n}"}, tenant_id="acme")


def test_request_limits(executor):
    with pytest.raises(ValidationError, match="no rows"):
        PlanImporter(executor).run([], CALL)
    with pytest.raises(ValidationError, match="limit of 3 per import"):
        PlanImporter(executor, max_rows=3).run(plan(), CALL)


def test_ids_another_tenant_uses_are_free_in_this_one(executor):
    """Ids are per tenant (ADR 0023); this test encoded the old line error (id_taken).
    Another tenant's plan with the same ids — and the same parent and cycle ids — is
    accepted as if no other tenant existed, in a dry run and for real."""
    other = CallContext(actor="eve", tenant_id="globex")
    executor.execute(c.PlanCycle("q1", "QUARTERLY", "Globex Q1", "2026-01-01", "2026-03-31"), other)
    executor.execute(c.CreateObjective("o-company", "q1", "COMPANY", "Globex wins", "ceo"), other)
    rows = plan()
    for row, item_id in zip(rows[1:], ("o1", "k1", "i1")):
        row["id"] = item_id
    mine = PlanImporter(executor).run(rows, CALL)
    assert mine["committed"] and not mine["errors"]
    dry = PlanImporter(executor).run(rows, other, dry_run=True)
    assert not dry["errors"] and [i["id"] for i in dry["items"]] == [i["id"] for i in mine["items"]]
    theirs = PlanImporter(executor).run(rows, other)
    assert theirs["committed"] and not theirs["errors"]
    assert executor.read("objective", "o1", other)["parent_objective_id"] == "o-company"
    assert executor.read("kr", "k1", CALL)["objective_id"] == executor.read("kr", "k1", other)["objective_id"] == "o1"
    assert executor.store.stream_version("objective-o-company", tenant_id="globex") == 1  # no child event
    for row in rows[1:]:
        row["title"] += " (again)"
    again = PlanImporter(executor).run(rows, other, dry_run=True)  # taken in its own tenant now
    assert [(e["line"], e["field"]) for e in again["errors"]][:1] == [(3, "objective_exists")]
    assert executor.store.verify().ok


def test_a_plan_of_people_only_stores_nothing(executor):
    head = executor.store.head_position()
    result = PlanImporter(executor).run(plan()[:1], CALL, command_id="people")
    assert not result["committed"] and not result["errors"] and result["people"] == 1
    assert executor.store.head_position() == head
