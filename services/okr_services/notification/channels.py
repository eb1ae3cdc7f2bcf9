"""How a notification leaves the platform: one ``Channel`` per kind of destination.

Every channel answers the same three questions:

* ``validate_target(target)``: is this address usable? Returns it normalised, or raises
  ``ValueError`` naming the problem (run when a subscription is saved, not at send time).
* ``render(n)``: the payload it would send (an ``EmailMessage`` or a JSON-able dict).
* ``send(n, target, secret="", timeout=10.0)``: deliver it, or raise ``DeliveryError``
  whose ``retryable`` flag tells the delivery layer whether another attempt can help.

Kinds: ``email`` (SMTP), ``webhook`` (generic JSON POST signed with HMAC-SHA256, see
``verify_signature``), and the chat robots ``slack``, ``teams``, ``dingtalk``, ``wecom``,
``feishu``. Payload formats and retry rules: docs/notification-channels.md.

Secrets (webhook signing keys, robot secrets, the SMTP password) and webhook URLs (which
usually embed a token) never appear in a ``DeliveryError`` reason or a log line: reasons
name the host only, and every reason is scrubbed of the secret and the URL before it is
raised.

HTTP goes through ``urllib.request`` and SMTP through ``smtplib``: both use the stdlib
socket module, which eventlet makes green in the services.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import http.client
import logging
import re
import smtplib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any, Callable, Mapping

import orjson

from okr_services.notification.config import SmtpSettings
from okr_services.notification.message import DeliveryError, Notification

log = logging.getLogger(__name__)

MAX_URL_LENGTH = 2048
MAX_REPLY_BYTES = 1 << 20  # a receiver's answer is read up to 1 MiB, then cut
RETRYABLE_HTTP_STATUSES = frozenset({408, 425, 429})  # plus every 5xx
SEVERITIES = ("info", "warning", "alert")


# ---------------------------------------------------------------- the interface


class Channel:
    """One kind of destination. Subclasses set ``kind`` and implement the three methods."""

    kind: str = ""
    #: the clock used for timestamps and signatures (seconds since the epoch); tests may
    #: replace it on an instance
    clock: Callable[[], float] = staticmethod(time.time)

    def validate_target(self, target: str) -> str:
        raise NotImplementedError

    def render(self, n: Notification) -> Any:
        raise NotImplementedError

    def send(self, n: Notification, target: str, secret: str = "", timeout: float = 10.0) -> None:
        raise NotImplementedError

    def checked_target(self, target: str) -> str:
        """``validate_target`` for ``send``: a target that was accepted once but is invalid
        now is a delivery failure that no retry can fix."""
        try:
            return self.validate_target(target)
        except ValueError as e:
            tokens = _url_secrets(target)[3:] if isinstance(target, str) else ()
            raise DeliveryError(_scrub(f"invalid {self.kind} target: {e}", *tokens), retryable=False) from None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind!r}>"


# ---------------------------------------------------------------- shared helpers


def _shown(value: str, limit: int = 40) -> str:
    """A user's input quoted in an error message, cut short: a webhook URL's token sits at
    its end, so a long URL is shown by its beginning only."""
    value = value if len(value) <= limit else value[: limit - 10] + "…"
    return repr(value)


def _scrub(reason: str, *hidden: str) -> str:
    """``reason`` with every secret-bearing string replaced by ``***`` (defence in depth:
    reasons are built from hosts and status codes, but a server's reply or an exception
    text could echo what we sent)."""
    for value in sorted({h for h in hidden if h and len(h) >= 3}, key=len, reverse=True):
        reason = reason.replace(value, "***")
    return reason


def _url_secrets(url: str) -> tuple[str, ...]:
    """The parts of a webhook URL that may carry a token: the URL itself, its path and
    query, then (from index 3) every path segment or query value long enough to be one."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # not even a URL: hide it whole
        return (url, "", "", *(p for p in re.split(r"[/?&=#\s]+", url) if len(p) >= 8))
    pieces = [url, parts.path, parts.query]
    pieces += [seg for seg in parts.path.split("/") if len(seg) >= 8]
    pieces += [v for _, v in urllib.parse.parse_qsl(parts.query) if len(v) >= 8]
    return tuple(pieces)


