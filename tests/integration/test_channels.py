"""Every notifier against a real local receiver: pytest-httpserver for the HTTP robots and
the webhook (the test recomputes each signature the way the real service does), aiosmtpd
for e-mail (plain, AUTH, STARTTLS). Plus: a channel that fails then recovers is delivered
exactly once through the real outbox, and no secret ever reaches a log line or the outbox."""

from __future__ import annotations

import base64
import email
import hashlib
import hmac
import json
import logging
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message as MimeMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from alerts.messages import build_message
from alerts.notifiers import build_notifiers
from alerts.notifiers.dingtalk import dingtalk_sign
from alerts.notifiers.email import EmailNotifier
from alerts.notifiers.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER
from alerts.outbox import deliver_due
from core.errors import NotifierError
from core.models import Analysis, Incident, Notification, Post
from core.settings import ChannelConfig, SmtpConfig
from core.vocab import Grade, Sentiment
from storage.state import SqlStateStore

NOW = datetime(2026, 11, 23, 6, 5, tzinfo=UTC)
SH = datetime.now().astimezone().tzinfo or UTC
PHONE = "13812345678"
SECRETS = {
    "YQ_TEST_HOOK_SECRET": "hook-secret-Zq81",
    "YQ_TEST_WECOM_KEY": "wecom-key-693a",
    "YQ_TEST_DING_TOKEN": "ding-token-77c0",
    "YQ_TEST_DING_SECRET": "SECding-secret-04b1",
    "YQ_TEST_FEISHU_SECRET": "feishu-secret-5e2d",
    "YQ_TEST_SMTP_PASSWORD": "smtp-pass-9f3c",
    "YQ_TEST_FEISHU_HOOK": "feishu-hook-id-c0ffee",
}


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def incident(grade: Grade = Grade.II) -> Incident:
    return Incident(
        id=7,
        rule="volume_spike",
        key="all",
        title="澜海银行 理财亏损 舆情量突增",
        grade=grade,
        opened_at=NOW - timedelta(minutes=20),
        updated_at=NOW,
        first_seen=NOW - timedelta(minutes=50),
        post_count=42,
        peak_count=24,
        reasons=["30分钟内 24 条，基线均值 2.1 条 (11.4×)"],
        sources=["demo_forum", "demo_news"],
    )


def posts() -> list[Post]:
    return [
        Post(
            id="post00000001",
            url="https://forum.example/t/1",
            source="demo_forum",
            title=f"澜海银行理财亏损，客户经理电话 {PHONE}",
            text=f"澜海银行 稳盈3号 亏损 8%，联系 {PHONE} 无人接听",
            published_at=NOW - timedelta(minutes=3),
            analysis=Analysis(
                sentiment=Sentiment.NEGATIVE,
                sentiment_score=0.05,
                masked_text="澜海银行 稳盈3号 亏损 8%，联系 138****5678 无人接听",
            ),
        )
    ]


def notification(channel: str, *, key: str = "incident:7:grade:II") -> Notification:
    message = build_message(
        incident(),
        kind="alert",
        now=NOW,
        tz=SH,
        public_url="https://yuqing.example.com/",
        top_posts=posts(),
        window=(NOW - timedelta(minutes=30), NOW),
    ).with_actions({"acknowledge": "https://ack.example.com/a?t=abc"})
    return message.notification(channel, key, now=NOW)


def build_one(channel: ChannelConfig) -> Any:
    return build_notifiers([channel])[channel.name]


def received(httpserver: HTTPServer, path: str) -> list[Request]:
    """Requests the receiver got on ``path`` (a late request of an earlier test is ignored)."""
    return [request for request, _ in httpserver.log if request.path == path]


def our_log(caplog: pytest.LogCaptureFixture) -> str:
    """Log text of yuqing only: the test receiver's own access log (werkzeug) shows the
    robot URLs it was called with, as the real robot's would."""
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("werkzeug"))


def assert_message_content(text: str) -> None:
    assert "重大" in text and "II" in text
    assert "11.4×" in text  # why
    assert "42 条" in text  # trend numbers
    assert PHONE not in text and "138****5678" in text  # PII masked
    assert "https://yuqing.example.com/incidents?incident=7" in text
    assert "https://ack.example.com/a?t=abc" in text


# ---------------------------------------------------------------------- webhook


