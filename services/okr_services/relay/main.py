"""The outbox relay process: publishes the event store to RabbitMQ (okr_shared.bus.relay).

    python -m okr_services.relay                      # one relay; run two or more for a hot standby
    python -m okr_services.relay replay --from-position 1 --queue my-service.okr [--binding KEY ...]

Configuration: ``OKR_DATABASE_URL`` and ``AMQP_URI`` (okr_shared.config.Settings); the
options below override the tuning defaults. Logs are JSON lines on stderr
(``OKR_LOG_FORMAT``, ``OKR_LOG_LEVEL``); metrics on ``OKR_METRICS_PORT`` (default 9465;
docs/observability.md). SIGTERM or
SIGINT: the relay finishes its window, saves the checkpoint, releases the lease (a
standby takes over at once) and exits 0.

``--exit-after-confirm`` (hidden, for fault tests) exits with status 75 right after the
first window is confirmed and before its checkpoint is saved.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time

from okr_shared.bus import wire
from okr_shared.config import Settings, log_level_setting

#: Exit status of ``--exit-after-confirm``.
EXIT_AFTER_CONFIRM = 75

#: The options of a relay that are ``Relay``'s keyword arguments of the same name:
#: (flag, argparse keywords).
RELAY_OPTIONS = (
    ("--exchange", dict(default=wire.EXCHANGE, help=f"topic exchange (default {wire.EXCHANGE})")),
    ("--name", dict(default=None, help="checkpoint and lease name (default: the exchange)")),
    ("--window", dict(type=int, default=500, help="messages per confirm window (default 500)")),
    ("--poll-interval", dict(type=float, default=0.01, help="longest wait between polls when idle (0.01)")),
    ("--busy-poll-interval", dict(
        type=float, default=0.002,
        help="wait after a published window; doubles per empty poll up to --poll-interval (0.002)")),
    ("--checkpoint-interval", dict(
        type=float, default=0.1,
        help="at most one checkpoint save per this many seconds under load; 0: after every window "
             "(default 0.1; ADR 0014)")),
    ("--confirm-timeout", dict(type=float, default=10.0, help="seconds (default 10)")),
    ("--lease-ttl", dict(type=float, default=5.0, help="seconds (default 5)")),
    ("--lease-renew-interval", dict(type=float, default=1.0, help="seconds (default 1)")),
)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr (``OKR_LOG_FORMAT=text`` for text), at ``level``."""
    from okr_shared.observability.logs import configure_logging as configure

    configure(level=level)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m okr_services.relay", description=__doc__.split("\n\n")[0])
    p.add_argument("--log-level", default=log_level_setting())
    sub = p.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run one relay (the default)")
    for parser, suppress in ((p, False), (run, True)):
        # Defaults live on the top parser only, so `--window 100 run` keeps 100.
        def option(*names, _parser=parser, _suppress=suppress, **kw):
            if _suppress:
                kw["default"] = argparse.SUPPRESS
            _parser.add_argument(*names, **kw)

        for flag, keywords in RELAY_OPTIONS:
            option(flag, **keywords)
        option("--exit-after-confirm", action="store_true", help=argparse.SUPPRESS)
    rp = sub.add_parser("replay", help="publish a position range straight to one queue")
    rp.add_argument("--queue", required=True, help="the (existing) queue to fill")
    rp.add_argument("--from-position", type=int, default=1)
    rp.add_argument("--to-position", type=int, default=None, help="default: the head now")
    rp.add_argument("--window", type=int, default=500)
    rp.add_argument("--binding", action="append", default=None, metavar="KEY",
                    help="a binding key of the queue (repeatable; default '#': every event of the range); "
                         "give the queue's own keys to receive exactly what live traffic brings it")
    return p.parse_args(argv)


def run_relay(args: argparse.Namespace, settings: Settings) -> int:
    from okr_shared.bus.relay import Relay
    from okr_shared.eventstore import make_engine
    from okr_shared.service_layer.bootstrap import SchemaNotCurrent, check_schema

    from okr_shared.observability import lag, server

    log = logging.getLogger("okr.relay")
    try:
        server.check_from_env("relay")
    except ValueError as e:
        log.error(str(e))
        return 2
    engine = make_engine(settings.database_url)
    try:
        check_schema(engine)
    except SchemaNotCurrent as e:
        log.error(str(e))
        return 2
    # OKR_METRICS_PORT (9465): relay lag (also of a standby: it reads the checkpoints),
    # events published
    lag.track_store("relay", engine)
    server.serve_from_env("relay")

    def exit_after_confirm(first: int, last: int) -> None:
        log.warning("exiting after the confirms of positions %d..%d, before the checkpoint", first, last,
                    extra={"first": first, "last": last})
        logging.shutdown()
        os._exit(EXIT_AFTER_CONFIRM)

    try:
        relay = Relay(
            engine,
            settings.amqp_uri,
            **{name: getattr(args, name) for name in (flag[2:].replace("-", "_") for flag, _ in RELAY_OPTIONS)},
            on_confirmed=exit_after_confirm if args.exit_after_confirm else None,
        )
    except ValueError as e:  # a bad option value: one line naming it
        log.error(str(e))
        return 2

    def on_signal(signum, _frame):
        log.info("%s: stopping", signal.Signals(signum).name)
        relay.stop(timeout=0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    from okr_shared.runtime import freeze_startup_objects

    freeze_startup_objects()  # no full GC pass over the startup objects mid-window
    try:
        relay.run()
    finally:
        lag.untrack_store("relay")
        engine.dispose()
    return 0


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    import amqp

    from okr_shared.bus.relay import ReplayFailed, replay
    from okr_shared.eventstore import make_engine

    log = logging.getLogger("okr.relay.replay")
    engine = make_engine(settings.database_url)
    started = time.monotonic()
    try:
        count = replay(engine, settings.amqp_uri, args.queue, args.from_position, args.to_position, window=args.window,
                       bindings=args.binding or ("#",))
    except (amqp.exceptions.NotFound, ValueError) as e:  # no such queue; an empty --binding
        log.error(str(e), extra={"queue": args.queue})
        return 2
    except ReplayFailed as e:
        log.error("%s; rerun with --from-position %d", e, e.confirmed_up_to + 1,
                  extra={"queue": args.queue, "confirmed_up_to": e.confirmed_up_to})
        return 1
    finally:
        engine.dispose()
    log.info("replayed %d events into %s", count, args.queue,
             extra={"queue": args.queue, "count": count, "seconds": round(time.monotonic() - started, 3)})
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        configure_logging(args.log_level.upper())
    except ValueError as e:
        print(f"okr relay: {e}", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    if args.command == "replay":
        return run_replay(args, settings)
    return run_relay(args, settings)