def _excerpt(body: bytes, limit: int = 200) -> str:
    """A receiver's answer, as one printable line, for an error reason."""
    text = body.decode("utf-8", "replace")
    text = re.sub(r"\s+", " ", "".join(ch if ch.isprintable() or ch.isspace() else "?" for ch in text))
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "…"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _truncate_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode("utf-8", "ignore") + "…"


def _one_line(text: str) -> str:
    return re.sub(r"[\r\n\t]+", " ", text).strip()


def _safe_link(link: str) -> str:
    """The notification's link if it is an http(s) URL, else "" (never a javascript: or
    data: URL in an href or a button)."""
    link = (link or "").strip()
    scheme = urllib.parse.urlsplit(link).scheme.lower() if link else ""
    return link if scheme in ("http", "https") and not re.search(r"\s", link) else ""


def _sent_at(now: float) -> str:
    return datetime.fromtimestamp(now, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def notification_id(n: Notification) -> str:
    """A stable id for one notification, from its dedupe key: the generic webhook's ``id``
    and ``X-OKR-Delivery``, the e-mail's ``X-OKR-Delivery``. A retry or a redelivered event
    carries the same id, so a receiver can drop duplicates."""
    return "dlv_" + hashlib.sha256(n.dedupe_key.encode("utf-8")).hexdigest()[:32]


def validate_url(target: str, what: str = "webhook URL") -> str:
    """``target`` as a normalised http(s) URL, or ``ValueError`` naming the problem.

    Rules: at most 2048 characters, no whitespace or control characters, scheme http or
    https, a host, a valid port, no ``user:password@`` (a secret goes in the channel's
    secret, never in a URL that ends up in logs and screenshots).
    """
    if not isinstance(target, str):
        raise ValueError(f"{what} must be a string, got {type(target).__name__}")
    target = target.strip()
    if not target:
        raise ValueError(f"{what} is empty")
    if len(target) > MAX_URL_LENGTH:
        raise ValueError(f"{what} is too long ({len(target)} characters; at most {MAX_URL_LENGTH})")
    if re.search(r"[\s\x00-\x1f\x7f]", target):
        raise ValueError(f"{what} must not contain whitespace or control characters, got {_shown(target)}")
    try:
        parts = urllib.parse.urlsplit(target)
    except ValueError as e:
        raise ValueError(f"{what} is not a valid URL ({e}), got {_shown(target)}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{what} must be http(s)://host[:port]/path, got {_shown(target)}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        # the URL itself is not shown: it holds a credential
        raise ValueError(
            f"{what} must not carry credentials (user:password@host); "
            "give the secret as the subscription's secret instead"
        )
    if not parts.hostname:
        raise ValueError(f"{what} has no host: {_shown(target)}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{what} has an invalid port: {_shown(target)}") from None
    if port == 0:
        raise ValueError(f"{what} has an invalid port: {_shown(target)}")
    netloc = parts.netloc.lower()
    return urllib.parse.urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, parts.fragment))


