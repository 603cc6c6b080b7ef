"""Grouping across rules: matches about the same topic/entity close in time join one incident."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from alerts.detector import Detector, past_incident_windows
from alerts.incidents import Subject, apply_match, can_join, subject_of
from alerts.rules import CriticalSignal, Match, VolumeSpike
from core.models import Analysis, Incident, Post, Signal
from core.settings import (
    Branch,
    ChannelConfig,
    CriticalSignalRule,
    GroupingConfig,
    VolumeSpikeRule,
    Watchlist,
)
from core.vocab import Grade, IncidentStatus, Sentiment, Topic
from tests.unit.fakes import T0, FakePostStore, FakeStateStore, minutes

BANK = "澜海银行"
BINJIANG = "澜海银行滨江支行"
CHENGXI = "澜海银行城西支行"
WATCHLIST = Watchlist(branches=[Branch(name=BINJIANG), Branch(name=CHENGXI)])
CHANNELS = [ChannelConfig(name="log", type="log")]


def post(
    n: int,
    at: datetime,
    *,
    branch: str | None = None,
    topic: Topic = Topic.WEALTH_MANAGEMENT,
    signal: str | None = None,
) -> Post:
    entities = [BANK, branch] if branch else [BANK]
    return Post(
        id=f"post{n:08d}",
        url=f"https://forum.example/t/{n}",
        source="forum",
        text=f"{branch or BANK} 帖子 {n}",
        published_at=at,
        analysis=Analysis(
            sentiment=Sentiment.NEGATIVE,
            sentiment_score=0.1,
            topic=topic,
            entities=entities,
            signals=[Signal(name=signal, critical=True)] if signal else [],
            critical=signal is not None,
        ),
    )


def crisis(start: int, branch: str, *, count: int = 12, critical: int = 2) -> list[Post]:
    """``count`` posts about ``branch`` in the 20 minutes before T0, ``critical`` of them
    with the collective-action signal."""
    return [
        post(
            start + i,
            T0 - minutes(1 + i),
            branch=branch,
            signal="collective_action" if i < critical else None,
        )
        for i in range(count)
    ]


def rules() -> list[Any]:
    return [
        VolumeSpike(VolumeSpikeRule(window_minutes=30, baseline_windows=4, min_count=8)),
        CriticalSignal(CriticalSignalRule(window_minutes=60)),
    ]


def detector(
    posts: FakePostStore, state: FakeStateStore, grouping: GroupingConfig | None = None
) -> Detector:
    return Detector(
        rules(), posts, state, CHANNELS, clock=lambda: T0, watchlist=WATCHLIST, grouping=grouping
    )


# -- the detector ----------------------------------------------------------------------------


def test_a_spike_and_a_critical_signal_about_one_branch_are_one_incident() -> None:
    posts, state = FakePostStore(crisis(0, BINJIANG)), FakeStateStore()

    alerts = detector(posts, state).run_once(T0)

    (incident,) = state.incidents.values()
    assert incident.rules == ["volume_spike", "critical_signal"]
    assert incident.members == ["volume_spike:all", "critical_signal:signal:collective_action"]
    assert incident.entity == BINJIANG
    assert incident.topic is Topic.WEALTH_MANAGEMENT
    # The critical signal lifts the spike's incident to at least III, announced once per grade.
    assert incident.grade.severity >= Grade.III.severity
    assert alerts[0].details["event"] == "opened"
    assert {a.rule for a in alerts} == {"volume_spike", "critical_signal"}
    assert all(a.incident_id == incident.id for a in alerts)
    assert len(incident.reasons) == 2


def test_a_second_cycle_stays_in_the_same_incident_and_adds_no_alert() -> None:
    posts, state = FakePostStore(crisis(0, BINJIANG)), FakeStateStore()
    det = detector(posts, state)
    det.run_once(T0)
    notified = len(state.outbox)

    again = det.run_once(T0 + timedelta(seconds=30))

    assert len(state.incidents) == 1
    assert again == []
    assert len(state.outbox) == notified  # the outbox dedup is untouched by grouping


def test_different_branches_are_two_incidents() -> None:
    # The spike is about 滨江支行; the collective action is at 城西支行.
    spike = crisis(0, BINJIANG, critical=0)
    action = [post(100, T0 - minutes(2), branch=CHENGXI, signal="collective_action")]
    posts, state = FakePostStore([*spike, *action]), FakeStateStore()

    detector(posts, state).run_once(T0)

    by_rule = {inc.rule: inc for inc in state.incidents.values()}
    assert set(by_rule) == {"volume_spike", "critical_signal"}
    assert by_rule["volume_spike"].entity == BINJIANG
    assert by_rule["critical_signal"].entity == CHENGXI
    assert all(len(inc.rules) == 1 for inc in by_rule.values())


def test_grouping_can_be_switched_off() -> None:
    posts, state = FakePostStore(crisis(0, BINJIANG)), FakeStateStore()

    detector(posts, state, GroupingConfig(enabled=False)).run_once(T0)

    assert sorted(inc.rule for inc in state.incidents.values()) == [
        "critical_signal",
        "volume_spike",
    ]


def test_an_incident_older_than_the_join_window_absorbs_nothing() -> None:
    posts, state = FakePostStore(crisis(0, BINJIANG, critical=0)), FakeStateStore()
    det = detector(posts, state, GroupingConfig(join_minutes=30))
    det.run_once(T0)
    # An hour later a collective action at the same branch: the spike incident went quiet.
    later = T0 + timedelta(hours=1)
    posts.upsert([post(200, later - minutes(2), branch=BINJIANG, signal="collective_action")])

    det.run_once(later)

    assert len(state.incidents) == 2


def test_a_joined_rule_leaves_the_incident_window_out_of_its_own_baseline() -> None:
    posts, state = FakePostStore(crisis(0, BINJIANG)), FakeStateStore()
    detector(posts, state).run_once(T0)

    windows = past_incident_windows(state, "critical_signal", T0)

    assert len(windows) == 1


# -- pure parts ------------------------------------------------------------------------------


def test_subject_is_the_majority_topic_and_the_named_branch() -> None:
    posts = [post(i, T0, branch=BINJIANG if i < 4 else None) for i in range(10)]
    posts += [post(20 + i, T0, topic=Topic.CREDIT_CARD) for i in range(3)]

    subject = subject_of(posts, WATCHLIST)

    assert subject == Subject(topic="wealth_management", entities=(BINJIANG,), bank=BANK)
    assert subject.entity == BINJIANG


def test_subject_without_a_majority_topic_or_a_frequent_branch() -> None:
    posts = [post(0, T0, branch=BINJIANG)]
    posts += [post(i, T0, topic=Topic.CREDIT_CARD) for i in range(1, 5)]
    posts += [post(i, T0, topic=Topic.LOANS) for i in range(5, 10)]

    subject = subject_of(posts, WATCHLIST)

    assert subject.topic == "loans"  # 5 of 10 posts: exactly the default share 0.5
    assert subject_of(posts, WATCHLIST, topic_share=0.6).topic is None
    assert subject.entities == ()
    assert subject.entity == BANK


def test_the_rule_s_own_topic_and_entities_win() -> None:
    subject = subject_of([], WATCHLIST, topic="loans", entities=[CHENGXI])

    assert subject == Subject(topic="loans", entities=(CHENGXI,), bank=BANK)


def incident(**update: Any) -> Incident:
    values: dict[str, Any] = {
        "id": 1,
        "rule": "volume_spike",
        "key": "all",
        "title": "t",
        "opened_at": T0,
        "updated_at": T0,
        "entity": BINJIANG,
        "topic": Topic.WEALTH_MANAGEMENT,
    }
    return Incident(**{**values, **update})


def test_can_join_rules() -> None:
    window = timedelta(minutes=60)
    same = Subject(topic="wealth_management", entities=(BINJIANG,), bank=BANK)
    unknown_topic = Subject(topic=None, entities=(BINJIANG,), bank=BANK)
    other_topic = Subject(topic="loans", entities=(BINJIANG,), bank=BANK)
    bank_only = Subject(topic="wealth_management", entities=(), bank=BANK)

    assert can_join(incident(), same, now=T0, join_window=window)
    assert can_join(incident(), unknown_topic, now=T0, join_window=window)
    assert not can_join(incident(), other_topic, now=T0, join_window=window)
    # The match names only the bank, the incident is about 滨江支行: not the same subject.
    assert not can_join(incident(), bank_only, now=T0, join_window=window)
    assert not can_join(incident(), same, now=T0 + timedelta(hours=2), join_window=window)
    assert not can_join(incident(status=IncidentStatus.RESOLVED), same, now=T0, join_window=window)
    # An incident about the bank as a whole absorbs matches about the bank (or one of its
    # branches) unless both topics are known and differ.
    about_bank = incident(entity=BANK)
    assert can_join(about_bank, bank_only, now=T0, join_window=window)
    assert can_join(about_bank, same, now=T0, join_window=window)
    assert can_join(about_bank, Subject(bank=BANK), now=T0, join_window=window)
    assert can_join(incident(topic=None, entity=BANK), bank_only, now=T0, join_window=window)
    assert not can_join(about_bank, Subject(topic="loans", bank=BANK), now=T0, join_window=window)
    assert not can_join(incident(entity=None), same, now=T0, join_window=window)


def test_apply_match_join_grows_rules_and_raises_the_grade() -> None:
    match = Match(
        rule="critical_signal",
        rule_type="critical_signal",
        grade=Grade.III,
        title="高危信号",
        reason="集体维权",
        key="signal:collective_action",
        count=2,
    )
    old = incident(grade=Grade.IV, rules=["volume_spike"], members=["volume_spike:all"])

    change = apply_match(
        old, match, now=T0, window_count=2, post_count=None, post_ids=["p1"], sources=["weibo"]
    )

    assert change.event == "grade_raised"
    assert change.joined
    assert change.incident.rules == ["volume_spike", "critical_signal"]
    assert change.incident.grade is Grade.III
    assert change.incident.sources == ["weibo"]
    assert "集体维权" in change.incident.reasons
    same_again = apply_match(
        change.incident,
        match,
        now=T0,
        window_count=2,
        post_count=None,
        post_ids=[],
        sources=[],
    )
    assert same_again.event is None
