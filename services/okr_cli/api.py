"""What the ``okr`` commands that talk to the public gRPC API (docs/api.md) share: the
connection (``Api``), its options, the exit codes and the one-line errors. They work
against any deployment — only an address and an API key are needed — and each lives in
a module of its own (board.py, checkin.py, history.py, replay.py, diff.py, audit.py,
events.py; plan.py and demo.py too):

    okr board [--cycle C --team T --owner P --today D]   the kanban board in the terminal
    okr checkin KR VALUE --confidence N [--date D]       record a check-in
    okr history KR                                       who changed what, when and why
    okr replay --as-of TIME|POSITION [--read-model M]    a read model as it was
    okr diff --since TIME [--until TIME]                 what changed (weekly review)
    okr audit verify [--expected-head HASH [--expected-position N]]  the tenant's hash chain
    okr audit export FILE                                the verifiable okr.export.v1 file
    okr events tail [--from N] [--type T] [--follow]     the tenant's events, live

Every one of them takes ``--api`` (env OKR_API_URL, default localhost:50051), ``--key``
(env OKR_API_KEY, sent as ``authorization: ApiKey <key>``), ``--timeout`` (seconds,
default 10) and ``--json`` (machine-readable output on stdout: one JSON document, or
JSON lines for ``events tail``).

Exit codes (stable, for scripts):

    0  done
    1  the answer is "no" (``audit verify``: the chain is broken or the anchor not found)
    2  usage error (unknown option, malformed argument — click's)
    3  unauthenticated or permission denied (wrong/missing/revoked key, role may not)
    4  not found (an id that does not exist for your tenant)
    5  invalid argument or failed precondition (the request was refused as it is)
    6  unavailable, deadline exceeded or aborted (endpoint unreachable, a service down,
       an export cut off) — retry, with the same --command-id for a check-in
    7  an unexpected server error (INTERNAL / UNKNOWN)
  130  interrupted (Ctrl-C; ``events tail`` ends with 0 instead)

Every error is one line on stderr, ``error: <what is wrong> — <what to do>``, never a
traceback. grpc and the generated stubs are imported only when a command runs.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timezone

import click

EXIT_OK, EXIT_NO, EXIT_USAGE, EXIT_AUTH, EXIT_NOT_FOUND, EXIT_INVALID, EXIT_UNAVAILABLE, EXIT_SERVER = range(8)

EXIT_CODES_HELP = (
    "Exit codes of the API commands (board, checkin, history, replay, diff, audit, events): "
    "0 done; 1 the answer is no (audit verify failed); 2 usage error; "
    "3 unauthenticated / permission denied; 4 not found; "
    "5 invalid argument / failed precondition; 6 unavailable / deadline (endpoint unreachable); "
    "7 unexpected server error. Errors are one line on stderr: 'error: what — what to do'."
)

DEFAULT_API = "localhost:50051"


class ApiError(Exception):
    """Ends the command: ``error: <message>`` on stderr and the exit code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


#: The status codes whose message needs nothing but the status (``label``: ``CODE`` or
#: ``CODE: details``), the address and the timeout: status name -> (message, exit code).
_PLAIN_ERRORS = {
    "PERMISSION_DENIED": ("not allowed ({label}) — use a key whose role may do this (`okr keys create`)", EXIT_AUTH),
    "DEADLINE_EXCEEDED": ("no answer within {timeout:g} s from {address} — retry, or raise --timeout "
                          "(a check-in with the same --command-id)", EXIT_UNAVAILABLE),
    "ABORTED": ("{label} — retry (a check-in with the same --command-id)", EXIT_UNAVAILABLE),
    "RESOURCE_EXHAUSTED": ("{label} — retry (a check-in with the same --command-id)", EXIT_UNAVAILABLE),
    "CANCELLED": ("the call was cancelled ({label}) — run it again", EXIT_UNAVAILABLE),
}


