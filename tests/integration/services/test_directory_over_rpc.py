"""The directory service for real: a nameko container on the real RabbitMQ, its commands
run on the module's event store (SQLite and PostgreSQL), an outbox relay in this process
publishing to an exchange of the test's own, the read model fed from it in the
directory's own database — called through nameko's ClusterRpcClient as the gateway
calls it. Reads lag the commands (the read model is fed from the bus): the tests wait for
what they wrote to show."""

from __future__ import annotations

import uuid

import nameko
import pytest
from nameko.containers import get_container_cls
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcClient

from okr_shared.bus.consumer import dead_letter_queue_name
from okr_shared.bus.relay import Relay
from okr_services.directory.service import make_service
from tests.infra import Databases, delete_bus_objects
from tests.waiting import wait_until

RPC_TIMEOUT = 30


@pytest.fixture(scope="module")
def directory(service_database, broker, tmp_path_factory):
    """The directory service's name, on the module's store and a read model of the same
    backend; the relay publishing the store to the test's exchange."""
    suffix = uuid.uuid4().hex[:10]
    databases = Databases(service_database.backend, tmp_path_factory.mktemp("directory"), prefix="dir_test")
    exchange, dlx = f"okr.events.test-{suffix}", f"okr.events.dlx.test-{suffix}"
    name, queue = f"directory-{suffix}", f"directory.read-model-{suffix}"
    service = make_service(name, queue=queue, db_url=databases.new("directory"),
                           event_store_url=service_database.url, exchange=exchange, dead_letter_exchange=dlx,
                           retry_delay=0.01, retry_max_delay=0.1)
    mp = pytest.MonkeyPatch()
    mp.setenv("OKR_DATABASE_URL", service_database.url)
    relay = Relay(service_database.engine, broker, exchange=exchange, poll_interval=0.01, backoff=(0.05, 0.5))
    with nameko.config.patch({"AMQP_URI": broker}):
        container = get_container_cls()(service)
        container.start()
    relay.start()
    try:
        yield name
    finally:
        relay.stop()
        container.stop()
        mp.undo()
        delete_bus_objects((queue, dead_letter_queue_name(queue), f"rpc-{name}"), (exchange, dlx))
        databases.drop()


@pytest.fixture
def client(directory, broker):
    """``client(tenant_id, actor="root")`` → the directory service's RPC proxy."""
    started = []

    def make(tenant_id: str, actor: str = "root"):
        cluster = ClusterRpcClient(context_data={"actor": actor, "tenant_id": tenant_id}, timeout=RPC_TIMEOUT,
                                   uri=broker)
        started.append(cluster)
        return cluster.start()[directory]

    yield make
    for cluster in started:
        cluster.stop()


def shows(read, predicate, message: str):
    """Wait until ``read()`` answers (no NotFound) something ``predicate`` accepts."""
    def attempt():
        try:
            value = read()
        except RemoteError as e:
            if e.exc_type != "NotFound":
                raise
            return None
        return value if predicate(value) else None

    return wait_until(attempt, timeout=30, message=message)


def refused(call, **fields) -> RemoteError:
    with pytest.raises(RemoteError) as caught:
        call(**fields)
    return caught.value


def test_people_and_teams_end_to_end(client):
    acme = client("acme")
    for person_id, name, email in [("ana", "Ana López", "ana@acme.test"), ("bo", "Bo Chen", "bo@acme.test"),
                                   ("cy", "Cy Diaz", "cy@acme.test")]:
        acme.add_person(person_id=person_id, display_name=name, email=email)
    acme.grant_role(person_id="ana", role="ADMIN")
    acme.create_team(team_id="eng", name="Engineering")
    acme.create_team(team_id="web", name="Web", parent_team_id="eng")
    acme.create_team(team_id="ops", name="Operations")
    acme.add_team_member(team_id="web", person_id="bo")
    acme.assign_team_lead(team_id="eng", person_id="cy")

    shows(lambda: acme.get_team(team_id="eng"), lambda t: t["lead_ids"] == ["cy"], "eng's lead")
    cy = acme.resolve_person(person_id="cy")
    assert (cy["active"], cy["role"], cy["teams"]) == (True, "lead", ["eng", "web"])
    ana = shows(lambda: acme.get_person(person_id="ana"), lambda p: p["roles"] == ["ADMIN"], "ana's grant")
    assert ana["user_name"] in ("ana@acme.test", "")  # the decider fills in the e-mail address, or leaves it
    assert acme.resolve_person(person_id="ana")["role"] == "admin"
    shows(lambda: acme.get_team(team_id="web"), lambda t: t["member_ids"] == ["bo"], "bo in web")

    page = acme.list_people(query="CHEN")
    assert ([p["person_id"] for p in page["people"]], page["total_size"]) == (["bo"], 1)
    first = acme.list_people(page_size=2)
    rest = acme.list_people(page_size=2, page_token=first["next_page_token"])
    assert [p["person_id"] for p in first["people"] + rest["people"]] == ["ana", "bo", "cy"]
    assert refused(acme.list_people, page_size=501).exc_type == "ValidationError"

    # a move is two commands; the same call again stores nothing more
    moved = acme.move_person_to_team(person_id="bo", from_team_id="web", to_team_id="ops", command_id="move-bo")
    assert moved["event_types"] == ["okr.v1.TeamMemberRemoved", "okr.v1.TeamMemberAdded"]
    again = acme.move_person_to_team(person_id="bo", from_team_id="web", to_team_id="ops", command_id="move-bo")
    assert again["already_stored"] is True
    shows(lambda: acme.get_person(person_id="bo"), lambda p: p["team_ids"] == ["ops"], "bo moved to ops")

    # the checks against the read model, typed as the gateway maps them
    taken = refused(acme.add_person, display_name="Another Ana", email="ANA@acme.test")
    assert (taken.exc_type, "ana@acme.test" in taken.value) == ("PreconditionFailed", True)
    assert refused(acme.revoke_role, person_id="ana", role="ADMIN").exc_type == "PreconditionFailed"
    assert refused(acme.deactivate_person, person_id="ana").value.startswith("last_admin")
    assert refused(acme.archive_team, team_id="eng").value.startswith("team_has_children")

    # another tenant sees none of it
    globex = client("globex")
    missing = refused(globex.get_person, person_id="ana")
    assert missing.exc_type == "NotFound"
    assert globex.list_people()["total_size"] == 0