# ---------------------------------------------------------------- HTTP


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: a POST turned into a GET loses the (signed) body, and a
    webhook that points elsewhere should be fixed where it is configured."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _socket_recorder():
    """HTTP(S) handlers whose connections remember their socket, so the response body can
    be read against the overall deadline (urllib's timeout applies per socket operation)."""
    sockets: list = []

    def remembering(base):
        class Connection(base):
            def connect(self):
                super().connect()
                sockets.append(self.sock)

        return Connection

    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(remembering(http.client.HTTPConnection), req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(
                remembering(http.client.HTTPSConnection), req, context=self._context
            )

    return sockets, HTTP(), HTTPS(context=ssl.create_default_context())


def _read_within(response, sockets: list, deadline: float) -> bytes:
    chunks, size = [], 0
    while size < MAX_REPLY_BYTES:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("reading the reply took too long")
        for sock in sockets:
            try:
                sock.settimeout(remaining)
            except OSError:
                pass
        chunk = response.read1(65536) if hasattr(response, "read1") else response.read(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:MAX_REPLY_BYTES]


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: bytes
    host: str


def post_json(
    url: str, body: bytes, headers: Mapping[str, str], timeout: float, hidden: tuple[str, ...] = ()
) -> HttpReply:
    """POST ``body`` to ``url``; the reply of a 2xx status, or ``DeliveryError``.

    Retryable: connection errors, timeouts (the whole exchange is bounded by ``timeout``),
    408/425/429 and 5xx. Not retryable: other statuses (4xx, and 3xx: redirects are not
    followed). Reasons name the host, never the URL; ``hidden`` strings are scrubbed too.
    """
    host = urllib.parse.urlsplit(url).hostname or "?"
    hidden = hidden + _url_secrets(url)
    deadline = time.monotonic() + timeout
    sockets, http_handler, https_handler = _socket_recorder()
    opener = urllib.request.build_opener(_NoRedirect(), http_handler, https_handler)
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "User-Agent": "okr-platform-notifications/1", **headers
    })

    def fail(reason: str, retryable: bool) -> DeliveryError:
        reason = _scrub(reason, *hidden)
        log.info("delivery to %s failed (%s): %s", host, "retryable" if retryable else "permanent", reason)
        return DeliveryError(reason, retryable=retryable)

    # urllib's timeout bounds each socket operation; a receiver answering one byte at a
    # time could stretch the exchange far beyond it. The watchdog shuts the socket down at
    # the deadline, whatever phase the exchange is in (a green timer under eventlet).
    expired: list[bool] = []

    def expire():
        expired.append(True)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    watchdog = threading.Timer(timeout, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        return _exchange(opener, request, sockets, deadline, timeout, host)
    except _HttpStatus:
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        cause = e.reason if isinstance(e, urllib.error.URLError) else e
        if expired or isinstance(cause, (socket.timeout, TimeoutError)):
            raise fail(f"timed out after {timeout:g} s talking to {host}", True) from None
        if isinstance(e, urllib.error.URLError):
            raise fail(f"cannot reach {host}: {_describe(cause)}", True) from None
        raise fail(f"connection to {host} failed: {_describe(e)}", True) from None
    finally:
        watchdog.cancel()


def _exchange(opener, request, sockets: list, deadline: float, timeout: float, host: str) -> HttpReply:
    """One request and its reply; a non-2xx status becomes ``_HttpStatus``."""
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        try:
            reply = _read_within(e, sockets, deadline)
        except Exception:  # the status is what matters; its body is a courtesy
            reply = b""
        finally:
            e.close()
        retryable = e.code in RETRYABLE_HTTP_STATUSES or e.code >= 500
        raise _HttpStatus(HttpReply(e.code, reply, host), retryable) from None
    with response:
        return HttpReply(response.status, _read_within(response, sockets, deadline), host)


class _HttpStatus(Exception):
    """A non-2xx answer, handed to the channel so it can read a JSON error code first."""

    def __init__(self, reply: HttpReply, retryable: bool):
        super().__init__(reply.status)
        self.reply = reply
        self.retryable = retryable


def _describe(error: Any) -> str:
    if isinstance(error, BaseException):
        text = str(error) or type(error).__name__
        return f"{type(error).__name__}: {text}" if type(error).__name__ not in text else text
    return str(error)


class HttpChannel(Channel):
    """A channel that POSTs JSON to a URL. Subclasses build the payload (``render``), may
    sign the request (``prepare``) and may check a 2xx reply's body (``check_reply``)."""

    def validate_target(self, target: str) -> str:
        return validate_url(target, f"{self.kind} webhook URL")

    def prepare(self, n: Notification, url: str, secret: str) -> tuple[str, bytes, dict[str, str]]:
        """(url, body, headers) of the request."""
        return url, orjson.dumps(self.render(n)), {"Content-Type": "application/json"}

    def check_reply(self, reply: HttpReply) -> None:
        """Raise ``DeliveryError`` if a 2xx reply says the message was not accepted."""

    def explain_status(self, reply: HttpReply, retryable: bool) -> DeliveryError:
        detail = _excerpt(reply.body, 120)
        suffix = f": {detail}" if detail else ""
        if 300 <= reply.status < 400:
            suffix = " (redirects are not followed; configure the final URL)"
        return DeliveryError(f"HTTP {reply.status} from {reply.host}{suffix}", retryable=retryable)

    def send(self, n: Notification, target: str, secret: str = "", timeout: float = 10.0) -> None:
        url = self.checked_target(target)
        url, body, headers = self.prepare(n, url, secret)
        hidden = (secret, *_url_secrets(target))
        try:
            reply = post_json(url, body, headers, timeout, hidden=hidden)
            self.check_reply(reply)
        except _HttpStatus as status:
            error = self.explain_status(status.reply, status.retryable)
            raise DeliveryError(_scrub(error.reason, *hidden, *_url_secrets(url)), error.retryable) from None
        except DeliveryError as e:
            raise DeliveryError(_scrub(e.reason, *hidden, *_url_secrets(url)), e.retryable) from None
        log.debug("%s delivery %s to %s accepted", self.kind, notification_id(n), reply.host)


class JsonReplyChannel(HttpChannel):
    """Chat robots that answer HTTP 200 with a JSON status code (``errcode``/``code``):
    non-zero is a failure, retryable only for the codes that mean "busy, slow down"."""

    code_fields: tuple[str, ...] = ("errcode",)
    message_fields: tuple[str, ...] = ("errmsg",)
    retryable_codes: frozenset[int] = frozenset()

    def _code(self, reply: HttpReply) -> tuple[int | None, str]:
        try:
            data = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            return None, ""
        if not isinstance(data, dict):
            return None, ""
        for field in self.code_fields:
            if field in data:
                try:
                    code = int(data[field])
                except (TypeError, ValueError):
                    return None, ""
                message = next((str(data[m]) for m in self.message_fields if m in data), "")
                return code, _excerpt(message.encode(), 120)
        return None, ""

    def check_reply(self, reply: HttpReply) -> None:
        code, message = self._code(reply)
        if code is None:
            raise DeliveryError(
                f"unexpected reply from {reply.host} (HTTP {reply.status}, not the JSON status "
                f"this robot answers with): {_excerpt(reply.body, 80) or '(empty)'}",
                retryable=True,
            )
        if code != 0:
            raise DeliveryError(
                f"{self.kind} robot at {reply.host} refused the message: code {code} {message}".rstrip(),
                retryable=code in self.retryable_codes,
            )

    def explain_status(self, reply: HttpReply, retryable: bool) -> DeliveryError:
        code, message = self._code(reply)
        if code is not None and code != 0:
            return DeliveryError(
                f"HTTP {reply.status} from {reply.host}: code {code} {message}".rstrip(),
                retryable=retryable or code in self.retryable_codes,
            )
        return super().explain_status(reply, retryable)


# ---------------------------------------------------------------- generic webhook


def sign_webhook(secret: str, timestamp: int | str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>`` — the X-OKR-Signature."""
    mac = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: int | str,
    body: bytes | str,
    signature: str,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """For receivers of the generic webhook: True if ``signature`` (the X-OKR-Signature
    header) is the HMAC of this exact ``body`` (raw request bytes) and ``timestamp`` (the
    X-OKR-Timestamp header) under ``secret``, and the timestamp is within ``tolerance_s``
    of ``now`` (replayed old requests are rejected). Constant-time comparison."""
    if not secret or not signature or not isinstance(signature, str):
        return False
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        return False
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance_s:
        return False
    if isinstance(body, str):
        body = body.encode("utf-8")
    expected = sign_webhook(secret, ts, body)
    return hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("utf-8", "replace"))


class WebhookChannel(HttpChannel):
    """A generic JSON webhook, signed with the subscription's secret (if it has one)."""

    kind = "webhook"

    def validate_target(self, target: str) -> str:
        return validate_url(target, "webhook URL")

    def render(self, n: Notification) -> dict[str, Any]:
        return {
            "id": notification_id(n),
            "tenant": n.tenant,
            "rule": n.rule,
            "subject": n.subject,
            "period": n.period,
            "recipient": n.recipient,
            "title": n.title,
            "text": n.text,
            "severity": n.severity,
            "link": n.link,
            "facts": [{"label": label, "value": value} for label, value in n.facts],
            "data": n.data,
            "sent_at": _sent_at(self.clock()),
        }

    def prepare(self, n: Notification, url: str, secret: str) -> tuple[str, bytes, dict[str, str]]:
        payload = self.render(n)
        # data is machine-readable context: whatever orjson cannot encode is sent as str()
        body = orjson.dumps(payload, default=str, option=orjson.OPT_NON_STR_KEYS)
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            "X-OKR-Event": n.rule,
            "X-OKR-Delivery": payload["id"],
            "X-OKR-Timestamp": str(timestamp),
        }
        if secret:
            headers["X-OKR-Signature"] = sign_webhook(secret, timestamp, body)
        return url, body, headers


# ---------------------------------------------------------------- chat robots


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_SEVERITY_LABEL = {"info": "Info", "warning": "Warning", "alert": "Alert"}


def _severity(n: Notification) -> str:
    return n.severity if n.severity in SEVERITIES else "info"


class SlackChannel(HttpChannel):
    """Slack incoming webhook: Block Kit blocks plus a ``text`` fallback for notifications.
    https://api.slack.com/messaging/webhooks"""

    kind = "slack"

    def render(self, n: Notification) -> dict[str, Any]:
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": _truncate(_one_line(n.title) or "-", 150)}},
        ]
        if n.text.strip():
            text = _truncate(_slack_escape(n.text), 3000)
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        if n.facts:
            blocks.append({"type": "section", "fields": [
                {"type": "mrkdwn", "text": _truncate(f"*{_slack_escape(label)}*\n{_slack_escape(value)}", 2000)}
                for label, value in n.facts[:10]
            ]})
        context = f"{_SEVERITY_LABEL[_severity(n)]} · {_slack_escape(n.rule)}"
        link = _safe_link(n.link)
        if link:
            context += f" · <{link.replace('|', '%7C').replace('>', '%3E')}|Open>"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
        fallback = _slack_escape(_one_line(n.title) + (f"\n{n.text}" if n.text.strip() else ""))
        return {"text": _truncate(fallback, 3000), "blocks": blocks}


