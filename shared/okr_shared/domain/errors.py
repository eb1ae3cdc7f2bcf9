"""Typed domain errors. Each names what is wrong so a caller (the gRPC gateway) can map
it: ValidationError → INVALID_ARGUMENT, NotFound → NOT_FOUND, PreconditionFailed →
FAILED_PRECONDITION, ConcurrencyConflict → ABORTED.

An error's ``details`` — its ``code`` and its structured fields — travel beside its
message in the services' RPC replies (``error.details``, okr_services.rpc); the
gateway builds the status and the ``okr-*`` metadata from them, never from the message
(docs/adr/0030-errors-travel-typed-eventlet-and-grpcio-traps.md)."""

from __future__ import annotations


class DomainError(Exception):
    """Base class of every refusal by the domain model or the services."""

    code = "domain_error"
    #: The attributes that are the error's structured fields (``details``).
    fields: tuple[str, ...] = ()

    @property
    def details(self) -> dict:
        """``{"code": ..., <field>: <value>, ...}``: what a caller maps the error by (JSON-safe)."""
        return {"code": self.code, **{name: getattr(self, name) for name in self.fields}}


class _NamedRefusal(DomainError):
    """A refusal named by its one field (``fields[0]``: ``field`` or ``rule``), which
    also starts its message: ``"<name>: <message>"``."""

    def __init__(self, name: str, message: str):
        setattr(self, self.fields[0], name)
        self.message = message
        super().__init__(f"{name}: {message}")


class ValidationError(_NamedRefusal):
    """A field of a command is invalid (``field`` names it, e.g. ``title``):
    ``ValidationError(field, message)``."""

    code = "invalid_argument"
    fields = ("field",)


class NotFound(DomainError):
    """The command refers to an aggregate that does not exist. ``detail`` follows the
    message (``key result 'kr-9' not found as of position 41``); the message always
    starts ``<kind> '<id>' not found``; ``kind`` and ``id`` are its fields."""

    code = "not_found"
    fields = ("kind", "id")

    def __init__(self, kind: str, id: str, detail: str = ""):
        self.kind = kind
        self.id = id
        super().__init__(f"{kind} {id!r} not found" + (f" {detail}" if detail else ""))


class PreconditionFailed(_NamedRefusal):
    """The command is well-formed but a rule of the method forbids it now (``rule``
    is a stable identifier such as ``objective_frozen``): ``PreconditionFailed(rule,
    message)``."""

    code = "failed_precondition"
    fields = ("rule",)


class ConcurrencyConflict(DomainError):
    """The stream kept changing under the command; it was retried and gave up."""

    code = "aborted"
    fields = ("stream_id", "attempts")

    def __init__(self, stream_id: str, attempts: int):
        self.stream_id = stream_id
        self.attempts = attempts
        super().__init__(f"stream {stream_id!r} changed concurrently {attempts} times; try again")
