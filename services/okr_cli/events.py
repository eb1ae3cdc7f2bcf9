"""``okr events tail [--from N] [--type T] [--follow]``: the tenant's events, live
(EventStream.StreamEvents)."""

from __future__ import annotations

import json
import os
import sys

import click

from .api import Api, api_options, to_dict
from .text import iso_time, short


@click.group("events")
def events_group():
    """The tenant's event stream."""


@events_group.command("tail")
@click.option("--from", "from_position", type=click.IntRange(min=0), default=0,
              help="First global position (default: the beginning).")
@click.option("--type", "event_types", multiple=True,
              help="Only this event type (repeatable), e.g. okr.v1.CheckInRecorded or CheckInRecorded.")
@click.option("--follow/--no-follow", default=True, show_default=True,
              help="Keep following live events after catching up (Ctrl-C ends it).")
@api_options
def events_tail_command(api: Api, from_position, event_types, follow):
    """Print the tenant's events, one line each (JSON lines with --json); resume with
    --from <last position + 1>."""
    import grpc

    from okr.v1 import events_pb2, stream_pb2  # noqa: F401 - events_pb2 registers the payload types

    types = [t if "." in t else f"okr.v1.{t}" for t in event_types]
    call = None
    # The stream is opened inside the try: a Ctrl-C that lands while the channel and the
    # call are being set up ends the command as one during the stream does.
    try:
        call = api.stub("stream").StreamEvents(
            stream_pb2.StreamEventsRequest(from_position=from_position, event_types=types, follow=follow),
            metadata=api.metadata)
        for e in call:
            if api.json:
                click.echo(json.dumps(to_dict(e), ensure_ascii=False))
            else:
                reason = f"  why: {short(e.reason, 40)}" if e.reason else ""
                click.echo(f"#{e.position:<8} {iso_time(e.recorded_at)}  {e.event_type:<34} {e.stream_id:<24} "
                           f"by {e.actor or '-'}{reason}")
            sys.stdout.flush()
    except KeyboardInterrupt:
        if call is not None:
            call.cancel()
        return
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.CANCELLED:
            return
        raise api.error(e) from None
    except BrokenPipeError:  # `okr events tail | head`
        if call is not None:
            call.cancel()
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
