"""Issue 18 point 12: the documents show the wire. Every JSON example of docs/api.md,
docs/events.md and docs/contracts.md is marked with the message it shows
(``<!-- example: okr.v1.<Message> -->``, ``(stored)`` for the event store's form) and is
exactly that message in protobuf's JSON mapping: it decodes with ``json_format.Parse``
(unknown fields refused) and encodes back to the same JSON — 64-bit integers as strings.
The export lines of docs/audit-format.md carry wire event types whose ``data_json``
decodes into the event's message. Every ``okr.…`` name in the documents is a name of the
protos; the event types a StreamEvents call delivers are the protos' event types; the
``what`` of GetHistory is, for every event type, the one docs/api.md's table documents;
and the examples have the fields the running server's answers have."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from google.protobuf import descriptor_pool, json_format, message_factory

from .contract_suite import auth, server_stream
from okr.v1 import (audit_pb2, audit_pb2_grpc, common_pb2, directory_pb2, directory_pb2_grpc,  # noqa: F401
                    events_pb2, goal_pb2, goal_pb2_grpc, progress_pb2, progress_pb2_grpc, reporting_pb2, stream_pb2)

DOCS = Path(__file__).resolve().parents[2] / "docs"
#: The documents whose JSON examples are protobuf messages.
MESSAGE_DOCS = ("api.md", "events.md", "contracts.md")
#: The documents that name event types (audit-format.md's JSON is the okr.export.v1 format).
NAMING_DOCS = MESSAGE_DOCS + ("audit-format.md", "reporting.md")

MARKER = re.compile(r"^<!-- example: (?P<name>okr\.v1\.\w+)(?P<stored> \(stored\))? -->$")
FENCE = re.compile(r"^```(?P<lang>jsonl?)\n(?P<body>.*?)^```$", re.M | re.S)
#: A qualified name of the protos as the documents write one (``okr.v1.CheckIn*`` is the
#: documents' example of what is *not* a topic pattern: not a name).
NAME = re.compile(r"\bokr\.(?:v\d+\.)?[A-Z]\w*\b(?!\*)")

POOL = descriptor_pool.Default()
EVENT_TYPES = frozenset(d.full_name for d in events_pb2.DESCRIPTOR.message_types_by_name.values()
                        if d.GetOptions().HasExtension(events_pb2.event))


def proto_names() -> set[str]:
    """Every message, enum and service of the okr.v1 files (the generated modules above)."""
    names = set()
    for module in (audit_pb2, common_pb2, directory_pb2, events_pb2, goal_pb2, progress_pb2, reporting_pb2,
                   stream_pb2):
        file = module.DESCRIPTOR
        for table in (file.message_types_by_name, file.enum_types_by_name, file.services_by_name):
            names.update(d.full_name for d in table.values())
    return names


def examples(doc: str) -> list[tuple[int, str | None, bool, str]]:
    """(line, message named by the marker or None, stored form?, JSON text) of every JSON
    fence of ``doc``."""
    text = (DOCS / doc).read_text(encoding="utf-8")
    found = []
    for fence in FENCE.finditer(text):
        before = text[:fence.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.match(before)
        found.append((text.count("\n", 0, fence.start()) + 1, marker["name"] if marker else None,
                      bool(marker and marker["stored"]), fence["body"]))
    return found


def event_types_named(value) -> list[str]:
    """The event types a JSON example names: eventType / event_type / eventTypes values
    and the @type of an Any."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("eventType", "event_type") and isinstance(item, str):
                found.append(item)
            elif key in ("eventTypes", "event_types") and isinstance(item, list):
                found.extend(item)
            elif key == "@type":
                found.append(item.removeprefix("type.googleapis.com/"))
            else:
                found.extend(event_types_named(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(event_types_named(item))
    return found


def test_every_json_example_is_its_message_in_the_json_mapping():
    checked = 0
    for doc in MESSAGE_DOCS:
        for line, name, stored, body in examples(doc):
            where = f"docs/{doc}:{line}"
            assert name, f"{where}: a JSON example without <!-- example: okr.v1.<Message> --> before it"
            message = message_factory.GetMessageClass(POOL.FindMessageTypeByName(name))()
            json_format.Parse(body, message, ignore_unknown_fields=False)  # raises on what is not the message
            encoded = json_format.MessageToDict(message, preserving_proto_field_name=stored,
                                                always_print_fields_with_no_presence=stored)
            assert json.loads(body) == encoded, f"{where}: not {name} as protobuf's JSON mapping writes it"
            for event_type in event_types_named(json.loads(body)):
                assert event_type in EVENT_TYPES, f"{where}: {event_type!r} is not an event type of the protos"
            checked += 1
    assert checked >= 5  # the examples of api.md and events.md


def test_an_example_with_an_integer_as_a_json_number_is_caught():
    """The check above would see a uint64 written as a number (the defect of issue 18)."""
    message = events_pb2.EventEnvelope()
    json_format.Parse('{"position": 742}', message)
    assert json_format.MessageToDict(message) != {"position": 742}


def test_the_export_lines_of_audit_format_carry_wire_event_types_and_their_payloads():
    lines = [json.loads(text) for _, _, _, body in examples("audit-format.md") for text in body.splitlines()
             if '"event_type"' in text]
    assert len(lines) >= 2
    for line in lines:
        assert line["event_type"] in EVENT_TYPES, line["event_type"]
        message = message_factory.GetMessageClass(POOL.FindMessageTypeByName(line["event_type"]))()
        json_format.Parse(line["data_json"], message, ignore_unknown_fields=False)


def test_every_okr_name_in_the_documents_is_a_name_of_the_protos():
    names = proto_names()
    for doc in NAMING_DOCS:
        text = (DOCS / doc).read_text(encoding="utf-8")
        unknown = sorted({m.group() for m in NAME.finditer(text)} - names)
        assert not unknown, f"docs/{doc} names what the protos do not have: {unknown}"


def what_table() -> dict[str, str]:
    """docs/api.md's GetHistory table: event type → what."""
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    return dict(re.findall(r"^\| `(okr\.v1\.\w+)` \| `(\w+)` \|$", text, re.M))


def test_the_what_table_covers_every_event_type_and_the_other_documents_use_its_words():
    table = what_table()
    assert set(table) == EVENT_TYPES
    reporting = (DOCS / "reporting.md").read_text(encoding="utf-8")
    listed = re.search(r"`history\.what`: (.*?)\. History rows", reporting, re.S)[1]
    assert set(re.findall(r"`(\w+)`", listed)) <= set(table.values())
    proto = (DOCS.parent / "protos" / "okr" / "v1" / "audit.proto").read_text(encoding="utf-8")
    comment = re.search(r"((?:  //.*\n)+)  string what = 8;", proto)[1]
    words = set(re.findall(r"\b[a-z]+(?:_[a-z]+)*\b", comment.split(":", 1)[1].split("The event type")[0]))
    assert words - {"cycles", "objectives", "key", "results", "initiatives", "people", "teams"} == set(table.values())


# ----------------------------------------------------------------------------- the wire


@pytest.fixture(scope="module")
def every_event_type(suite):
    """A tenant whose history has every event type of the protos (written through the
    API): (key, the streams written, position of its first event)."""
    _, key = suite.new_tenant("admin")
    goals = goal_pb2_grpc.GoalServiceStub(suite.channel)
    progress = progress_pb2_grpc.ProgressServiceStub(suite.channel)
    p, md, today = f"doc-{uuid.uuid4().hex[:8]}", dict(metadata=auth(key), timeout=30), date.today()
    day = lambda n: (today + timedelta(days=n)).isoformat()  # noqa: E731
    c, nxt, o1, o2, o3, k1, k2, i1, i2 = (f"{p}-{n}" for n in ("c", "next", "o1", "o2", "o3", "k1", "k2", "i1", "i2"))
    calls = [
        (goals.PlanCycle, goal_pb2.PlanCycleRequest(cycle_id=c, cadence=events_pb2.CADENCE_QUARTERLY, name="Now",
                                                    start_date=day(-30), end_date=day(60))),
        (goals.PlanCycle, goal_pb2.PlanCycleRequest(cycle_id=nxt, cadence=events_pb2.CADENCE_QUARTERLY,
                                                    name="Next", start_date=day(61), end_date=day(150))),
        (goals.ActivateCycle, goal_pb2.ActivateCycleRequest(cycle_id=c)),
        (goals.CreateObjective, goal_pb2.CreateObjectiveRequest(
            objective_id=o1, cycle_id=c, level=events_pb2.OBJECTIVE_LEVEL_COMPANY, title="Grow", owner="ceo")),
        (goals.CreateObjective, goal_pb2.CreateObjectiveRequest(
            objective_id=o2, cycle_id=c, level=events_pb2.OBJECTIVE_LEVEL_TEAM, title="Sell", owner="ada",
            team_id="sales")),
        (goals.CreateObjective, goal_pb2.CreateObjectiveRequest(
            objective_id=o3, cycle_id=nxt, level=events_pb2.OBJECTIVE_LEVEL_COMPANY, title="Later", owner="ceo")),
        (goals.RestateObjective, goal_pb2.RestateObjectiveRequest(objective_id=o3, title="Later, better")),
        (goals.DefineKeyResult, goal_pb2.DefineKeyResultRequest(
            key_result_id=k1, objective_id=o1, title="Revenue 10 → 20", kind=events_pb2.KEY_RESULT_KIND_INCREASE_TO,
            start_value=10, target_value=20, owner="ceo", due_date=day(60))),
        (goals.DefineKeyResult, goal_pb2.DefineKeyResultRequest(
            key_result_id=k2, objective_id=o1, title="Churn 5 → 3", kind=events_pb2.KEY_RESULT_KIND_DECREASE_TO,
            start_value=5, target_value=3, owner="ceo", due_date=day(60))),
        (goals.AlignObjective, goal_pb2.AlignObjectiveRequest(objective_id=o2, parent_objective_id=o1)),
        (goals.RealignObjective, goal_pb2.RealignObjectiveRequest(objective_id=o2, parent_key_result_id=k1,
                                                                  reason="sales drive revenue")),
        (goals.AdjustKeyResult, goal_pb2.AdjustKeyResultRequest(key_result_id=k1, target_value=25, reason="stretch")),
        (goals.AssignKeyResultOwner, goal_pb2.AssignKeyResultOwnerRequest(key_result_id=k1, owner="ada",
                                                                          reason="sales lead owns it")),
        (progress.RecordCheckIn, progress_pb2.RecordCheckInRequest(
            check_in_id=f"{p}-ci1", key_result_id=k1, value=12, confidence=6, effective_date=day(0),
            comment="first invoices")),
        (progress.CorrectCheckIn, progress_pb2.CorrectCheckInRequest(
            check_in_id=f"{p}-ci2", corrects_check_in_id=f"{p}-ci1", key_result_id=k1, value=13, confidence=6,
            effective_date=day(0), reason="late invoice")),
        (goals.CreateInitiative, goal_pb2.CreateInitiativeRequest(
            initiative_id=i1, key_result_id=k1, title="Call", assignee="ada", start_date=day(0), due_date=day(14))),
        (goals.CreateInitiative, goal_pb2.CreateInitiativeRequest(
            initiative_id=i2, key_result_id=k1, title="Mail", assignee="ada", start_date=day(0), due_date=day(14))),
        (goals.StartInitiative, goal_pb2.StartInitiativeRequest(initiative_id=i1, started_on=day(0))),
        (goals.SlipInitiative, goal_pb2.SlipInitiativeRequest(initiative_id=i1, new_due_date=day(21),
                                                              reason="holidays")),
        (goals.CompleteInitiative, goal_pb2.CompleteInitiativeRequest(initiative_id=i1, completed_on=day(0))),
        (goals.DropInitiative, goal_pb2.DropInitiativeRequest(initiative_id=i2, reason="not needed")),
        (goals.ArchiveKeyResult, goal_pb2.ArchiveKeyResultRequest(key_result_id=k2, reason="measured elsewhere")),
        (goals.ArchiveObjective, goal_pb2.ArchiveObjectiveRequest(objective_id=o3, reason="merged")),
        (goals.MoveCycleToReview, goal_pb2.MoveCycleToReviewRequest(cycle_id=c)),
        (goals.CloseCycle, goal_pb2.CloseCycleRequest(cycle_id=c)),
    ]
    directory = directory_pb2_grpc.DirectoryServiceStub(suite.channel)
    d = directory_pb2
    pa, pb, t1, t2 = (f"{p}-{n}" for n in ("pa", "pb", "t1", "t2"))
    calls += [
        (directory.CreateTeam, d.CreateTeamRequest(team_id=t1, name="Sales")),
        (directory.CreateTeam, d.CreateTeamRequest(team_id=t2, name="Inside sales")),
        (directory.AddPerson, d.AddPersonRequest(person_id=pa, display_name="Ada", email=f"{pa}@example.com")),
        (directory.AddPerson, d.AddPersonRequest(person_id=pb, display_name="Bo", email=f"{pb}@example.com")),
        (directory.UpdatePerson, d.UpdatePersonRequest(person_id=pa, display_name="Ada L.")),
        (directory.AssignManager, d.AssignManagerRequest(person_id=pa, manager_id=pb)),
        (directory.GrantRole, d.GrantRoleRequest(person_id=pb, role=events_pb2.DIRECTORY_ROLE_AUDITOR)),
        (directory.RevokeRole, d.RevokeRoleRequest(person_id=pb, role=events_pb2.DIRECTORY_ROLE_AUDITOR)),
        (directory.RenameTeam, d.RenameTeamRequest(team_id=t1, name="Sales and marketing")),
        (directory.MoveTeam, d.MoveTeamRequest(team_id=t2, parent_team_id=t1)),
        (directory.AddTeamMember, d.AddTeamMemberRequest(team_id=t2, person_id=pa)),
        (directory.AssignTeamLead, d.AssignTeamLeadRequest(team_id=t2, person_id=pb)),
        (directory.RemoveTeamLead, d.RemoveTeamLeadRequest(team_id=t2, person_id=pb)),
        (directory.RemoveTeamMember, d.RemoveTeamMemberRequest(team_id=t2, person_id=pa)),
        (directory.ArchiveTeam, d.ArchiveTeamRequest(team_id=t2, reason="merged into sales")),
        (directory.DeactivatePerson, d.DeactivatePersonRequest(person_id=pa, reason="left")),
        (directory.ReactivatePerson, d.ReactivatePersonRequest(person_id=pa, reason="came back")),
    ]
    first, answers = None, {}
    for method, request in calls:
        result = method(request, **md)
        first = first or result.first_position
        answers.setdefault(type(request).__name__, result)
    streams = [f"cycle-{c}", f"cycle-{nxt}", f"objective-{o1}", f"objective-{o2}", f"objective-{o3}", f"kr-{k1}",
               f"kr-{k2}", f"initiative-{i1}", f"initiative-{i2}", f"person-{pa}", f"person-{pb}", f"team-{t1}",
               f"team-{t2}"]
    return key, streams, first, answers


#: StreamEvents read from a plain process: the test process runs eventlet-patched
#: (tests/conftest.py), where grpc's streaming client waits on green conditions that its
#: real threads never wake.
def example(doc: str, name: str) -> dict:
    """The (first) JSON example of ``doc`` marked as ``name``."""
    return next(json.loads(body) for _, marked, stored, body in examples(doc) if marked == name and not stored)


def same_fields(shown: dict, answered: dict, where: str) -> None:
    """An example has the fields the server's answer has (values differ), nested objects too."""
    assert set(shown) == set(answered), where
    for name, value in shown.items():
        if isinstance(value, dict):
            same_fields(value, answered[name], f"{where}.{name}")


def test_stream_events_delivers_exactly_the_protos_event_types_as_events_md_shows(suite, every_event_type):
    key, _, first, _ = every_event_type
    envelopes = [json_format.MessageToDict(e) for e in server_stream(
        suite.gateway, "/okr.v1.EventStream/StreamEvents", stream_pb2.StreamEventsRequest(from_position=first),
        events_pb2.EventEnvelope, key)]
    assert {e["eventType"] for e in envelopes} == EVENT_TYPES
    check_in = next(e for e in envelopes if e["eventType"] == "okr.v1.CheckInRecorded")
    same_fields(example("events.md", "okr.v1.EventEnvelope"), check_in, "EventEnvelope")
    assert isinstance(check_in["position"], str) and isinstance(check_in["schemaVersion"], int)


def test_get_history_answers_the_documented_what_of_every_event_type(suite, every_event_type):
    key, streams, _, _ = every_event_type
    audit = audit_pb2_grpc.AuditServiceStub(suite.channel)
    table, answered, entries = what_table(), {}, []
    for stream_id in streams:
        history = audit.GetHistory(audit_pb2.GetHistoryRequest(stream_id=stream_id), metadata=auth(key), timeout=30)
        answered.update((e.event_type, e.what) for e in history.entries)
        entries.extend(history.entries)
    assert answered == table
    check_in = next(e for e in entries if e.event_type == "okr.v1.CheckInRecorded")
    (shown,) = example("api.md", "okr.v1.GetHistoryResponse")["entries"]
    same_fields(shown, json_format.MessageToDict(check_in), "HistoryEntry")


def test_the_command_result_example_has_the_fields_a_check_in_answers(every_event_type):
    *_, answers = every_event_type
    answered = json_format.MessageToDict(answers["RecordCheckInRequest"])
    same_fields(example("api.md", "okr.v1.CommandResult"), answered, "CommandResult")
