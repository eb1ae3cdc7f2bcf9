"""The services' RPC replies go out without publisher confirms unless
OKR_RPC_REPLY_CONFIRMS=1 (ADR 0014), as one publish on the process's reply channel
(JSON requests) or through nameko's Responder (other content types, confirms on);
every entrypoint shares the one consumer; the signature check of ``**fields`` commands.
The reply channel against the real broker: tests/integration/services/test_direct_replies.py."""

import json
import os
import subprocess
import sys

import pytest
from nameko.amqp.publish import Publisher
from nameko.exceptions import IncorrectSignature

from okr_services import rpc
from okr_services.goal.service import GoalService
from okr_services.progress.service import ProgressService


def test_replies_are_published_without_confirms_by_default():
    assert rpc._ReplyPublisher.use_confirms is False
    assert rpc._ReplyPublisher.transport_options["confirm_publish"] is False
    # nameko's own publishers keep their (shared, class-level) options
    assert Publisher.transport_options is not rpc._ReplyPublisher.transport_options


def test_every_rpc_entrypoint_of_the_services_replies_through_our_consumer():
    for service in (GoalService, ProgressService):
        entrypoints = [getattr(service, name) for name in dir(service)
                       if hasattr(getattr(service, name), "nameko_entrypoints")]
        assert entrypoints
        for method in entrypoints:
            for entrypoint in method.nameko_entrypoints:
                assert type(entrypoint) is rpc._Rpc
                assert type(entrypoint.rpc_consumer) is rpc._RpcConsumer


def test_okr_rpc_reply_confirms_1_restores_confirms():
    env = {**os.environ, "OKR_RPC_REPLY_CONFIRMS": "1"}
    out = subprocess.run([sys.executable, "-c", "import okr_services.rpc as c; "
                          "print(c._ReplyPublisher.use_confirms, c._ReplyPublisher.transport_options['confirm_publish'])"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]


# -- how a reply goes out (okr_services.rpc._RpcConsumer.handle_result) -------------


class _FakeMessage:
    def __init__(self, content_type="application/json", reply_to="rpc.reply-gateway-1", correlation_id="c-1"):
        self.properties = {"content_type": content_type, "content_encoding": "utf-8", "reply_to": reply_to,
                           "correlation_id": correlation_id}


class _FakeConsumer:
    def __init__(self, log):
        self.log = log

    def ack_message(self, message):
        self.log.append(("ack", message.properties["correlation_id"]))


class _FakeReplies:
    def __init__(self, log):
        self.log = log

    def publish(self, body, **kw):
        self.log.append(("publish", json.loads(body), kw))


def _consumer(monkeypatch, log):
    class Consumer(rpc._RpcConsumer):
        amqp_uri = "amqp://guest:guest@127.0.0.1:5672/"
        consumer = _FakeConsumer(log)

    consumer = Consumer()
    monkeypatch.setattr(rpc._DirectReplies, "of", classmethod(lambda cls, *a: _FakeReplies(log)))
    return consumer


def test_a_result_is_one_publish_to_the_callers_reply_queue_then_the_ack(monkeypatch):
    log = []
    result, exc_info = _consumer(monkeypatch, log).handle_result(_FakeMessage(), {"last_position": 7}, None)
    assert (result, exc_info) == ({"last_position": 7}, None)
    assert log == [("publish", {"result": {"last_position": 7}, "error": None},
                    {"exchange": "nameko-rpc", "routing_key": "rpc.reply-gateway-1", "correlation_id": "c-1",
                     "content_type": "application/json", "content_encoding": "utf-8"}),
                   ("ack", "c-1")]


def test_an_error_is_serialised_as_nameko_does(monkeypatch):
    from okr_shared.domain.errors import ValidationError

    log = []
    try:
        raise ValidationError("value", "must be a number")
    except ValidationError:
        exc_info = sys.exc_info()
    _consumer(monkeypatch, log).handle_result(_FakeMessage(), None, exc_info)
    (_, body, _), ack = log
    assert body["result"] is None
    assert body["error"]["exc_type"] == "ValidationError"
    assert "value: must be a number" in body["error"]["value"]
    assert ack == ("ack", "c-1")


def test_an_unserialisable_result_becomes_an_error_for_the_caller_not_a_dead_worker(monkeypatch):
    log = []
    result, exc_info = _consumer(monkeypatch, log).handle_result(_FakeMessage(), {"x": object()}, None)
    (_, body, _), ack = log
    assert result is None and exc_info is not None
    assert body == {"result": None, "error": {**body["error"], "exc_type": "UnserializableValueError"}}
    assert ack == ("ack", "c-1")


def test_a_request_in_another_content_type_is_answered_by_namekos_responder(monkeypatch):
    log = []
    consumer = _consumer(monkeypatch, log)
    sent = []

    class Responder:
        def __init__(self, amqp_uri, exchange, message, **kw):
            self.message = message

        def send_response(self, result, exc_info):
            sent.append((self.message.properties["content_type"], result))
            return result, exc_info

    monkeypatch.setattr(rpc, "_Responder", Responder)
    consumer.handle_result(_FakeMessage(content_type="application/x-msgpack"), 5, None)
    assert sent == [("application/x-msgpack", 5)]
    assert log == [("ack", "c-1")]


def test_reply_confirms_on_take_namekos_responder(monkeypatch):
    log, sent = [], []
    consumer = _consumer(monkeypatch, log)
    monkeypatch.setattr(rpc, "REPLY_CONFIRMS", True)

    class Responder:
        def __init__(self, *a, **kw):
            pass

        def send_response(self, result, exc_info):
            sent.append(result)
            return result, exc_info

    monkeypatch.setattr(rpc, "_Responder", Responder)
    consumer.handle_result(_FakeMessage(), 5, None)
    assert sent == [5] and log == [("ack", "c-1")]


# -- the signature check ------------------------------------------------------------


class _Container:
    service_cls = ProgressService


def _entrypoint(method_name):
    entrypoint = rpc._Rpc(expected_exceptions=())
    entrypoint.__dict__["container"] = _Container()
    entrypoint.method_name = method_name
    return entrypoint


def test_a_command_takes_any_keywords_without_binding_them():
    entrypoint = _entrypoint("record_check_in")
    entrypoint.check_signature((), {"key_result_id": "kr-1", "value": 3, "anything": "the decider says"})
    assert entrypoint._takes_any_keywords is True


def test_positional_arguments_to_a_command_are_still_refused():
    with pytest.raises(IncorrectSignature):
        _entrypoint("record_check_in").check_signature(("kr-1",), {})


def test_a_query_with_named_parameters_is_checked_as_nameko_does():
    entrypoint = _entrypoint("get_key_result")
    entrypoint.check_signature((), {"key_result_id": "kr-1"})
    assert entrypoint._takes_any_keywords is False
    with pytest.raises(IncorrectSignature):
        entrypoint.check_signature((), {"key_result": "kr-1"})
