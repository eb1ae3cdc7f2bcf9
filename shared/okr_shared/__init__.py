"""Common library code of the OKR services: the event store and configuration."""
