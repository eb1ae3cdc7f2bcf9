"""The gateway's RPC client reads a reply's JSON with orjson and falls back to kombu's
decoder for what only kombu reads back (okr_services.gateway.rpc_client.decode_reply)."""

import math
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from kombu.utils import json as kombu_json

from okr_services.gateway.rpc_client import decode_reply


@pytest.mark.parametrize("result", [
    {"last_position": 12, "versions": {"kr-1": 3}, "ids": ["a", "é"], "score": 0.7, "none": None, "ok": True},
    [], "", 0, 2**63 + 5, "text with \"__type__\" in it",
])
def test_plain_replies_decode_as_kombu_would(result):
    body = kombu_json.dumps({"result": result, "error": None})
    assert decode_reply(body) == kombu_json.loads(body) == {"result": result, "error": None}


def test_kombus_tagged_values_and_non_finite_floats_come_back():
    value = {"at": datetime(2026, 11, 27, 9, 30, tzinfo=timezone.utc), "day": date(2026, 11, 27),
             "amount": Decimal("1.50")}
    assert decode_reply(kombu_json.dumps({"result": value, "error": None}))["result"] == kombu_json.loads(
        kombu_json.dumps(value))
    decoded = decode_reply(kombu_json.dumps({"result": [float("nan"), float("inf")], "error": None}))["result"]
    assert math.isnan(decoded[0]) and decoded[1] == float("inf")


def test_malformed_json_still_raises():
    with pytest.raises(ValueError):
        decode_reply('{"result": ')
