"""Typed domain errors. Each names what is wrong so a caller (and later the gRPC
gateway) can map it: ValidationError → INVALID_ARGUMENT, NotFound → NOT_FOUND,
PreconditionFailed → FAILED_PRECONDITION, ConcurrencyConflict → ABORTED."""

from __future__ import annotations


class DomainError(Exception):
    """Base class of every refusal by the domain model or the services."""

    code = "domain_error"


class ValidationError(DomainError):
    """A field of a command is invalid (``field`` names it, e.g. ``title``)."""

    code = "invalid_argument"

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class NotFound(DomainError):
    """The command refers to an aggregate that does not exist. ``detail`` follows the
    message (``key result 'kr-9' not found as of position 41``); the message always
    starts ``<kind> '<id>' not found``, which the gateway reads its details from."""

    code = "not_found"

    def __init__(self, kind: str, id: str, detail: str = ""):
        self.kind = kind
        self.id = id
        super().__init__(f"{kind} {id!r} not found" + (f" {detail}" if detail else ""))


class PreconditionFailed(DomainError):
    """The command is well-formed but a rule of the method forbids it now (``rule``
    is a stable identifier such as ``objective_frozen``)."""

    code = "failed_precondition"

    def __init__(self, rule: str, message: str):
        self.rule = rule
        self.message = message
        super().__init__(f"{rule}: {message}")


class ConcurrencyConflict(DomainError):
    """The stream kept changing under the command; it was retried and gave up."""

    code = "aborted"

    def __init__(self, stream_id: str, attempts: int):
        self.stream_id = stream_id
        self.attempts = attempts
        super().__init__(f"stream {stream_id!r} changed concurrently {attempts} times; try again")
