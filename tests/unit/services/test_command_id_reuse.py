"""A command id names one request (ADR 0024): the same request again is an idempotent
retry; the id reused for anything else — other fields, another command, stream or
actor, an import — is refused with ``command_id_reused`` and stores nothing. Events
stored before fingerprints existed count as the same request."""

from dataclasses import replace

import pytest

from okr_shared.domain import commands as c
from okr_shared.domain.errors import PreconditionFailed
from okr_shared.service_layer import executor as executor_module
from okr_shared.service_layer.importer import PlanImporter

from .test_service_layer import check_in, interleave, stream


def refused(action) -> PreconditionFailed:
    with pytest.raises(PreconditionFailed) as caught:
        action()
    assert caught.value.rule == "command_id_reused"
    return caught.value


def test_the_same_request_twice_is_one_event_and_the_same_answer(executor, store, call, world):
    first = check_in(executor, call, check_in_id="ci-1", command_id="same")
    head = store.head_position()
    assert check_in(executor, call, check_in_id="ci-1", command_id="same") == {**first, "already_stored": True}
    assert store.head_position() == head
    metadata = stream(store, "kr-members")[-1].metadata
    assert metadata["command"] == "RecordCheckIn" and metadata["request"].startswith("sha256:")


def test_numbers_compare_by_value_and_a_left_out_default_is_the_default(executor, store, call, world):
    first = check_in(executor, call, check_in_id="ci-1", value=150, command_id="n")
    again = check_in(executor, call, check_in_id="ci-1", value=150.0, comment="", command_id="n")
    assert again == {**first, "already_stored": True}


def test_a_generated_id_is_part_of_the_same_request(executor, store, call, world):
    first = check_in(executor, call, command_id="gen")  # no check_in_id: derived from the command id
    assert check_in(executor, call, command_id="gen") == {**first, "already_stored": True}


def test_other_fields_with_the_same_id_are_refused_and_store_nothing(executor, store, call, world):
    check_in(executor, call, check_in_id="ci-1", value=150, command_id="once")
    head, before = store.head_position(), executor.read("kr", "members", call)
    error = refused(lambda: check_in(executor, call, check_in_id="ci-1", value=160, command_id="once"))
    assert "'once' was already used for a different request (RecordCheckIn)" in str(error)
    assert store.head_position() == head and executor.read("kr", "members", call) == before


def test_another_command_on_the_same_stream_with_the_same_id_is_refused(executor, store, call, world):
    check_in(executor, call, command_id="shared")
    head = store.head_position()
    refused(lambda: executor.run(c.AdjustKeyResult, dict(key_result_id="members", target_value=900,
                                                         reason="more", command_id="shared"), call))
    assert store.head_position() == head
    assert executor.read("kr", "members", call)["target_value"] == 500


def test_the_same_request_from_another_actor_is_refused(executor, store, call, world):
    check_in(executor, call, check_in_id="ci-1", command_id="mine")
    head = store.head_position()
    refused(lambda: check_in(executor, replace(call, actor="bo"), check_in_id="ci-1", command_id="mine"))
    assert store.head_position() == head


def test_correlation_and_causation_are_not_part_of_the_request(executor, store, call, world):
    first = check_in(executor, call, command_id="traced")
    again = check_in(executor, replace(call, correlation_id="other", causation_id="x", call_id="y"),
                     command_id="traced")
    assert again == {**first, "already_stored": True}


def test_an_import_and_a_command_do_not_share_an_id(executor, store, call, world):
    rows = [{"line": 2, "type": "OBJECTIVE", "ref": "o1", "cycle_id": "2026-q3", "level": "COMPANY",
             "owner": "ana", "title": "Imported"}]
    PlanImporter(executor).run(rows, call, command_id="plan-1")
    head = store.head_position()
    error = refused(lambda: check_in(executor, call, command_id="plan-1"))
    assert "(ImportPlan)" in str(error)
    check_in(executor, call, command_id="check-1")
    head = store.head_position()
    error = refused(lambda: PlanImporter(executor).run(rows, call, command_id="check-1"))
    assert "(RecordCheckIn)" in str(error)
    assert store.head_position() == head


def test_an_event_stored_without_a_fingerprint_counts_as_the_same_request(executor, store, call, world,
                                                                          monkeypatch):
    with monkeypatch.context() as old_version:  # what the version before fingerprints wrote
        old_version.setattr(executor_module, "request_fingerprint", lambda *_args: {})
        first = check_in(executor, call, check_in_id="ci-old", command_id="old")
    assert "request" not in stream(store, "kr-members")[-1].metadata
    head = store.head_position()
    assert check_in(executor, call, check_in_id="ci-old", command_id="old") == {**first, "already_stored": True}
    assert store.head_position() == head
    # another stream is still told apart without a fingerprint
    refused(lambda: executor.run(c.ArchiveObjective, dict(objective_id="grow", reason="done", command_id="old"),
                                 call))


def test_a_concurrent_call_on_the_same_stream_with_another_request_is_refused(executor, other_executor, store,
                                                                              call, world):
    interleave(executor, "kr-members", lambda: check_in(other_executor, call, value=170, command_id="race"))
    refused(lambda: check_in(executor, call, value=150, command_id="race"))
    assert [e.data["value"] for e in stream(store, "kr-members")[1:]] == [170]


def test_a_concurrent_call_on_the_same_stream_with_the_same_request_is_its_retry(executor, other_executor, store,
                                                                                call, world):
    interleave(executor, "kr-members", lambda: check_in(other_executor, call, check_in_id="c", command_id="race"))
    again = check_in(executor, call, check_in_id="c", command_id="race")
    assert again["already_stored"] is True and len(stream(store, "kr-members")) == 2


def test_a_concurrent_call_on_another_stream_with_the_same_id_is_refused(executor, other_executor, store,
                                                                         call, world):
    interleave(executor, "kr-members", lambda: other_executor.run(
        c.PlanCycle, dict(cycle_id="2026-q4", cadence="QUARTERLY", name="Q4", start_date="2026-10-01",
                          end_date="2026-12-31", command_id="race"), call))
    error = refused(lambda: check_in(executor, call, command_id="race"))
    assert "(PlanCycle)" in str(error)
    assert len(stream(store, "kr-members")) == 1 and len(stream(store, "cycle-2026-q4")) == 1
