"""The service layer: a command is loaded, decided and appended with its expected
version; conflicts are decided again (bounded); who and why travel with every event;
a refused command writes nothing; a command id makes a retried call idempotent."""

import uuid
from dataclasses import replace

import pytest

from okr_shared.domain import commands as c
from okr_shared.domain.errors import ConcurrencyConflict, NotFound, PreconditionFailed, ValidationError
from okr_shared.eventstore import WrongExpectedVersion
from okr_shared.service_layer import CallContext, RetryPolicy


def stream(store, stream_id):
    return list(store.read_stream(stream_id, tenant_id="acme"))


def check_in(executor, call, key_result_id="members", **fields):
    return executor.run(c.RecordCheckIn, {"key_result_id": key_result_id, "value": 150, "confidence": 7,
                                          **fields}, call)


# ---------------------------------------------------------------- who and why


def test_a_command_appends_its_events_with_actor_correlation_and_causation(executor, store, call, world):
    reply = check_in(executor, call, check_in_id="ci-1", comment="first week")
    [event] = stream(store, "kr-members")[-1:]
    assert event.event_type == "okr.v1.CheckInRecorded"
    assert event.data["author"] == "ana" and event.data["comment"] == "first week"
    assert event.metadata == {"actor": "ana", "correlation_id": "corr-1", "causation_id": "progress.record_check_in.1"}
    assert event.tenant_id == "acme"
    assert reply == {"stream_id": "kr-members", "aggregate_id": "members", "version": event.stream_version,
                     "positions": [event.position], "event_types": ["okr.v1.CheckInRecorded"],
                     "already_stored": False, "check_in_id": "ci-1"}


def test_the_reason_a_rule_demands_is_stored_in_the_event_metadata(executor, store, call, world):
    executor.run(c.AdjustKeyResult, dict(key_result_id="members", target_value=400, reason="budget halved"), call)
    event = stream(store, "kr-members")[-1]
    assert event.data["reason"] == "budget halved"
    assert event.metadata["reason"] == "budget halved"


def test_empty_metadata_is_left_out_and_a_missing_correlation_id_is_made_up(executor, store, world):
    check_in(executor, CallContext(actor="ana", tenant_id="acme"))
    metadata = stream(store, "kr-members")[-1].metadata
    assert set(metadata) == {"actor", "correlation_id"}
    uuid.UUID(metadata["correlation_id"])


def test_the_command_id_is_the_causation_unless_the_caller_names_one(executor, store, call, world):
    check_in(executor, call, command_id="cmd-1")
    assert stream(store, "kr-members")[-1].metadata["causation_id"] == "cmd-1"
    check_in(executor, replace(call, causation_id="event-9"), command_id="cmd-2")
    assert stream(store, "kr-members")[-1].metadata["causation_id"] == "event-9"


@pytest.mark.parametrize("actor", [None, "", "  "])
def test_a_command_without_an_actor_is_refused_naming_the_actor_and_writes_nothing(executor, store, world, actor):
    head = store.head_position()
    with pytest.raises(ValidationError) as refused:
        check_in(executor, CallContext(actor=actor, tenant_id="acme"))
    assert refused.value.field == "actor"
    assert "call context" in str(refused.value)
    assert store.head_position() == head


@pytest.mark.parametrize("tenant_id, problem", [(None, "missing"), ("no spaces allowed", "letters")])
def test_a_command_without_a_valid_tenant_is_refused_naming_the_tenant(executor, store, world, tenant_id, problem):
    head = store.head_position()
    with pytest.raises(ValidationError, match=problem) as refused:
        check_in(executor, CallContext(actor="ana", tenant_id=tenant_id))
    assert refused.value.field == "tenant_id"
    assert store.head_position() == head


# ------------------------------------------------------------------ bad input


def test_a_command_the_rules_refuse_writes_nothing(executor, store, call, world):
    head = store.head_position()
    with pytest.raises(ValidationError) as refused:
        check_in(executor, call, confidence=11)
    assert refused.value.field == "confidence"
    with pytest.raises(PreconditionFailed) as frozen:
        executor.run(c.RestateObjective, dict(objective_id="grow", title="Grow faster"), call)
    assert frozen.value.rule == "objective_frozen"
    assert store.head_position() == head