class TeamsChannel(HttpChannel):
    """Microsoft Teams incoming webhook or Workflows ("Post to a channel when a webhook
    request is received"): a message with one Adaptive Card attachment.
    https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using"""

    kind = "teams"
    _COLOUR = {"info": "Default", "warning": "Warning", "alert": "Attention"}

    def render(self, n: Notification) -> dict[str, Any]:
        body: list[dict[str, Any]] = [
            {"type": "TextBlock", "text": _truncate(_one_line(n.title), 300), "weight": "Bolder",
             "size": "Medium", "wrap": True, "color": self._COLOUR[_severity(n)]},
        ]
        if n.text.strip():
            body.append({"type": "TextBlock", "text": _truncate(n.text, 10000), "wrap": True})
        if n.facts:
            body.append({"type": "FactSet", "facts": [{"title": label, "value": value} for label, value in n.facts]})
        card: dict[str, Any] = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": body,
        }
        link = _safe_link(n.link)
        if link:
            card["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": link}]
        return {
            "type": "message",
            "attachments": [
                {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
            ],
        }

    def check_reply(self, reply: HttpReply) -> None:
        # The legacy Office 365 connector answered HTTP 200 with an error text (e.g. when
        # Teams throttled it) instead of "1"; Workflows answer 202 with an empty body.
        text = _excerpt(reply.body, 200)
        if text.startswith("Webhook message delivery failed"):
            raise DeliveryError(f"Teams at {reply.host} did not deliver: {text}", retryable=True)


class DingTalkChannel(JsonReplyChannel):
    """DingTalk custom robot, markdown message; signed when the robot has a secret
    ("加签"): ``sign = urlencode(base64(HMAC-SHA256(secret, f"{ms}\\n{secret}")))``
    appended to the URL with ``timestamp``.
    https://open.dingtalk.com/document/robots/custom-robot-access
    https://open.dingtalk.com/document/robots/customize-robot-security-settings"""

    kind = "dingtalk"
    # -1 system busy; 130101 "send too fast, exceed 20 times per minute"
    retryable_codes = frozenset({-1, 130101})

    def render(self, n: Notification) -> dict[str, Any]:
        lines = [f"### {_one_line(n.title)}"]
        if _severity(n) != "info":
            lines.append(f"**{_SEVERITY_LABEL[_severity(n)]}**")
        if n.text.strip():
            lines.append(n.text.strip().replace("\n", "\n\n"))
        lines += [f"- **{_one_line(label)}**: {_one_line(value)}" for label, value in n.facts]
        link = _safe_link(n.link)
        if link:
            lines.append(f"[Open]({link})")
        return {
            "msgtype": "markdown",
            "markdown": {"title": _truncate(_one_line(n.title), 100), "text": _truncate("\n\n".join(lines), 5000)},
        }

    def signed_url(self, url: str, secret: str) -> str:
        timestamp = str(int(round(self.clock() * 1000)))
        digest = hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode("utf-8"), hashlib.sha256).digest()
        sign = urllib.parse.quote_plus(base64.b64encode(digest))
        return f"{url}{'&' if urllib.parse.urlsplit(url).query else '?'}timestamp={timestamp}&sign={sign}"

    def prepare(self, n: Notification, url: str, secret: str) -> tuple[str, bytes, dict[str, str]]:
        url, body, headers = super().prepare(n, url, secret)
        return (self.signed_url(url, secret) if secret else url), body, headers


