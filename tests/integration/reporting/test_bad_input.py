"""Bad input on the reporting service's faces (SQLite and PostgreSQL, like
test_reporting_service.py): unknown ids, empty filters, unknown or malformed query
parameters, times before the first event or in the future give clear errors — HTTP 400/404
with a JSON body naming the problem, RPC ValidationError naming the field — never a 500.

(Fixtures in reporting_fixtures.py.)
"""

# ruff: noqa: F811

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from nameko.exceptions import RemoteError

from tests.fixtures.company_history import week_end_us
from okr_services.reporting import queries
from okr_shared.readmodels.projections import fold

from .reporting_fixtures import TODAY, world  # noqa: F401 - fixture


def fetch(url: str):
    """(status, content type, body) — error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get("Content-Type"), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def acme_cycle(events) -> str:
    return next(e.data["cycle_id"] for e in events
                if e.tenant_id == "acme" and e.event_type == "okr.v1.CyclePlanned")


def first_kr(events, tenant="acme") -> str:
    return next(e.data["key_result_id"] for e in events
                if e.tenant_id == tenant and e.event_type == "okr.v1.CheckInRecorded")


#: (path and query, status, what the JSON body must hold)
BAD_HTTP = [
    # unknown, empty, repeated and malformed query parameters → 400 naming the parameter
    ("/api/acme/board?colour=red", 400, {"error": "invalid_argument", "field": "colour"}),
    ("/api/acme/board?cycle_id=x", 400, {"error": "invalid_argument", "field": "cycle_id"}),
    ("/api/acme/board?cycle=", 400, {"error": "invalid_argument", "field": "cycle"}),
    ("/api/acme/board?cycle", 400, {"error": "invalid_argument", "field": "cycle"}),
    ("/api/acme/board?team=", 400, {"error": "invalid_argument", "field": "team"}),
    ("/api/acme/board?team=growth&owner=", 400, {"error": "invalid_argument", "field": "owner"}),
    ("/api/acme/board?owner=%20%20", 400, {"error": "invalid_argument", "field": "owner"}),
    ("/api/acme/board?team=a&team=b", 400, {"error": "invalid_argument", "field": "team"}),
    ("/api/acme/board?team=%ff%fe", 400, {"error": "invalid_argument", "field": "team"}),
    ("/api/acme/board?owner=a%00b", 400, {"error": "invalid_argument", "field": "owner"}),
    ("/api/acme/board?%zz=1", 400, {"error": "invalid_argument"}),
    ("/board/acme?cycle=", 400, {"error": "invalid_argument", "field": "cycle"}),
    ("/board/acme?bogus=1", 400, {"error": "invalid_argument", "field": "bogus"}),
    ("/api/acme/scorecard/{cycle}?cycle={cycle}", 400, {"error": "invalid_argument", "field": "cycle"}),
    ("/api/acme/kr/{kr}/history?since=2026-01-01", 400, {"error": "invalid_argument", "field": "since"}),
    # unknown ids → 404 naming them
    ("/api/acme/board?cycle=no-such-cycle", 404, {"error": "not_found", "kind": "cycle", "id": "no-such-cycle"}),
    ("/api/acme/board?cycle=gx-q1", 404, {"error": "not_found", "kind": "cycle", "id": "gx-q1"}),  # globex's
    ("/api/initech/board?cycle={cycle}", 404, {"error": "not_found", "kind": "cycle", "id": "{cycle}"}),
    ("/board/acme?cycle=no-such-cycle", 404, {"error": "not_found", "kind": "cycle", "id": "no-such-cycle"}),
    ("/api/acme/scorecard/no-such-cycle", 404, {"error": "not_found", "kind": "cycle", "id": "no-such-cycle"}),
    ("/api/globex/scorecard/{cycle}", 404, {"error": "not_found", "kind": "cycle", "id": "{cycle}"}),
    ("/api/acme/kr/no-such-kr/history", 404, {"error": "not_found", "kind": "key result", "id": "no-such-kr"}),
    ("/api/initech/kr/{kr}/history", 404, {"error": "not_found", "kind": "key result", "id": "{kr}"}),
]


def test_bad_http_input_is_a_clear_json_400_or_404_never_a_500(world):
    ids = {"cycle": acme_cycle(world.events), "kr": first_kr(world.events)}
    for path, status, expected in BAD_HTTP:
        path = path.format(**ids)
        got, content_type, body = fetch(world.http + path)
        assert got == status, (path, got, body)
        assert content_type.startswith("application/json"), (path, content_type)
        answer = json.loads(body)
        for key, value in expected.items():
            assert answer[key] == value.format(**ids), (path, answer)
        assert answer["message"] and "Traceback" not in body, (path, answer)


def test_the_documented_filters_still_answer(world):
    model = fold(world.events)
    cycle = acme_cycle(world.events)
    status, _, body = fetch(f"{world.http}/api/acme/board?cycle={cycle}&team=growth&owner=carla")
    assert status == 200
    assert json.loads(body) == json.loads(json.dumps(
        queries.board(model, "acme", TODAY, cycle_id=cycle, team_id="growth", owner="carla")))
    status, content_type, _ = fetch(f"{world.http}/board/acme?cycle={cycle}")
    assert status == 200 and content_type.startswith("text/html")
    status, _, body = fetch(f"{world.http}/api/acme/board?team=no-such-team")  # unknown team: an empty board
    assert status == 200 and all(not c["cards"] for c in json.loads(body)["key_results"])


def test_a_genuine_bug_is_logged_and_answered_with_a_bare_json_500(world, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the query")

    monkeypatch.setattr(queries, "board", broken)
    status, content_type, body = fetch(f"{world.http}/api/initech/board")  # not cached: runs the query
    assert status == 500 and content_type.startswith("application/json")
    assert json.loads(body) == {"error": "internal", "message": "internal error"}
    assert "Traceback" not in body and "a bug in the query" not in body
    assert any("a bug in the query" in (r.exc_text or "") or (r.exc_info and "a bug" in str(r.exc_info[1]))
               for r in caplog.records)


def refused(call, *args, **kwargs) -> RemoteError:
    with pytest.raises(RemoteError) as e:
        call(*args, **kwargs)
    return e.value


def test_rpc_as_of_and_diff_refuse_bad_instants_naming_the_field(world):
    acme = world.rpc(tenant_id="acme")
    head = world.store.head_position()
    first = min(e.recorded_at_us for e in world.events if e.tenant_id == "acme")
    first_position = min(e.position for e in world.events if e.tenant_id == "acme")
    cases = [
        # not a position
        ((acme.as_of, "board"), {"position": -3}, "position: ", "not a position"),
        ((acme.as_of, "board"), {"time": {"us": -10 ** 18}}, "time: ", "not a moment"),
        # in the future / beyond the head
        ((acme.as_of, "board"), {"time": "2999-01-01"}, "time: ", "in the future"),
        ((acme.as_of, "board"), {"time": {"us": 10 ** 18}}, "time: ", "in the future"),
        ((acme.as_of, "board"), {"position": head + 1}, "position: ", "beyond the head"),
        # malformed
        ((acme.as_of, "board"), {"time": "yesterday"}, "time: ", "not an ISO date"),
        ((acme.as_of, "board"), {"time": "2026-02-30"}, "time: ", "not an ISO date"),
        ((acme.as_of, "board"), {"position": "7"}, "position: ", "must be an integer"),
        ((acme.as_of, "board"), {}, "position: ", "give a position or a time"),
        # diff: the same, naming since / until
        ((acme.diff, -1), {}, "since: ", "not a position"),
        ((acme.diff, {"us": week_end_us(5)}), {"until": "2999-01-01"}, "until: ", "in the future"),
        ((acme.diff, head + 10), {}, "since: ", "beyond the head"),
        ((acme.diff, "last week"), {}, "since: ", "not an ISO date"),
        ((acme.diff, 1.5), {}, "since: ", "a position"),
        ((acme.diff, {"us": "soon"}), {}, "since: ", "microseconds"),
    ]
    for (call, *args), kwargs, field, words in cases:
        error = refused(call, *args, **kwargs)
        assert error.exc_type == "ValidationError", (args, kwargs, error)
        assert error.value.startswith(field) and words in error.value, (args, kwargs, error.value)
    # before the tenant's first event (time is exclusive: the first event's own instant is
    # before it too; positions are global): the empty state, as for a tenant without events
    nobody = world.rpc(tenant_id="initech")
    empty = [(acme, {"time": "2000-01-01"}), (acme, {"time": {"us": first}}), (acme, {"time": {"us": -5}}),
             (acme, {"position": 0}), (acme, {"position": first_position - 1}),
             (nobody, {"time": {"us": week_end_us(5)}}), (nobody, {"position": head})]
    for rpc, at in empty:
        board = rpc.as_of("board", **at)
        assert not any(c["cards"] for c in board["key_results"] + board["initiatives"]), at
        assert rpc.as_of("model", **at) == {"cycles": {}, "objectives": {}, "key_results": {}, "initiatives": {},
                                            "history": {}}, at
    # parameters the read model does not take, lack, or cannot read: ValidationError naming params
    for params, field in (({"owner": "x"}, "params: "), ({}, "params: "), ({"team_id": ["a"]}, "params.team_id: ")):
        error = refused(acme.as_of, "team_dashboard", position=head, **params)
        assert error.exc_type == "ValidationError" and error.value.startswith(field), (params, error.value)
    # and a good instant still answers
    assert acme.as_of("board", time={"us": first + 1})["tenant"] == "acme"


def test_rpc_references_that_name_nothing_are_not_found_filters_select_nothing(world):
    acme = world.rpc(tenant_id="acme")
    cycle, kr = acme_cycle(world.events), first_kr(world.events)
    head = world.store.head_position()
    calls = [  # (RPC, args, kwargs) naming a cycle that is not acme's: unknown, and globex's
        (acme.board, (), {}), (acme.team_dashboard, ("growth",), {}), (acme.person_dashboard, ("carla",), {}),
        (acme.key_result_statuses, (), {}), (acme.alignment_tree, (), {})]
    for call, args, kwargs in calls:
        for unknown in ("no-such-cycle", "gx-q1"):
            error = refused(call, *args, cycle_id=unknown, **kwargs)
            assert error.exc_type == "NotFound" and error.value == f"cycle {unknown!r} not found", (call, error)
        assert call(*args, cycle_id=cycle, **kwargs) is not None
    # team, owner and person are filters: a value that names nothing selects nothing
    board = acme.board(team_id="no-such-team", owner="nobody")
    assert not any(c["cards"] for c in board["key_results"] + board["initiatives"])
    assert acme.team_dashboard("no-such-team")["objectives"] == []
    # as of an instant: the entity must have existed then
    defined = next(e for e in world.events if e.tenant_id == "acme" and e.event_type == "okr.v1.KeyResultDefined"
                   and e.data["key_result_id"] == kr)
    for read_model in ("key_result_status", "kr_history"):
        error = refused(acme.as_of, read_model, position=defined.position - 1, key_result_id=kr)
        assert error.exc_type == "NotFound", error
        assert error.value == f"key result {kr!r} not found as of position {defined.position - 1}: it did not " \
                              "exist then", error.value
        assert acme.as_of(read_model, position=defined.position, key_result_id=kr)["key_result_id"] == kr
        error = refused(acme.as_of, read_model, position=head, key_result_id="gx-kr-1")  # globex's
        assert error.exc_type == "NotFound" and error.value.startswith("key result 'gx-kr-1' not found as of")
    for read_model, params in (("scorecard", {"cycle_id": "gx-q1"}), ("board", {"cycle_id": "gx-q1"}),
                               ("objective_rollup", {"objective_id": "gx-o"}),
                               ("alignment_tree", {"cycle_id": "no-such-cycle"})):
        error = refused(acme.as_of, read_model, time={"us": defined.recorded_at_us + 1}, **params)
        assert error.exc_type == "NotFound" and " not found as of 20" in error.value, (read_model, error.value)