def test_an_unknown_field_is_named(executor, call, world):
    with pytest.raises(ValidationError, match="is not a field of RecordCheckIn") as refused:
        check_in(executor, call, confidance=7)
    assert refused.value.field == "confidance"


def test_a_missing_field_is_named(executor, call, world):
    with pytest.raises(ValidationError, match="required") as refused:
        executor.run(c.RecordCheckIn, {"key_result_id": "members", "value": 150}, call)
    assert refused.value.field == "confidence"


def test_a_command_on_a_missing_aggregate_is_not_found(executor, store, call, world):
    head = store.head_position()
    with pytest.raises(NotFound, match="key result 'nope' not found"):
        check_in(executor, call, key_result_id="nope")
    assert store.head_position() == head


def test_a_command_with_nothing_to_do_appends_nothing(executor, store, call, world):
    head = store.head_position()
    reply = executor.run(c.AssignKeyResultOwner, dict(key_result_id="members", owner="ana", reason="same"), call)
    assert reply["positions"] == [] and reply["event_types"] == [] and reply["version"] == 1
    assert store.head_position() == head


# ------------------------------------------------------------------------ ids


def test_a_create_command_without_an_id_gets_a_fresh_one(executor, store, call, world):
    first, second = check_in(executor, call), check_in(executor, call, check_in_id="")
    assert first["check_in_id"] != second["check_in_id"]
    assert [e.data["check_in_id"] for e in stream(store, "kr-members")[-2:]] == [first["check_in_id"],
                                                                                 second["check_in_id"]]


def test_a_retried_command_id_returns_the_first_outcome_and_writes_nothing(executor, store, call, world):
    first = check_in(executor, call, command_id="retry-me")
    head = store.head_position()
    again = check_in(executor, call, command_id="retry-me")
    assert again == {**first, "already_stored": True}
    assert store.head_position() == head
    assert stream(store, "kr-members")[-1].event_id == str(
        uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_URL, "urn:okr:v1:command"), "acme\x1fretry-me\x1f0"))


def test_a_command_id_reused_for_a_command_on_another_stream_is_refused(executor, store, call, world):
    check_in(executor, call, command_id="once")
    head = store.head_position()
    with pytest.raises(PreconditionFailed, match="already used for a different request") as refused:
        executor.run(c.ArchiveObjective, dict(objective_id="grow", reason="done", command_id="once"), call)
    assert refused.value.rule == "command_id_reused"
    assert store.head_position() == head


def test_command_ids_of_different_tenants_do_not_collide(executor, call, world):
    other = CallContext(actor="bo", tenant_id="globex")
    check_in(executor, call, command_id="same")
    reply = executor.run(c.PlanCycle, dict(cadence="QUARTERLY", name="Q3", start_date="2026-07-01",
                                           end_date="2026-09-30", command_id="same"), other)
    assert reply["already_stored"] is False


@pytest.mark.parametrize("command_id", [" ", "x" * 201, "has space", 42])
def test_a_malformed_command_id_is_named(executor, call, world, command_id):
    with pytest.raises(ValidationError) as refused:
        check_in(executor, call, command_id=command_id)
    assert refused.value.field == "command_id"


# ---------------------------------------------------------------- concurrency


def interleave(executor, stream_id, action):
    """Run ``action`` right after ``executor`` first loads ``stream_id`` (so its append
    meets a newer version)."""
    load = executor.repository.load
    done = []

    def load_then_act(sid, tenant_id):
        loaded = load(sid, tenant_id)
        if sid == stream_id and not done:
            done.append(action())
        return loaded

    executor.repository.load = load_then_act
    return done


def test_a_concurrent_append_makes_the_command_decide_again_and_both_are_stored(executor, other_executor, store,
                                                                                 call, world, sleeps):
    other = other_executor
    interleave(executor, "kr-members", lambda: check_in(other, replace(call, actor="bo"), check_in_id="bo-1"))
    check_in(executor, call, check_in_id="ana-1")
    check_ins = [(e.stream_version, e.data["check_in_id"], e.metadata["actor"])
                 for e in stream(store, "kr-members")[1:]]
    assert check_ins == [(2, "bo-1", "bo"), (3, "ana-1", "ana")]
    assert len(sleeps) == 1


