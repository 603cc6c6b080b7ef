"""The detector with fake stores: incidents, alerts, notifications, dry-run and outages."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any

import pytest

from alerts.detector import DetectionFailed, Detector
from alerts.incidents import apply_match, dedup_key
from alerts.rules import Match, Rule, VolumeSpike
from core.errors import StoreUnavailable
from core.models import Incident
from core.ports import PostStore
from core.settings import ChannelConfig, VolumeSpikeRule
from core.vocab import Grade, IncidentStatus
from tests.unit.fakes import (
    T0,
    FakePostStore,
    FakeStateStore,
    make_post,
    minutes,
    outage,
)

CHANNELS = [
    ChannelConfig(name="log", type="log"),
    ChannelConfig(name="head_office", type="webhook", min_grade="III"),
    ChannelConfig(name="off", type="log", enabled=False),
]


def spike_rule(**options: Any) -> VolumeSpike:
    defaults: dict[str, Any] = {"window_minutes": 30, "baseline_windows": 4, "min_count": 8}
    return VolumeSpike(VolumeSpikeRule(**{**defaults, **options}))


def seed(store: FakePostStore, count: int, *, end: datetime = T0, start_id: int = 0) -> None:
    """``count`` posts spread over the 30 minutes before ``end``, one baseline post per window."""
    posts = [make_post(start_id + i, end - minutes(1 + (i % 29))) for i in range(count)]
    store.upsert(posts)


def detector(
    posts: FakePostStore, state: FakeStateStore, *rules: Rule[Any], channels: Any = CHANNELS
) -> Detector:
    return Detector(list(rules) or [spike_rule()], posts, state, channels, clock=lambda: T0)


def test_quiet_data_writes_nothing() -> None:
    posts, state = FakePostStore(), FakeStateStore()
    seed(posts, 3)
    assert detector(posts, state).run_once(T0) == []
    assert state.writes == 0


def test_a_spike_opens_an_incident_records_an_alert_and_queues_a_notification(
    caplog: pytest.LogCaptureFixture,
) -> None:
    posts, state = FakePostStore(), FakeStateStore()
    seed(posts, 12)

    with caplog.at_level(logging.WARNING, logger="alerts.detector"):
        alerts = detector(posts, state).run_once(T0)

    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.id is not None
    assert alert.grade is Grade.III  # 12 over a silent baseline (floored at 1): 12× ≥ 2 × 3×
    assert alert.details["event"] == "opened"
    (incident,) = state.incidents.values()
    assert alert.incident_id == incident.id
    assert incident.rule == "volume_spike"
    assert incident.key == "all"
    assert incident.status is IncidentStatus.OPEN
    assert "舆情声量激增" in incident.title
    assert incident.post_count == 12
    assert incident.peak_count == 12
    assert incident.first_seen == T0 - minutes(30)
    assert incident.sources == ["forum"]
    # evidence: the newest posts of the current window first
    assert len(incident.post_ids) == 12
    assert incident.post_ids[0] == "post00000000"  # published 1 min before now
    assert incident.reasons == [alert.summary]
    # one notification per enabled channel whose min_grade is met
    assert [n.channel for n in state.outbox] == ["log", "head_office"]
    assert {n.dedup_key for n in state.outbox} == {f"incident:{incident.id}:grade:III"}
    assert "【较大·III级】" in state.outbox[0].subject
    assert f"原因：{alert.summary}" in state.outbox[0].body
    # logged at WARNING with structured fields
    record = next(r for r in caplog.records if "ALERT opened" in r.getMessage())
    assert record.levelno == logging.WARNING
    assert record.incident_id == incident.id  # type: ignore[attr-defined]
    assert record.grade == "III"  # type: ignore[attr-defined]


def test_min_grade_keeps_a_grade_iv_incident_from_head_office() -> None:
    posts, state = FakePostStore(), FakeStateStore()
    posts.upsert([make_post(900 + i, T0 - minutes(31 + 15 * i)) for i in range(8)])  # mean 2
    seed(posts, 8)
    alerts = detector(posts, state).run_once(T0)
    assert alerts[0].grade is Grade.IV  # 8 / 2 = 4×
    assert [n.channel for n in state.outbox] == ["log"]


def test_a_rerun_updates_the_same_incident_and_does_not_notify_twice() -> None:
    posts, state = FakePostStore(), FakeStateStore()
    seed(posts, 12)
    det = detector(posts, state)
    det.run_once(T0)

    # Same data, same minute: nothing new.
    assert det.run_once(T0) == []
    assert len(state.incidents) == 1
    assert len(state.alerts) == 1
    assert len(state.outbox) == 2

    # Two minutes later with more posts: same incident, a new peak, still no new message.
    later = T0 + minutes(2)
    seed(posts, 6, end=later, start_id=100)
    alerts = det.run_once(later)
    assert len(state.incidents) == 1
    (incident,) = state.incidents.values()
    assert incident.peak_count == 18
    assert incident.post_count == 18
    assert incident.updated_at == later
    assert incident.first_seen == T0 - minutes(30)
    assert len(incident.reasons) == 2
    assert [a.details["event"] for a in alerts] == ["new_peak"]
    assert len(state.outbox) == 2  # dedup: same incident, same grade


def test_a_grade_rise_is_announced_once_per_grade() -> None:
    posts, state = FakePostStore(), FakeStateStore()
    posts.upsert([make_post(900 + i, T0 - minutes(31 + 15 * i)) for i in range(8)])  # mean 2
    seed(posts, 8)
    det = detector(posts, state)
    det.run_once(T0)
    assert [n.channel for n in state.outbox] == ["log"]

    later = T0 + minutes(1)
    seed(posts, 10, end=later, start_id=100)  # 18 / 2 = 9× → III
    alerts = det.run_once(later)
    assert [a.details["event"] for a in alerts] == ["grade_raised"]
    assert alerts[0].details["previous_grade"] == "IV"
    (incident,) = state.incidents.values()
    assert incident.grade is Grade.III
    keys = sorted((n.channel, n.dedup_key) for n in state.outbox)
    assert keys == [
        ("head_office", f"incident:{incident.id}:grade:III"),
        ("log", f"incident:{incident.id}:grade:III"),
        ("log", f"incident:{incident.id}:grade:IV"),
    ]


def test_a_lost_notification_is_requeued_by_the_next_cycle() -> None:
    # Simulates a crash after the incident was saved but before its messages were queued.
    posts, state = FakePostStore(), FakeStateStore()
    seed(posts, 12)
    det = detector(posts, state)
    det.run_once(T0)
    state.outbox.clear()
    det.run_once(T0)
    assert len(state.outbox) == 2


def test_acknowledged_incidents_keep_collecting_and_resolved_ones_stay_closed() -> None:
    posts, state = FakePostStore(), FakeStateStore()
    seed(posts, 12)
    det = detector(posts, state)
    det.run_once(T0)
    state.acknowledge(1, user="analyst")
    det.run_once(T0 + minutes(1))
    assert list(state.incidents) == [1]

    state.resolve(1, user="analyst")
    alerts = det.run_once(T0 + minutes(2))
    assert sorted(state.incidents) == [1, 2]  # a new incident, the resolved one untouched
    assert state.incidents[1].status is IncidentStatus.RESOLVED
    assert alerts[0].incident_id == 2


def test_dry_run_logs_the_match_and_writes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    posts, state = FakePostStore(), FakeStateStore()
    seed(posts, 12)
    with caplog.at_level(logging.WARNING, logger="alerts.detector"):
        alerts = detector(posts, state, spike_rule(dry_run=True)).run_once(T0)
    assert state.writes == 0
    assert state.incidents == {} and state.alerts == [] and state.outbox == []
    assert len(alerts) == 1 and alerts[0].details["dry_run"] is True and alerts[0].id is None
    assert any("dry-run" in r.getMessage() for r in caplog.records)


def test_disabled_rules_are_not_evaluated() -> None:
    posts, state = FakePostStore(), FakeStateStore()
    seed(posts, 12)
    assert detector(posts, state, spike_rule(enabled=False)).run_once(T0) == []
    assert posts.calls == ["upsert"]


def test_a_post_store_outage_is_reported_never_treated_as_quiet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    posts, state = FakePostStore(), FakeStateStore()
    posts.fail_with = outage()
    with (
        caplog.at_level(logging.ERROR, logger="alerts.detector"),
        pytest.raises(DetectionFailed) as raised,
    ):
        detector(posts, state).run_once(T0)
    assert isinstance(raised.value.failures["volume_spike"], StoreUnavailable)
    assert state.incidents == {}
    assert state.audit_log == [
        (
            "detector",
            "detection_failed",
            "rule:volume_spike",
            "StoreUnavailable: connection refused (fake outage)",
        )
    ]
    assert any(r.levelno == logging.ERROR and "NOT quiet" in r.getMessage() for r in caplog.records)


def test_a_state_store_outage_still_raises_even_if_the_audit_log_is_down() -> None:
    posts, state = FakePostStore(), FakeStateStore()
    seed(posts, 12)
    state.fail_with = outage()
    with pytest.raises(DetectionFailed):
        detector(posts, state).run_once(T0)


class _Broken(Rule[VolumeSpikeRule]):
    type = "broken_for_test"
    options = VolumeSpikeRule

    def evaluate(self, posts: PostStore, now: datetime, *, exclude: Any = ()) -> Match | None:
        raise ZeroDivisionError("bug")


def test_one_failing_rule_does_not_blind_the_others() -> None:
    posts, state = FakePostStore(), FakeStateStore()
    seed(posts, 12)
    broken = _Broken(VolumeSpikeRule(name="broken"))
    with pytest.raises(DetectionFailed) as raised:
        detector(posts, state, broken, spike_rule()).run_once(T0)
    assert list(raised.value.failures) == ["broken"]
    assert len(raised.value.alerts) == 1  # the healthy rule still raised its alert
    assert len(state.incidents) == 1


def test_run_once_uses_the_clock_by_default() -> None:
    posts, state = FakePostStore(), FakeStateStore()
    seed(posts, 12)
    alerts = detector(posts, state).run_once()
    assert alerts[0].created_at == T0


def test_from_settings_builds_rules_and_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import Settings

    for key in [k for k in os.environ if k.startswith("YUQING_")]:
        monkeypatch.delenv(key)  # the environment outranks keyword arguments
    settings = Settings(rules=[VolumeSpikeRule(name="spike")], channels=CHANNELS)
    det = Detector.from_settings(settings, FakePostStore(), FakeStateStore())
    assert [r.name for r in det.rules] == ["spike"]
    assert [c.name for c in det.channels] == ["log", "head_office", "off"]


# -- the pure incident policy ------------------------------------------------------------


def _match(grade: Grade, count: int, reason: str = "r") -> Match:
    return Match(
        rule="volume_spike",
        rule_type="volume_spike",
        grade=grade,
        title="t",
        reason=reason,
        count=count,
        window_start=T0 - minutes(30),
        window_end=T0,
    )


def test_grades_never_go_down_and_ids_are_merged_newest_first() -> None:
    opened = apply_match(
        None,
        _match(Grade.III, 10),
        now=T0,
        window_count=10,
        post_count=10,
        post_ids=["b", "a"],
        sources=["forum"],
    )
    assert opened.event == "opened"
    active = opened.incident.model_copy(update={"id": 7})
    later = apply_match(
        active,
        _match(Grade.IV, 5, "r2"),
        now=T0 + minutes(1),
        window_count=5,
        post_count=None,
        post_ids=["c", "b"],
        sources=["news"],
    )
    assert later.event is None
    assert later.incident.grade is Grade.III
    assert later.incident.post_ids == ["c", "b", "a"]
    assert later.incident.sources == ["forum", "news"]
    assert later.incident.peak_count == 10
    assert later.incident.post_count == 10
    assert later.incident.reasons == ["r"]  # nothing new, no reason appended
    assert dedup_key(later.incident) == "incident:7:grade:III"


def test_messages_need_a_saved_incident() -> None:
    from alerts.messages import build_message

    with pytest.raises(ValueError, match="save the incident"):
        build_message(
            Incident(rule="r", key="all", title="t"),
            kind="alert",
            now=T0,
            tz=UTC,
            public_url="http://x",
        )
