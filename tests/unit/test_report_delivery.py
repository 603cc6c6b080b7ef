"""How the daily brief travels: attachments by reference, the report message, the schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger

from alerts.attachments import attachment_ref, load_attachments
from alerts.messages import REPORT_KIND, ReportMessage, message_of
from alerts.notifiers.email import EmailNotifier
from alerts.notifiers.wecom import WeComNotifier
from alerts.service import Service
from core.errors import NotifierError
from core.models import Notification
from core.settings import SmtpConfig

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def _brief_notification(channel: str, attachments: list[dict[str, object]]) -> Notification:
    return Notification(
        channel=channel,
        dedup_key="daily-brief:2026-11-22",
        subject="澜海银行舆情日报（2026年11月22日）",
        body="舆情总量：3\n完整日报：https://yuqing.example/reports?date=2026-11-22",
        payload={
            "kind": REPORT_KIND,
            "markdown": "### 澜海银行舆情日报\n- 舆情总量：3\n\n[查看完整日报](https://yuqing.example/r)",
            "attachments": attachments,
        },
    )


def _email() -> EmailNotifier:
    smtp = SmtpConfig(host="127.0.0.1", port=2525, security="none", sender="yq@lanhai.example")
    return EmailNotifier("email_hq", smtp, ["hq@lanhai.example"])


def test_the_email_attaches_the_referenced_file(tmp_path: Path) -> None:
    pdf = tmp_path / "daily-brief-2026-11-22.pdf"
    pdf.write_bytes(b"%PDF-1.4 test")
    ref = attachment_ref(pdf, filename=pdf.name, content_type="application/pdf")
    mail = _email().build(_brief_notification("email_hq", [ref]))
    parts = list(mail.iter_attachments())
    assert [p.get_filename() for p in parts] == [pdf.name]
    assert parts[0].get_content_type() == "application/pdf"
    assert parts[0].get_content() == b"%PDF-1.4 test"
    text = mail.get_body(preferencelist=("plain",))
    assert text is not None and "舆情总量：3" in text.get_content()
    assert mail["Subject"] == "澜海银行舆情日报（2026年11月22日）"  # no grade prefix


def test_a_missing_or_changed_attachment_is_a_permanent_error(tmp_path: Path) -> None:
    pdf = tmp_path / "b.pdf"
    pdf.write_bytes(b"%PDF-1.4 first")
    ref = attachment_ref(pdf, filename="b.pdf", content_type="application/pdf")
    pdf.write_bytes(b"%PDF-1.4 other")
    with pytest.raises(NotifierError, match="checksum") as changed:
        load_attachments(_brief_notification("email_hq", [ref]))
    assert changed.value.temporary is False
    pdf.unlink()
    with pytest.raises(NotifierError, match=str(pdf)) as missing:
        _email().build(_brief_notification("email_hq", [ref]))
    assert missing.value.temporary is False


def test_robots_post_the_reports_own_markdown() -> None:
    notification = _brief_notification("wecom_hq", [])
    message = message_of(notification)
    assert isinstance(message, ReportMessage)
    assert message.subject == notification.subject
    content = WeComNotifier("wecom_hq", "https://wecom.example", "k").payload(notification)
    assert content["markdown"] == {"content": notification.payload["markdown"]}
    assert "<br>" in message.html() and "&lt;" not in message.html()


def test_the_brief_waits_for_its_time_unless_a_run_was_missed() -> None:
    trigger = CronTrigger(hour=8, minute=30, timezone="Asia/Shanghai")
    # Fresh start at 09:00 local: no stored job, so the next run is tomorrow 08:30.
    first = Service._daily_brief_first_run(trigger, NOW, None)
    assert first == datetime(2026, 11, 24, 0, 30, tzinfo=UTC)

    class Stored:
        next_run_time = NOW - timedelta(minutes=30)  # 08:30 passed while the service was down

    assert Service._daily_brief_first_run(trigger, NOW, Stored()) == NOW

    class Upcoming:
        next_run_time = NOW + timedelta(hours=23)

    assert Service._daily_brief_first_run(trigger, NOW, Upcoming()) == first
