"""The rule types of issue 6: pure decisions first (no store, no clock), then evaluate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from alerts.rules import (
    CriticalSignal,
    InfluentialAuthor,
    NegativeShare,
    TopicBurst,
    build_rules,
)
from alerts.rules.topic_burst import SHARE_FLOOR
from core.errors import ConfigError
from core.models import Analysis, Post, Signal
from core.settings import (
    CriticalSignalRule,
    InfluentialAuthorRule,
    NegativeShareRule,
    TopicBurstRule,
    load_settings,
)
from core.vocab import Grade, Platform, Sentiment, Topic
from tests.unit.fakes import T0, FakePostStore, FakeStateStore, minutes


def post(
    n: int,
    at: datetime,
    *,
    sentiment: Sentiment = Sentiment.NEGATIVE,
    topic: Topic = Topic.OTHER,
    signals: tuple[str, ...] = (),
    author: str | None = None,
    followers: int | None = None,
    reposts: int = 0,
    platform: Platform = Platform.FORUM,
) -> Post:
    return Post(
        id=f"post{n:08d}",
        url=f"https://forum.example/t/{n}",
        source="forum",
        platform=platform,
        text=f"澜海银行 {n}",
        author=author,
        author_followers=followers,
        reposts=reposts,
        published_at=at,
        analysis=Analysis(
            sentiment=sentiment,
            sentiment_score=0.1,
            topic=topic,
            signals=[Signal(name=s, critical=True) for s in signals],
            critical=bool(signals),
        ),
    )


# -- negative_share -----------------------------------------------------------------------


def neg(**options: Any) -> NegativeShare:
    return NegativeShare(NegativeShareRule(**options))


def test_negative_share_needs_volume_and_negative_floors() -> None:
    rule = neg(min_count=20, min_negative=8, min_share=0.5, rise=0.2)
    assert rule.decide(10, 9, 1000, 100) is None  # 90 % of 10 posts: too few posts
    assert rule.decide(40, 7, 1000, 0) is None  # too few negative posts
    assert rule.decide(40, 18, 1000, 100) is None  # 45 % < min_share


def test_negative_share_must_rise_above_its_baseline() -> None:
    rule = neg(min_count=20, min_negative=8, min_share=0.5, rise=0.2)
    assert rule.decide(40, 24, 1000, 500) is None  # 60 % vs 50 %: normal for this bank
    match = rule.decide(40, 32, 1000, 300)  # 80 % vs 30 %
    assert match is not None
    assert match.metrics["share"] == 0.8
    assert match.metrics["baseline_share"] == 0.3
    assert "负面占比 80%" in match.reason
    assert match.grade is Grade.IV  # negativity alone: one point


def test_negative_share_evaluate_counts_window_and_baseline() -> None:
    base = [post(i, T0 - minutes(120 + i), sentiment=Sentiment.NEUTRAL) for i in range(50)]
    now = [post(100 + i, T0 - minutes(5), sentiment=Sentiment.NEGATIVE) for i in range(20)]
    now += [post(200 + i, T0 - minutes(5), sentiment=Sentiment.NEUTRAL) for i in range(5)]
    match = neg().evaluate(FakePostStore([*base, *now]), T0)
    assert match is not None
    assert match.metrics["total"] == 25
    assert match.metrics["negative"] == 20
    assert match.window_end == T0
    assert match.query is not None and match.query.sentiments == [Sentiment.NEGATIVE]


# -- critical_signal ----------------------------------------------------------------------


def crit(**options: Any) -> CriticalSignal:
    return CriticalSignal(CriticalSignalRule(**options))


def test_one_critical_post_is_grade_iii_at_once_keyed_by_signal() -> None:
    match = crit().decide("bank_run", 1)
    assert match is not None
    assert match.grade is Grade.III
    assert match.key == "signal:bank_run"
    assert "出现挤兑传闻（bank_run）" in match.reason


def test_several_critical_posts_raise_the_grade() -> None:
    assert crit(several=3).decide("bank_run", 3).grade is Grade.II  # type: ignore[union-attr]
    # a regulator penalty reported several times: +2 regulator +1 several → II
    match = crit(several=3).decide("regulator", 3)
    assert match is not None and match.grade is Grade.II
    assert "监管介入" in match.reason


def test_critical_signal_filter_and_floor() -> None:
    assert crit(signals=["bank_run"]).decide("data_leak", 5) is None
    assert crit(min_count=2).decide("bank_run", 1) is None


def test_critical_signal_evaluate_one_match_per_signal_with_evidence_query() -> None:
    posts = [post(i, T0 - minutes(10), signals=("bank_run",)) for i in range(3)]
    posts += [post(10, T0 - minutes(20), signals=("data_leak",))]
    posts += [post(20, T0 - minutes(20))]  # negative, not critical
    posts += [post(30, T0 - minutes(200), signals=("violence",))]  # outside the window
    matches = crit().evaluate_all(FakePostStore(posts), T0)
    assert [m.key for m in matches] == ["signal:bank_run", "signal:data_leak"]
    assert [m.grade for m in matches] == [Grade.II, Grade.III]
    assert matches[0].query is not None
    assert matches[0].query.signals == ["bank_run"] and matches[0].query.critical is True


# -- influential_author -------------------------------------------------------------------


def test_influential_author_needs_negative_and_reach() -> None:
    rule = InfluentialAuthor(InfluentialAuthorRule(min_followers=100_000, min_reposts=500))
    posts = [
        post(1, T0, author="大V", followers=2_000_000),
        post(2, T0, author="大V", followers=2_000_000),
        post(3, T0, author="small", followers=100, reposts=600),
        post(4, T0, author="fan", followers=5_000_000, sentiment=Sentiment.POSITIVE),
        post(5, T0, author="nobody", followers=10),
    ]
    matches = rule.decide(posts)
    assert [m.key for m in matches] == ["author:大V", "author:small"]
    assert matches[0].evidence_ids == ("post00000001", "post00000002")
    assert matches[0].grade is Grade.III  # reach ≥ 1M: two points
    assert "单帖影响 200万" in matches[0].reason
    assert matches[1].grade is Grade.IV


def test_influential_author_evaluate_reads_the_window() -> None:
    posts = [post(1, T0 - minutes(5), author="大V", followers=300_000)]
    posts += [post(2, T0 - minutes(500), author="old", followers=300_000)]
    match = InfluentialAuthor(InfluentialAuthorRule()).evaluate(FakePostStore(posts), T0)
    assert match is not None and match.key == "author:大V"
    assert match.window_end == T0


# -- topic_burst --------------------------------------------------------------------------


def burst(**options: Any) -> TopicBurst:
    return TopicBurst(TopicBurstRule(**options))


def test_a_rare_topic_that_becomes_frequent_bursts() -> None:
    rule = burst(min_count=10, ratio=4.0, max_baseline_share=0.1)
    matches = rule.decide({"privacy_data": 12, "loans": 8}, 40, {"privacy_data": 2}, 1000)
    assert [m.key for m in matches] == ["topic:privacy_data"]
    assert "隐私与个人信息" in matches[0].title
    assert matches[0].metrics["ratio"] == pytest.approx(0.3 / SHARE_FLOOR)


def test_a_common_topic_or_a_small_count_does_not_burst() -> None:
    rule = burst(min_count=10, ratio=4.0, max_baseline_share=0.1)
    assert rule.decide({"loans": 30}, 40, {"loans": 300}, 1000) == []  # always common
    assert rule.decide({"privacy_data": 9}, 10, {}, 1000) == []  # floor
    assert rule.decide({"other": 40}, 40, {}, 1000) == []  # ignored topic
    assert rule.decide({}, 0, {}, 0) == []


def test_topic_burst_evaluate() -> None:
    base = [post(i, T0 - minutes(120 + i), topic=Topic.LOANS) for i in range(100)]
    now = [post(500 + i, T0 - minutes(5), topic=Topic.PRIVACY_DATA) for i in range(12)]
    store = FakePostStore([*base, *now])
    (match,) = burst().evaluate_all(store, T0)
    assert match.key == "topic:privacy_data"
    assert match.query is not None and match.query.topics == [Topic.PRIVACY_DATA]
    store.calls.clear()
    assert burst(min_count=50).evaluate_all(store, T0) == []
    assert store.calls == ["terms"]  # below the floor: no baseline queries


# -- config --------------------------------------------------------------------------------


def test_all_rule_types_load_from_yaml_shaped_config_and_build() -> None:
    settings = load_settings(
        rules=[
            {"type": "volume_spike", "name": "spike", "seasonal_days": 7},
            {"type": "negative_share", "name": "neg"},
            {"type": "critical_signal", "name": "crit", "several": 2},
            {"type": "influential_author", "name": "bigv"},
            {"type": "topic_burst", "name": "topics"},
        ]
    )
    rules = build_rules(settings.rules)
    assert [r.type for r in rules] == [
        "volume_spike",
        "negative_share",
        "critical_signal",
        "influential_author",
        "topic_burst",
    ]


def test_an_unknown_rule_type_names_the_rule_and_the_known_types() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(rules=[{"type": "vibes", "name": "mine"}])
    text = str(err.value)
    assert "rules.0 ('mine'): unknown type 'vibes'" in text
    assert "'topic_burst'" in text


def test_a_bad_rule_option_names_its_key() -> None:
    with pytest.raises(ConfigError, match=r"rules\.0\.critical_signal\.several"):
        load_settings(rules=[{"type": "critical_signal", "several": 1}])


# -- through the detector ---------------------------------------------------------------------


def test_the_detector_opens_one_incident_per_signal_and_dry_run_writes_nothing() -> None:
    from alerts.detector import Detector
    from core.settings import ChannelConfig

    posts = FakePostStore([post(i, T0 - minutes(10), signals=("bank_run",)) for i in range(2)])
    state = FakeStateStore()
    channels = [ChannelConfig(name="log", type="log")]
    dry = Detector([crit(dry_run=True)], posts, state, channels, clock=lambda: T0)
    (alert,) = dry.run_once(T0)
    assert alert.details["dry_run"] is True
    assert state.writes == 0

    det = Detector([crit()], posts, state, channels, clock=lambda: T0)
    (alert,) = det.run_once(T0)
    (incident,) = state.incidents.values()
    assert incident.key == "signal:bank_run"
    assert incident.grade is Grade.III
    assert sorted(incident.post_ids) == ["post00000000", "post00000001"]


def test_the_detector_raises_the_grade_from_evidence_and_says_why() -> None:
    from alerts.detector import Detector
    from core.settings import ChannelConfig

    # A bank-run rumour (III) carried by a news outlet with a huge audience.
    posts = FakePostStore(
        [
            post(
                1,
                T0 - minutes(10),
                signals=("bank_run",),
                platform=Platform.NEWS,
                followers=3_000_000,
            )
        ]
    )
    state = FakeStateStore()
    det = Detector(
        [crit()], posts, state, [ChannelConfig(name="log", type="log")], clock=lambda: T0
    )
    (alert,) = det.run_once(T0)
    # reach ≥ 1M (+2) and media (+1) and the critical floor → score 3 → III … plus none
    (incident,) = state.incidents.values()
    assert incident.grade.severity >= Grade.III.severity
    assert alert.details["event"] == "opened"


def test_the_detector_uses_evidence_ids_for_author_matches() -> None:
    from alerts.detector import Detector
    from core.settings import ChannelConfig

    posts = FakePostStore([post(1, T0 - minutes(5), author="大V", followers=2_000_000)])
    state = FakeStateStore()
    det = Detector(
        [InfluentialAuthor(InfluentialAuthorRule())],
        posts,
        state,
        [ChannelConfig(name="log", type="log")],
        clock=lambda: T0,
    )
    det.run_once(T0)
    (incident,) = state.incidents.values()
    assert incident.key == "author:大V"
    assert incident.post_ids == ["post00000001"]
    assert incident.sources == ["forum"]
