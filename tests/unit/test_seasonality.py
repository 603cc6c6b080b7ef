"""Volume baseline: hour-of-day × weekday, calendar periods, fresh installs, sources down."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from alerts.health import SourceHealth, health_from_gaps
from alerts.rules import VolumeSpike, evaluate_rule
from core.models import Post
from core.settings import CalendarPeriod, VolumeSpikeRule
from tests.unit.fakes import T0, FakePostStore, make_post, minutes

_ids = iter(range(1_000_000))


def spike(**options: Any) -> VolumeSpike:
    defaults: dict[str, Any] = {"window_minutes": 30, "min_count": 8, "ratio": 3.0}
    return VolumeSpike(VolumeSpikeRule(**{**defaults, **options}))


def at(end: datetime, count: int, source: str = "forum") -> list[Post]:
    """``count`` posts in the 30-minute window ending at ``end``."""
    return [make_post(next(_ids), end - minutes(1 + i % 29), source=source) for i in range(count)]


def history(per_day: dict[int, int], *, days: int = 28, source: str = "forum") -> list[Post]:
    """The same clock window on each of the past ``days`` days: ``per_day[d]`` posts d days
    ago (default 3)."""
    return [
        p for d in range(1, days + 1) for p in at(T0 - timedelta(days=d), per_day.get(d, 3), source)
    ]


def test_baseline_starts_are_the_union_of_days_and_weeks() -> None:
    rule = spike(seasonal_days=3, seasonal_weeks=2)
    starts = rule.baseline_starts(T0)
    back = sorted(round((T0 - minutes(30) - s) / timedelta(days=1)) for s in starts)
    assert back == [1, 2, 3, 7, 14]


def test_weekday_seasonality_knows_this_weekday_is_always_busy() -> None:
    # Every same weekday (7, 14, 21, 28 days ago) this window has 12 posts; other days 3.
    store = FakePostStore([*history({7: 12, 14: 12, 21: 12, 28: 12}), *at(T0, 12)])
    assert spike(seasonal_days=6).evaluate(store, T0) is not None  # vs 3 a day: 4×
    weekly = spike(seasonal_weeks=4).evaluate(store, T0)
    assert weekly is None


def test_a_holiday_in_the_calendar_is_left_out_of_the_baseline() -> None:
    # The last seven days were a quiet holiday (2 posts); before that 12 a day; today 12.
    quiet = {d: 2 for d in range(1, 8)}
    store = FakePostStore([*history({**quiet, **{d: 12 for d in range(8, 29)}}), *at(T0, 12)])
    plain = spike(seasonal_days=7, seasonal_weeks=4)
    match = plain.evaluate(store, T0)
    assert match is not None  # back from the holiday looks like a 6× spike
    holiday = CalendarPeriod(
        name="国庆黄金周",
        start=T0 - timedelta(days=7, hours=1),
        end=T0 - timedelta(hours=6),
        factor=0.3,
    )
    calendar = spike(seasonal_days=7, seasonal_weeks=4, calendar=[holiday])
    assert calendar.evaluate(store, T0) is None


def test_a_festival_factor_expects_more_but_still_sees_a_crisis() -> None:
    festival = CalendarPeriod(
        name="双11", start=T0 - timedelta(hours=12), end=T0 + timedelta(hours=12), factor=3
    )
    base = history({d: 10 for d in range(1, 8)}, days=7)
    busy = FakePostStore([*base, *at(T0, 40)])
    assert spike(seasonal_days=7).evaluate(busy, T0) is not None  # 4× an ordinary day
    assert spike(seasonal_days=7, calendar=[festival]).evaluate(busy, T0) is None
    storm = FakePostStore([*base, *at(T0, 120)])
    match = spike(seasonal_days=7, calendar=[festival]).evaluate(storm, T0)
    assert match is not None
    assert match.metrics["calendar_factor"] == 3
    assert "特殊时期 ×3" in match.reason


def test_windows_before_the_first_post_are_unknown_not_zero() -> None:
    # A fresh install: two days of history only, 6 posts a window; today 14.
    store = FakePostStore([*history({1: 6, 2: 6}, days=2), *at(T0, 14)])
    rule = spike(seasonal_days=7, seasonal_weeks=4)
    # Counted as zeros, the five missing days would make the level 0 and 14 a spike.
    assert rule.evaluate(store, T0) is None
    store.upsert(at(T0, 10))
    match = rule.evaluate(store, T0)
    assert match is not None
    assert match.metrics["baseline_windows"] == 2


def test_a_source_that_is_down_is_left_out_now_and_in_the_baseline() -> None:
    # Usually 12 forum + 3 weibo posts; now the forum cannot be crawled and Weibo has 14.
    posts = [*history({}, days=7, source="weibo"), *history({d: 12 for d in range(1, 8)}, days=7)]
    store = FakePostStore([*posts, *at(T0, 14, source="weibo")])
    rule = spike(seasonal_days=7)
    assert rule.evaluate(store, T0) is None  # 14 vs 15 a day: the outage hides the storm
    (match,) = evaluate_rule(rule, store, T0, down_sources={"forum"})
    assert match.metrics["down_sources"] == ["forum"]
    assert match.metrics["baseline_level"] == 3
    assert "forum 暂无成功采集" in match.reason


def test_health_from_gaps() -> None:
    gaps = [
        ("forum", T0 - timedelta(days=2), T0 - timedelta(days=2) + minutes(90)),
        ("weibo", T0 - timedelta(hours=3), None),
        ("weibo", T0 - timedelta(days=3), T0 - timedelta(days=3) + minutes(30)),
        ("news", T0 - minutes(20), T0 + minutes(5)),  # recovered after now: still down now
    ]
    health = health_from_gaps(gaps, T0)
    assert health.down == {"weibo", "news"}
    assert health.gaps == ((T0 - timedelta(days=2), T0 - timedelta(days=2) + minutes(90)),)
    assert SourceHealth().healthy
    assert not health.healthy
