"""32 clients check in on one key result at the same moment, through real RPC to two
progress service instances (competing consumers, as when scaled out): every check-in
is stored exactly once, in one stream order, none lost."""

import eventlet
from eventlet.event import Event

from okr_services.progress.service import ProgressService

from tests.waiting import wait_until

CLIENTS = 32


def test_32_clients_checking_in_at_once_are_each_stored_exactly_once_in_one_order(services, rpc, okr):
    services.start_another(ProgressService, services.progress)  # a second instance on the same queue
    kr = okr["key_result_id"]
    clients = [rpc(actor=f"person-{i}", tenant_id="acme")[services.progress] for i in range(CLIENTS)]
    go = Event()
    at_the_gate = []

    def check_in(i):
        at_the_gate.append(i)
        go.wait()
        return clients[i].record_check_in(key_result_id=kr, value=100 + i, confidence=i % 11, comment=f"client {i}")

    threads = [eventlet.spawn(check_in, i) for i in range(CLIENTS)]
    wait_until(lambda: len(at_the_gate) == CLIENTS, timeout=10, message="every client waiting at the gate")
    go.send()
    replies = [t.wait() for t in threads]

    stored = list(services.database.store.read_stream(f"kr-{kr}", tenant_id="acme"))
    check_ins = stored[1:]
    assert [e.stream_version for e in stored] == list(range(1, CLIENTS + 2))
    assert [e.event_type for e in check_ins] == ["okr.v1.CheckInRecorded"] * CLIENTS
    positions = [e.position for e in check_ins]
    assert positions == sorted(positions)
    # each client's check-in exactly once, where its reply says it is
    assert sorted(e.data["comment"] for e in check_ins) == sorted(f"client {i}" for i in range(CLIENTS))
    by_id = {e.data["check_in_id"]: e for e in check_ins}
    assert len(by_id) == CLIENTS
    for i, reply in enumerate(replies):
        event = by_id[reply["check_in_id"]]
        assert (event.stream_version, [event.position]) == (reply["version"], reply["positions"])
        assert (event.data["comment"], event.data["author"], event.metadata["actor"]) == (
            f"client {i}", f"person-{i}", f"person-{i}")
    # and the key result reads back the same history
    state = okr["goal"].get_key_result(key_result_id=kr)
    assert [ci["check_in_id"] for ci in state["check_ins"]] == [e.data["check_in_id"] for e in check_ins]
    assert state["version"] == CLIENTS + 1
