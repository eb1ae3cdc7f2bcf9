"""The directory service without a broker: its read model fed directly with okr.v1
directory events (the projection, idempotent), the queries over it (search, paging,
tokens, tenant isolation, the derived role and teams of resolve_person), and the checks
the RPCs make against it before a command runs (worker_factory, the executor mocked)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import select
from nameko.testing.services import worker_factory

from okr.v1 import events_pb2 as ev
from okr_shared.contracts import event_type_of, payload_to_dict
from okr_shared.domain import commands as c
from okr_shared.domain.errors import NotFound, PreconditionFailed, ValidationError
from okr_shared.db.migrations.consumer.tables_0001 import offsets
from okr_shared.eventstore import ANY, EventStore, NewEvent, make_engine, migrate
from okr_shared.service_layer import CallContext
from okr_shared.service_layer.executor import created_id
from okr_services.directory import queries, readmodel
from okr_services.directory.service import DirectoryService

ADMIN, AUDITOR, OBSERVER = ev.DIRECTORY_ROLE_ADMIN, ev.DIRECTORY_ROLE_AUDITOR, ev.DIRECTORY_ROLE_OBSERVER
T0 = 1_796_688_000_000_000  # 2026-12-08T00:00:00Z


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/directory.db")
    readmodel.migrate_schema(engine)
    yield engine
    engine.dispose()


class Feed:
    """Appends events to per-stream versions the way the store numbers them and projects
    each one (``apply``: the projection's verdict)."""

    def __init__(self, engine):
        self.engine = engine
        self.versions: dict[tuple[str, str], int] = {}
        self.log: list[readmodel.DirectoryEvent] = []

    def __call__(self, message, tenant: str = "acme") -> bool:
        category = "person" if message.DESCRIPTOR.name in readmodel.PERSON_EVENTS else "team"
        key = (tenant, f"{category}-{getattr(message, category + '_id')}")
        self.versions[key] = version = self.versions.get(key, 0) + 1
        event = readmodel.DirectoryEvent(tenant, key[1], version, event_type_of(message), payload_to_dict(message),
                                         T0 + len(self.log) * 1_000_000)
        self.log.append(event)
        return self.apply(event)

    def apply(self, event) -> bool:
        with self.engine.begin() as conn:
            return readmodel.apply_event(conn, event)

    def person(self, person_id, display_name=None, tenant="acme", **details):
        return self(ev.PersonAdded(person_id=person_id, display_name=display_name or person_id.title(), **details),
                    tenant)

    def team(self, team_id, parent="", tenant="acme", name=None):
        return self(ev.TeamCreated(team_id=team_id, name=name or team_id.title(), parent_team_id=parent), tenant)


@pytest.fixture
def feed(engine):
    return Feed(engine)


def read(engine, fn, *args, tenant="acme", **kwargs):
    with engine.connect() as conn:
        return fn(conn, tenant, *args, **kwargs)


# ---------------------------------------------------------------- the projection


def test_a_persons_events_make_their_row(engine, feed):
    feed.person("ana", "Ana López", email="ana@acme.test", time_zone="Europe/Madrid", language="en",
                user_name="Ana", external_id="okta-1")
    feed.person("li", "李娜")
    feed(ev.PersonDetailsChanged(person_id="ana", display_name="Ana L.", email="ana@acme.test", user_name="analo"))
    feed(ev.PersonManagerAssigned(person_id="ana", new_manager_id="li"))
    feed(ev.RoleGranted(person_id="ana", role=AUDITOR))
    feed(ev.RoleGranted(person_id="ana", role=ADMIN))
    feed(ev.RoleRevoked(person_id="ana", role=AUDITOR))
    feed(ev.PersonDeactivated(person_id="ana", reason="left"))
    ana = read(engine, queries.get_person, "ana")
    assert ana == {
        "person_id": "ana", "display_name": "Ana L.", "email": "ana@acme.test", "manager_id": "li",
        "time_zone": "", "language": "", "user_name": "analo", "external_id": "", "active": False,
        "team_ids": [], "lead_of_team_ids": [], "roles": ["ADMIN"], "version": 7,
        "created_at": "2026-12-08T00:00:00Z", "updated_at": "2026-12-08T00:00:07Z"}
    feed(ev.PersonReactivated(person_id="ana"))
    assert read(engine, queries.get_person, "ana")["active"] is True


def test_a_teams_events_make_its_rows(engine, feed):
    for person in ("ana", "bo", "cy"):
        feed.person(person)
    feed.team("eng")
    feed.team("web", parent="eng")
    feed.team("ops")
    feed(ev.TeamRenamed(team_id="web", old_name="Web", new_name="Frontend", external_id="grp-7"))
    feed(ev.TeamMemberAdded(team_id="web", person_id="bo"))
    feed(ev.TeamMemberAdded(team_id="web", person_id="ana"))
    feed(ev.TeamMemberAdded(team_id="web", person_id="cy"))
    feed(ev.TeamMemberRemoved(team_id="web", person_id="cy"))
    feed(ev.TeamLeadAssigned(team_id="web", person_id="ana"))
    feed(ev.TeamLeadAssigned(team_id="ops", person_id="ana"))
    feed(ev.TeamLeadRemoved(team_id="ops", person_id="ana"))
    web = read(engine, queries.get_team, "web")
    assert {k: web[k] for k in ("name", "parent_team_id", "external_id", "active", "lead_ids", "member_ids",
                                "child_team_ids", "version")} == {
        "name": "Frontend", "parent_team_id": "eng", "external_id": "grp-7", "active": True, "lead_ids": ["ana"],
        "member_ids": ["ana", "bo"], "child_team_ids": [], "version": 7}
    assert read(engine, queries.get_team, "eng")["child_team_ids"] == ["web"]
    ana = read(engine, queries.get_person, "ana")
    assert (ana["team_ids"], ana["lead_of_team_ids"]) == (["web"], ["web"])
    feed(ev.TeamMoved(team_id="web", old_parent_team_id="eng", new_parent_team_id="ops"))
    feed(ev.TeamArchived(team_id="web", reason="reorg"))
    web = read(engine, queries.get_team, "web")
    assert (web["parent_team_id"], web["active"], web["lead_ids"], web["member_ids"]) == ("ops", False, [], [])
    assert read(engine, queries.get_person, "ana")["team_ids"] == []


def test_applying_an_event_again_changes_nothing(engine, feed):
    feed.person("ana")
    feed.team("eng")
    feed(ev.TeamMemberAdded(team_id="eng", person_id="ana"))
    feed(ev.RoleGranted(person_id="ana", role=ADMIN))
    feed(ev.TeamMemberRemoved(team_id="eng", person_id="ana"))
    before = (read(engine, queries.get_person, "ana"), read(engine, queries.get_team, "eng"))
    assert [feed.apply(e) for e in feed.log] == [False] * len(feed.log)
    assert (read(engine, queries.get_person, "ana"), read(engine, queries.get_team, "eng")) == before
    with engine.begin() as conn:  # a rebuild: from empty tables, the same rows
        readmodel.clear(conn)
    assert [feed.apply(e) for e in feed.log] == [True] * len(feed.log)
    assert (read(engine, queries.get_person, "ana"), read(engine, queries.get_team, "eng")) == before


def test_a_rebuild_from_the_store_makes_the_same_rows(engine, feed, tmp_path):
    feed.person("ana", "Ana", email="ana@acme.test")
    feed.team("eng")
    feed(ev.TeamMemberAdded(team_id="eng", person_id="ana"))
    feed(ev.RoleGranted(person_id="ana", role=ADMIN))
    feed.person("gus", tenant="globex")
    store_engine = make_engine(f"sqlite:///{tmp_path}/okr.db")
    migrate(store_engine)
    clock = {"us": 0}
    store = EventStore(store_engine, clock=lambda: clock["us"])
    for e in feed.log:
        clock["us"] = e.recorded_at_us
        store.append(e.stream_id, ANY, [NewEvent(e.event_type, e.data, tenant_id=e.tenant_id)])
        store.append("kr-1", ANY, [NewEvent("okr.v1.KeyResultArchived", {"key_result_id": "1", "reason": "x"},
                                            tenant_id=e.tenant_id)])  # not the directory's
    before = [read(engine, queries.get_person, "ana"), read(engine, queries.get_team, "eng"),
              read(engine, queries.get_person, "gus", tenant="globex")]
    with engine.begin() as conn:
        conn.execute(readmodel.people.update().values(display_name="stale"))
    assert readmodel.rebuild(engine, store) == len(feed.log)
    assert [read(engine, queries.get_person, "ana"), read(engine, queries.get_team, "eng"),
            read(engine, queries.get_person, "gus", tenant="globex")] == before
    with engine.connect() as conn:
        assert conn.execute(select(offsets.c.last_position).where(
            offsets.c.consumer == readmodel.CONSUMER)).scalar() == store.head_position() == 2 * len(feed.log)
    store.close()
    store_engine.dispose()


def test_other_event_types_are_ignored(engine, feed):
    other = readmodel.DirectoryEvent("acme", "kr-1", 1, "okr.v1.CheckInRecorded", {"key_result_id": "1"})
    assert feed.apply(other) is False


# ------------------------------------------------------------------- the queries


@pytest.fixture
def people(feed):
    """Six people of acme (one who left), one of globex; two teams."""
    for person_id, name, email in [("p1", "Zoë Adams", "zoe@acme.test"), ("p2", "ana lópez", "ana@acme.test"),
                                   ("p3", "Bo Chen", "bo@acme.test"), ("p4", "Bo Chen", "bo2@acme.test"),
                                   ("p5", "Cy 100%", "cy@acme.test"), ("p6", "Dee Left", "dee@acme.test")]:
        feed.person(person_id, name, email=email, user_name=f"user_{person_id}")
    feed(ev.PersonDeactivated(person_id="p6"))
    feed.person("g1", "Bo Globex", tenant="globex", email="bo@globex.test")
    feed.team("eng")
    feed.team("web", parent="eng")
    for person in ("p3", "p6", "p1"):
        feed(ev.TeamMemberAdded(team_id="web", person_id=person))
    return feed


def ids(page, kind="people"):
    return [row["person_id" if kind == "people" else "team_id"] for row in page[kind]]


@pytest.mark.parametrize("arguments, expected", [
    ({}, ["p3", "p4", "p5", "p1", "p2"]),  # by display name (as the database orders), then id
    ({"include_inactive": True}, ["p3", "p4", "p5", "p6", "p1", "p2"]),
    ({"query": "bo"}, ["p3", "p4"]),  # display name (and e-mail), case-insensitive
    ({"query": "BO2@"}, ["p4"]),  # e-mail
    ({"query": "USER_P2"}, ["p2"]),  # user name
    ({"query": "p5"}, ["p5"]),  # id
    ({"query": "100%"}, ["p5"]),  # LIKE's wildcards are plain characters
    ({"query": "_p"}, ["p3", "p4", "p5", "p1", "p2"]),
    ({"query": "nobody"}, []),
    ({"team_id": "web"}, ["p3", "p1"]),
    ({"team_id": "web", "include_inactive": True}, ["p3", "p6", "p1"]),
    ({"team_id": "eng"}, []),
])
def test_list_people_filters_and_orders(engine, people, arguments, expected):
    page = read(engine, queries.list_people, **arguments)
    assert (ids(page), page["total_size"], page["next_page_token"]) == (expected, len(expected), "")


def test_list_people_pages_through_every_match_once(engine, people):
    seen, token, pages = [], "", 0
    while True:
        page = read(engine, queries.list_people, include_inactive=True, page_size=4, page_token=token)
        assert page["total_size"] == 6
        seen += ids(page)
        pages += 1
        token = page["next_page_token"]
        if not token:
            break
    assert (seen, pages) == (["p3", "p4", "p5", "p6", "p1", "p2"], 2)
    # the equal display names of p3 and p4 straddle a page boundary without loss
    first = read(engine, queries.list_people, page_size=1)
    assert ids(read(engine, queries.list_people, page_size=1, page_token=first["next_page_token"])) == ["p4"]


@pytest.mark.parametrize("page_size, expected", [(0, 100), (None, 100), (1, 1), (500, 500)])
def test_page_size_defaults_and_bounds(page_size, expected):
    assert queries.page_size_of(page_size) == expected


@pytest.mark.parametrize("field, value", [("page_size", 501), ("page_size", -1), ("page_size", "10"),
                                          ("page_size", True), ("page_size", 2.5),
                                          ("page_token", "not a token!"), ("page_token", "bm9wZQ"),
                                          ("page_token", queries.encode_token(("a", "b"))[:-2] + "@@")])
def test_bad_paging_is_refused_naming_the_field(engine, people, field, value):
    with pytest.raises(ValidationError) as refused:
        read(engine, queries.list_people, **{field: value})
    assert refused.value.field == field
    with pytest.raises(ValidationError) as refused:
        read(engine, queries.list_teams, **{field: value})
    assert refused.value.field == field


def test_list_teams_filters_pages_and_searches(engine, people):
    people.team("ops", name="Operations")
    people.team("api", parent="eng", name="API")
    people(ev.TeamArchived(team_id="ops"))
    assert ids(read(engine, queries.list_teams), "teams") == ["api", "eng", "web"]
    assert ids(read(engine, queries.list_teams, include_archived=True), "teams") == ["api", "eng", "ops", "web"]
    assert ids(read(engine, queries.list_teams, parent_team_id="eng"), "teams") == ["api", "web"]
    assert ids(read(engine, queries.list_teams, query="WE"), "teams") == ["web"]
    first = read(engine, queries.list_teams, page_size=2)
    assert (ids(first, "teams"), first["total_size"]) == (["api", "eng"], 3)
    assert ids(read(engine, queries.list_teams, page_size=2, page_token=first["next_page_token"]), "teams") == ["web"]
    eng = read(engine, queries.get_team, "eng")
    assert eng["child_team_ids"] == ["api", "web"]


@pytest.mark.parametrize("fn, kind, id", [(queries.get_person, "person", "nobody"),
                                          (queries.get_person, "person", "g1"),  # globex's
                                          (queries.get_team, "team", "nothing"),
                                          (queries.resolve_person, "person", "g1")])
def test_unknown_and_other_tenants_ids_are_not_found(engine, people, fn, kind, id):
    with pytest.raises(NotFound) as missing:
        read(engine, fn, id)
    assert (missing.value.kind, missing.value.id) == (kind, id)


def test_a_tenant_lists_only_its_own(engine, people):
    assert ids(read(engine, queries.list_people, query="bo", tenant="globex")) == ["g1"]
    assert read(engine, queries.list_teams, tenant="globex")["total_size"] == 0
    assert read(engine, queries.get_person, "g1", tenant="globex")["email"] == "bo@globex.test"


# ------------------------------------------------------------- resolve_person


@pytest.mark.parametrize("grants, leads, role", [
    ([], False, "member"),
    ([OBSERVER], False, "viewer"),
    ([AUDITOR, OBSERVER], False, "auditor"),
    ([AUDITOR], True, "lead"),
    ([OBSERVER], True, "lead"),
    ([ADMIN, AUDITOR], True, "admin"),
    ([ADMIN], False, "admin"),
])
def test_the_role_is_the_first_that_applies(engine, feed, grants, leads, role):
    feed.person("ana")
    feed.team("eng")
    for grant in grants:
        feed(ev.RoleGranted(person_id="ana", role=grant))
    if leads:
        feed(ev.TeamLeadAssigned(team_id="eng", person_id="ana"))
    resolved = read(engine, queries.resolve_person, "ana")
    assert (resolved["active"], resolved["role"], resolved["teams"]) == (True, role, ["eng"] if leads else [])
    assert resolved["person"]["person_id"] == "ana"


def test_a_lead_has_the_teams_below_theirs(engine, feed):
    feed.person("ana")
    # eng > web > (css, js); eng > old (archived); ops > infra; sales alone
    for team, parent in [("eng", ""), ("web", "eng"), ("css", "web"), ("js", "web"), ("old", "eng"), ("ops", ""),
                         ("infra", "ops"), ("sales", "")]:
        feed.team(team, parent)
    feed(ev.TeamArchived(team_id="old"))
    feed(ev.TeamLeadAssigned(team_id="web", person_id="ana"))
    feed(ev.TeamLeadAssigned(team_id="infra", person_id="ana"))
    assert read(engine, queries.resolve_person, "ana")["teams"] == ["css", "infra", "js", "web"]
    feed(ev.TeamLeadAssigned(team_id="eng", person_id="ana"))
    assert read(engine, queries.resolve_person, "ana")["teams"] == ["css", "eng", "infra", "js", "web"]
    feed(ev.PersonDeactivated(person_id="ana"))
    assert read(engine, queries.resolve_person, "ana")["active"] is False


def test_leading_an_archived_team_makes_no_lead(engine, feed):
    feed.person("ana")
    feed.team("eng")
    feed(ev.TeamLeadAssigned(team_id="eng", person_id="ana"))
    feed(ev.TeamArchived(team_id="eng"))
    assert read(engine, queries.resolve_person, "ana")["role"] == "member"


# ---------------------------------------------------- checks before a command


@pytest.fixture
def service(engine):
    """The service with the read model above and a mocked executor."""
    return worker_factory(DirectoryService, db=SimpleNamespace(engine=engine),
                          caller=CallContext(actor="admin", tenant_id="acme"))


@pytest.mark.parametrize("method, fields, rule, named", [
    ("add_person", {"display_name": "X", "user_name": "USER_P1"}, "user_name_taken", "USER_P1"),
    ("add_person", {"display_name": "X", "email": "Zoe@Acme.test", "user_name": "zoe"}, "email_taken",
     "zoe@acme.test"),
    ("add_person", {"display_name": "X", "email": "user_p2"}, "user_name_taken", "user_p2"),  # user name = e-mail
    ("update_person", {"person_id": "p2", "user_name": "user_p3"}, "user_name_taken", "user_p3"),
    ("update_person", {"person_id": "p2", "email": "bo@acme.test"}, "email_taken", "bo@acme.test"),
])
def test_user_names_and_emails_are_unique_among_active_people(service, people, method, fields, rule, named):
    with pytest.raises(PreconditionFailed) as refused:
        getattr(service, method)(**fields)
    assert refused.value.rule == rule and repr(named) in str(refused.value)
    service.aggregates.run.assert_not_called()


@pytest.mark.parametrize("method, fields", [
    ("add_person", {"display_name": "X", "email": "dee@acme.test"}),  # only someone who left has it
    ("add_person", {"display_name": "X", "email": "bo@globex.test"}),  # another tenant's
    ("add_person", {"person_id": "p1", "display_name": "Zoë Adams", "email": "zoe@acme.test",
                    "user_name": "user_p1"}),  # the same person again (the decider answers)
    ("update_person", {"person_id": "p1", "email": "zoe@acme.test", "user_name": "USER_P1"}),  # their own
    ("update_person", {"person_id": "p2", "display_name": "Ana"}),  # neither changes
    ("add_person", {"display_name": "X"}),
])
def test_free_values_pass_to_the_command(service, people, method, fields):
    assert getattr(service, method)(**fields) is service.aggregates.run.return_value
    [(command_cls, passed, caller)] = [call.args for call in service.aggregates.run.call_args_list]
    assert (command_cls.__name__.lower(), passed, caller) == (method.replace("_", ""), fields, service.caller)


def test_a_retried_add_without_an_id_is_not_refused_by_the_person_it_added(service, feed):
    """The first call left the id to the service (it got ``created_id``) and its person is
    in the read model; the retry with the same command id must reach the executor (which
    answers already_stored), not be refused as a taken user name or e-mail."""
    feed.person(created_id("acme", "add-zoe"), email="zoe@acme.test")
    fields = {"display_name": "Zoe", "email": "zoe@acme.test", "command_id": "add-zoe"}
    assert service.add_person(**fields) is service.aggregates.run.return_value
    with pytest.raises(PreconditionFailed) as refused:  # another call, the same address: taken
        service.add_person(**dict(fields, command_id="add-zoe-again"))
    assert refused.value.rule == "user_name_taken"


def test_a_person_without_a_user_name_signs_in_with_their_email(service, feed):
    feed.person("ana", email="ana@acme.test")
    with pytest.raises(PreconditionFailed) as refused:
        service.add_person(display_name="X", email="other@acme.test", user_name="ANA@acme.test")
    assert refused.value.rule == "user_name_taken"
    with pytest.raises(PreconditionFailed) as refused:
        service.update_person(person_id="bo", user_name="ana@acme.test")
    assert refused.value.rule == "user_name_taken"
    service.aggregates.run.assert_not_called()


def test_the_last_active_admin_stays(service, feed):
    feed.person("ana")
    feed.person("bo")
    feed(ev.RoleGranted(person_id="ana", role=ADMIN))
    feed(ev.RoleGranted(person_id="bo", role=ADMIN))
    feed(ev.PersonDeactivated(person_id="bo"))  # an admin who left does not count
    for method, fields in [("revoke_role", {"person_id": "ana", "role": "ADMIN"}),
                           ("revoke_role", {"person_id": "ana", "role": "DIRECTORY_ROLE_ADMIN"}),
                           ("deactivate_person", {"person_id": "ana"})]:
        with pytest.raises(PreconditionFailed) as refused:
            getattr(service, method)(**fields)
        assert refused.value.rule == "last_admin" and "'ana'" in str(refused.value)
    service.aggregates.run.assert_not_called()
    service.revoke_role(person_id="ana", role="AUDITOR")  # another role: no check
    service.deactivate_person(person_id="bo")  # not an active admin
    feed(ev.PersonReactivated(person_id="bo"))
    service.revoke_role(person_id="ana", role="ADMIN")  # bo remains
    service.deactivate_person(person_id="ana")
    assert service.aggregates.run.call_count == 4


def test_a_team_with_active_children_is_not_archived(service, feed):
    feed.team("eng")
    feed.team("web", parent="eng")
    feed.team("old", parent="eng")
    feed(ev.TeamArchived(team_id="old"))
    with pytest.raises(PreconditionFailed) as refused:
        service.archive_team(team_id="eng")
    assert refused.value.rule == "team_has_children" and "web" in str(refused.value) and "old" not in str(
        refused.value)
    service.archive_team(team_id="web")
    service.aggregates.run.assert_called_once_with(c.ArchiveTeam, {"team_id": "web"}, service.caller)


def _reply(event_type, *positions, stored=False):
    return {"stream_id": "team-x", "aggregate_id": "x", "version": 1, "positions": list(positions),
            "event_types": [event_type] * len(positions), "already_stored": stored}


@pytest.mark.parametrize("command_id, remove_id, add_id", [("move-7", "move-7:remove", "move-7:add"),
                                                           (None, None, None)])
def test_moving_a_person_is_a_removal_then_an_addition(service, command_id, remove_id, add_id):
    service.aggregates.run.side_effect = [_reply("okr.v1.TeamMemberRemoved", 8),
                                          _reply("okr.v1.TeamMemberAdded", 9)]
    reply = service.move_person_to_team(person_id="ana", from_team_id="web", to_team_id="ops", command_id=command_id)
    assert [call.args for call in service.aggregates.run.call_args_list] == [
        (c.RemoveTeamMember, {"team_id": "web", "person_id": "ana", "command_id": remove_id}, service.caller),
        (c.AddTeamMember, {"team_id": "ops", "person_id": "ana", "command_id": add_id}, service.caller)]
    assert (reply["positions"], reply["event_types"], reply["already_stored"]) == (
        [8, 9], ["okr.v1.TeamMemberRemoved", "okr.v1.TeamMemberAdded"], False)


def test_queries_read_the_callers_tenant(engine, people):
    globex = worker_factory(DirectoryService, db=SimpleNamespace(engine=engine),
                            caller=CallContext(actor="x", tenant_id="globex"))
    assert ids(globex.list_people()) == ["g1"]
    with pytest.raises(NotFound):
        globex.get_person(person_id="p1")
    nobody = worker_factory(DirectoryService, db=SimpleNamespace(engine=engine), caller=CallContext(actor="x"))
    with pytest.raises(ValidationError) as refused:
        nobody.list_people()
    assert refused.value.field == "tenant_id"