class Api:
    """The connection settings of one command and its stubs."""

    def __init__(self, api: str, key: str | None, timeout: float, as_json: bool):
        self.address, self.key, self.timeout, self.json = api, key or "", timeout, as_json
        #: what a FAILED_PRECONDITION's message tells to look at (the directory commands name theirs)
        self.state_hint = "check it with `okr board` or `okr history`"
        self._channel = None

    @property
    def metadata(self):
        return (("authorization", f"ApiKey {self.key}"),) if self.key else ()

    def channel(self):
        import grpc

        if self._channel is None:
            # no wait_for_ready: a refused connection fails at once (UNAVAILABLE, exit 6)
            self._channel = grpc.insecure_channel(self.address)
        return self._channel

    def stub(self, name: str):
        from okr.v1 import (audit_pb2_grpc, directory_pb2_grpc, goal_pb2_grpc, progress_pb2_grpc, reporting_pb2_grpc,
                            stream_pb2_grpc)

        cls = {"goal": goal_pb2_grpc.GoalServiceStub, "progress": progress_pb2_grpc.ProgressServiceStub,
               "directory": directory_pb2_grpc.DirectoryServiceStub,
               "reporting": reporting_pb2_grpc.ReportingServiceStub, "audit": audit_pb2_grpc.AuditServiceStub,
               "stream": stream_pb2_grpc.EventStreamStub}[name]
        return cls(self.channel())

    def call(self, method, request):
        """A unary call with the deadline; an RpcError becomes an ApiError."""
        import grpc

        try:
            return method(request, metadata=self.metadata, timeout=self.timeout)
        except grpc.RpcError as e:
            raise self.error(e) from None

    def error(self, e) -> ApiError:
        import grpc

        code, details = e.code(), (e.details() or "").strip()
        meta = dict(e.trailing_metadata() or ()) if hasattr(e, "trailing_metadata") else {}
        S = grpc.StatusCode
        label = f"{code.name}: {details}" if details else code.name
        if code.name in _PLAIN_ERRORS:
            message, exit_code = _PLAIN_ERRORS[code.name]
            return ApiError(message.format(label=label, timeout=self.timeout, address=self.address), exit_code)
        if code == S.UNAUTHENTICATED:
            if not self.key:
                return ApiError("no API key was given — set --key or OKR_API_KEY (create one with "
                                "`okr keys create`)", EXIT_AUTH)
            return ApiError(f"the API key was refused ({label}) — check --key/OKR_API_KEY or create one "
                            "with `okr keys create`", EXIT_AUTH)
        if code == S.NOT_FOUND:
            what = f"{meta.get('okr-entity')} {meta.get('okr-id')!r}" if meta.get("okr-entity") else details
            return ApiError(f"not found: {what} — check the id (ids are per tenant; another tenant's "
                            "are not visible)", EXIT_NOT_FOUND)
        if code == S.INVALID_ARGUMENT:
            field = f" ({meta['okr-field']})" if meta.get("okr-field") else ""
            return ApiError(f"invalid argument{field}: {details} — fix the value and run it again",
                            EXIT_INVALID)
        if code == S.FAILED_PRECONDITION:
            rule = f" [{meta['okr-rule']}]" if meta.get("okr-rule") else ""
            if meta.get("okr-rule") == "command_id_reused":  # docs/api.md, "Idempotency"
                return ApiError(f"refused{rule}: {details} — give a new request a new --command-id", EXIT_INVALID)
            return ApiError(f"refused{rule}: {details} — the current state does not allow it; "
                            f"{self.state_hint}", EXIT_INVALID)
        if code == S.UNAVAILABLE:
            unreachable = r"failed to connect|connection refused|DNS resolution|errors resolving|Socket closed"
            if re.search(unreachable, details, re.I):
                return ApiError(f"cannot reach the API at {self.address} ({details}) — is the gateway "
                                "running? set --api or OKR_API_URL", EXIT_UNAVAILABLE)
            return ApiError(f"the API is unavailable ({label}) — retry later (a check-in with the same "
                            "--command-id)", EXIT_UNAVAILABLE)
        return ApiError(f"the server failed ({label}) — see the gateway's log, then retry", EXIT_SERVER)

    def close(self):
        if self._channel is not None:
            self._channel.close()



def api_options(f):
    """--api, --key, --timeout, --json; the command receives ``api: Api`` first."""
    import functools

    @click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
    @click.option("--timeout", type=click.FloatRange(min=0.001), default=10.0, show_default=True,
                  help="Seconds to wait for an answer.")
    @click.option("--key", envvar="OKR_API_KEY", default=None, help="API key (env OKR_API_KEY).")
    @click.option("--api", envvar="OKR_API_URL", default=DEFAULT_API, show_default=True,
                  help="Address host:port of the gRPC gateway (env OKR_API_URL).")
    @functools.wraps(f)
    def wrapper(api, key, timeout, as_json, **kwargs):
        client = Api(api, key, timeout, as_json)
        try:
            f(client, **kwargs)
        except ApiError as e:
            fail(str(e), e.code)
        except KeyboardInterrupt:
            fail("interrupted — nothing more was sent", 130)
        except OSError as e:
            fail(f"{e} — check the path and permissions", EXIT_INVALID)
        finally:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing must never turn into a traceback
                pass

    return wrapper


def fail(message: str, code: int):
    """End the command: ``error: <message>`` on stderr, exit ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def to_dict(message) -> dict:
    """A protobuf message as a dict (the proto's field names)."""
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(message, preserving_proto_field_name=True)


def emit_json(value) -> None:
    """The ``--json`` output: one indented JSON document on stdout."""
    click.echo(json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False))


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def valid_date(ctx, param, value):
    """click callback: an optional YYYY-MM-DD option, checked before any call."""
    if value is not None and not _DATE.match(value):
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD")
    return value


def parse_instant(value: str, name: str = "TIME"):
    """A store position (digits), a date YYYY-MM-DD or an ISO-8601 moment ('now' too;
    naive moments are UTC) → okr.v1.Instant."""
    from okr.v1 import common_pb2

    text = value.strip()
    if text.isdigit():
        if int(text) < 1:
            raise click.BadParameter("a position is >= 1", param_hint=name)
        return common_pb2.Instant(position=int(text))
    if _DATE.match(text):
        return common_pb2.Instant(date=text)
    try:
        moment = datetime.now(timezone.utc) if text.lower() == "now" else \
            datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a position (e.g. 1234), a date (2026-01-31) or a moment "
                                 "(2026-01-31T12:00:00Z)", param_hint=name) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    instant = common_pb2.Instant()
    instant.time.FromDatetime(moment.astimezone(timezone.utc))
    return instant