class WeComChannel(JsonReplyChannel):
    """WeCom (WeChat Work) group robot, markdown message. The robot's key is in its URL;
    there is no signing, so a secret is ignored.
    https://developer.work.weixin.qq.com/document/path/91770"""

    kind = "wecom"
    # -1 system busy; 45009 "api freq out of limit" (20 messages a minute per robot)
    retryable_codes = frozenset({-1, 45009, 45033})
    _COLOUR = {"info": "info", "warning": "comment", "alert": "warning"}

    def render(self, n: Notification) -> dict[str, Any]:
        severity = _severity(n)
        lines = [f"**{_one_line(n.title)}**"]
        if severity != "info":
            lines[0] = f'<font color="{self._COLOUR[severity]}">{_SEVERITY_LABEL[severity]}</font> ' + lines[0]
        if n.text.strip():
            lines.append(n.text.strip())
        lines += [f'> {_one_line(label)}: <font color="comment">{_one_line(value)}</font>' for label, value in n.facts]
        link = _safe_link(n.link)
        if link:
            lines.append(f"[Open]({link})")
        # WeCom refuses markdown content over 4096 bytes
        return {"msgtype": "markdown", "markdown": {"content": _truncate_utf8("\n".join(lines), 4096)}}


class FeishuChannel(JsonReplyChannel):
    """Feishu / Lark custom bot, interactive card; signed when the bot has a secret:
    ``sign = base64(HMAC-SHA256(key=f"{seconds}\\n{secret}", msg=b""))`` with ``timestamp``
    and ``sign`` in the JSON body.
    https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot"""

    kind = "feishu"
    code_fields = ("code", "StatusCode")  # older bots answer {"StatusCode": 0, ...}
    message_fields = ("msg", "StatusMessage")
    # 11232 frequency limited (100 a minute, 5 a second per bot); 2200 internal error
    retryable_codes = frozenset({11232, 2200})
    _TEMPLATE = {"info": "blue", "warning": "orange", "alert": "red"}

    def render(self, n: Notification) -> dict[str, Any]:
        elements: list[dict[str, Any]] = []
        if n.text.strip():
            elements.append({"tag": "div", "text": {"tag": "lark_md", "content": _truncate(n.text.strip(), 10000)}})
        if n.facts:
            elements.append({"tag": "div", "fields": [
                {"is_short": True, "text": {"tag": "lark_md", "content": f"**{_one_line(label)}**\n{_one_line(value)}"}}
                for label, value in n.facts
            ]})
        link = _safe_link(n.link)
        if link:
            elements.append({"tag": "action", "actions": [
                {"tag": "button", "text": {"tag": "plain_text", "content": "Open"}, "type": "primary", "url": link}
            ]})
        return {
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": True},
                "header": {
                    "title": {"tag": "plain_text", "content": _truncate(_one_line(n.title), 200)},
                    "template": self._TEMPLATE[_severity(n)],
                },
                "elements": elements,
            },
        }

    def sign(self, secret: str) -> dict[str, str]:
        timestamp = str(int(self.clock()))
        digest = hmac.new(f"{timestamp}\n{secret}".encode("utf-8"), b"", hashlib.sha256).digest()
        return {"timestamp": timestamp, "sign": base64.b64encode(digest).decode("ascii")}

    def prepare(self, n: Notification, url: str, secret: str) -> tuple[str, bytes, dict[str, str]]:
        payload = self.render(n)
        if secret:
            payload = {**self.sign(secret), **payload}
        return url, orjson.dumps(payload), {"Content-Type": "application/json"}


