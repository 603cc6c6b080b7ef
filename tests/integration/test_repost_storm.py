"""A repost storm still raises the volume alarm after the crawl groups the copies.

Real parts: the crawl's validate/clean/dedup/store stages over a SQLite post
store and the shared ``dedup.db``, the volume rule, and the detector over a
SQLite state database. The storm is 40 reposts of one negative text: the
crawl stores the text once and records 40 copies; the detector must count 41.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from scrapy.exceptions import DropItem
from scrapy.utils.test import get_crawler

from alerts.detector import Detector
from alerts.rules import VolumeSpike
from alerts.rules.base import evaluate_rule
from core.models import Post, PostQuery
from core.settings import VolumeSpikeRule, Watchlist
from crawler.items import RawPost
from crawler.pipelines import CleanPipeline, DedupPipeline, StorePipeline, ValidatePipeline
from crawler.services import SERVICES_KEY, CrawlServices
from nlp.mentions import MentionMatcher
from nlp.segment import tokenize
from storage.dedup_index import DedupIndex, DuplicateLink
from storage.local import LocalPostStore
from storage.spool import Spool
from storage.state import SqlStateStore
from tests.unit.fakes import T0, minutes

WATCHLIST = Watchlist.model_validate({"bank": {"name": "澜海银行", "aliases": ["澜海"]}})
STORM = "澜海银行滨江支行理财产品亏损37%，经理失联，听说要倒闭了，大家快去取钱！"
WINDOW = timedelta(minutes=30)
BACKGROUND = 2  # quiet posts in every window
STORM_COPIES = 40
SEC = timedelta(seconds=1)


def volume_rule(**options: Any) -> VolumeSpike:
    base: dict[str, Any] = {
        "window_minutes": 30,
        "baseline_windows": 48,
        "min_count": 10,
        "ratio": 3.0,
        "baseline_method": "median_mad",
    }
    return VolumeSpike(VolumeSpikeRule(**{**base, **options}))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalPostStore]:
    s = LocalPostStore(tmp_path / "posts.db", tokenize)
    yield s
    s.close()


def background(store: LocalPostStore, rule: VolumeSpike) -> None:
    """``BACKGROUND`` ordinary posts in each baseline window of ``rule`` and the current one."""
    posts: list[Post] = []
    for w, start in enumerate([*rule.baseline_starts(T0), T0 - WINDOW]):
        for k in range(BACKGROUND):
            n = w * 10 + k
            posts.append(
                Post(
                    id=f"bg{n:06d}",
                    url=f"https://bbs.example.com/t/{n}",
                    source="forum",
                    title=f"帖子 {n}",
                    text=f"澜海银行 网点排队 第{n}帖",
                    published_at=start + minutes(3 + 10 * k),
                )
            )
    result = store.upsert(posts)
    assert result.failed == 0


def crawl_storm(tmp_path: Path, store: LocalPostStore) -> list[str]:
    """One crawl through the real stages: the original, then 40 reposts within 14 minutes
    (20 exact copies under other URLs, 20 Weibo reposts with a comment). Returns the outcomes."""
    index = DedupIndex(tmp_path / "dedup.db")
    services = CrawlServices(
        post_store=store,
        spool=Spool(tmp_path / "spool"),
        analyzer=None,  # type: ignore[arg-type]  # the volume rule does not read the analysis
        mention_matcher=MentionMatcher(WATCHLIST),
        dedup_index=index,
    )
    crawler = get_crawler(settings_dict={SERVICES_KEY: services})
    stages: list[Any] = [
        ValidatePipeline.from_crawler(crawler),
        CleanPipeline.from_crawler(crawler),
        DedupPipeline.from_crawler(crawler),
        StorePipeline.from_crawler(crawler),
    ]
    items = [("https://bbs.example.com/storm", STORM, T0 - minutes(25))]
    for k in range(STORM_COPIES):
        text = STORM if k % 2 == 0 else f"转发//@用户{k}: {STORM}"
        items.append((f"https://weibo.example.com/r/{k}", text, T0 - minutes(24) + k * 20 * SEC))
    outcomes: list[str] = []
    for url, text, published in items:
        item: Any = RawPost(
            url=url, source="weibo", platform="weibo", text=text, published_at=published
        )
        try:
            for stage in stages:
                item = stage.process_item(item)
                if isinstance(stage, CleanPipeline):
                    item.matched_entities = ["澜海银行"]
        except DropItem as exc:
            outcomes.append(str(exc).split(":")[0])
        else:
            outcomes.append("kept")
    stages[-1].close_spider()
    index.close()
    return outcomes


def test_forty_reposts_in_the_window_raise_the_volume_alarm(
    tmp_path: Path, store: LocalPostStore
) -> None:
    rule = volume_rule()
    background(store, rule)
    outcomes = crawl_storm(tmp_path, store)
    assert outcomes[0] == "kept"
    assert outcomes[1:] == ["duplicate content", "near duplicate"] * (STORM_COPIES // 2)
    stored_now = store.count(PostQuery(since=T0 - WINDOW, until=T0))
    assert stored_now == BACKGROUND + 1  # the copies are grouped, not stored

    # Before: stored posts only — the storm is one post and the rule stays quiet.
    assert evaluate_rule(rule, store, T0) == []

    copies = DedupIndex(tmp_path / "dedup.db")
    try:
        (match,) = evaluate_rule(rule, store, T0, copies=copies)
        assert match.count == stored_now + STORM_COPIES == 43
        assert match.metrics["copies"] == STORM_COPIES
        assert match.metrics["stored_posts"] == stored_now
        assert match.metrics["baseline_level"] == BACKGROUND
        assert "含转载/重复副本 40 条" in match.reason

        # Through the detector, as the service wires it: an incident opens.
        state = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
        try:
            detector = Detector([rule], store, state, [], copies=copies)
            (alert,) = detector.run_once(T0)
            assert alert.details["event"] == "opened"
            assert alert.incident_id is not None
            incident = state.get_incident(alert.incident_id)
            assert incident is not None and incident.peak_count == 43
            # Without the port the same detector sees nothing.
            quiet = Detector([volume_rule(name="no_copies")], store, state, [])
            assert quiet.run_once(T0) == []
        finally:
            state.close()
    finally:
        copies.close()


def record_copies(index: DedupIndex, starts: list[datetime], per_window: int) -> None:
    """``per_window`` copies published in each window starting at ``starts``."""
    for w, start in enumerate(starts):
        for k in range(per_window):
            index.record(
                DuplicateLink(
                    id=f"base{w}-{k}",
                    original_id=f"bg{w * 10:06d}",
                    url=f"https://weibo.example.com/b/{w}/{k}",
                    source="weibo",
                    kind="exact",
                    similarity=1.0,
                    reach=1,
                    seen_at=int(start.timestamp()) + 600,
                    published_at=int(start.timestamp()) + 60 + k,
                )
            )
    index.flush()


@pytest.mark.parametrize(
    "options",
    [{}, {"seasonal_days": 7, "seasonal_weeks": 2}],
    ids=["windows_before", "seasonal"],
)
def test_copies_in_baseline_windows_raise_the_baseline_the_same_way(
    tmp_path: Path, store: LocalPostStore, options: dict[str, Any]
) -> None:
    rule = volume_rule(**options)
    background(store, rule)
    crawl_storm(tmp_path, store)  # 40 copies now, as above
    index = DedupIndex(tmp_path / "dedup.db")
    try:
        usual = 30  # ordinary repost traffic: 30 copies in every earlier window
        starts = rule.baseline_starts(T0)
        record_copies(index, starts, usual)
        # 43 now against 2 + 30 per window before: ordinary traffic, not a spike.
        assert evaluate_rule(rule, store, T0, copies=index) == []

        # A real storm on top (100 more copies now) still stands out, against the same level.
        now_start = T0 - WINDOW
        for k in range(100):
            index.record(
                DuplicateLink(
                    id=f"more{k}",
                    original_id="x",
                    url=f"https://weibo.example.com/m/{k}",
                    source="weibo",
                    kind="exact",
                    similarity=1.0,
                    reach=1,
                    seen_at=int(T0.timestamp()),
                    published_at=int(now_start.timestamp()) + 120 + k,
                )
            )
        index.flush()
        (match,) = evaluate_rule(rule, store, T0, copies=index)
        assert match.metrics["baseline_level"] == BACKGROUND + usual
        assert match.metrics["baseline_windows"] == len(starts)
        assert match.count == BACKGROUND + 1 + STORM_COPIES + 100
        assert match.metrics["copies"] == STORM_COPIES + 100
    finally:
        index.close()


def test_a_negative_only_rule_does_not_count_copies(tmp_path: Path, store: LocalPostStore) -> None:
    # A copy's sentiment is not recorded (docs/alerting.md): such a rule counts stored posts.
    rule = volume_rule(negative_only=True, min_count=1)
    crawl_storm(tmp_path, store)
    index = DedupIndex(tmp_path / "dedup.db")
    try:
        assert index.count_copies(T0 - WINDOW, T0) == STORM_COPIES
        assert evaluate_rule(rule, store, T0, copies=index) == []
    finally:
        index.close()
