"""The outbox relay process (``python -m okr_services.relay``): its command line and
start-up are in ``okr_services.relay.main``; the relay itself is okr_shared.bus.relay."""