def test_webhook_posts_json_signed_with_the_secret(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    notifier = build_one(
        ChannelConfig(
            name="bank_hook",
            type="webhook",
            url=httpserver.url_for("/hook"),
            secret_env="YQ_TEST_HOOK_SECRET",
        )
    )
    notifier.send(notification("bank_hook"))

    (request,) = received(httpserver, "/hook")
    body = request.get_data()
    timestamp = request.headers[TIMESTAMP_HEADER]
    expected = hmac.new(
        SECRETS["YQ_TEST_HOOK_SECRET"].encode(), timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(request.headers[SIGNATURE_HEADER], f"sha256={expected}")
    assert abs(int(timestamp) - time.time()) < 60
    data = json.loads(body)
    assert data["dedup_key"] == "incident:7:grade:II"
    assert data["incident_id"] == 7
    assert data["message"]["grade"] == "II"
    assert_message_content(data["text"])


@pytest.mark.parametrize(
    ("status", "temporary"), [(500, True), (503, True), (429, True), (400, False), (404, False)]
)
def test_webhook_classifies_http_errors(
    httpserver: HTTPServer, status: int, temporary: bool
) -> None:
    httpserver.expect_request("/hook").respond_with_data("nope", status=status)
    notifier = build_one(
        ChannelConfig(name="hook", type="webhook", url=httpserver.url_for("/hook"))
    )
    with pytest.raises(NotifierError) as info:
        notifier.send(notification("hook"))
    assert info.value.temporary is temporary
    assert str(status) in str(info.value)


def test_webhook_timeout_and_refused_connection_are_temporary(httpserver: HTTPServer) -> None:
    def slow(_request: Request) -> Response:
        time.sleep(0.6)
        return Response("late")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    slow_hook = build_one(
        ChannelConfig(
            name="slow", type="webhook", url=httpserver.url_for("/slow"), timeout_seconds=0.2
        )
    )
    with pytest.raises(NotifierError, match="timeout") as info:
        slow_hook.send(notification("slow"))
    assert info.value.temporary
    dead = build_one(ChannelConfig(name="dead", type="webhook", url="http://127.0.0.1:9/x"))
    with pytest.raises(NotifierError, match="cannot reach") as info:
        dead.send(notification("dead"))
    assert info.value.temporary


# ---------------------------------------------------------------------- robots


def test_wecom_robot_gets_a_markdown_message(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/cgi-bin/webhook/send", query_string={"key": SECRETS["YQ_TEST_WECOM_KEY"]}
    ).respond_with_json({"errcode": 0, "errmsg": "ok"})
    notifier = build_one(
        ChannelConfig(
            name="wecom_hq",
            type="wecom",
            url=httpserver.url_for("/cgi-bin/webhook/send"),
            token_env="YQ_TEST_WECOM_KEY",
        )
    )
    notifier.send(notification("wecom_hq"))
    data = json.loads(received(httpserver, "/cgi-bin/webhook/send")[0].get_data())
    assert data["msgtype"] == "markdown"
    content = data["markdown"]["content"]
    assert_message_content(content)
    assert '<font color="warning">II级 重大</font>' in content


@pytest.mark.parametrize(("code", "temporary"), [(45009, True), (-1, True), (93000, False)])
def test_wecom_errcodes_are_classified(httpserver: HTTPServer, code: int, temporary: bool) -> None:
    httpserver.expect_request("/send").respond_with_json({"errcode": code, "errmsg": "x"})
    notifier = build_one(
        ChannelConfig(
            name="wecom_hq",
            type="wecom",
            url=httpserver.url_for("/send"),
            token_env="YQ_TEST_WECOM_KEY",
        )
    )
    with pytest.raises(NotifierError, match=f"errcode={code}") as info:
        notifier.send(notification("wecom_hq"))
    assert info.value.temporary is temporary


def dingtalk_receiver(secret: str, token: str) -> Any:
    """A handler that checks DingTalk's signature the way DingTalk documents it."""

    def handle(request: Request) -> Response:
        timestamp = request.args["timestamp"]
        string_to_sign = f"{timestamp}\n{secret}".encode()
        expected = base64.b64encode(
            hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()
        ).decode()
        fresh = abs(int(timestamp) / 1000 - time.time()) < 3600
        if request.args["access_token"] != token or request.args["sign"] != expected or not fresh:
            return Response(json.dumps({"errcode": 310000, "errmsg": "sign not match"}))
        return Response(json.dumps({"errcode": 0, "errmsg": "ok"}))

    return handle


def test_dingtalk_robot_verifies_the_signature(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/robot/send").respond_with_handler(
        dingtalk_receiver(SECRETS["YQ_TEST_DING_SECRET"], SECRETS["YQ_TEST_DING_TOKEN"])
    )
    channel = ChannelConfig(
        name="ding_hq",
        type="dingtalk",
        url=httpserver.url_for("/robot/send"),
        token_env="YQ_TEST_DING_TOKEN",
        secret_env="YQ_TEST_DING_SECRET",
    )
    build_one(channel).send(notification("ding_hq"))
    data = json.loads(received(httpserver, "/robot/send")[0].get_data())
    assert data["msgtype"] == "markdown"
    assert data["markdown"]["title"].startswith("【重大·II级】")
    assert_message_content(data["markdown"]["text"])
    # sign needs URL-encoding: "+" and "/" in base64 must survive the query string
    assert (
        dingtalk_sign("s", 1)
        == base64.b64encode(hmac.new(b"s", b"1\ns", hashlib.sha256).digest()).decode()
    )


def test_dingtalk_with_a_wrong_secret_is_a_permanent_failure(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    httpserver.expect_request("/robot/send").respond_with_handler(
        dingtalk_receiver(SECRETS["YQ_TEST_DING_SECRET"], SECRETS["YQ_TEST_DING_TOKEN"])
    )
    monkeypatch.setenv("YQ_TEST_DING_SECRET", "SECwrong")
    channel = ChannelConfig(
        name="ding_hq",
        type="dingtalk",
        url=httpserver.url_for("/robot/send"),
        token_env="YQ_TEST_DING_TOKEN",
        secret_env="YQ_TEST_DING_SECRET",
    )
    with pytest.raises(NotifierError, match="310000") as info:
        build_one(channel).send(notification("ding_hq"))
    assert not info.value.temporary


def test_feishu_robot_verifies_the_signature_in_the_body(httpserver: HTTPServer) -> None:
    secret = SECRETS["YQ_TEST_FEISHU_SECRET"]

    def handle(request: Request) -> Response:
        data = json.loads(request.get_data())
        key = f"{data['timestamp']}\n{secret}".encode()
        expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        if data["sign"] != expected:
            return Response(json.dumps({"code": 19021, "msg": "sign match fail"}))
        return Response(json.dumps({"code": 0, "msg": "success", "data": {}}))

    httpserver.expect_request("/open-apis/bot/v2/hook/abc").respond_with_handler(handle)
    channel = ChannelConfig(
        name="feishu_hq",
        type="feishu",
        url=httpserver.url_for("/open-apis/bot/v2/hook/abc"),
        secret_env="YQ_TEST_FEISHU_SECRET",
    )
    build_one(channel).send(notification("feishu_hq"))
    data = json.loads(received(httpserver, "/open-apis/bot/v2/hook/abc")[0].get_data())
    assert data["msg_type"] == "interactive"
    assert data["card"]["header"]["template"] == "orange"
    assert_message_content(data["card"]["elements"][0]["content"])


def test_feishu_bad_signature_is_permanent(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    httpserver.expect_request("/hook").respond_with_json({"code": 19021, "msg": "sign fail"})
    channel = ChannelConfig(
        name="feishu_hq",
        type="feishu",
        url=httpserver.url_for("/hook"),
        secret_env="YQ_TEST_FEISHU_SECRET",
    )
    with pytest.raises(NotifierError, match="19021") as info:
        build_one(channel).send(notification("feishu_hq"))
    assert not info.value.temporary


# ---------------------------------------------------------------------- email


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[MimeMessage] = []
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        raw = envelope.original_content or b""
        self.messages.append(email.message_from_bytes(raw, policy=default_policy))
        return "250 OK"


def authenticator(user: str, password: str) -> Any:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == user
            and data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False)

    return check


def free_port() -> int:
    # aiosmtpd's Controller cannot bind port 0 itself (it connects to its own port).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticator("alerts@bank.example", SECRETS["YQ_TEST_SMTP_PASSWORD"]),
        auth_require_tls=False,
    )
    controller.start()
    yield controller, inbox
    controller.stop()


def email_channel(port: int, **smtp: Any) -> ChannelConfig:
    return ChannelConfig(
        name="email_hq",
        type="email",
        recipients=["pr@bank.example", "risk@bank.example"],
        secret_env="YQ_TEST_SMTP_PASSWORD",
        smtp=SmtpConfig(
            **{
                "host": "127.0.0.1",
                "port": port,
                "security": "none",
                "user": "alerts@bank.example",
                "sender": "舆情监测 <yuqing@bank.example>",
                "timeout_seconds": 5,
                **smtp,
            }
        ),
    )


def test_email_is_multipart_text_and_html_after_login(
    smtp_server: tuple[Controller, Inbox],
) -> None:
    controller, inbox = smtp_server
    build_one(email_channel(controller.port)).send(notification("email_hq"))
    (mail,) = inbox.messages
    assert inbox.envelopes[0].rcpt_tos == ["pr@bank.example", "risk@bank.example"]
    assert str(mail["Subject"]).startswith("【重大·II级】澜海银行")
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert_message_content(text)
    assert "<h2" in html and "138****5678" in html and PHONE not in html
    assert mail["Message-ID"].endswith("@bank.example>")


def test_email_wrong_password_is_permanent_and_refused_server_temporary(
    smtp_server: tuple[Controller, Inbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    controller, inbox = smtp_server
    monkeypatch.setenv("YQ_TEST_SMTP_PASSWORD", "wrong")
    with pytest.raises(NotifierError, match="login refused") as info:
        build_one(email_channel(controller.port)).send(notification("email_hq"))
    assert not info.value.temporary
    with pytest.raises(NotifierError) as info:
        build_one(email_channel(9)).send(notification("email_hq"))
    assert info.value.temporary
    assert inbox.messages == []


def test_email_over_starttls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_ctx,
        require_starttls=True,
        authenticator=authenticator("alerts@bank.example", SECRETS["YQ_TEST_SMTP_PASSWORD"]),
    )
    controller.start()
    try:
        channel = email_channel(controller.port, security="starttls")
        assert channel.smtp is not None
        client_ctx = ssl.create_default_context(cafile=str(cert))
        notifier = EmailNotifier(
            "email_hq",
            channel.smtp,
            channel.recipients,
            password=SECRETS["YQ_TEST_SMTP_PASSWORD"],
            ssl_context=client_ctx,
        )
        notifier.send(notification("email_hq"))
    finally:
        controller.stop()
    assert len(inbox.messages) == 1


# ---------------------------------------------------------------------- outbox


def test_a_channel_that_fails_then_recovers_is_delivered_exactly_once(
    httpserver: HTTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    httpserver.expect_oneshot_request("/send").respond_with_data("busy", status=503)
    httpserver.expect_oneshot_request("/send").respond_with_json({"errcode": 45009})
    httpserver.expect_request("/send").respond_with_json({"errcode": 0})
    channels = [
        ChannelConfig(
            name="wecom_hq",
            type="wecom",
            url=httpserver.url_for("/send"),
            token_env="YQ_TEST_WECOM_KEY",
        )
    ]
    state = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert state.enqueue(notification("wecom_hq"))
        assert not state.enqueue(notification("wecom_hq"))  # the dedup key holds
        notifiers = build_notifiers(channels)
        t = NOW
        reports = []
        for _ in range(6):  # the outbox job ticking; each tick after the backoff
            reports.append(deliver_due(state, notifiers, t))
            t += timedelta(minutes=30)
        (stored,) = state.list_notifications()
    finally:
        state.close()
    assert [len(r.retrying) for r in reports[:2]] == [1, 1]
    assert len(reports[2].sent) == 1
    assert all(r.attempted == 0 for r in reports[3:])
    assert stored.sent_at is not None and stored.attempts == 3
    assert (
        len(received(httpserver, "/send")) == 3
    )  # 503, errcode 45009, delivered — and nothing after
    assert stored.payload["grade"] == "II"  # the structured message survived the database
    for secret in SECRETS.values():
        assert secret not in our_log(caplog)
        assert secret not in (stored.last_error or "")


def test_secrets_are_not_in_errors_reprs_or_logs(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    httpserver.expect_request("/robot/send").respond_with_data("down", status=502)
    httpserver.expect_request(
        f"/open-apis/bot/v2/hook/{SECRETS['YQ_TEST_FEISHU_HOOK']}"
    ).respond_with_data("down", status=503)
    channels = [
        ChannelConfig(
            name="ding_hq",
            type="dingtalk",
            url=httpserver.url_for("/robot/send"),
            token_env="YQ_TEST_DING_TOKEN",
            secret_env="YQ_TEST_DING_SECRET",
        ),
        ChannelConfig(
            name="hook",
            type="webhook",
            url="http://127.0.0.1:9/x",
            secret_env="YQ_TEST_HOOK_SECRET",
        ),
        ChannelConfig(
            name="feishu_hq",
            type="feishu",
            url=httpserver.url_for("/open-apis/bot/v2/hook/"),
            token_env="YQ_TEST_FEISHU_HOOK",
            secret_env="YQ_TEST_FEISHU_SECRET",
        ),
    ]
    notifiers = build_notifiers(channels)
    errors = []
    for name, notifier in notifiers.items():
        with pytest.raises(NotifierError) as info:
            notifier.send(notification(name))
        errors.append(str(info.value))
        errors.append(repr(notifier))
    for secret in SECRETS.values():
        assert all(secret not in e for e in errors)
        assert secret not in our_log(caplog)
