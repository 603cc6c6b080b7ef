"""The escalation policy with fakes: who hears what, silences, realert window, the job."""

from __future__ import annotations

from datetime import UTC, timedelta

from alerts.escalation import EscalationPolicy, grade_key
from core.models import Incident
from core.settings import ChannelConfig, EscalationConfig, Silence
from core.vocab import Grade, IncidentStatus
from tests.unit.fakes import T0, FakeStateStore, minutes

CHANNELS = [
    ChannelConfig(name="log", type="log"),
    ChannelConfig(name="branch", type="log", audience="branch"),
    ChannelConfig(name="regional", type="log", audience="regional"),
    ChannelConfig(name="hq", type="log", audience="head_office", min_grade="III"),
]


def policy(**config: object) -> EscalationPolicy:
    return EscalationPolicy(
        EscalationConfig(**config),  # type: ignore[arg-type]
        CHANNELS,
        public_url="https://yuqing.example.com",
        tz=UTC,
    )


def saved(state: FakeStateStore, grade: Grade = Grade.IV, **update: object) -> Incident:
    incident = Incident(
        rule="volume_spike", key="all", title="测试事件", grade=grade, opened_at=T0, updated_at=T0
    )
    return state.save_incident(incident.model_copy(update=update))


def told(state: FakeStateStore) -> list[tuple[str, str]]:
    return sorted((n.channel, n.dedup_key) for n in state.outbox)


def test_grade_iv_starts_at_branch_and_climbs_while_unacknowledged() -> None:
    state, p = FakeStateStore(), policy(escalate_after_minutes=30)
    incident = saved(state)
    assert p.sync(state, incident, T0) == 2
    assert [c for c, _ in told(state)] == ["branch", "log"]

    state.now = T0 + minutes(29)
    assert p.run_due(state, state.now) == []
    state.now = T0 + minutes(30)
    assert p.run_due(state, state.now) == [(incident.id, 1)]
    assert [c for c, _ in told(state)] == ["branch", "log", "regional"]
    escalation = next(n for n in state.outbox if n.channel == "regional")
    assert escalation.payload["kind"] == "escalation"
    assert "已升级至：分行/区域" in escalation.body

    state.now = T0 + minutes(60)
    assert p.run_due(state, state.now) == [(incident.id, 2)]
    # hq has min_grade III: a grade IV incident reaches the top without waking it
    assert [c for c, _ in told(state)] == ["branch", "log", "regional"]
    state.now = T0 + minutes(600)
    assert p.run_due(state, state.now) == []


def test_grade_ii_goes_to_head_office_at_once_and_a_grade_rise_is_announced() -> None:
    state, p = FakeStateStore(), policy()
    incident = saved(state, Grade.II)
    p.sync(state, incident, T0)
    assert told(state) == [(c, grade_key(incident)) for c in ("branch", "hq", "log", "regional")]
    raised = state.save_incident(incident.model_copy(update={"grade": Grade.I}))
    p.sync(state, raised, T0 + minutes(1))
    assert len(state.outbox) == 8
    assert {n.dedup_key for n in state.outbox} == {
        f"incident:{incident.id}:grade:II",
        f"incident:{incident.id}:grade:I",
    }


def test_acknowledged_incidents_do_not_escalate() -> None:
    state, p = FakeStateStore(), policy(escalate_after_minutes=30)
    incident = saved(state, status=IncidentStatus.ACKNOWLEDGED)
    p.sync(state, incident, T0)
    state.now = T0 + minutes(300)
    assert p.run_due(state, state.now) == []


def test_a_silence_holds_messages_until_it_ends() -> None:
    until = T0 + timedelta(hours=2)
    state = FakeStateStore()
    p = policy(silences=[Silence(rule="volume_spike", until=until, reason="演练")])
    incident = saved(state)
    assert p.sync(state, incident, T0) == 0
    state.now = T0 + timedelta(hours=1)
    assert p.run_due(state, state.now) == []
    assert state.outbox == []
    state.now = until
    p.run_due(state, state.now)
    assert [c for c, _ in told(state)] == ["branch", "log"]
    # another key of the same rule is not silenced by a keyed silence
    keyed = policy(silences=[Silence(rule="volume_spike", key="topic:loans", until=until)])
    assert keyed.silence_for(incident, T0) is None


def test_a_resolved_notice_goes_to_everybody_told_once() -> None:
    state, p = FakeStateStore(), policy(escalate_after_minutes=30)
    incident = saved(state)
    p.sync(state, incident, T0)
    resolved = state.resolve(incident.id, user="analyst")  # type: ignore[arg-type]
    assert p.sync(state, resolved, T0 + minutes(5)) == 2
    assert p.sync(state, resolved, T0 + minutes(6)) == 0
    notices = [n for n in state.outbox if n.dedup_key.endswith(":resolved")]
    assert sorted(n.channel for n in notices) == ["branch", "log"]
    assert notices[0].payload["kind"] == "resolved"
    assert "事件解除" in notices[0].subject


def test_a_flapping_incident_is_not_announced_again_within_the_realert_window() -> None:
    state, p = FakeStateStore(), policy(realert_minutes=60)
    first = saved(state, Grade.III)
    p.sync(state, first, T0)
    state.resolve(first.id, user="analyst")  # type: ignore[arg-type]
    resolved_at = state.incidents[first.id].resolved_at  # type: ignore[index]
    assert resolved_at is not None
    again = saved(state, Grade.III, opened_at=resolved_at + minutes(10))
    assert p.sync(state, again, resolved_at + minutes(10)) == 0
    worse = state.save_incident(again.model_copy(update={"grade": Grade.II}))
    assert p.sync(state, worse, resolved_at + minutes(11)) > 0  # a higher grade is news
    later = saved(state, Grade.III, opened_at=resolved_at + minutes(61))
    assert p.sync(state, later, resolved_at + minutes(61)) > 0
