"""A service's refusal crosses RPC typed: the reply's error carries the domain error's
code and fields (``details``, okr_services.rpc.serialize_error) and the gateway builds
the status and the ``okr-*`` metadata from them, not from the message
(okr_services.gateway.server.remote_refusal; ADR 0030)."""

import json
import sys

import grpc
import pytest
from kombu.utils import json as kombu_json
from nameko.exceptions import IncorrectSignature

from okr_services import rpc
from okr_services.gateway import rpc_client
from okr_services.gateway.server import remote_refusal
from okr_shared.domain.errors import ConcurrencyConflict, NotFound, PreconditionFailed, ValidationError


def _across_rpc(exc: BaseException) -> rpc_client.RemoteError:
    """``exc`` raised in a service, as the gateway's client raises it from the reply."""
    try:
        raise exc
    except BaseException:  # noqa: BLE001 - any exception a worker raises
        exc_info = sys.exc_info()
    _, body, _, _ = rpc._reply(None, exc_info, kombu_json.dumps)
    with pytest.raises(rpc_client.RemoteError) as caught:
        rpc_client._unpack(rpc_client.decode_reply(body))
    return caught.value


@pytest.mark.parametrize("exc, code, message, metadata", [
    (ValidationError("title", "must not be empty"), grpc.StatusCode.INVALID_ARGUMENT,
     "title: must not be empty", {"okr-field": "title"}),
    (NotFound("key result", "kr-9", "as of position 41"), grpc.StatusCode.NOT_FOUND,
     "key result 'kr-9' not found as of position 41", {"okr-entity": "key result", "okr-id": "kr-9"}),
    (PreconditionFailed("objective_frozen", "the cycle is closed"), grpc.StatusCode.FAILED_PRECONDITION,
     "objective_frozen: the cycle is closed", {"okr-rule": "objective_frozen"}),
    (ConcurrencyConflict("kr-1", 5), grpc.StatusCode.ABORTED,
     "stream 'kr-1' changed concurrently 5 times; try again", {"okr-stream": "kr-1"}),
])
def test_each_domain_error_maps_to_its_status_message_and_metadata(exc, code, message, metadata):
    abort = remote_refusal(_across_rpc(exc))
    assert (abort.code, abort.message) == (code, message)
    assert abort.details == {"okr-kind": code.name.lower(), **metadata}


def test_the_reply_keeps_namekos_form_and_adds_the_details():
    error = rpc.serialize_error(ValidationError("title", "must not be empty"))
    assert error == {"exc_type": "ValidationError", "exc_path": "okr_shared.domain.errors.ValidationError",
                     "exc_args": ["title: must not be empty"], "value": "title: must not be empty",
                     "details": {"code": "invalid_argument", "field": "title"}}
    json.dumps(error)  # JSON-safe as it is


def test_fields_are_taken_from_the_details_not_read_back_from_the_message():
    # ids a message cannot give back: a quote changes repr's quoting, ": " splits a prefix
    abort = remote_refusal(_across_rpc(NotFound("objective", "it's")))
    assert abort.details["okr-id"] == "it's"
    abort = remote_refusal(_across_rpc(ValidationError("rows[2]: title", "must not be empty")))
    assert abort.details["okr-field"] == "rows[2]: title"
    abort = remote_refusal(_across_rpc(ConcurrencyConflict("o'1", 3)))
    assert abort.details["okr-stream"] == "o'1"


def test_a_message_that_looks_like_a_refusal_is_not_one():
    remote = rpc_client.RemoteError("ValidationError", "title: must not be empty")  # no details
    assert (remote.field, remote.rule, remote.code) == (None, None, None)
    assert remote_refusal(remote).code == grpc.StatusCode.INTERNAL


class _Service:
    def lookup(self, key_result_id, as_of=None):
        """A query with a required parameter."""

    def compare(self, left, right):
        """A query with two."""


class _Container:
    service_cls = _Service


def _check(method_name, kwargs, args=()):
    entrypoint = rpc._Rpc(expected_exceptions=())
    entrypoint.__dict__["container"] = _Container()
    entrypoint.method_name = method_name
    with pytest.raises(IncorrectSignature) as caught:
        entrypoint.check_signature(args, kwargs)
    return caught.value


def test_one_missing_argument_travels_as_its_name():
    abort = remote_refusal(_across_rpc(_check("lookup", {"as_of": 3})))
    assert (abort.code, abort.message) == (grpc.StatusCode.INVALID_ARGUMENT, "key_result_id: required")
    assert abort.details == {"okr-kind": "invalid_argument", "okr-field": "key_result_id"}


def test_two_missing_arguments_keep_namekos_message():
    exc = _check("compare", {})
    abort = remote_refusal(_across_rpc(exc))
    assert (abort.code, abort.message, abort.details) == (grpc.StatusCode.INVALID_ARGUMENT, str(exc),
                                                          {"okr-kind": "invalid_argument"})


def test_an_unknown_argument_keeps_namekos_message_and_names_no_field():
    exc = _check("lookup", {"key_result": "kr-1"})
    abort = remote_refusal(_across_rpc(exc))
    assert (abort.code, abort.message) == (grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    assert abort.details == {"okr-kind": "invalid_argument"}


def test_other_remote_errors_are_internal_or_permission_denied():
    assert remote_refusal(rpc_client.RemoteError("TenantMismatch", "appends[1] ...")).code == grpc.StatusCode.PERMISSION_DENIED
    abort = remote_refusal(_across_rpc(RuntimeError("boom")))
    assert (abort.code, abort.message) == (grpc.StatusCode.INTERNAL, "internal error (RuntimeError); the service logged it")


def test_namekos_responder_path_sends_the_details_too(monkeypatch):
    sent = []

    class Publisher:
        def __init__(self, amqp_uri, **kw):
            pass

        def publish(self, payload, **kw):
            sent.append((payload, kw))

    class Message:
        properties = {"content_type": "application/json", "reply_to": "rpc.reply-gateway-1", "correlation_id": "c-1"}

    monkeypatch.setattr(rpc._Responder, "publisher_cls", Publisher)
    try:
        raise PreconditionFailed("objective_frozen", "the cycle is closed")
    except PreconditionFailed:
        exc_info = sys.exc_info()
    result, returned = rpc._Responder("amqp://", "nameko-rpc", Message()).send_response(None, exc_info)
    (payload, kw), = sent
    assert (result, returned) == (None, exc_info)
    assert payload["error"]["details"] == {"code": "failed_precondition", "rule": "objective_frozen"}
    assert kw == {"serializer": "json", "exchange": "nameko-rpc", "routing_key": "rpc.reply-gateway-1",
                  "correlation_id": "c-1"}
