"""The message bus: events leave the event store through the outbox relay and reach
consumers on the RabbitMQ topic exchange ``okr.events`` (docs/events.md)."""
