"""The message renderer: one content, several formats; stored and rebuilt unchanged."""

from __future__ import annotations

from datetime import timedelta, timezone

from alerts.messages import Message, build_message, message_of
from core.models import Incident, Notification
from core.vocab import Grade
from tests.unit.fakes import T0, make_post

SH = timezone(timedelta(hours=8))


def message() -> Message:
    incident = Incident(
        id=5,
        rule="volume_spike",
        key="all",
        title="<script>alert(1)</script> [点我](http://evil)",
        grade=Grade.I,
        opened_at=T0,
        updated_at=T0,
        post_count=99,
        peak_count=40,
        reasons=["旧原因"],
    )
    post = make_post(1, T0, title="联系人 13812345678")
    return build_message(
        incident,
        kind="alert",
        now=T0,
        tz=SH,
        public_url="https://y.example/",
        top_posts=[post],
        reason="新原因",
        window=(T0 - timedelta(minutes=30), T0),
    )


def test_payload_round_trip() -> None:
    original = message()
    again = Message.from_payload(original.to_payload())
    assert again == original
    note = original.notification("hq", "incident:5:grade:I", now=T0)
    assert message_of(note) == original
    assert note.subject == "【特别重大·I级】<script>alert(1)</script> [点我](http://evil)"


def test_formats_escape_what_they_must_and_mask_pii() -> None:
    m = message()
    assert "<script>" not in m.html() and "&lt;script&gt;" in m.html()
    assert "](http://evil)" not in m.markdown()  # a title cannot become a link
    for text in (m.text(), m.markdown(), m.html()):
        assert "13812345678" not in text and "138****5678" in text
    assert m.text().index("新原因") < m.text().index("旧原因")
    assert "2025-03-03 20:00 (UTC+0800)" in m.text()  # shown in Asia/Shanghai
    assert "https://y.example/incidents?incident=5" in m.text()
    assert m.color == "red" and "#d93025" in m.html()


def test_a_plain_notification_still_renders() -> None:
    plain = Notification(channel="c", dedup_key="k", subject="主题", body="正文", created_at=T0)
    rendered = message_of(plain)
    assert rendered.title == "主题" and "正文" in rendered.text()


def test_the_sample_message_is_labelled_as_a_test() -> None:
    from alerts.messages import sample_message

    sample = sample_message(now=T0, tz=SH, public_url="https://y.example")
    assert "测试" in sample.subject and "无需处理" in sample.text()