def test_the_second_decision_sees_the_concurrent_change(executor, other_executor, store, call, world):
    interleave(executor, "kr-members", lambda: check_in(other_executor, call, check_in_id="same-id"))
    with pytest.raises(PreconditionFailed) as refused:
        check_in(executor, call, check_in_id="same-id")
    assert refused.value.rule == "check_in_exists"
    assert len(stream(store, "kr-members")) == 2


def test_a_stream_that_keeps_changing_gives_up_after_the_bounded_attempts(executor, store, call, world, sleeps):
    def always_conflicting(stream_id, expected, events):
        raise WrongExpectedVersion(stream_id, expected, 99)

    executor.store.append = always_conflicting
    head = store.head_position()
    with pytest.raises(ConcurrencyConflict) as gave_up:
        check_in(executor, call)
    assert gave_up.value.attempts == executor.retry.max_attempts == 10
    assert "kr-members" in str(gave_up.value)
    assert len(sleeps) == 9
    assert store.head_position() == head


def test_backoff_is_full_jitter_doubling_up_to_a_cap():
    slept = []
    policy = RetryPolicy(base=0.005, cap=0.1, sleep=slept.append, random=lambda: 1.0)
    for attempt in range(1, 8):
        policy.backoff(attempt)
    assert slept == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08, 0.1, 0.1])
    policy.random = lambda: 0.25
    slept.clear()
    policy.backoff(2)
    assert slept == pytest.approx([0.0025])


# -------------------------------------------------------------------- tenants


def test_another_tenants_aggregate_does_not_exist(executor, store, world):
    other = CallContext(actor="bo", tenant_id="globex")
    with pytest.raises(NotFound):
        executor.read("kr", "members", other)
    head = store.head_position()
    with pytest.raises(NotFound):
        check_in(executor, other)
    assert store.head_position() == head


def test_an_id_another_tenant_uses_is_free_in_this_one(executor, store, call, world):
    """Ids are per tenant (ADR 0023); this test encoded the old refusal (id_taken)."""
    other = CallContext(actor="bo", tenant_id="globex")
    reply = executor.run(c.PlanCycle, dict(cycle_id="2026-q3", cadence="QUARTERLY", name="Q3", start_date="2026-07-01",
                                           end_date="2026-09-30"), other)
    assert (reply["cycle_id"], reply["version"], reply["already_stored"]) == ("2026-q3", 1, False)
    executor.run(c.ActivateCycle, dict(cycle_id="2026-q3"), other)
    executor.run(c.CreateObjective, dict(objective_id="grow", cycle_id="2026-q3", level="COMPANY",
                                         title="Globex grows", owner="bo"), other)
    assert executor.read("objective", "grow", other)["title"] == "Globex grows"
    assert executor.read("objective", "grow", call)["title"] == "Grow the community"
    assert executor.read("cycle", "2026-q3", call)["name"] == "2026 Q3"
    with pytest.raises(PreconditionFailed) as refused:  # taken in its own tenant: as before
        executor.run(c.CreateObjective, dict(objective_id="grow", cycle_id="2026-q3", level="COMPANY",
                                             title="Again", owner="bo"), other)
    assert refused.value.rule == "objective_exists"
    assert [e.tenant_id for e in store.read_stream("objective-grow", tenant_id="globex")] == ["globex"]


# -------------------------------------------------------------------- queries


def test_read_returns_the_current_state_with_its_version(executor, call, world):
    check_in(executor, call, check_in_id="ci-1", value=180)
    state = executor.read("kr", "members", call)
    assert state["version"] == 2 and state["target_value"] == 500
    assert [(ci["check_in_id"], ci["value"]) for ci in state["check_ins"]] == [("ci-1", 180.0)]


def test_read_of_a_bad_id_names_the_field(executor, call):
    with pytest.raises(ValidationError) as refused:
        executor.read("initiative", "not an id", call)
    assert refused.value.field == "initiative_id"
