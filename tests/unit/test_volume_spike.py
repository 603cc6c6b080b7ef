"""The volume-spike rule: the pure decision (no store, no clock) and its window arithmetic."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from alerts.rules import RULE_TYPES, Match, Rule, VolumeSpike, build_rules, register_rule
from alerts.rules.volume_spike import bucket_seconds_for
from core.errors import ConfigError
from core.settings import VolumeSpikeRule
from core.vocab import Grade, Sentiment
from tests.unit.fakes import T0, FakePostStore, make_post, minutes


def spike(**options: Any) -> VolumeSpike:
    return VolumeSpike(VolumeSpikeRule(**options))


# -- decide: floors, ratio, grading ----------------------------------------------------


def test_two_to_six_is_not_a_spike_because_of_the_min_count_floor() -> None:
    rule = spike(min_count=8, ratio=3.0)
    assert rule.decide(6, [2] * 48) is None


def test_enough_posts_but_below_the_ratio_is_quiet() -> None:
    rule = spike(min_count=8, ratio=3.0)
    assert rule.decide(20, [10] * 48) is None  # 2×


def test_a_clear_spike_matches_with_numbers_and_a_bilingual_reason() -> None:
    rule = spike(window_minutes=30, min_count=8, ratio=3.0, baseline_method="mean")
    baseline = [2] * 9 + [3]  # mean 2.1
    match = rule.decide(24, baseline)
    assert isinstance(match, Match)
    assert match.rule == "volume_spike"
    assert match.rule_type == "volume_spike"
    assert match.count == 24
    assert match.metrics["current"] == 24
    assert match.metrics["baseline_level"] == pytest.approx(2.1)
    assert match.metrics["ratio"] == pytest.approx(24 / 2.1, rel=1e-3)
    assert "30分钟内 24 条，基线均值 2.1 条 (11.4×)" in match.reason
    assert "24 posts in 30 min vs baseline mean 2.1 (11.4×)" in match.reason
    assert "30分钟内 24 条" in match.title


def test_exactly_at_the_ratio_and_the_floor_matches() -> None:
    rule = spike(min_count=9, ratio=3.0, baseline_method="mean")
    assert rule.decide(9, [3, 3, 3]) is not None
    assert rule.decide(8, [3, 3, 3]) is None


def test_a_silent_baseline_is_floored_at_one_post_per_window() -> None:
    rule = spike(min_count=8, ratio=3.0)
    match = rule.decide(8, [0] * 48)
    assert match is not None
    assert match.metrics["baseline_level"] == 0
    assert match.metrics["ratio"] == 8.0  # 8 / floor 1, not infinite
    assert "基线按 1 条计" in match.reason


def test_an_empty_baseline_does_not_crash() -> None:
    assert spike(min_count=8).decide(8, []) is not None


def test_grade_iv_by_default_and_iii_at_twice_the_ratio() -> None:
    # The grader's velocity factor: observed ratio ≥ 2 × the configured ratio.
    rule = spike(min_count=5, ratio=3.0)
    assert rule.decide(15, [3, 3]).grade is Grade.IV  # type: ignore[union-attr]  # 5×
    match = rule.decide(18, [3, 3])  # 6×
    assert match is not None and match.grade is Grade.III
    assert match.metrics["grade_score"] == 2


def test_the_grade_rises_with_volume_as_well() -> None:
    match = spike(min_count=5, ratio=3.0).decide(240, [10] * 10)  # 24× and 240 posts
    assert match is not None
    assert match.grade is Grade.II  # velocity +2, volume ≥ 200 +2


def test_median_ignores_one_past_spike_in_the_baseline() -> None:
    baseline = [3] * 9 + [90]  # one old crisis in the baseline
    assert spike(min_count=8, ratio=3.0, baseline_method="mean").decide(20, baseline) is None
    match = spike(min_count=8, ratio=3.0).decide(20, baseline)  # median 3
    assert match is not None
    assert match.metrics["baseline_level"] == 3
    assert "中位数 3.0 条" in match.reason


def test_mad_floor_keeps_a_noisy_baseline_quiet() -> None:
    noisy = [1, 10, 2, 12, 1, 11, 3, 9]  # median 6, MAD 4.5 → needs ≥ 6 + 3×1.48×4.5 ≈ 26
    assert spike(min_count=8, ratio=3.0).decide(20, noisy) is None
    assert spike(min_count=8, ratio=3.0, mad_k=0).decide(20, noisy) is not None
    assert spike(min_count=8, ratio=3.0).decide(27, noisy) is not None


def test_negative_only_says_so() -> None:
    match = spike(min_count=5, negative_only=True).decide(10, [1, 1])
    assert match is not None
    assert "负面" in match.reason
    assert "negative posts" in match.reason
    assert match.title.startswith("负面")


# -- evaluate: one histogram, windows aligned to now ------------------------------------


def test_bucket_granularity_divides_window_and_hour() -> None:
    assert bucket_seconds_for(30) == 60
    assert bucket_seconds_for(60) == 120
    assert bucket_seconds_for(1440) == 1800
    for window in (1, 7, 30, 45, 77, 90, 1000, 1440):
        bucket = bucket_seconds_for(window)
        assert (window * 60) % bucket == 0
        assert 3600 % bucket == 0


def test_evaluate_counts_the_current_window_up_to_now_and_the_windows_before() -> None:
    now = T0 + timedelta(seconds=30)  # mid-minute: the window ends at T0
    # 12 posts spread over the 4 baseline windows (2 h before the current window)
    posts = [make_post(i, T0 - minutes(30) - minutes(1 + 10 * i)) for i in range(12)]
    # 24 posts from the window's first second on; the window start is inclusive
    current = [make_post(1000 + i, T0 - minutes(30) + minutes(i)) for i in range(24)]
    late = [make_post(2000, T0 + timedelta(seconds=10))]  # after the window end: next cycle
    store = FakePostStore([*posts, *current, *late])
    rule = spike(
        window_minutes=30, baseline_windows=4, min_count=8, ratio=3.0, baseline_method="mean"
    )

    match = rule.evaluate(store, now)

    assert match is not None
    assert match.count == 24
    assert match.metrics["baseline_level"] == pytest.approx(12 / 4)
    assert match.window_start == T0 - minutes(30)
    assert match.window_end == T0
    assert match.query is not None
    assert (match.query.since, match.query.until) == (T0 - minutes(30), T0)
    assert store.calls == ["histogram"]  # one query per cycle


def test_evaluate_ignores_posts_older_than_the_baseline() -> None:
    old = [make_post(i, T0 - timedelta(days=2)) for i in range(500)]
    current = [make_post(1000 + i, T0 - minutes(5)) for i in range(10)]
    match = spike(window_minutes=30, baseline_windows=4, min_count=8).evaluate(
        FakePostStore([*old, *current]), T0
    )
    assert match is not None
    assert match.metrics["baseline_level"] == 0


def test_evaluate_negative_only_counts_negative_posts() -> None:
    posts = [
        make_post(i, T0 - minutes(10), sentiment=Sentiment.NEGATIVE if i < 5 else Sentiment.NEUTRAL)
        for i in range(20)
    ]
    rule = spike(min_count=8, negative_only=True)
    assert rule.evaluate(FakePostStore(posts), T0) is None  # only 5 negative
    rule = spike(min_count=5, negative_only=True)
    match = rule.evaluate(FakePostStore(posts), T0)
    assert match is not None
    assert match.count == 5


def test_quiet_store_gives_no_match() -> None:
    assert spike().evaluate(FakePostStore(), T0) is None


def test_evaluate_leaves_past_incident_windows_out_of_the_baseline() -> None:
    # Baseline windows: 2 posts each, except one that held an old incident (40 posts).
    posts = [make_post(i, T0 - minutes(31 + 15 * i)) for i in range(8)]
    crisis = [make_post(500 + i, T0 - minutes(100)) for i in range(40)]
    current = [make_post(1000 + i, T0 - minutes(5)) for i in range(10)]
    store = FakePostStore([*posts, *crisis, *current])
    rule = spike(window_minutes=30, baseline_windows=4, min_count=8, baseline_method="mean")
    assert rule.evaluate(store, T0) is None  # mean (2 + 2 + 42 + 2) / 4 = 12
    match = rule.evaluate(store, T0, exclude=[(T0 - minutes(105), T0 - minutes(95))])
    assert match is not None
    assert match.metrics["baseline_windows"] == 3
    assert match.metrics["baseline_level"] == 2


def test_evaluate_seasonal_compares_the_same_clock_window_of_past_days() -> None:
    # Every morning at this time there are 12 posts: 12 today is normal, not a spike …
    daily = [
        make_post(d * 100 + i, T0 - timedelta(days=d) - minutes(10))
        for d in range(1, 8)
        for i in range(12)
    ]
    # … while the windows right before today's are quiet.
    today = [make_post(5000 + i, T0 - minutes(10)) for i in range(12)]
    store = FakePostStore([*daily, *today])
    assert spike(min_count=8, baseline_windows=4).evaluate(store, T0) is not None
    seasonal = spike(min_count=8, seasonal_days=7)
    assert seasonal.evaluate(store, T0) is None
    store.upsert([make_post(6000 + i, T0 - minutes(3)) for i in range(30)])
    match = seasonal.evaluate(store, T0)
    assert match is not None
    assert match.metrics["baseline_windows"] == 7
    assert "近7天同时段" in match.reason


# -- registry ---------------------------------------------------------------------------


def test_registry_builds_rules_from_config() -> None:
    rules = build_rules([VolumeSpikeRule(), VolumeSpikeRule(name="negative", negative_only=True)])
    assert [type(r) for r in rules] == [VolumeSpike, VolumeSpike]
    assert [r.name for r in rules] == ["volume_spike", "negative"]
    assert RULE_TYPES["volume_spike"] is VolumeSpike


def test_unknown_rule_type_fails_at_load_naming_the_rule() -> None:
    class Other(BaseModel):
        name: str = "burst"
        type: str = "sentiment_drift"  # not implemented

    with pytest.raises(ConfigError, match=r"rules\[0\] \('burst'\).*sentiment_drift"):
        build_rules([Other()])


def test_a_rule_refuses_options_of_another_type() -> None:
    class Other(BaseModel):
        name: str = "x"

    with pytest.raises(ConfigError, match="VolumeSpikeRule"):
        VolumeSpike(Other())  # type: ignore[arg-type]


def test_a_type_cannot_be_registered_twice() -> None:
    class Impostor(Rule[VolumeSpikeRule]):
        type = "volume_spike"
        options = VolumeSpikeRule

        def evaluate(self, posts: Any, now: Any, *, exclude: Any = ()) -> Match | None:
            return None

    with pytest.raises(ValueError, match="already registered"):
        register_rule(Impostor)
    assert RULE_TYPES["volume_spike"] is VolumeSpike
