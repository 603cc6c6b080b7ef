"""The regulatory clock and the draft report."""

from __future__ import annotations

from datetime import UTC

from alerts.escalation import EscalationPolicy
from alerts.regulatory import draft_report, reporting_deadline
from core.models import Alert, Incident
from core.settings import ChannelConfig, EscalationConfig, ReportingConfig
from core.vocab import Grade
from tests.unit.fakes import T0, FakeStateStore, make_post, minutes

CONFIG = ReportingConfig(deadlines_minutes={"II": 240, "I": 60}, report_to="总行办公室")


def incident(grade: Grade) -> Incident:
    return Incident(
        id=3,
        rule="volume_spike",
        key="all",
        title="理财亏损投诉集中爆发",
        grade=grade,
        opened_at=T0,
        updated_at=T0,
        post_count=42,
        peak_count=24,
        reasons=["30分钟内 24 条 (11.4×)"],
        sources=["demo_forum"],
    )


def alert(grade: Grade, at_minutes: float) -> Alert:
    return Alert(
        incident_id=3, rule="volume_spike", grade=grade, created_at=T0 + minutes(at_minutes),
        summary="s",
    )  # fmt: skip


def test_no_clock_below_grade_ii() -> None:
    assert reporting_deadline(incident(Grade.III), [alert(Grade.III, 0)], CONFIG) is None


def test_the_clock_starts_when_the_grade_was_reached() -> None:
    alerts = [alert(Grade.IV, 0), alert(Grade.II, 30)]
    deadline = reporting_deadline(incident(Grade.II), alerts, CONFIG)
    assert deadline is not None
    assert (deadline.grade, deadline.started_at) == (Grade.II, T0 + minutes(30))
    assert deadline.due_at == T0 + minutes(30 + 240)
    assert deadline.remaining(T0 + minutes(300)) == -minutes(30)


def test_becoming_grade_i_takes_the_earlier_deadline() -> None:
    alerts = [alert(Grade.II, 0), alert(Grade.I, 200)]
    deadline = reporting_deadline(incident(Grade.I), alerts, CONFIG)
    assert deadline is not None and deadline.due_at == T0 + minutes(240)  # II's is earlier
    alerts = [alert(Grade.II, 0), alert(Grade.I, 10)]
    deadline = reporting_deadline(incident(Grade.I), alerts, CONFIG)
    assert deadline is not None and deadline.grade is Grade.I
    assert deadline.due_at == T0 + minutes(70)


def test_the_draft_report_has_the_four_sections_and_masks_pii() -> None:
    post = make_post(1, T0, title="客户经理电话 13812345678 打不通")
    text = draft_report(
        incident(Grade.II),
        bank="澜海银行",
        alerts=[alert(Grade.II, 0)],
        posts=[post],
        actions=[(T0 + minutes(5), "channel:hq", "acknowledge", "一键链接")],
        config=CONFIG,
        tz=UTC,
        now=T0 + minutes(60),
    )
    for heading in ("一、事件概况", "二、影响范围", "三、已采取的措施", "四、下一步工作"):
        assert heading in text
    assert "报送对象：总行办公室" in text
    assert "报告时限：2025-03-03 16:00" in text and "剩余 180 分钟" in text
    assert "13812345678" not in text and "138****5678" in text
    assert "channel:hq：acknowledge" in text
    assert "累计相关帖子 42 条" in text


def test_grade_ii_messages_show_the_reporting_deadline() -> None:
    state = FakeStateStore()
    saved = state.save_incident(incident(Grade.II).model_copy(update={"id": None}))
    state.add_alert(alert(Grade.II, 0).model_copy(update={"incident_id": saved.id}))
    policy = EscalationPolicy(
        EscalationConfig(),
        [ChannelConfig(name="hq", type="log")],
        public_url="http://x",
        tz=UTC,
        reporting=CONFIG,
    )
    policy.sync(state, saved, T0)
    (message,) = state.outbox
    assert "报告时限：03-03 16:00 前报总行办公室" in message.body