# ---------------------------------------------------------------- e-mail


_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+"
    r"@(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def _text_to_html(n: Notification) -> str:
    """The HTML body derived from the plain text: everything escaped, line breaks kept."""
    paragraphs = [p for p in re.split(r"\n\s*\n", n.text.strip()) if p.strip()]
    parts = [f"<h2>{html.escape(_one_line(n.title))}</h2>"]
    parts += ["<p>" + "<br>\n".join(html.escape(line) for line in p.splitlines()) + "</p>" for p in paragraphs]
    if n.facts:
        rows = "".join(
            f"<tr><th align=\"left\">{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
            for label, value in n.facts
        )
        parts.append(f"<table>{rows}</table>")
    link = _safe_link(n.link)
    if link:
        parts.append(f'<p><a href="{html.escape(link, quote=True)}">Open</a></p>')
    return "<!DOCTYPE html>\n<html><body>\n" + "\n".join(parts) + "\n</body></html>\n"


def _plain_text(n: Notification) -> str:
    parts = [n.text.strip()] if n.text.strip() else []
    if n.facts:
        parts.append("\n".join(f"{label}: {value}" for label, value in n.facts))
    if n.link:
        parts.append(n.link)
    return "\n\n".join(parts) + "\n"


class EmailChannel(Channel):
    """E-mail over SMTP: multipart/alternative, plain text and HTML (derived from the text,
    escaped, when the notification has no HTML of its own).

    Not retryable: a 5xx answer to MAIL FROM, RCPT TO or DATA (the server refused this
    message for good). Retryable: everything else — connection errors, timeouts, 4xx
    answers, authentication and TLS failures (configuration, fixed on our side).
    """

    kind = "email"

    def __init__(self, settings: SmtpSettings | None = None):
        self._settings = settings

    @property
    def settings(self) -> SmtpSettings:
        return self._settings if self._settings is not None else SmtpSettings.from_env()

    def validate_target(self, target: str) -> str:
        if not isinstance(target, str):
            raise ValueError(f"e-mail address must be a string, got {type(target).__name__}")
        address = target.strip()
        if not address:
            raise ValueError("e-mail address is empty")
        if len(address) > 254 or not _EMAIL.match(address) or ".." in address:
            raise ValueError(f"not an e-mail address: {_shown(target, 80)}")
        local, domain = address.rsplit("@", 1)
        if len(local) > 64 or local.startswith(".") or local.endswith("."):
            raise ValueError(f"not an e-mail address: {_shown(target, 80)}")
        return f"{local}@{domain.lower()}"

    def render(self, n: Notification) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = _one_line(n.title) or n.rule
        message["From"] = self.settings.sender
        message["Date"] = formatdate(self.clock(), localtime=False, usegmt=True)
        sender_domain = parseaddr(self.settings.sender)[1].rpartition("@")[2]
        message["Message-ID"] = make_msgid(idstring=notification_id(n)[4:20], domain=sender_domain or None)
        message["X-OKR-Delivery"] = notification_id(n)
        message["X-OKR-Event"] = _one_line(n.rule)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(_plain_text(n), subtype="plain", charset="utf-8")
        message.add_alternative(n.html or _text_to_html(n), subtype="html", charset="utf-8")
        return message

    def send(self, n: Notification, target: str, secret: str = "", timeout: float = 10.0) -> None:
        to = self.checked_target(target)
        settings = self.settings
        message = self.render(n)
        message["To"] = to
        where = f"{settings.host}:{settings.port}"
        hidden = (secret, settings.password)

        def fail(reason: str, retryable: bool) -> DeliveryError:
            reason = _scrub(reason, *hidden)
            log.info("e-mail via %s failed (%s): %s", where, "retryable" if retryable else "permanent", reason)
            return DeliveryError(reason, retryable=retryable)

        def answer(code: int, text: bytes | str) -> str:
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
            return f"{code} {_one_line(text)}".strip()

        deadline = time.monotonic() + timeout
        expired: list[bool] = []
        watchdog = None
        try:
            if settings.use_ssl:
                smtp = smtplib.SMTP_SSL(settings.host, settings.port, timeout=timeout,
                                        context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(settings.host, settings.port, timeout=timeout)

            # smtplib's timeout bounds each socket operation; the watchdog bounds the whole
            # conversation (as for HTTP: see post_json)
            def expire():
                expired.append(True)
                try:
                    smtp.sock.shutdown(socket.SHUT_RDWR)
                except (OSError, AttributeError):
                    pass

            watchdog = threading.Timer(max(deadline - time.monotonic(), 0.001), expire)
            watchdog.daemon = True
            watchdog.start()
            with smtp:
                smtp.ehlo()
                if settings.starttls and not settings.use_ssl:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if settings.username:
                    smtp.login(settings.username, settings.password)
                envelope_sender = parseaddr(settings.sender)[1] or settings.sender
                smtp.send_message(message, from_addr=envelope_sender, to_addrs=[to])
        except (OSError, smtplib.SMTPException) as e:  # smtplib's errors are OSErrors too
            timed_out = bool(expired) or isinstance(e, (socket.timeout, TimeoutError)) or (
                isinstance(e, smtplib.SMTPServerDisconnected) and "timed out" in str(e)
            )
            if timed_out:
                raise fail(f"timed out after {timeout:g} s talking to SMTP server {where}", True) from None
            raise fail(*self._explain(e, to, where, answer)) from None
        finally:
            if watchdog is not None:
                watchdog.cancel()
        log.debug("e-mail delivery %s to %s sent via %s", notification_id(n), to, where)

    def _explain(self, e: Exception, to: str, where: str, answer) -> tuple[str, bool]:
        """(reason, retryable) of an SMTP failure: a 5xx to MAIL FROM, RCPT TO or DATA is
        final; anything else may pass on another attempt."""
        settings = self.settings
        if isinstance(e, smtplib.SMTPRecipientsRefused):
            code, text = next(iter(e.recipients.values()), (0, b""))
            return f"recipient {to!r} refused by {where}: {answer(code, text)}", code < 500
        if isinstance(e, smtplib.SMTPSenderRefused):
            return (f"sender {settings.sender!r} refused by {where}: {answer(e.smtp_code, e.smtp_error)}",
                    e.smtp_code < 500)
        if isinstance(e, smtplib.SMTPDataError):
            return f"message refused by {where}: {answer(e.smtp_code, e.smtp_error)}", e.smtp_code < 500
        if isinstance(e, smtplib.SMTPAuthenticationError):
            return (f"SMTP authentication as {settings.username!r} failed at {where}: "
                    f"{answer(e.smtp_code, e.smtp_error)}", True)
        if isinstance(e, smtplib.SMTPNotSupportedError):
            return f"SMTP server {where} does not support what is configured: {e}", True
        if isinstance(e, smtplib.SMTPServerDisconnected):
            return f"SMTP server {where} closed the connection: {e}", True
        if isinstance(e, smtplib.SMTPResponseException):
            return f"SMTP server {where} answered {answer(e.smtp_code, e.smtp_error)}", True
        return f"cannot reach SMTP server {where}: {_describe(e)}", True


# ---------------------------------------------------------------- the registry


CHANNELS: dict[str, Channel] = {
    channel.kind: channel
    for channel in (
        EmailChannel(),  # SMTP settings from the environment, read at send time
        WebhookChannel(),
        SlackChannel(),
        TeamsChannel(),
        DingTalkChannel(),
        WeComChannel(),
        FeishuChannel(),
    )
}


def channel_for(kind: str) -> Channel:
    """The channel of ``kind``, or ``ValueError`` listing the known kinds."""
    try:
        return CHANNELS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown channel {kind!r}; one of: {', '.join(sorted(CHANNELS))}") from None
