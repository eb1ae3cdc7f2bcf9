"""Bad input on the reporting service's faces (SQLite and PostgreSQL, like
test_reporting_service.py): unknown ids, empty filters, unknown or malformed query
parameters, times before the first event or in the future give clear errors — HTTP 400/404
with a JSON body naming the problem, RPC ValidationError naming the field — never a 500.

(Fixtures in reporting_fixtures.py; no __init__.py in this folder.)
"""

# ruff: noqa: F811

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from nameko.exceptions import RemoteError

from fixtures.company_history import week_end_us
from okr_services.reporting import queries
from okr_services.reporting.projections import fold

from reporting_fixtures import TODAY, world  # noqa: F401 - fixture


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
        # before the first event (time is exclusive: the first event's own instant is before it too)
        ((acme.as_of, "board"), {"time": "2000-01-01"}, "time: ", "before the first event"),
        ((acme.as_of, "board"), {"time": {"us": first}}, "time: ", "before the first event"),
        ((acme.as_of, "board"), {"time": {"us": -5}}, "time: ", "before the first event"),
        ((acme.as_of, "board"), {"position": 0}, "position: ", "before the first event"),
        ((acme.as_of, "board"), {"position": -3}, "position: ", "before the first event"),
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
        ((acme.diff, "2000-01-01"), {}, "since: ", "before the first event"),
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
    if first_position > 1:  # a position before the tenant's first one
        assert "before the first event" in refused(acme.as_of, "board", position=first_position - 1).value
    # a tenant without events: every instant is before its first event
    nobody = world.rpc(tenant_id="initech")
    assert "before the first event" in refused(nobody.as_of, "board", time={"us": week_end_us(5)}).value
    # parameters the read model does not take, lack, or cannot read: ValidationError naming params
    for params, field in (({"owner": "x"}, "params: "), ({}, "params: "), ({"team_id": ["a"]}, "params.team_id: ")):
        error = refused(acme.as_of, "team_dashboard", position=head, **params)
        assert error.exc_type == "ValidationError" and error.value.startswith(field), (params, error.value)
    # and a good instant still answers
    assert acme.as_of("board", time={"us": first + 1})["tenant"] == "acme"
