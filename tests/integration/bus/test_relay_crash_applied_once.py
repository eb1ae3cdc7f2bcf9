"""Fault: the outbox relay dies between the broker's confirms and its checkpoint. The
restarted relay publishes the same events again; the consumer layer applies each once."""

from __future__ import annotations

import subprocess
import sys

from okr_shared.bus.relay import load_checkpoint

from .consumer_fixtures import (  # noqa: F401 - fixtures
    append_check_ins,
    bus,
    consumer_db,
    consumer_service,
    entrypoint,
    run_consumer,
    wait_until,
)

FAST_LEASE = ("--lease-ttl", "2", "--lease-renew-interval", "0.4", "--poll-interval", "0.005")


def test_a_relay_killed_between_publish_and_checkpoint_publishes_again_and_each_event_is_applied_once(
    database, store, consumer_db, bus, run_consumer, relay_env  # noqa: F811
):
    queue = bus.queue_name()
    container = run_consumer(consumer_service("a", queue, bus, consumer_db))
    append_check_ins(store, 40)
    relay = [sys.executable, "-m", "okr_services.relay", "--exchange", bus.exchange, *FAST_LEASE]

    crashed = subprocess.run([*relay, "--exit-after-confirm"], env=relay_env, capture_output=True, timeout=60)
    assert crashed.returncode == 75, crashed.stderr.decode()[-2000:]
    assert load_checkpoint(database.engine, bus.exchange) == 0, "confirmed, but the checkpoint was never saved"
    wait_until(lambda: consumer_db.count() == 40, message="the first publication applied")

    restarted = subprocess.Popen(relay, env=relay_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # the new relay takes over the dead one's lease, publishes all 40 again, checkpoints
        wait_until(lambda: load_checkpoint(database.engine, bus.exchange) == 40, timeout=30,
                   message="the restarted relay's checkpoint")
        stats = entrypoint(container).stats
        wait_until(lambda: stats.duplicates >= 40, message="the republished copies reached the consumer")
    finally:
        restarted.terminate()
        assert restarted.wait(timeout=30) == 0, restarted.stderr.read().decode()[-2000:]

    assert consumer_db.count() == 40
    assert consumer_db.positions() == list(range(1, 41))
    assert stats.applied == 40
