"""The ``okr`` commands that talk to the public gRPC API (docs/api.md), so they work
against any deployment — only an address and an API key are needed:

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

import contextlib
import json
import os
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


class Api:
    """The connection settings of one command and its stubs."""

    def __init__(self, api: str, key: str | None, timeout: float, as_json: bool):
        self.address, self.key, self.timeout, self.json = api, key or "", timeout, as_json
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
        from okr.v1 import audit_pb2_grpc, goal_pb2_grpc, progress_pb2_grpc, reporting_pb2_grpc, stream_pb2_grpc

        cls = {"goal": goal_pb2_grpc.GoalServiceStub, "progress": progress_pb2_grpc.ProgressServiceStub,
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
        if code == S.UNAUTHENTICATED:
            if not self.key:
                return ApiError("no API key was given — set --key or OKR_API_KEY (create one with "
                                "`okr keys create`)", EXIT_AUTH)
            return ApiError(f"the API key was refused ({label}) — check --key/OKR_API_KEY or create one "
                            "with `okr keys create`", EXIT_AUTH)
        if code == S.PERMISSION_DENIED:
            return ApiError(f"not allowed ({label}) — use a key whose role may do this "
                            "(`okr keys create`)", EXIT_AUTH)
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
                            "check it with `okr board` or `okr history`", EXIT_INVALID)
        if code == S.UNAVAILABLE:
            unreachable = r"failed to connect|connection refused|DNS resolution|errors resolving|Socket closed"
            if re.search(unreachable, details, re.I):
                return ApiError(f"cannot reach the API at {self.address} ({details}) — is the gateway "
                                "running? set --api or OKR_API_URL", EXIT_UNAVAILABLE)
            return ApiError(f"the API is unavailable ({label}) — retry later (a check-in with the same "
                            "--command-id)", EXIT_UNAVAILABLE)
        if code == S.DEADLINE_EXCEEDED:
            return ApiError(f"no answer within {self.timeout:g} s from {self.address} — retry, or raise "
                            "--timeout (a check-in with the same --command-id)", EXIT_UNAVAILABLE)
        if code in (S.ABORTED, S.RESOURCE_EXHAUSTED):
            return ApiError(f"{label} — retry (a check-in with the same --command-id)", EXIT_UNAVAILABLE)
        if code == S.CANCELLED:
            return ApiError(f"the call was cancelled ({label}) — run it again", EXIT_UNAVAILABLE)
        return ApiError(f"the server failed ({label}) — see the gateway's log, then retry", EXIT_SERVER)

    def close(self):
        if self._channel is not None:
            self._channel.close()


# ---------------------------------------------------------------------------- plumbing


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
            _fail(str(e), e.code)
        except KeyboardInterrupt:
            _fail("interrupted — nothing more was sent", 130)
        except OSError as e:
            _fail(f"{e} — check the path and permissions", EXIT_INVALID)
        finally:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing must never turn into a traceback
                pass

    return wrapper


def _fail(message: str, code: int):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _to_dict(message) -> dict:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(message, preserving_proto_field_name=True)


def _emit_json(value) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False))


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _valid_date(ctx, param, value):
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


def _fmt_pct(value) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _opt(message, field):
    return getattr(message, field) if message.HasField(field) else None


def _table(rows: list[list[str]], headers: list[str]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*headers).rstrip()] + [fmt.format(*map(str, r)).rstrip() for r in rows]


def _short(text: str, width: int = 48) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render_board(board) -> list[str]:
    lines = [f"board on {board.today}" + "".join(
        f", {k} {v}" for k, v in (("cycle", board.filters.cycle_id), ("team", board.filters.team_id),
                                  ("owner", board.filters.owner)) if v)]
    for title, columns, kr in (("KEY RESULTS", board.key_results, True), ("INITIATIVES", board.initiatives, False)):
        lines.append("")
        lines.append(f"== {title} ==")
        for column in columns:
            lines.append(f"[{column.status}] ({len(column.cards)})")
            if not column.cards:
                continue
            rows = []
            for c in column.cards:
                if kr:
                    conf = _opt(c, "confidence")
                    days = _opt(c, "days_since_check_in")
                    rows.append([c.id, _short(c.title), c.owner or "-", _fmt_pct(_opt(c, "progress")),
                                 "-" if conf is None else f"{conf}/10" + {"up": " ↑", "down": " ↓"}.get(
                                     c.confidence_trend, ""),
                                 "-" if days is None else f"{days}d"])
                else:
                    rows.append([c.id, _short(c.title), c.owner or "-", _fmt_pct(_opt(c, "progress")),
                                 c.state or "-", c.due_date or "-"])
            headers = (["id", "title", "owner", "progress", "confidence", "since check-in"] if kr
                       else ["id", "title", "assignee", "progress", "state", "due"])
            lines.extend("  " + line for line in _table(rows, headers))
    return lines


def _when(ts) -> str:
    return ts.ToDatetime(tzinfo=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------- commands


@click.command("board")
@click.option("--cycle", default="", help="Only this cycle (default: every cycle that is not closed).")
@click.option("--team", default="", help="Only cards of this team's objectives.")
@click.option("--owner", default="", help="Only key results owned by / initiatives assigned to this person.")
@click.option("--today", default=None, callback=_valid_date, help="Day to compute statuses on, YYYY-MM-DD.")
@api_options
def board_command(api: Api, cycle, team, owner, today):
    """The kanban board: one column per status, cards with owner, progress,
    confidence and days since the last check-in."""
    from okr.v1 import reporting_pb2

    board = api.call(api.stub("reporting").GetBoard,
                     reporting_pb2.GetBoardRequest(cycle_id=cycle, team_id=team, owner=owner, today=today or ""))
    if api.json:
        _emit_json(_to_dict(board))
    else:
        click.echo("\n".join(render_board(board)))


@click.command("checkin")
@click.argument("key_result")
@click.argument("value", type=float)
@click.option("--confidence", type=int, required=True, help="Confidence of reaching the target, 0-10.")
@click.option("--date", "effective_date", default=None, callback=_valid_date,
              help="Day the value applies to, YYYY-MM-DD (default: today).")
@click.option("--comment", default="", help="Free-text comment.")
@click.option("--command-id", default="", help="Idempotency key: retry with the same one after exit 6.")
@click.option("--check-in-id", default="", help="Id of the new check-in (default: generated).")
@api_options
def checkin_command(api: Api, key_result, value, confidence, effective_date, comment, command_id, check_in_id):
    """Record a check-in of VALUE on KEY_RESULT (you are its author)."""
    from okr.v1 import progress_pb2

    result = api.call(api.stub("progress").RecordCheckIn, progress_pb2.RecordCheckInRequest(
        check_in_id=check_in_id, key_result_id=key_result, value=value, confidence=confidence,
        effective_date=effective_date or "", comment=comment, command_id=command_id))
    if api.json:
        _emit_json(_to_dict(result))
        return
    again = " (already stored by an earlier call with this --command-id)" if result.already_stored else ""
    click.echo(f"check-in {result.created_id} recorded on {key_result}{again}: stream {result.stream_id} "
               f"version {result.stream_version}, position {result.last_position}")


@click.command("history")
@click.argument("key_result", required=False)
@click.option("--stream", "stream_id", default=None, help="Any stream id instead of a key result, e.g. objective-o1.")
@click.option("--page-size", type=click.IntRange(1, 1000), default=200, show_default=True)
@api_options
def history_command(api: Api, key_result, stream_id, page_size):
    """Who changed KEY_RESULT, when, what and why (every page)."""
    from okr.v1 import audit_pb2

    if bool(key_result) == bool(stream_id):
        raise click.UsageError("give a KEY_RESULT or --stream (one of them)")
    stub, entries, token, listed = api.stub("audit"), [], "", ""
    while True:
        request = audit_pb2.GetHistoryRequest(page_size=page_size, page_token=token)
        if key_result:
            request.key_result_id = key_result
        else:
            request.stream_id = stream_id
        page = api.call(stub.GetHistory, request)
        listed = page.stream_id
        entries.extend(page.entries)
        token = page.next_page_token
        if not token:
            break
    if api.json:
        _emit_json({"stream_id": listed, "entries": [_to_dict(e) for e in entries]})
        return
    rows = []
    for e in entries:
        payload = dict(e.payload.items()) if e.payload else {}
        detail = ""
        if "value" in payload:
            detail = f"value {payload['value']:g}" + (f", confidence {int(payload['confidence'])}"
                                                      if "confidence" in payload else "")
            if payload.get("effective_date"):  # the day the value is about (may be back-dated)
                detail += f", for {payload['effective_date']}"
            if payload.get("comment"):
                detail += f", \"{_short(payload['comment'], 30)}\""
        rows.append([e.position, _when(e.recorded_at), e.actor or "-", e.what or e.event_type.split(".")[-1],
                     _short(e.reason, 30) or "-", detail or "-"])
    click.echo(f"history of {listed} ({len(entries)} events)")
    click.echo("\n".join(_table(rows, ["position", "when", "who", "what", "why", "details"])))


READ_MODELS = ("board", "team_dashboard", "person_dashboard", "scorecard", "kr_history", "key_result_status",
               "key_result_statuses", "objective_rollup", "alignment_tree", "model")


def _param(ctx, param, values):
    out = {}
    for item in values:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r}: give NAME=VALUE, e.g. cycle_id=q1")
        try:
            out[name] = json.loads(raw) if raw in ("true", "false") or re.fullmatch(r"-?\d+(\.\d+)?", raw) else raw
        except ValueError:
            out[name] = raw
    return out


@click.command("replay")
@click.option("--as-of", "as_of", required=True,
              help="A store position (inclusive), a date YYYY-MM-DD or a moment ISO-8601 (exclusive).")
@click.option("--read-model", type=click.Choice(READ_MODELS), default="board", show_default=True)
@click.option("--param", "params", multiple=True, callback=_param,
              help="A read model argument NAME=VALUE (repeatable), e.g. cycle_id=q1.")
@click.option("--today", default=None, callback=_valid_date, help="Day the figures are computed on.")
@api_options
def replay_command(api: Api, as_of, read_model, params, today):
    """A read model as it was at an instant, replayed from the event store."""
    from google.protobuf.json_format import MessageToDict, ParseDict

    from okr.v1 import audit_pb2, reporting_pb2

    request = audit_pb2.ReplayAsOfRequest(read_model=audit_pb2.ReadModel.Value(f"READ_MODEL_{read_model.upper()}"),
                                          at=parse_instant(as_of, "--as-of"), today=today or "")
    request.params.update(params)
    answer = api.call(api.stub("audit").ReplayAsOf, request)
    result = MessageToDict(answer.result) if answer.HasField("result") else None
    if api.json:
        _emit_json({"read_model": read_model, "today": answer.today, "position": answer.position, "result": result})
        return
    click.echo(f"{read_model} as of {as_of} (last event folded: position {answer.position}; "
               f"today {answer.today or '-'})")
    if read_model == "board" and isinstance(result, dict):
        board = ParseDict(result, reporting_pb2.Board(), ignore_unknown_fields=True)
        click.echo("\n".join(render_board(board)[1:]))
    else:
        _emit_json(result)


@click.command("diff")
@click.option("--since", required=True, help="The earlier instant: position, date YYYY-MM-DD or ISO moment.")
@click.option("--until", default=None, help="The later instant (default: now, the live read model).")
@api_options
def diff_command(api: Api, since, until):
    """What changed between two instants: check-ins, status changes, adjustments, new key
    results, slipped initiatives (the weekly review)."""
    from okr.v1 import reporting_pb2

    request = reporting_pb2.GetDiffRequest(since=parse_instant(since, "--since"))
    if until:
        request.until.CopyFrom(parse_instant(until, "--until"))
    diff = api.call(api.stub("reporting").GetDiff, request)
    data = _to_dict(diff)
    if api.json:
        _emit_json(data)
        return
    click.echo(f"changes from {diff.today_before} to {diff.today_after}")
    sections = (("check-ins", "check_ins"), ("status changes", "status_changes"), ("adjustments", "adjustments"),
                ("new key results", "new_key_results"), ("slipped initiatives", "slipped_initiatives"))
    for title, key in sections:
        items = data.get(key, [])
        click.echo(f"{title}: {len(items)}")
        for item in items:
            click.echo("  " + _short(_diff_line(key, item), 150))


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _diff_line(section: str, item: dict) -> str:
    g = item.get
    if section == "status_changes":
        before, after = g("from_status") or g("from") or "(new)", g("to_status") or g("to") or "?"
        return f"{g('key_result_id')}: {before} → {after} ({g('owner', '-')})"
    if section == "check_ins":
        return (f"{g('key_result_id', '?')}: {g('what', 'check_in')} value {_num(g('value'))}, confidence "
                f"{_num(g('confidence'))} by {g('author') or g('actor') or '-'} on {g('effective_date', '-')}"
                + ("" if g("in_force", True) else " (superseded)"))
    if section == "new_key_results":
        return f"{g('key_result_id')}: \"{g('title', '')}\" owned by {g('owner', '-')}"
    if section == "slipped_initiatives":
        return f"{g('initiative_id')}: {g('change')} (due {g('due_date', '-')}, {g('assignee', '-')})"
    if section == "adjustments":
        changes = g("changes") or {}
        what = ", ".join(f"{k} {_num(v.get('old'))} → {_num(v.get('new'))}" for k, v in changes.items()
                         if isinstance(v, dict))
        reason = f" — {g('reason')}" if g("reason") else ""
        return f"{g('key_result_id')}: {g('what', 'adjusted')} {what}".rstrip() + reason
    return ", ".join(f"{k}={_num(v)}" for k, v in item.items() if v not in ("", None, [], {}))


# ---------------------------------------------------------------------------- audit


@click.group("audit")
def audit_group():
    """The tenant's hash chain: verify it, export it (okr.export.v1)."""


