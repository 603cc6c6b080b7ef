"""The incident room's extras: timeline, key authors, signals, notes, escalate, draft report.

AppTest over the real app (``app_entry.py``) on real SQLite stores. The room
incident below has posts with known authors, reach and signals; expected
figures are computed from those posts, not typed in. With a config
(``YUQING_TEST_CONFIG``) the dashboard is wired as bootstrap wires it: the
alerting engine's action (escalate) and the draft-report builder.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.models import Alert, Analysis, Incident, Post, Signal
from core.vocab import Grade, Platform, Sentiment, Topic
from dashboard.app import LoginSession
from dashboard.components import SESSION_KEY, TEXT_PREVIEW_CHARS
from dashboard.data import DashboardData, DataUnavailable
from nlp.pii import mask_pii
from tests.dashboard.apptest import OpenApp, everything, frame_with, main_texts, make_opener
from tests.dashboard.fakes import DownStateStore
from tests.dashboard.seed import Seed
from tests.dashboard.users import USERS

HOSTILE_AUTHOR = "<img src=x onerror=alert(1)> **bold**"
HOSTILE_NOTE = "**已电话联系** <img src=x onerror=alert(1)> [点我](javascript:alert(1))"
PHONE_AUTHOR = "客户13812345678"
LONG_TEXT = "澜海银行稳盈理财到期不兑付，" * 2500  # 35 000 characters

ENGINE_CONFIG: dict[str, Any] = {
    "watchlist": {"bank": {"name": "澜海银行", "aliases": ["澜海"]}},
    # II starts at branch level here, so head office can escalate it twice.
    "escalation": {"start": {"IV": "branch", "III": "branch", "II": "branch", "I": "head_office"}},
    "channels": [{"name": "log", "type": "log"}],
}


@dataclass
class Room:
    """The room incident and the posts written for it."""

    incident: Incident
    posts: list[Post]
    long_post: Post


def _analysis(signals: list[Signal]) -> Analysis:
    return Analysis(
        sentiment=Sentiment.NEGATIVE,
        sentiment_score=0.1,
        topic=Topic.WEALTH_MANAGEMENT,
        risk_score=0.9 if signals else 0.5,
        critical=any(s.critical for s in signals),
        signals=signals,
    )


def _room_post(n: int, seed: Seed, hours: float, **kw: Any) -> Post:
    signals = kw.pop("signals", [])
    values: dict[str, Any] = {
        "id": f"roompost{n:05d}",
        "url": f"https://weibo.lanhai.example/p/{n}",
        "source": "weibo",
        "platform": Platform.WEIBO,
        "title": f"稳盈理财维权 {n}",
        "text": "澜海银行稳盈理财到期不兑付，集体维权",
        "published_at": seed.now - timedelta(hours=hours),
        "analysis": _analysis(signals),
    }
    values.update(kw)
    return Post(**values)


@pytest.fixture
def room(seed: Seed) -> Room:
    collective = Signal(name="collective_action", triggers=["集体维权", "拉横幅"], critical=True)
    posts = [
        _room_post(
            1,
            seed,
            5,
            author="理财维权老王",
            author_followers=120_000,
            reposts=800,
            comments=50,
            likes=300,
            signals=[collective],
        ),
        _room_post(
            2,
            seed,
            4,
            author="理财维权老王",
            author_followers=120_500,
            reposts=10,
            signals=[Signal(name="collective_action", triggers=["集体维权"], critical=True)],
        ),
        _room_post(
            3,
            seed,
            3.5,
            author=HOSTILE_AUTHOR,
            author_followers=10,
            text="澜海银行要挤兑了",
            signals=[Signal(name="bank_run", triggers=["挤兑"], critical=True)],
        ),
        _room_post(
            4,
            seed,
            2,
            author=None,
            reposts=5,
            # Raised by the trained crisis model (its weightiest words), not the lexicon.
            signals=[Signal(name="bank_run", triggers=["取款机"], critical=True, source="model")],
        ),
        _room_post(5, seed, 1, author="长文作者", author_followers=300, text=LONG_TEXT),
        _room_post(6, seed, 0.5, author=PHONE_AUTHOR, likes=7),
    ]
    assert seed.post_store.upsert(posts).failed == 0
    state = seed.state_store
    incident = state.save_incident(
        Incident(
            rule="critical_signal",
            key="signal:collective_action",
            title="澜海银行稳盈理财集体维权",
            grade=Grade.II,
            opened_at=seed.now - timedelta(hours=4),
            updated_at=seed.now - timedelta(minutes=20),
            first_seen=seed.now - timedelta(hours=5),
            post_count=len(posts),
            peak_count=3,
            post_ids=[p.id for p in posts] + ["roompost-gone"],
            reasons=["出现集体维权（collective_action）"],
            topic=Topic.WEALTH_MANAGEMENT,
            sources=["weibo"],
        )
    )
    assert incident.id is not None
    state.add_alert(
        Alert(
            incident_id=incident.id,
            rule="critical_signal",
            grade=Grade.III,
            created_at=seed.now - timedelta(hours=4),
            summary="出现集体维权",
            details={"event": "opened"},
        )
    )
    state.add_alert(
        Alert(
            incident_id=incident.id,
            rule="critical_signal",
            grade=Grade.II,
            created_at=seed.now - timedelta(hours=2),
            summary="多条集体维权帖",
            details={"event": "grade_raised", "previous_grade": "III"},
        )
    )
    return Room(incident=incident, posts=posts, long_post=posts[4])


@pytest.fixture
def open_room(
    room: Room, store_paths: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OpenApp]:
    """``open_room(user=..., config=...)``: the incidents page with the room incident selected."""
    opener = make_opener(store_paths, tmp_path, monkeypatch)

    def _open(**kw: Any) -> AppTest:
        return opener("incidents", query={"incident": str(room.incident.id)}, **kw)

    yield _open
    st.cache_resource.clear()
    st.cache_data.clear()


def _timeline(at: AppTest) -> Any:
    return frame_with(at, "执行者")


# ---------------------------------------------------------------------- what the room shows


def test_room_shows_volume_key_authors_and_signals(open_room: OpenApp, room: Room) -> None:
    at = open_room()
    assert at.selectbox(key="incident_selected").value == room.incident.id
    titles = [s.value for s in at.subheader]
    for section in ("事件帖子量走势", "关键作者与传播", "风险信号与触发词", "备注（0）"):
        assert section in titles
    assert any(f"基于事件记录的 {len(room.posts)} 条帖子，另有 1 条" in c.value for c in at.caption)

    # Key authors, from the posts: count per (masked) author, max followers, summed engagement.
    names = [mask_pii(p.author) if p.author else "（匿名）" for p in room.posts]
    by_posts = frame_with(at, "粉丝数")  # the first author table: most posts first
    expected_posts = Counter(names)
    assert dict(zip(by_posts["作者"], by_posts["帖子数"], strict=True)) == dict(expected_posts)
    top = by_posts.iloc[0]
    assert top["作者"] == "理财维权老王" and top["帖子数"] == 2
    wang = [p for p in room.posts if p.author == "理财维权老王"]
    followers = max(p.author_followers or 0 for p in wang)
    engagement = sum(p.reposts + p.comments + p.likes for p in wang)
    assert top["粉丝数"] == followers and top["影响力"] == followers + engagement
    assert "客户138****5678" in set(by_posts["作者"])  # PII in an author name is masked
    assert "13812345678" not in everything(at)

    # Signals with their trigger words.
    signals = frame_with(at, "触发词").set_index("信号")
    assert signals.loc["集体维权", "帖子数"] == 2
    assert signals.loc["集体维权", "触发词"] == "集体维权、拉横幅"  # most frequent first
    assert signals.loc["挤兑传闻", "触发词"] == "取款机、挤兑"  # a tie: by code point
    assert signals.loc["挤兑传闻", "帖子数"] == 2 and signals.loc["挤兑传闻", "其中模型判断"] == 1
    assert signals.loc["集体维权", "其中模型判断"] == 0
    assert set(signals["高危"]) == {"是"}

    # Timeline: the grade rise reads old → new.
    timeline = _timeline(at)
    raised = timeline[timeline["事件"] == "等级上升"]
    assert list(raised["等级"]) == ["III 较大 → II 重大"]


def test_hostile_and_long_posts_in_the_room(open_room: OpenApp, room: Room) -> None:
    at = open_room()
    texts = main_texts(at)
    # A 35 000-character post is cut in its card; the whole text is behind an expander.
    preview = mask_pii(LONG_TEXT)[:TEXT_PREVIEW_CHARS] + "…"
    assert preview in texts
    assert any(e.label == f"全文（{len(LONG_TEXT)} 字）" for e in at.expander)
    # A hostile author name is a table cell, never Markdown or HTML.
    authors = frame_with(at, "粉丝数")
    assert HOSTILE_AUTHOR in set(authors["作者"])
    for md in at.markdown:
        assert "<img" not in md.value and "**bold**" not in md.value


# ---------------------------------------------------------------------- notes


def test_notes_persist_appear_as_text_and_are_audited(
    open_room: OpenApp, room: Room, seed: Seed
) -> None:
    incident_id = room.incident.id or 0
    at = open_room(user="ana")
    at.text_area(key="incident_new_note").input(HOSTILE_NOTE).run()
    at.button(key="incident_add_note").click().run()
    assert not at.exception
    assert at.success[0].value == f"已为事件 #{incident_id} 添加备注。"
    assert at.text_area(key="incident_new_note").value == ""

    notes = seed.state_store.list_notes(incident_id)
    assert [(n.user, n.text, n.kind) for n in notes] == [("ana", HOSTILE_NOTE, "note")]
    audit = seed.state_store.list_audit(target=f"incident:{incident_id}")
    assert (audit[0].actor, audit[0].action, audit[0].detail) == ("ana", "note", HOSTILE_NOTE)
    assert audit[0].at == notes[0].at
    # Shown literally (plain text), in the notes and in the timeline.
    assert HOSTILE_NOTE in main_texts(at)
    for md in at.markdown:
        assert "已电话联系" not in md.value
    timeline = _timeline(at)
    assert HOSTILE_NOTE in set(timeline.loc[timeline["事件"] == "备注", "说明"])

    # A new session (another browser) sees the stored note.
    again = open_room(user="ho")
    assert "备注（1）" in [s.value for s in again.subheader]
    assert HOSTILE_NOTE in main_texts(again)


def test_an_empty_note_is_refused(open_room: OpenApp, room: Room, seed: Seed) -> None:
    at = open_room(user="ana")
    at.text_area(key="incident_new_note").input("   ").run()
    at.button(key="incident_add_note").click().run()
    assert "内容不能为空" in at.error[0].value
    assert seed.state_store.list_notes(room.incident.id or 0) == []


# ---------------------------------------------------------------------- escalate


def test_escalate_is_for_head_office_only(open_room: OpenApp, room: Room, seed: Seed) -> None:
    incident_id = room.incident.id or 0
    at = open_room(user="ana", config=ENGINE_CONFIG)
    assert at.button(key="incident_escalate").disabled
    # A click that reaches the server anyway (drawn for head office, the session now an
    # analyst's: a forged request) is refused and recorded.
    at = open_room(user="ho", config=ENGINE_CONFIG)
    at.session_state[SESSION_KEY] = LoginSession(USERS["ana"], datetime.now(UTC))
    at.button(key="incident_escalate").click().run()
    assert "分析员无权执行此操作" in at.error[0].value
    assert seed.state_store.list_escalations(incident_id) == []
    denied = seed.state_store.list_audit(target=f"incident:{incident_id}")[0]
    assert (denied.actor, denied.action) == ("ana", "denied_escalate")

    at = open_room(user="ho", config=ENGINE_CONFIG)
    assert not at.button(key="incident_escalate").disabled
    at.text_input(key="incident_note").input("请分行跟进").run()
    at.button(key="incident_escalate").click().run()
    assert not at.exception
    assert at.success[0].value == f"事件 #{incident_id} 已升级至：分行/区域。"
    steps = seed.state_store.list_escalations(incident_id)
    assert [(s.level, s.audience) for s in steps] == [(0, "branch"), (1, "regional")]
    assert (steps[1].actor, steps[1].note) == ("ho", "请分行跟进")
    # The timeline now shows the escalation and the queued notification.
    timeline = _timeline(at)
    events = list(timeline["事件"])
    assert "升级" in events
    queued = seed.state_store.list_notifications(incident_id=incident_id)
    assert queued, "escalating must queue a message to the log channel"
    assert events.count("通知待发送") == len(queued)

    at.button(key="incident_escalate").click().run()
    assert at.success[0].value == f"事件 #{incident_id} 已升级至：总行。"
    at.button(key="incident_escalate").click().run()
    assert at.success[0].value == f"事件 #{incident_id} 已在总行层级，无需再升级。"
    assert max(s.level for s in seed.state_store.list_escalations(incident_id)) == 2


def test_without_the_engine_escalate_is_off(open_room: OpenApp) -> None:
    at = open_room(user="ho")  # no config: built without bootstrap's incident action
    assert at.button(key="incident_escalate").disabled
    assert any("未接入报告草稿生成" in c.value for c in at.caption)


# ---------------------------------------------------------------------- draft report


def test_head_office_edits_and_saves_the_draft(open_room: OpenApp, room: Room, seed: Seed) -> None:
    incident_id = room.incident.id or 0
    key = f"incident_draft_{incident_id}"
    at = open_room(user="ho", config=ENGINE_CONFIG)
    draft = at.text_area(key=key)
    assert not draft.disabled
    assert room.incident.title in draft.value and "报告（草稿）" in draft.value
    assert "13812345678" not in draft.value
    assert any("尚未保存" in c.value for c in at.caption)

    edited = draft.value + "\n五、补充说明\n已与客户逐一沟通。"
    draft.input(edited).run()
    at.button(key="incident_save_draft").click().run()
    assert not at.exception
    assert at.success[0].value == f"事件 #{incident_id} 的报告草稿已保存。"
    saved = seed.state_store.list_notes(incident_id, kind="draft")
    assert [(n.user, n.text) for n in saved] == [("ho", edited)]
    audit = seed.state_store.list_audit(target=f"incident:{incident_id}")[0]
    assert (audit.actor, audit.action) == ("ho", "draft_saved")
    assert seed.state_store.list_notes(incident_id, kind="note") == []  # not a note

    # Next visit shows the saved draft, not a new one.
    again = open_room(user="ho", config=ENGINE_CONFIG)
    assert again.text_area(key=key).value == edited
    assert any(c.value.startswith("最近保存：") and "ho" in c.value for c in again.caption)
    # 重新生成 puts a fresh draft in the box (saved only when saved again).
    again.button(key="incident_regenerate_draft").click().run()
    assert "五、补充说明" not in again.text_area(key=key).value
    assert len(seed.state_store.list_notes(incident_id, kind="draft")) == 1


def test_analyst_reads_the_draft_but_cannot_save_it(open_room: OpenApp, room: Room) -> None:
    at = open_room(user="ana", config=ENGINE_CONFIG)
    key = f"incident_draft_{room.incident.id}"
    assert at.text_area(key=key).disabled
    assert at.button(key="incident_save_draft").disabled
    assert any("总行或管理员权限" in c.value for c in at.caption)


def test_no_draft_below_grade_ii(open_room: OpenApp, seed: Seed) -> None:
    at = open_room(user="ho", config=ENGINE_CONFIG)
    at.selectbox(key="incident_selected").select(seed.incident.id).run()  # grade II too
    assert "报告草稿（总行）" in [s.value for s in at.subheader]
    minor = seed.state_store.save_incident(
        seed.incident.model_copy(update={"id": None, "grade": Grade.III, "key": "minor"})
    )
    at.run()
    at.selectbox(key="incident_selected").select(minor.id).run()
    assert not at.exception
    assert "报告草稿（总行）" not in [s.value for s in at.subheader]


# ---------------------------------------------------------------------- data module


def test_notes_need_a_reachable_state_store(seed: Seed) -> None:
    data = DashboardData(seed.post_store, DownStateStore())
    assert not data.notes_enabled  # the fake keeps no notes: the page says so
    healthy = DashboardData(seed.post_store, seed.state_store)
    with pytest.raises(ValueError, match="不能为空"):
        healthy.add_note(seed.incident.id or 0, "ana", "  ")
    with pytest.raises(DataUnavailable):
        DashboardData(seed.post_store, DownStateStore()).incident_insights(1)


def test_bootstrap_wires_settings_escalation_and_drafts(tmp_path: Path) -> None:
    from core.settings import load_settings
    from storage.state import SqlStateStore
    from yuqing.bootstrap import build_dashboard_data

    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    settings = load_settings(
        None,
        env="dev",
        dashboard={"auth": "none"},
        storage={"posts_path": str(tmp_path / "posts.db"), "state_url": state_url},
    )
    data = build_dashboard_data(settings)
    try:
        assert data.settings is settings and data.settings_view() is not None
        assert data.can_escalate and data.drafts_enabled and data.notes_enabled
        state = SqlStateStore(state_url)
        incident = state.save_incident(
            Incident(rule="volume_spike", key="all", title="澜海银行网点排长队", grade=Grade.I)
        )
        state.close()
        draft = data.generate_draft(incident.id or 0)
        assert draft is not None and "澜海银行网点排长队" in draft and "I级（特别重大）" in draft
        assert data.generate_draft(9999) is None
    finally:
        data.close()


def test_a_forged_draft_save_by_an_analyst_is_refused(
    open_room: OpenApp, room: Room, seed: Seed
) -> None:
    incident_id = room.incident.id or 0
    at = open_room(user="ho", config=ENGINE_CONFIG)
    at.session_state[SESSION_KEY] = LoginSession(USERS["ana"], datetime.now(UTC))
    at.button(key="incident_save_draft").click().run()
    assert "分析员无权执行此操作" in at.error[0].value
    assert seed.state_store.list_notes(incident_id, kind="draft") == []
    denied = seed.state_store.list_audit(target=f"incident:{incident_id}")[0]
    assert (denied.actor, denied.action) == ("ana", "denied_reports")


def test_timeline_shows_sent_pending_and_failed_notifications(
    data: DashboardData, seed: Seed
) -> None:
    from core.models import Notification

    state = seed.state_store
    incident_id = seed.incident.id or 0
    at = seed.now - timedelta(minutes=40)

    def queue(channel: str) -> int:
        state.enqueue(
            Notification(
                channel=channel,
                dedup_key=f"incident:{incident_id}:grade:II",
                subject="【II级】澜海银行理财亏损讨论量激增",
                body="…",
                incident_id=incident_id,
                created_at=at,
            )
        )
        return next(n.id for n in state.list_notifications() if n.channel == channel) or 0

    sent, pending, failed = queue("hq_mail"), queue("hq_wecom"), queue("hq_hook")
    state.mark_sent(sent, at + timedelta(minutes=1))
    state.mark_failed(pending, "timeout", retry_at=at + timedelta(minutes=5))
    state.mark_failed(failed, "HTTP 403", retry_at=None)

    detail = data.incident_detail(incident_id)
    assert detail is not None
    rows = detail.timeline[detail.timeline["actor"].isin(["hq_mail", "hq_wecom", "hq_hook"])]
    by_channel = dict(zip(rows["actor"], rows["event"], strict=True))
    assert by_channel == {
        "hq_mail": "通知已发送",
        "hq_wecom": "通知待发送",
        "hq_hook": "通知发送失败",
    }
    assert "HTTP 403" in rows.loc[rows["actor"] == "hq_hook", "detail"].item()
    assert "已尝试 1 次：timeout" in rows.loc[rows["actor"] == "hq_wecom", "detail"].item()
    assert list(detail.timeline["local_time"]) == sorted(detail.timeline["local_time"])
