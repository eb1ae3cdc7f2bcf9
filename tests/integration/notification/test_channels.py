"""The notification channels against real local receivers on 127.0.0.1: an SMTP server
(aiosmtpd, in a subprocess) and a threaded HTTP server that answers as scripted.

What a channel promises (docs/notification-channels.md): the payload each receiver
expects, signatures a receiver can verify, ``DeliveryError`` on every failure with the
right ``retryable`` flag, never a hang beyond the timeout, and never a secret or a webhook
token in an error reason.

(Local servers in receivers.py.)
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import json
import socket
import time
import urllib.parse

import pytest

from okr_services.notification.channels import (
    CHANNELS,
    DingTalkChannel,
    EmailChannel,
    FeishuChannel,
    SlackChannel,
    TeamsChannel,
    WebhookChannel,
    WeComChannel,
    channel_for,
    notification_id,
    verify_signature,
)
from okr_services.notification.config import SmtpSettings
from okr_services.notification.message import DeliveryError, Notification
from tests.waiting import free_port, wait_until

from .receivers import HttpReceiver, SmtpReceiver

SECRET = "whsec-Sup3rS3cret-value"
TOKEN = "tok3n0123456789abcdef"  # what chat robots embed in their webhook URLs


def notification(**changes) -> Notification:
    fields = dict(
        tenant="acme",
        rule="kr_stalled",
        subject="kr-42",
        period="2026-W09",
        recipient="alice",
        title="KR <Grow revenue> stalled",
        text="No check-in for 14 days.\nConfidence dropped: 0.7 -> 0.4 & falling <fast>.",
        severity="warning",
        link="https://okr.example.com/kr/kr-42",
        facts=(("Owner", "alice"), ("Progress", "35%")),
        data={"kr_id": "kr-42", "days_since_check_in": 14},
    )
    fields.update(changes)
    return Notification(**fields)


@pytest.fixture(scope="module")
def http():
    receiver = HttpReceiver(free_port()).start()
    yield receiver
    receiver.stop()


@pytest.fixture
def receiver(http):
    http.requests.clear()
    http.answers.clear()
    return http


@pytest.fixture(scope="module")
def smtp_server(tmp_path_factory):
    server = SmtpReceiver(free_port(), tmp_path_factory.mktemp("mail")).start()
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_server):
    smtp_server.clear()
    return smtp_server


def email_channel(port: int, **changes) -> EmailChannel:
    settings = dict(host="127.0.0.1", port=port, sender="OKR Platform <okr@example.com>")
    settings.update(changes)
    return EmailChannel(SmtpSettings(**settings))


def fails(channel, target, secret="", timeout=5.0, n=None) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        channel.send(n or notification(), target, secret=secret, timeout=timeout)
    return info.value


def assert_no_secrets(error: DeliveryError, *secrets: str):
    for secret in (SECRET, TOKEN, *secrets):
        assert secret not in error.reason
        assert secret not in str(error)


# ---------------------------------------------------------------- e-mail


def test_email_arrives_with_plain_text_and_html_parts(smtp):
    email_channel(smtp.port).send(notification(), "Bob@Example.COM", timeout=5)

    [received] = wait_until(smtp.messages, timeout=5, message="the e-mail")
    assert received["mail_from"] == "okr@example.com"
    assert received["rcpt_tos"] == ["Bob@example.com"]
    message = email.message_from_string(received["content"], policy=email.policy.default)
    assert message["From"] == "OKR Platform <okr@example.com>"
    assert message["To"] == "Bob@example.com"
    assert message["Subject"] == "KR <Grow revenue> stalled"
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "falling <fast>" in plain and "Owner: alice" in plain
    assert "KR &lt;Grow revenue&gt; stalled" in html
    assert "0.4 &amp; falling &lt;fast&gt;" in html
    assert "<fast>" not in html
    assert '<a href="https://okr.example.com/kr/kr-42">' in html
    assert message["X-OKR-Delivery"] == notification_id(notification())


def test_email_sends_the_notifications_own_html(smtp):
    email_channel(smtp.port).send(notification(html="<p><b>Custom</b> body</p>"), "bob@example.com", timeout=5)

    [received] = wait_until(smtp.messages, timeout=5, message="the e-mail")
    message = email.message_from_string(received["content"], policy=email.policy.default)
    assert message.get_body(("html",)).get_content().strip() == "<p><b>Custom</b> body</p>"


def test_email_html_never_links_to_a_script_url(smtp):
    email_channel(smtp.port).send(notification(link="javascript:alert(1)"), "bob@example.com", timeout=5)

    [received] = wait_until(smtp.messages, timeout=5, message="the e-mail")
    message = email.message_from_string(received["content"], policy=email.policy.default)
    assert "javascript:" not in message.get_body(("html",)).get_content()


def test_email_refused_recipient_is_not_retryable(smtp):
    error = fails(email_channel(smtp.port), "refused@example.com")

    assert not error.retryable
    assert "refused@example.com" in error.reason and "550" in error.reason
    assert smtp.messages() == []


def test_email_deferred_recipient_is_retryable(smtp):
    error = fails(email_channel(smtp.port), "busy@example.com")

    assert error.retryable
    assert "451" in error.reason


def test_email_smtp_server_down_is_retryable():
    error = fails(email_channel(free_port()), "bob@example.com", timeout=2)

    assert error.retryable
    assert "127.0.0.1" in error.reason


def test_email_to_a_silent_smtp_server_fails_retryable_within_the_timeout():
    with socket.socket() as silent:  # accepts connections (the kernel does), never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        error = fails(email_channel(silent.getsockname()[1]), "bob@example.com", timeout=0.5)
        elapsed = time.monotonic() - started

    assert error.retryable
    assert "timed out after 0.5 s" in error.reason
    assert elapsed < 0.5 + 0.5


def test_email_never_shows_the_smtp_password(smtp):
    # the local server offers no AUTH: login fails, and the reason must not carry the password
    error = fails(email_channel(smtp.port, username="okr", password=SECRET), "bob@example.com")

    assert error.retryable
    assert_no_secrets(error)
    assert SECRET not in repr(SmtpSettings(password=SECRET))


@pytest.mark.parametrize("target, problem", [
    ("bob@", "not an e-mail address: 'bob@'"),
    ("@example.com", "not an e-mail address"),
    ("bob", "not an e-mail address"),
    ("bob smith@example.com", "not an e-mail address"),
    ("bob@example.com\nBcc: eve@example.com", "not an e-mail address"),
    ("bob@@example.com", "not an e-mail address"),
    ("bob..x@example.com", "not an e-mail address"),
    ("", "e-mail address is empty"),
])
def test_email_rejects_invalid_addresses(target, problem):
    with pytest.raises(ValueError, match="^" + problem.replace("(", r"\(")):
        EmailChannel().validate_target(target)


def test_email_normalises_the_address():
    assert EmailChannel().validate_target("  Bob.Smith+okr@Example.COM ") == "Bob.Smith+okr@example.com"


# ---------------------------------------------------------------- generic webhook


def test_webhook_posts_the_notification_as_signed_json(receiver):
    url = receiver.answer("/hook", 204)
    WebhookChannel().send(notification(), url, secret=SECRET, timeout=5)

    request = receiver.last()
    body = json.loads(request.body)
    assert body["id"] == notification_id(notification())
    assert {k: body[k] for k in ("tenant", "rule", "subject", "period", "recipient", "severity", "link")} == {
        "tenant": "acme", "rule": "kr_stalled", "subject": "kr-42", "period": "2026-W09",
        "recipient": "alice", "severity": "warning", "link": "https://okr.example.com/kr/kr-42",
    }
    assert body["title"] == "KR <Grow revenue> stalled"
    assert body["text"] == notification().text
    assert body["facts"] == [{"label": "Owner", "value": "alice"}, {"label": "Progress", "value": "35%"}]
    assert body["data"] == {"kr_id": "kr-42", "days_since_check_in": 14}
    assert body["sent_at"].endswith("Z")
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["X-OKR-Event"] == "kr_stalled"
    assert headers["X-OKR-Delivery"] == body["id"]
    assert abs(int(headers["X-OKR-Timestamp"]) - time.time()) < 5
    assert headers["X-OKR-Signature"].startswith("sha256=")
    assert verify_signature(SECRET, headers["X-OKR-Timestamp"], request.body, headers["X-OKR-Signature"])


def test_webhook_signature_is_hmac_sha256_of_timestamp_dot_body(receiver):
    WebhookChannel().send(notification(), receiver.answer("/hook"), secret=SECRET, timeout=5)

    request = receiver.last()
    timestamp = request.headers["X-OKR-Timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-OKR-Signature"] == f"sha256={expected}"


def test_webhook_signature_fails_with_a_wrong_secret_an_edited_body_or_a_stale_timestamp(receiver):
    WebhookChannel().send(notification(), receiver.answer("/hook"), secret=SECRET, timeout=5)
    request = receiver.last()
    timestamp, signature, body = request.headers["X-OKR-Timestamp"], request.headers["X-OKR-Signature"], request.body

    assert verify_signature(SECRET, timestamp, body, signature)
    assert not verify_signature("another-secret", timestamp, body, signature)
    assert not verify_signature(SECRET, timestamp, body.replace(b"alice", b"mallory"), signature)
    assert not verify_signature(SECRET, str(int(timestamp) + 1), body, signature)
    assert not verify_signature(SECRET, timestamp, body, signature, now=int(timestamp) + 301)
    assert not verify_signature(SECRET, timestamp, body, signature, now=int(timestamp) - 301)
    assert verify_signature(SECRET, timestamp, body, signature, now=int(timestamp) + 299)
    assert not verify_signature(SECRET, timestamp, body, signature.removeprefix("sha256="))
    assert not verify_signature(SECRET, "yesterday", body, signature)
    assert not verify_signature("", timestamp, body, signature)


def test_webhook_without_a_secret_is_sent_unsigned(receiver):
    WebhookChannel().send(notification(), receiver.answer("/hook"), timeout=5)

    assert "X-OKR-Signature" not in receiver.last().headers


def test_webhook_delivery_id_is_stable_across_attempts(receiver):
    url = receiver.answer("/hook")
    WebhookChannel().send(notification(), url, secret=SECRET, timeout=5)
    WebhookChannel().send(notification(), url, secret=SECRET, timeout=5)
    WebhookChannel().send(notification(period="2026-W10"), url, secret=SECRET, timeout=5)

    ids = [r.headers["X-OKR-Delivery"] for r in receiver.requests]
    assert ids[0] == ids[1] != ids[2]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_webhook_busy_or_failing_receiver_is_retryable(receiver, status):
    error = fails(WebhookChannel(), receiver.answer("/hook", status, b"try later"), secret=SECRET)

    assert error.retryable
    assert error.reason.startswith(f"HTTP {status} from 127.0.0.1")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_webhook_refusal_is_not_retryable(receiver, status):
    error = fails(WebhookChannel(), receiver.answer("/hook", status, b'{"error":"bad"}'), secret=SECRET)

    assert not error.retryable
    assert error.reason.startswith(f"HTTP {status} from 127.0.0.1")


def test_webhook_redirect_is_not_followed(receiver):
    error = fails(WebhookChannel(), receiver.answer("/hook", 301), secret=SECRET)

    assert not error.retryable
    assert "redirects are not followed" in error.reason
    assert len(receiver.requests) == 1


def test_hanging_receiver_fails_retryable_within_the_timeout(receiver):
    url = receiver.answer("/slow", 200, b"{}", delay=3)

    started = time.monotonic()
    error = fails(WebhookChannel(), url, secret=SECRET, timeout=0.5)
    elapsed = time.monotonic() - started

    assert error.retryable
    assert "timed out" in error.reason and "127.0.0.1" in error.reason
    assert elapsed < 0.5 + 0.5


def test_trickling_receiver_fails_retryable_within_the_timeout(receiver):
    # a byte every 0.05 s: each socket read succeeds, only an overall deadline stops it
    url = receiver.answer("/trickle", trickle=0.05)

    started = time.monotonic()
    error = fails(SlackChannel(), url, timeout=0.5)
    elapsed = time.monotonic() - started

    assert error.retryable
    assert "timed out after 0.5 s talking to 127.0.0.1" in error.reason
    assert elapsed < 0.5 + 0.5


def test_unreachable_receiver_is_retryable():
    error = fails(WebhookChannel(), f"http://127.0.0.1:{free_port()}/hook", secret=SECRET, timeout=2)

    assert error.retryable
    assert "cannot reach 127.0.0.1" in error.reason


# ---------------------------------------------------------------- chat robots


def test_slack_gets_text_and_blocks(receiver):
    url = receiver.answer("/services/T0/B0/" + TOKEN, 200, b"ok", content_type="text/plain")
    SlackChannel().send(notification(), url, timeout=5)

    body = json.loads(receiver.last().body)
    assert body["text"].startswith("KR &lt;Grow revenue&gt; stalled\nNo check-in")
    kinds = [block["type"] for block in body["blocks"]]
    assert kinds[0] == "header" and "section" in kinds and kinds[-1] == "context"
    assert body["blocks"][0]["text"] == {"type": "plain_text", "text": "KR <Grow revenue> stalled"}
    section = body["blocks"][1]["text"]
    assert section["type"] == "mrkdwn" and "&amp; falling &lt;fast&gt;" in section["text"]
    assert body["blocks"][2]["fields"][0] == {"type": "mrkdwn", "text": "*Owner*\nalice"}
    assert "<https://okr.example.com/kr/kr-42|Open>" in body["blocks"][-1]["elements"][0]["text"]


def test_slack_error_names_slacks_reason(receiver):
    url = receiver.answer("/services/T0/B0/" + TOKEN, 404, b"no_service", content_type="text/plain")
    error = fails(SlackChannel(), url)

    assert not error.retryable
    assert error.reason == "HTTP 404 from 127.0.0.1: no_service"
    assert_no_secrets(error)


def test_teams_gets_an_adaptive_card(receiver):
    TeamsChannel().send(notification(severity="alert"), receiver.answer("/workflows/" + TOKEN, 202), timeout=5)

    body = json.loads(receiver.last().body)
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["body"][0] == {"type": "TextBlock", "text": "KR <Grow revenue> stalled", "weight": "Bolder",
                               "size": "Medium", "wrap": True, "color": "Attention"}
    assert card["body"][2] == {"type": "FactSet", "facts": [{"title": "Owner", "value": "alice"},
                                                            {"title": "Progress", "value": "35%"}]}
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open", "url": "https://okr.example.com/kr/kr-42"}]


def test_teams_throttling_reported_in_a_200_is_retryable(receiver):
    url = receiver.answer("/webhookb2/" + TOKEN, 200, "Webhook message delivery failed with error: Microsoft Teams "
                          "endpoint returned HTTP error 429", content_type="text/plain")
    error = fails(TeamsChannel(), url)

    assert error.retryable
    assert_no_secrets(error)


def dingtalk_sign(secret: str, timestamp: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def test_dingtalk_gets_markdown_signed_in_the_url(receiver):
    url = receiver.answer("/robot/send", 200, b'{"errcode":0,"errmsg":"ok"}') + "?access_token=" + TOKEN
    DingTalkChannel().send(notification(), url, secret=SECRET, timeout=5)

    request = receiver.last()
    body = json.loads(request.body)
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "KR <Grow revenue> stalled"
    assert body["markdown"]["text"].startswith("### KR <Grow revenue> stalled")
    assert "- **Owner**: alice" in body["markdown"]["text"]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
    assert query["access_token"] == [TOKEN]
    timestamp, [sign] = query["timestamp"][0], query["sign"]
    assert abs(int(timestamp) / 1000 - time.time()) < 5  # milliseconds
    assert sign == dingtalk_sign(SECRET, timestamp)


def test_dingtalk_without_a_secret_is_not_signed(receiver):
    url = receiver.answer("/robot/send", 200, b'{"errcode":0,"errmsg":"ok"}') + "?access_token=" + TOKEN
    DingTalkChannel().send(notification(), url, timeout=5)

    assert receiver.last().path == "/robot/send?access_token=" + TOKEN


@pytest.mark.parametrize("channel, reply, retryable", [
    (DingTalkChannel(), {"errcode": 310000, "errmsg": "sign not match"}, False),
    (DingTalkChannel(), {"errcode": 300001, "errmsg": "token is not exist"}, False),
    (DingTalkChannel(), {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}, True),
    (WeComChannel(), {"errcode": 93000, "errmsg": "invalid webhook url"}, False),
    (WeComChannel(), {"errcode": 45009, "errmsg": "api freq out of limit"}, True),
    (FeishuChannel(), {"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"},
     False),
    (FeishuChannel(), {"code": 11232, "msg": "frequency limited"}, True),
], ids=["dingtalk-sign", "dingtalk-token", "dingtalk-too-fast", "wecom-url", "wecom-freq", "feishu-sign",
        "feishu-freq"])
def test_robot_error_code_in_a_200_reply_fails(receiver, channel, reply, retryable):
    url = receiver.answer("/robot", 200, json.dumps(reply))
    error = fails(channel, url, secret=SECRET)

    assert error.retryable is retryable
    code = reply.get("errcode", reply.get("code"))
    assert f"code {code}" in error.reason and "127.0.0.1" in error.reason


@pytest.mark.parametrize("kind", ["dingtalk", "wecom", "feishu"])
@pytest.mark.parametrize("garbage", [b"<html>502 Bad Gateway</html>", b"", b"[1, 2]", b'{"unexpected": true}'])
def test_robot_garbage_reply_is_retryable(receiver, kind, garbage):
    error = fails(channel_for(kind), receiver.answer("/robot", 200, garbage, content_type="text/html"))

    assert error.retryable
    assert "unexpected reply from 127.0.0.1" in error.reason


def test_wecom_gets_markdown_content(receiver):
    url = receiver.answer("/cgi-bin/webhook/send", 200, b'{"errcode":0,"errmsg":"ok"}') + "?key=" + TOKEN
    WeComChannel().send(notification(severity="alert"), url, secret=SECRET, timeout=5)

    body = json.loads(receiver.last().body)
    assert body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert content.startswith('<font color="warning">Alert</font> **KR <Grow revenue> stalled**')
    assert "No check-in for 14 days." in content and "[Open](https://okr.example.com/kr/kr-42)" in content


def test_wecom_content_is_cut_to_4096_bytes(receiver):
    url = receiver.answer("/cgi-bin/webhook/send", 200, b'{"errcode":0,"errmsg":"ok"}') + "?key=" + TOKEN
    WeComChannel().send(notification(text="目标" * 3000), url, timeout=5)

    content = json.loads(receiver.last().body)["markdown"]["content"]
    assert len(content.encode("utf-8")) <= 4096


def test_feishu_gets_an_interactive_card_signed_in_the_body(receiver):
    url = receiver.answer("/open-apis/bot/v2/hook/" + TOKEN, 200, b'{"code":0,"msg":"success","data":{}}')
    FeishuChannel().send(notification(), url, secret=SECRET, timeout=5)

    body = json.loads(receiver.last().body)
    assert body["msg_type"] == "interactive"
    card = body["card"]
    assert card["header"] == {"title": {"tag": "plain_text", "content": "KR <Grow revenue> stalled"},
                              "template": "orange"}
    assert card["elements"][0] == {"tag": "div", "text": {"tag": "lark_md", "content": notification().text}}
    assert card["elements"][-1]["actions"][0]["url"] == "https://okr.example.com/kr/kr-42"
    timestamp = body["timestamp"]
    assert abs(int(timestamp) - time.time()) < 5  # seconds
    digest = hmac.new(f"{timestamp}\n{SECRET}".encode(), b"", hashlib.sha256).digest()
    assert body["sign"] == base64.b64encode(digest).decode()


def test_feishu_without_a_secret_is_not_signed(receiver):
    url = receiver.answer("/open-apis/bot/v2/hook/" + TOKEN, 200, b'{"StatusCode":0,"StatusMessage":"success"}')
    FeishuChannel().send(notification(), url, timeout=5)

    body = json.loads(receiver.last().body)
    assert "sign" not in body and "timestamp" not in body


def test_feishu_rate_limit_answered_with_http_400_is_retryable(receiver):
    url = receiver.answer("/open-apis/bot/v2/hook/" + TOKEN, 400, b'{"code":11232,"msg":"frequency limited"}')
    error = fails(FeishuChannel(), url, secret=SECRET)

    assert error.retryable
    assert "code 11232" in error.reason


@pytest.mark.parametrize("kind, status", [
    (kind, status) for kind in ["slack", "teams", "dingtalk", "wecom", "feishu", "webhook"]
    for status in ([200, 400, 503] if kind in ("dingtalk", "wecom", "feishu") else [400, 503])
])
def test_neither_secret_nor_url_token_appears_in_error_reasons(receiver, kind, status):
    # a receiver that echoes what it got: the token of the URL and the secret
    echo = json.dumps({"errcode": 310000, "code": 19021, "errmsg": f"bad key {TOKEN} sign {SECRET}",
                       "msg": f"bad key {TOKEN} sign {SECRET}"})
    url = receiver.answer("/hook/" + TOKEN, status, echo) + "?key=" + TOKEN
    error = fails(channel_for(kind), url, secret=SECRET)

    assert_no_secrets(error)
    assert "127.0.0.1" in error.reason


@pytest.mark.parametrize("kind", ["webhook", "slack", "dingtalk"])
def test_timeouts_and_connection_errors_never_show_the_url(kind):
    url = f"http://127.0.0.1:{free_port()}/hook/{TOKEN}?access_token={TOKEN}"
    error = fails(channel_for(kind), url, secret=SECRET, timeout=2)

    assert error.retryable
    assert_no_secrets(error)


# ---------------------------------------------------------------- targets and the registry


@pytest.mark.parametrize("target, problem", [
    ("ftp://x", "webhook URL must be http(s)://host[:port]/path, got 'ftp://x'"),
    ("hooks.example.com/x", "webhook URL must be http(s)://host[:port]/path"),
    ("http://", "webhook URL must be http(s)://host[:port]/path"),
    ("javascript:alert(1)", "webhook URL must be http(s)://host[:port]/path"),
    ("https://user:pa55word@hooks.example.com/x", "webhook URL must not carry credentials"),
    ("https://hooks.example.com/a b", "webhook URL must not contain whitespace"),
    ("https://hooks.example.com/a\nb", "webhook URL must not contain whitespace"),
    ("https://hooks.example.com:99999/x", "webhook URL has an invalid port"),
    ("https://hooks.example.com/" + "x" * 2100, "webhook URL is too long (2126 characters; at most 2048)"),
    ("   ", "webhook URL is empty"),
])
def test_webhook_rejects_invalid_urls_with_a_clear_message(target, problem):
    with pytest.raises(ValueError) as info:
        WebhookChannel().validate_target(target)

    assert str(info.value).startswith(problem)
    assert "pa55word" not in str(info.value)


def test_chat_channels_name_themselves_when_rejecting_a_url():
    with pytest.raises(ValueError, match="^slack webhook URL must be http"):
        SlackChannel().validate_target("slack://x")


def test_invalid_target_at_send_time_fails_for_good_before_sending(receiver):
    error = fails(SlackChannel(), "ftp://127.0.0.1/x")

    assert not error.retryable
    assert error.reason == (
        "invalid slack target: slack webhook URL must be http(s)://host[:port]/path, got 'ftp://127.0.0.1/x'"
    )
    assert receiver.requests == []
    assert not fails(EmailChannel(), "bob@").retryable
    assert_no_secrets(fails(DingTalkChannel(), f"ftp://h/?access_token={TOKEN}"))


def test_valid_urls_are_normalised():
    assert WebhookChannel().validate_target("  HTTPS://Hooks.Example.COM/In/Path?Token=AbC ") == (
        "https://hooks.example.com/In/Path?Token=AbC"
    )
    assert WebhookChannel().validate_target("http://127.0.0.1:8080") == "http://127.0.0.1:8080/"


def test_registry_has_one_channel_per_kind():
    assert sorted(CHANNELS) == ["dingtalk", "email", "feishu", "slack", "teams", "webhook", "wecom"]
    assert all(channel_for(kind).kind == kind for kind in CHANNELS)


def test_unknown_channel_kind_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"^unknown channel 'sms'; one of: dingtalk, email, feishu, slack"):
        channel_for("sms")
