"""Source outages through the real stores: failed crawl runs in SQLite make a gap, not a zero."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.detector import Detector
from alerts.health import source_health
from alerts.rules import VolumeSpike
from core.models import CrawlRun, Post
from core.settings import ChannelConfig, VolumeSpikeRule
from storage.local import LocalPostStore
from storage.state import SqlStateStore

T0 = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
_n = iter(range(1_000_000))


def posts_in(end: datetime, count: int, source: str) -> list[Post]:
    return [
        Post(
            id=f"post{(n := next(_n)):08d}",
            url=f"https://{source}.example/{n}",
            source=source,
            text=f"澜海银行 帖子 {n}",
            published_at=end - timedelta(minutes=1 + i % 29),
        )
        for i in range(count)
    ]


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[LocalPostStore, SqlStateStore]]:
    posts = LocalPostStore(tmp_path / "posts.db", tokenizer=lambda s: s.split())
    state = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    # Four ordinary half hours before now: 6 forum + 2 Weibo posts each.
    for k in range(1, 5):
        end = T0 - timedelta(minutes=30 * k)
        posts.upsert([*posts_in(end, 6, "forum"), *posts_in(end, 2, "weibo")])
    # Now the forum is silent (it cannot be crawled) and Weibo has a storm of 12.
    posts.upsert(posts_in(T0, 12, "weibo"))
    yield posts, state
    posts.close()
    state.close()


def crawls(state: SqlStateStore, source: str, *, down_since: datetime | None) -> None:
    """A crawl every 10 minutes over the last three hours, failing from ``down_since``."""
    t = T0 - timedelta(hours=3)
    while t < T0:
        ok = down_since is None or t < down_since
        state.record_crawl_run(CrawlRun(source=source, started_at=t, ok=ok))
        t += timedelta(minutes=10)


def detector(posts: LocalPostStore, state: SqlStateStore) -> Detector:
    rule = VolumeSpike(VolumeSpikeRule(window_minutes=30, baseline_windows=4, min_count=8))
    return Detector([rule], posts, state, [ChannelConfig(name="log", type="log")])


def test_without_crawl_runs_the_outage_hides_the_storm(
    stores: tuple[LocalPostStore, SqlStateStore],
) -> None:
    posts, state = stores
    assert detector(posts, state).run_once(T0) == []  # 12 now vs 8 a window: quiet


def test_a_source_with_no_successful_crawl_is_left_out(
    stores: tuple[LocalPostStore, SqlStateStore],
) -> None:
    posts, state = stores
    crawls(state, "forum", down_since=T0 - timedelta(minutes=35))
    crawls(state, "weibo", down_since=None)
    assert source_health(state, T0).down == {"forum"}

    (alert,) = detector(posts, state).run_once(T0)

    assert alert.details["metrics"]["down_sources"] == ["forum"]
    assert alert.details["metrics"]["baseline_level"] == 2.0  # Weibo's own usual volume
    (incident,) = state.list_incidents()
    assert incident.sources == ["weibo"]


def test_a_past_outage_is_left_out_of_the_baseline(
    stores: tuple[LocalPostStore, SqlStateStore],
) -> None:
    posts, state = stores
    # The forum was down 60–90 minutes ago and is back: that window is a gap, not data.
    t = T0 - timedelta(hours=3)
    while t < T0:
        ok = not (T0 - timedelta(minutes=90) <= t < T0 - timedelta(minutes=60))
        state.record_crawl_run(CrawlRun(source="forum", started_at=t, ok=ok))
        t += timedelta(minutes=10)
    health = source_health(state, T0)
    assert health.down == frozenset()
    assert health.gaps == ((T0 - timedelta(minutes=90), T0 - timedelta(minutes=60)),)

    detector(posts, state).run_once(T0)  # quiet either way: 12 vs 8

    # Through the detector's exclude list the 60–90 minute window is dropped.
    posts.upsert(posts_in(T0, 20, "weibo"))
    (alert,) = detector(posts, state).run_once(T0)
    assert alert.details["metrics"]["baseline_windows"] == 3
