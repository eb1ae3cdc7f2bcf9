"""A stand-in EventStream server for the Ctrl-C tests of ``okr events tail`` (run as a
plain process: ``python tail_stub_server.py MODE``). It prints ``port N`` once serving,
then, for the call it receives, ``call`` when the call arrives and ``held`` when it
holds the stream at the moment MODE names:

- ``before-headers``: nothing sent yet (the client is still setting the stream up);
- ``after-headers``: the response headers sent, no event;
- ``after-first``: one event sent (the client has printed a line).

It holds until the client cancels the call."""

from __future__ import annotations

import sys
import time
from concurrent import futures

import grpc

from okr.v1 import events_pb2, stream_pb2_grpc


class HeldStream(stream_pb2_grpc.EventStreamServicer):
    def __init__(self, mode: str):
        self.mode = mode

    def StreamEvents(self, request, context):
        print("call", flush=True)
        if self.mode != "before-headers":
            context.send_initial_metadata(())
        if self.mode == "after-first":
            yield events_pb2.EventEnvelope(position=1, event_type="okr.v1.CyclePlanned", stream_id="cycle-q1",
                                           tenant_id="acme")
        print("held", flush=True)
        while context.is_active():
            time.sleep(0.02)


def main(mode: str) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    stream_pb2_grpc.add_EventStreamServicer_to_server(HeldStream(mode), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"port {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main(sys.argv[1])