@audit_group.command("verify")
@click.option("--expected-head", default="", help="An anchored chain hash (64 hex) that must be in the chain.")
@click.option("--expected-position", type=click.IntRange(1), default=None,
              help="The position the anchor was recorded at (needs --expected-head).")
@api_options
def audit_verify_command(api: Api, expected_head, expected_position):
    """Recompute the tenant's hash chain on the server; exit 1 when it is broken or the
    anchor (an earlier chain head: the latest or an older one) does not match."""
    from okr.v1 import audit_pb2

    request = audit_pb2.VerifyChainRequest(expected_head=expected_head, expected_head_position=expected_position or 0)
    answer = api.call(api.stub("audit").VerifyChain, request)
    if api.json:
        _emit_json(_to_dict(answer) | {"ok": answer.ok})
    elif answer.ok:
        head = answer.chain_head
        anchor = (f"; expected head matched at position {answer.expected_head_position} "
                  f"({answer.events_after_anchor} later event(s) verified)" if answer.anchor_matched else "")
        click.echo(f"chain ok: {answer.events_checked} events checked; head {head.last_hash or '-'} at position "
                   f"{head.last_position} ({head.event_count} events){anchor}")
    else:
        where = f" at position {answer.first_bad_position} (event {answer.first_bad_event_id})" \
            if answer.first_bad_position else ""
        click.echo(f"chain BROKEN{where}: {answer.reason} ({answer.events_checked} events checked)")
    sys.exit(EXIT_OK if answer.ok else EXIT_NO)


