"""The services' reply channel (okr_services.rpc._DirectReplies) on the real broker:
a reply reaches the caller's reply queue with nameko's properties, one channel serves
every reply of the process, and a lost connection is reopened for the next reply."""

from __future__ import annotations

import json
import time
import uuid

from kombu import Connection, Exchange, Queue

from tests.infra import delete_bus_objects, require_broker
from okr_services import rpc


def _receive(conn, queue_name, n, timeout=10):
    channel, got = conn.channel(), []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        m = channel.basic_get(queue_name, no_ack=True)
        if m is None:
            time.sleep(0.01)
            continue
        got.append((json.loads(m.body), m.properties.get("correlation_id"), m.properties.get("content_type"),
                    m.delivery_info["exchange"], m.properties.get("delivery_mode")))
    return got


def test_replies_reach_the_reply_queue_and_survive_a_lost_connection():
    uri = require_broker()
    routing_key = f"rpc.reply-test-{uuid.uuid4().hex[:8]}"
    exchange = Exchange(rpc._RPC_EXCHANGE, type="topic", durable=True)  # as nameko declares it
    queue = Queue(routing_key, exchange=exchange, routing_key=routing_key, auto_delete=True)
    replies = rpc._DirectReplies(uri, None, None)
    try:
        with Connection(uri) as conn:
            queue(conn.default_channel).declare()
            publish = dict(exchange=rpc._RPC_EXCHANGE, routing_key=routing_key, content_type="application/json",
                           content_encoding="utf-8")
            replies.publish('{"result": 1, "error": null}', correlation_id="c-1", **publish)
            first_channel = replies._channel
            replies.publish('{"result": 2, "error": null}', correlation_id="c-2", **publish)
            assert replies._channel is first_channel  # one channel for every reply
            # replies are unconfirmed (ADR 0014): one still in flight when the connection
            # dies may be lost, as a caller's timeout covers — so let these two land first
            deadline = time.monotonic() + 10
            while queue(conn.default_channel).queue_declare(passive=True).message_count < 2:
                assert time.monotonic() < deadline, "the first two replies never reached the queue"
                time.sleep(0.01)

            replies._conn.connection.sock.close()  # the broker connection dies under it
            replies.publish('{"result": 3, "error": null}', correlation_id="c-3", **publish)
            assert replies._channel is not first_channel

            got = _receive(conn, routing_key, 3)
        assert [g[:2] for g in got] == [({"result": 1, "error": None}, "c-1"), ({"result": 2, "error": None}, "c-2"),
                                        ({"result": 3, "error": None}, "c-3")]
        assert {g[2:] for g in got} == {("application/json", "nameko-rpc", 2)}
    finally:
        replies.close()
        delete_bus_objects([routing_key], [])


def test_one_reply_channel_per_broker_uri():
    uri = require_broker()
    assert rpc._DirectReplies.of(uri, None, None) is rpc._DirectReplies.of(uri, None, None)
    assert rpc._DirectReplies.of(uri + "?x=1", None, None) is not rpc._DirectReplies.of(uri, None, None)
