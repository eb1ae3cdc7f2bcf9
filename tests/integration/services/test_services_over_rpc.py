"""The goal and progress services through real RPC (RabbitMQ) on a real store (SQLite
and PostgreSQL): commands become events with who and why; every typed refusal reaches
the caller naming the field or rule and writes nothing."""

import uuid

import pytest
from nameko.exceptions import RemoteError

from okr_shared.eventstore import WrongExpectedVersion
from okr_shared.service_layer import RetryPolicy
from okr_services.dependencies import Aggregates
from okr_services.progress.service import ProgressService


def test_an_okr_is_planned_and_checked_in_through_rpc(services, rpc, okr):
    progress = rpc(actor="ben", tenant_id="acme", correlation_id="req-42")[services.progress]
    first = progress.record_check_in(key_result_id=okr["key_result_id"], value=150, confidence=7, comment="week 1")
    fix = progress.correct_check_in(key_result_id=okr["key_result_id"], corrects_check_in_id=first["check_in_id"],
                                    value=140, confidence=6, reason="double-counted a signup")
    assert (first["version"], fix["version"]) == (2, 3)
    assert fix["event_types"] == ["okr.v1.CheckInCorrected"]
    state = okr["goal"].get_key_result(key_result_id=okr["key_result_id"])
    assert [(ci["check_in_id"], ci["value"], ci["author"]) for ci in state["check_ins"]] == [
        (first["check_in_id"], 150.0, "ben"), (fix["check_in_id"], 140.0, "ben")]
    assert progress.get_key_result(key_result_id=okr["key_result_id"]) == state

    stored = list(services.database.store.read_stream(f"kr-{okr['key_result_id']}", tenant_id="acme"))
    assert [e.position for e in stored[1:]] == first["positions"] + fix["positions"]
    assert stored[2].metadata["actor"] == "ben"
    assert stored[2].metadata["correlation_id"] == "req-42"
    assert stored[2].metadata["reason"] == "double-counted a signup"
    assert stored[2].metadata["causation_id"].startswith(f"{services.progress}.correct_check_in.")


def test_initiatives_and_reads_through_the_goal_service(okr):
    goal = okr["goal"]
    created = goal.create_initiative(key_result_id=okr["key_result_id"], title="Meetup", assignee="ana",
                                     start_date="2026-01-01", due_date="2026-12-31")
    goal.start_initiative(initiative_id=created["initiative_id"])
    initiative = goal.get_initiative(initiative_id=created["initiative_id"])
    assert (initiative["state"], initiative["version"]) == ("doing", 2)
    assert goal.get_objective(objective_id=okr["objective_id"])["title"] == "Grow the community"
    assert goal.get_cycle(cycle_id=okr["cycle_id"])["state"] == "active"


def test_a_retried_call_with_the_same_command_id_is_stored_once(services, rpc, okr):
    progress = rpc(actor="ana", tenant_id="acme")[services.progress]
    command_id = str(uuid.uuid4())
    first = progress.record_check_in(key_result_id=okr["key_result_id"], value=150, confidence=7,
                                     command_id=command_id)
    again = progress.record_check_in(key_result_id=okr["key_result_id"], value=150, confidence=7,
                                     command_id=command_id)
    assert again == {**first, "already_stored": True}
    assert len(okr["goal"].get_key_result(key_result_id=okr["key_result_id"])["check_ins"]) == 1


REFUSALS = [
    # (service, method, context, fields, exc_type, message start)
    ("progress", "record_check_in", {}, {"value": 150, "confidence": 11}, "ValidationError", "confidence: "),
    ("progress", "record_check_in", {}, {"value": 150, "confidence": 7, "mood": "great"}, "ValidationError",
     "mood: is not a field of RecordCheckIn"),
    ("progress", "record_check_in", {}, {"value": 150}, "ValidationError", "confidence: is required"),
    ("progress", "record_check_in", {}, {"value": 150, "confidence": 7, "key_result_id": "nope"}, "NotFound",
     "key result 'nope' not found"),
    ("goal", "restate_objective", {}, {"title": "Grow faster"}, "PreconditionFailed", "objective_frozen: "),
    ("goal", "adjust_key_result", {}, {"target_value": 400}, "ValidationError", "reason: is required"),
    ("progress", "record_check_in", {"actor": None}, {"value": 150, "confidence": 7}, "ValidationError",
     "actor: missing from the call context"),
    ("goal", "get_objective", {"tenant_id": "globex"}, {}, "NotFound", "objective "),
]


@pytest.mark.parametrize("service, method, context, fields, exc_type, message", REFUSALS,
                         ids=[f"{r[1]}-{r[4]}-{r[5].split(':')[0]}" for r in REFUSALS])
def test_a_refusal_reaches_the_caller_typed_and_named_and_writes_nothing(
        services, rpc, okr, service, method, context, fields, exc_type, message):
    context = {k: v for k, v in {"actor": "ana", "tenant_id": "acme", **context}.items() if v is not None}
    client = rpc(**context)[getattr(services, service)]
    ids = {"key_result_id": okr["key_result_id"], "objective_id": okr["objective_id"]}
    arguments = {k: v for k, v in ids.items() if k in _ARGUMENTS[method]} | fields
    head = services.database.store.head_position()
    with pytest.raises(RemoteError) as refused:
        getattr(client, method)(**arguments)
    assert refused.value.exc_type == exc_type
    assert refused.value.value.startswith(message), refused.value.value
    assert services.database.store.head_position() == head


_ARGUMENTS = {
    "record_check_in": {"key_result_id"},
    "restate_objective": {"objective_id"},
    "adjust_key_result": {"key_result_id"},
    "get_objective": {"objective_id"},
}


class AlwaysConflicting(Aggregates):
    """The real provider, but every append meets a newer version (as if other writers
    always won), and the back-off does not wait."""

    def setup(self):
        super().setup()
        self.executor.retry = RetryPolicy(max_attempts=3, sleep=lambda _s: None)

        def append(stream_id, expected_version, events):
            raise WrongExpectedVersion(stream_id, expected_version, 10**6)

        self.executor.store.append = append


class ContestedProgressService(ProgressService):
    aggregates = AlwaysConflicting()


def test_a_concurrency_conflict_that_outlasts_the_retries_reaches_the_caller_as_aborted(services, rpc, okr):
    name = f"{services.progress}-contested"
    services.start_another(ContestedProgressService, name)
    head = services.database.store.head_position()
    with pytest.raises(RemoteError) as refused:
        rpc(actor="ana", tenant_id="acme")[name].record_check_in(
            key_result_id=okr["key_result_id"], value=150, confidence=7)
    assert refused.value.exc_type == "ConcurrencyConflict"
    assert refused.value.value == f"stream 'kr-{okr['key_result_id']}' changed concurrently 3 times; try again"
    assert services.database.store.head_position() == head
