"""The services' RPC replies go out without publisher confirms unless
OKR_RPC_REPLY_CONFIRMS=1 (ADR 0014); every entrypoint shares the one consumer."""

import os
import subprocess
import sys

from nameko.amqp.publish import Publisher

from okr_services import common
from okr_services.goal.service import GoalService
from okr_services.progress.service import ProgressService


def test_replies_are_published_without_confirms_by_default():
    assert common._ReplyPublisher.use_confirms is False
    assert common._ReplyPublisher.transport_options["confirm_publish"] is False
    # nameko's own publishers keep their (shared, class-level) options
    assert Publisher.transport_options is not common._ReplyPublisher.transport_options


def test_every_rpc_entrypoint_of_the_services_replies_through_our_consumer():
    for service in (GoalService, ProgressService):
        entrypoints = [getattr(service, name) for name in dir(service)
                       if hasattr(getattr(service, name), "nameko_entrypoints")]
        assert entrypoints
        for method in entrypoints:
            for entrypoint in method.nameko_entrypoints:
                assert type(entrypoint) is common._Rpc
                assert type(entrypoint.rpc_consumer) is common._RpcConsumer


def test_okr_rpc_reply_confirms_1_restores_confirms():
    env = {**os.environ, "OKR_RPC_REPLY_CONFIRMS": "1"}
    out = subprocess.run([sys.executable, "-c", "import okr_services.common as c; "
                          "print(c._ReplyPublisher.use_confirms, c._ReplyPublisher.transport_options['confirm_publish'])"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