@audit_group.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@click.option("--chunk-bytes", type=click.IntRange(1024, 4 * 1024 * 1024), default=None,
              help="Preferred chunk size (default: the server's, 1 MiB).")
@api_options
def audit_export_command(api: Api, file, chunk_bytes):
    """Write the tenant's whole history to FILE (okr.export.v1 JSON lines) and print the
    chain head to anchor; verify it offline with examples/verify_export.py."""
    import grpc

    from okr.v1 import audit_pb2

    stub = api.stub("audit")
    call = stub.ExportBundle(audit_pb2.ExportBundleRequest(max_chunk_bytes=chunk_bytes or 0), metadata=api.metadata)
    partial = f"{file}.part"
    written, head, expected_seq = 0, None, 0
    show = not api.json and sys.stderr.isatty()
    try:
        bar = click.progressbar(length=1, label="exporting", file=sys.stderr, show_eta=False, show_percent=False,
                                item_show_func=lambda _: f"{written:,} bytes") if show else contextlib.nullcontext()
        with open(partial, "wb") as out, bar:
            for chunk in call:
                if chunk.sequence != expected_seq:
                    raise ApiError(f"the export lost chunk {expected_seq} — run it again", EXIT_UNAVAILABLE)
                expected_seq += 1
                out.write(chunk.data)
                written += len(chunk.data)
                if show:
                    bar.render_progress()
                if chunk.HasField("chain_head"):
                    head = chunk.chain_head
    except grpc.RpcError as e:
        _remove(partial)
        raise api.error(e) from None
    except BaseException:
        _remove(partial)
        raise
    if head is None:
        _remove(partial)
        raise ApiError("the export was cut off (no chain head in the last chunk) — run it again", EXIT_UNAVAILABLE)
    os.replace(partial, file)
    if api.json:
        _emit_json({"file": file, "bytes": written, "chain_head": _to_dict(head) | {
            "last_position": head.last_position, "event_count": head.event_count, "last_hash": head.last_hash}})
        return
    click.echo(f"exported {head.event_count} events ({written:,} bytes) to {file}")
    click.echo(f"chain head: {head.last_hash or '-'} at position {head.last_position} — anchor it outside the platform")
    click.echo(f"verify offline: python examples/verify_export.py {file}"
               + (f" --expect-head {head.last_hash}" if head.last_hash else ""))


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


# ---------------------------------------------------------------------------- events


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
                click.echo(json.dumps(_to_dict(e), ensure_ascii=False))
            else:
                reason = f"  why: {_short(e.reason, 40)}" if e.reason else ""
                click.echo(f"#{e.position:<8} {_when(e.recorded_at)}  {e.event_type:<34} {e.stream_id:<24} "
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


API_COMMANDS = (board_command, checkin_command, history_command, replay_command, diff_command, audit_group,
                events_group)


def register_api_commands(group: click.Group) -> None:
    """Add the API commands to ``okr`` and the exit codes to its help."""
    for command in API_COMMANDS:
        group.add_command(command)
    group.help = (group.help or "") + "\n\n" + EXIT_CODES_HELP
