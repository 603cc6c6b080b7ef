"""The scheduled daily brief through the real service, outbox and a real SMTP server (aiosmtpd).

The service's ``daily_brief`` job builds yesterday's brief into the data
directory and queues it; the e-mail channel delivers it with the PDF attached,
a chat channel (the log) gets the Markdown summary. Running the job twice —
or restarting the service — sends the brief once.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from pypdf import PdfReader

from alerts.daily_brief import dedup_key
from alerts.service import DAILY_BRIEF_JOB_ID, Service
from core.errors import ConfigError
from core.models import Post
from core.settings import ChannelConfig, ReportsConfig, Settings, SmtpConfig, StorageConfig
from nlp.analyzer import Analyzer
from nlp.segment import tokenize
from storage.local import LocalPostStore
from storage.state import SqlStateStore
from tests.integration.test_channels import Inbox, free_port

RAW_PHONE = "13812345678"
# 09:00 on 2026-11-23 in Shanghai: the brief is of 2026-11-22.
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_yuqing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("YUQING_"):
            monkeypatch.delenv(key)


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def make_settings(tmp_path: Path, port: int) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        storage=StorageConfig(
            posts_path=tmp_path / "posts.db", state_url=f"sqlite:///{tmp_path / 'state.db'}"
        ),
        channels=[
            ChannelConfig(
                name="email_hq",
                type="email",
                audience="head_office",
                recipients=["hq-risk@lanhai-bank.example"],
                smtp=SmtpConfig(
                    host="127.0.0.1", port=port, security="none", sender="yuqing@lanhai.example"
                ),
            ),
            ChannelConfig(name="log", type="log"),
            # A branch channel: not head office, never gets the brief.
            ChannelConfig(name="branch_log", type="log", audience="branch"),
        ],
        reports=ReportsConfig(daily_brief_time="08:30"),
    )


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[LocalPostStore, SqlStateStore]]:
    posts = LocalPostStore(tmp_path / "posts.db", tokenize)
    state = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    analyzer = Analyzer(Settings().watchlist)
    texts = [
        f"澜海银行滨江支行理财产品亏损，客户电话 {RAW_PHONE} 要求赔偿",
        "澜海银行手机银行无法登录，转账失败",
        "澜海银行信用卡年费说明",
    ]
    day_posts = []
    for i, text in enumerate(texts):
        post = Post(
            id=f"briefpost{i:04d}",
            url=f"https://bbs.lanhai.example/t/{i}",
            source="forum",
            title=f"澜海银行帖子 {i}",
            text=text,
            published_at=NOW - timedelta(hours=12 + i),  # 2026-11-22 local
        )
        day_posts.append(post.model_copy(update={"analysis": analyzer.analyze(text, post.title)}))
    assert posts.upsert(day_posts).failed == 0
    yield posts, state
    posts.close()
    state.close()


def test_the_daily_brief_job_emails_the_pdf_once(
    tmp_path: Path,
    smtp: tuple[Controller, Inbox],
    stores: tuple[LocalPostStore, SqlStateStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    controller, inbox = smtp
    posts, state = stores
    settings = make_settings(tmp_path, controller.port)
    caplog.set_level(logging.WARNING, logger="yuqing.alerts")
    service = Service(settings, post_store=posts, state_store=state, clock=lambda: NOW)
    assert DAILY_BRIEF_JOB_ID in service.wanted_jobs()

    first = service.daily_brief()
    assert first.day.isoformat() == "2026-11-22"
    assert sorted(first.queued) == ["email_hq", "log"]  # not the branch channel
    assert first.pdf is not None and first.pdf.parent == (tmp_path / "var" / "reports").resolve()

    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    assert "舆情日报" in str(mail["Subject"])
    attachments = list(mail.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["daily-brief-2026-11-22.pdf"]
    pdf = attachments[0].get_content()
    assert pdf == first.pdf.read_bytes()
    reader = PdfReader(io.BytesIO(pdf))
    text = "".join(p.extract_text() or "" for p in reader.pages).replace("\x00", "")
    assert "舆情日报" in "".join(text.split())
    assert RAW_PHONE not in "".join(text.split())
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None and "舆情总量：3" in body.get_content()
    # The chat channel got the Markdown summary with the link, not the PDF.
    logged = [r.getMessage() for r in caplog.records if "[log]" in r.getMessage()]
    assert len(logged) == 1 and "/reports?date=2026-11-22" in logged[0]

    # Again (a second cron run, or a catch-up after a restart): nothing new is sent.
    second = service.daily_brief()
    assert second.queued == [] and sorted(second.already_queued) == ["email_hq", "log"]
    assert second.reused_files
    service.deliver()
    assert len(inbox.messages) == 1
    sent = [n for n in state.list_notifications() if n.dedup_key == dedup_key(first.day)]
    assert len(sent) == 2 and all(n.sent_at is not None for n in sent)


def test_a_retry_attaches_the_same_file(
    tmp_path: Path, stores: tuple[LocalPostStore, SqlStateStore]
) -> None:
    posts, state = stores
    port = free_port()
    settings = make_settings(tmp_path, port)  # nothing listens there yet: down at 09:00
    clock = [NOW]
    service = Service(settings, post_store=posts, state_store=state, clock=lambda: clock[0])
    outcome = service.daily_brief()
    assert "email_hq" in outcome.queued
    pending = next(n for n in state.list_notifications() if n.channel == "email_hq")
    assert pending.sent_at is None and pending.attempts == 1 and pending.last_error

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()  # back; the outbox retries after the backoff
    try:
        clock[0] = NOW + timedelta(minutes=5)
        service.deliver()
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    attached = next(inbox.messages[0].iter_attachments()).get_content()
    assert outcome.pdf is not None and attached == outcome.pdf.read_bytes()


def test_a_bad_brief_time_is_a_config_error_naming_the_key() -> None:
    from core.settings import load_settings

    with pytest.raises(ConfigError, match=r"reports\.daily_brief_time"):
        load_settings(reports={"daily_brief_time": "25:00"})
    with pytest.raises(ConfigError, match=r"reports\.daily_brief_channels"):
        load_settings(reports={"daily_brief_channels": ["no_such_channel"]})
