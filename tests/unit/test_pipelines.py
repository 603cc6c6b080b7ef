"""Each crawl pipeline stage's decisions, on small hand-made items.

Stages are built through ``from_crawler`` on an unstarted Scrapy crawler, as
Scrapy builds them. The post store is a real SQLite file; an outage is a
small hand-written fake that raises ``StoreUnavailable``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem, NotConfigured
from scrapy.utils.test import get_crawler

from core.errors import StoreUnavailable
from core.models import CrawlRun, Post, PostQuery, UpsertResult
from core.settings import SourceConfig, Watchlist
from core.vocab import Sentiment, Topic
from crawler.items import RawPost
from crawler.parsing import parse_count, parse_published
from crawler.pipelines import (
    AnalyzePipeline,
    CleanPipeline,
    DedupPipeline,
    MentionFilterPipeline,
    StorePipeline,
    ValidatePipeline,
)
from crawler.runner import crawl_run_from_stats, scrapy_settings
from crawler.services import SERVICES_KEY, CrawlServices
from nlp.analyzer import Analyzer
from nlp.mentions import MentionMatcher
from nlp.segment import tokenize
from storage.local import LocalPostStore
from storage.spool import Spool

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 6, 30, tzinfo=UTC)  # 14:30 in Shanghai
WATCHLIST = Watchlist.model_validate(
    {
        "bank": {"name": "澜海银行", "aliases": ["澜海"]},
        "exclusions": ["澜海公园", "澜海大道"],
        "branches": [{"name": "澜海银行滨江支行", "aliases": ["滨江支行"]}],
        "products": [{"name": "澜海稳盈3号", "aliases": ["稳盈3号"]}],
    }
)


class DownStore:
    """A post store that is down: every call raises StoreUnavailable."""

    def __init__(self) -> None:
        self.calls = 0

    def upsert(self, posts: Sequence[Post]) -> UpsertResult:
        self.calls += 1
        raise StoreUnavailable("post store is down (test)")

    def get(self, post_id: str) -> Post | None:
        self.calls += 1
        raise StoreUnavailable("post store is down (test)")

    def close(self) -> None:
        pass


@pytest.fixture
def store(tmp_path: Path) -> LocalPostStore:
    s = LocalPostStore(tmp_path / "posts.db", tokenize)
    yield s
    s.close()


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(WATCHLIST)


def services(store: Any, tmp_path: Path, analyzer: Any = None) -> CrawlServices:
    return CrawlServices(
        post_store=store,
        spool=Spool(tmp_path / "spool"),
        analyzer=analyzer,
        mention_matcher=MentionMatcher(WATCHLIST),
    )


def crawler_with(svc: CrawlServices | None, **settings: Any) -> Crawler:
    conf: dict[str, Any] = dict(settings)
    if svc is not None:
        conf[SERVICES_KEY] = svc
    return get_crawler(settings_dict=conf)


def raw(url: str = "https://bbs.example.com/t/1.html", **kw: Any) -> RawPost:
    fields: dict[str, Any] = {
        "source": "forum",
        "platform": "forum",
        "title": "澜海银行滨江支行",
        "text": "澜海稳盈3号跌破净值了",
        "published_at": "2026-11-23 14:05",
    }
    fields.update(kw)
    return RawPost(url=url, **fields)


def validated(item: RawPost, crawler: Crawler | None = None) -> RawPost:
    stage = ValidatePipeline(
        (crawler or crawler_with(None)).stats,
        SHANGHAI,
        now=lambda: NOW,  # type: ignore[arg-type]
    )
    return stage.process_item(item)


def stats_of(crawler: Crawler) -> dict[str, Any]:
    assert crawler.stats is not None
    return crawler.stats.get_stats()


# -- time and count parsing ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23 14:05", datetime(2026, 11, 23, 6, 5, tzinfo=UTC)),
        ("2026-11-23 14:05:09", datetime(2026, 11, 23, 6, 5, 9, tzinfo=UTC)),
        ("2026/11/23 14:05", datetime(2026, 11, 23, 6, 5, tzinfo=UTC)),
        ("2026年11月23日 14:05", datetime(2026, 11, 23, 6, 5, tzinfo=UTC)),
        ("发表于 2026-11-23 14:05", datetime(2026, 11, 23, 6, 5, tzinfo=UTC)),
        ("发布时间：2026-11-23 14:05:09", datetime(2026, 11, 23, 6, 5, 9, tzinfo=UTC)),
        ("2026-11-23T14:05:00+08:00", datetime(2026, 11, 23, 6, 5, tzinfo=UTC)),
        ("2026-11-23T06:05:00Z", datetime(2026, 11, 23, 6, 5, tzinfo=UTC)),
        ("Mon, 23 Nov 2026 14:05:09 +0800", datetime(2026, 11, 23, 6, 5, 9, tzinfo=UTC)),
        ("Mon, 23 Nov 2026 06:05:09 GMT", datetime(2026, 11, 23, 6, 5, 9, tzinfo=UTC)),
        ("5分钟前", NOW - timedelta(minutes=5)),
        ("3小时前", NOW - timedelta(hours=3)),
        ("刚刚", NOW),
        ("昨天 14:05", datetime(2026, 11, 22, 6, 5, tzinfo=UTC)),
    ],
)
def test_publish_times_are_read_as_shanghai_and_stored_utc(text: str, expected: datetime) -> None:
    assert parse_published(text, SHANGHAI, NOW) == expected


def test_unreadable_or_missing_times_give_none() -> None:
    for text in (None, "", "   ", "发表于很久以前", "2026-13-45 99:99"):
        assert parse_published(text, SHANGHAI, NOW) is None


def test_datetimes_pass_through_and_naive_ones_are_local() -> None:
    naive = datetime(2026, 11, 23, 14, 5)
    assert parse_published(naive, SHANGHAI, NOW) == datetime(2026, 11, 23, 6, 5, tzinfo=UTC)
    aware = datetime(2026, 11, 23, 6, 5, tzinfo=UTC)
    assert parse_published(aware, SHANGHAI, NOW) == aware


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2万", 12000),
        ("粉丝 3.5万", 35000),
        ("1,234", 1234),
        ("回复 12", 12),
        ("10w", 100000),
        ("2k", 2000),
        ("--", None),
        ("", None),
        (None, None),
        (7, 7),
        (-3, 0),
    ],
)
def test_counts_are_parsed_as_sites_show_them(text: Any, expected: int | None) -> None:
    assert parse_count(text) == expected


# -- validate --------------------------------------------------------------------------


def test_validate_sets_id_utc_time_and_counts() -> None:
    item = validated(raw(followers="1.2万", comments="回复 3", likes=None))
    assert item.post_id and len(item.post_id) == 24
    assert item.published_utc == datetime(2026, 11, 23, 6, 5, tzinfo=UTC)
    assert item.published_at_estimated is False
    assert item.crawled_at == NOW
    assert item.counts == {"followers": 12000, "reposts": None, "comments": 3, "likes": None}


def test_a_post_without_time_gets_the_crawl_time_and_is_marked_estimated() -> None:
    crawler = crawler_with(None)
    item = validated(raw(published_at=None), crawler)
    assert item.published_utc == NOW and item.published_at_estimated is True
    assert stats_of(crawler)["yuqing/time/missing"] == 1


def test_an_unreadable_or_future_time_is_estimated_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    crawler = crawler_with(None)
    item = validated(raw(published_at="很久以前"), crawler)
    assert item.published_at_estimated is True
    assert "cannot read the publish time '很久以前'" in caplog.text
    future = validated(raw(published_at="2026-11-24 14:05"), crawler)
    assert future.published_utc == NOW and future.published_at_estimated is True
    stats = stats_of(crawler)
    assert stats["yuqing/time/unparsed"] == 1 and stats["yuqing/time/future"] == 1


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (raw(text="   "), "empty_text"),
        (raw(url="ftp://bbs.example.com/1"), "invalid_url"),
        (raw(url=""), "missing_field"),
    ],
)
def test_validate_drops_what_cannot_become_a_post(item: RawPost, reason: str) -> None:
    crawler = crawler_with(None)
    with pytest.raises(DropItem):
        validated(item, crawler)
    assert stats_of(crawler)[f"yuqing/dropped/{reason}"] == 1


def test_the_stages_refuse_anything_but_a_rawpost() -> None:
    with pytest.raises(TypeError, match="RawPost"):
        validated({"url": "https://x.example/1"})  # type: ignore[arg-type]


# -- clean -----------------------------------------------------------------------------


def test_clean_removes_spam_and_boilerplate_lines_and_hashes_the_text(
    store: LocalPostStore, tmp_path: Path
) -> None:
    stage = CleanPipeline.from_crawler(crawler_with(services(store, tmp_path)))
    item = stage.process_item(
        raw(
            title="  澜海银行\n滨江支行  ",
            text="澜海稳盈3号跌破净值了\n加微信 abc123 领红包\n免责声明：仅供参考\n  大家  小心  ",
        )
    )
    assert item.text == "澜海稳盈3号跌破净值了\n大家 小心"
    assert item.title == "澜海银行 滨江支行"
    assert item.content_hash and len(item.content_hash) == 24


def test_clean_drops_a_page_that_is_only_boilerplate(store: LocalPostStore, tmp_path: Path) -> None:
    crawler = crawler_with(services(store, tmp_path))
    with pytest.raises(DropItem, match="empty text"):
        CleanPipeline.from_crawler(crawler).process_item(raw(text="版权所有 © 2026\n分享到：微信"))
    assert stats_of(crawler)["yuqing/dropped/empty_text"] == 1


# -- mention filter --------------------------------------------------------------------


def test_mention_filter_keeps_the_bank_and_records_the_entities(
    store: LocalPostStore, tmp_path: Path
) -> None:
    stage = MentionFilterPipeline.from_crawler(crawler_with(services(store, tmp_path)))
    item = stage.process_item(raw(title="", text="滨江支行的稳盈3号亏了"))
    assert item.matched_entities == ["澜海银行", "澜海银行滨江支行", "澜海稳盈3号"]


@pytest.mark.parametrize("text", ["周末去澜海公园看银杏", "澜海大道在修路", "小区门口新开了面馆"])
def test_mention_filter_drops_exclusions_and_unrelated_posts(
    store: LocalPostStore, tmp_path: Path, text: str
) -> None:
    crawler = crawler_with(services(store, tmp_path))
    with pytest.raises(DropItem, match="no watched entity"):
        MentionFilterPipeline.from_crawler(crawler).process_item(raw(title="", text=text))
    assert stats_of(crawler)["yuqing/dropped/no_watched_entity"] == 1


def test_mention_filter_can_be_switched_off(store: LocalPostStore, tmp_path: Path) -> None:
    crawler = crawler_with(services(store, tmp_path), YUQING_MENTION_FILTER_ENABLED=False)
    with pytest.raises(NotConfigured):
        MentionFilterPipeline.from_crawler(crawler)


# -- dedup -----------------------------------------------------------------------------


def prepared(url: str, text: str, crawler: Crawler) -> RawPost:
    item = validated(raw(url=url, text=text), crawler)
    return CleanPipeline.from_crawler(crawler).process_item(item)


def test_dedup_drops_repeated_ids_and_reposted_content(
    store: LocalPostStore, tmp_path: Path
) -> None:
    crawler = crawler_with(services(store, tmp_path))
    stage = DedupPipeline.from_crawler(crawler)
    stage.process_item(prepared("https://bbs.example.com/t/1.html", "原帖：澜海银行挤兑", crawler))
    with pytest.raises(DropItem, match="duplicate id"):
        # Same page reached twice (a tracking parameter does not make it new).
        stage.process_item(
            prepared("https://bbs.example.com/t/1.html?utm_source=x", "原帖：澜海银行挤兑", crawler)
        )
    with pytest.raises(DropItem, match="duplicate content"):
        stage.process_item(
            prepared("https://bbs.example.com/t/2.html", "原帖：澜海银行挤兑", crawler)
        )
    stats = stats_of(crawler)
    assert stats["yuqing/dropped/duplicate_id"] == 1
    assert stats["yuqing/dropped/duplicate_content"] == 1


def test_dedup_skips_stored_posts_only_while_their_text_is_unchanged(
    store: LocalPostStore, tmp_path: Path
) -> None:
    crawler = crawler_with(services(store, tmp_path))
    first = prepared("https://bbs.example.com/t/9.html", "澜海银行 第一版", crawler)
    first.matched_entities = ["澜海银行"]
    store_stage = StorePipeline.from_crawler(crawler)
    store_stage.process_item(first)
    store_stage.close_spider()

    again = crawler_with(services(store, tmp_path))
    with pytest.raises(DropItem, match="already stored"):
        DedupPipeline.from_crawler(again).process_item(
            prepared("https://bbs.example.com/t/9.html", "澜海银行 第一版", again)
        )
    edited = prepared("https://bbs.example.com/t/9.html", "澜海银行 第二版（已编辑）", again)
    assert DedupPipeline.from_crawler(again).process_item(edited) is edited
    assert stats_of(again)["yuqing/dedup/changed"] == 1


def test_dedup_drops_a_repost_of_a_stored_post_whatever_the_crawl_order(
    store: LocalPostStore, tmp_path: Path
) -> None:
    crawler = crawler_with(services(store, tmp_path))
    original = prepared("https://bbs.example.com/t/20.html", "澜海银行要倒闭了，赶紧取钱", crawler)
    original.matched_entities = ["澜海银行"]
    stage = StorePipeline.from_crawler(crawler)
    stage.process_item(original)
    stage.close_spider()

    later = crawler_with(services(store, tmp_path))
    repost = prepared("https://bbs.example.com/t/21.html", "澜海银行要倒闭了，赶紧取钱", later)
    with pytest.raises(DropItem, match="duplicate content"):
        DedupPipeline.from_crawler(later).process_item(repost)
    other = prepared("https://bbs.example.com/t/22.html", "澜海银行要倒闭了？别信谣", later)
    assert DedupPipeline.from_crawler(later).process_item(other) is other


def test_dedup_lets_posts_through_when_the_store_cannot_be_asked(tmp_path: Path) -> None:
    crawler = crawler_with(services(DownStore(), tmp_path))
    item = prepared("https://bbs.example.com/t/3.html", "澜海银行", crawler)
    assert DedupPipeline.from_crawler(crawler).process_item(item) is item
    assert stats_of(crawler)["yuqing/dedup/store_unavailable"] == 1


# -- analyze ---------------------------------------------------------------------------


def test_analyze_attaches_the_nlp_analysis(
    store: LocalPostStore, tmp_path: Path, analyzer: Analyzer
) -> None:
    crawler = crawler_with(services(store, tmp_path, analyzer))
    item = prepared(
        "https://bbs.example.com/t/4.html", "澜海稳盈3号跌破净值，亏损严重，要求赔偿", crawler
    )
    item = AnalyzePipeline.from_crawler(crawler).process_item(item)
    assert item.analysis is not None
    assert item.analysis.sentiment is Sentiment.NEGATIVE
    assert item.analysis.topic is Topic.WEALTH_MANAGEMENT


class BrokenAnalyzer:
    def analyze(self, text: str, title: str = "") -> Any:
        raise ValueError("model bug")


def test_an_analyzer_error_is_counted_and_the_post_kept(
    store: LocalPostStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crawler = crawler_with(services(store, tmp_path, BrokenAnalyzer()))
    item = prepared("https://bbs.example.com/t/5.html", "澜海银行", crawler)
    assert AnalyzePipeline.from_crawler(crawler).process_item(item).analysis is None
    assert stats_of(crawler)["yuqing/errors/analyze"] == 1
    assert "model bug" in caplog.text


# -- store -----------------------------------------------------------------------------


def kept_item(n: int, crawler: Crawler) -> RawPost:
    item = prepared(f"https://bbs.example.com/t/{100 + n}.html", f"澜海银行 第{n}帖", crawler)
    item.matched_entities = ["澜海银行"]
    return item


def test_store_upserts_in_batches_and_at_close(store: LocalPostStore, tmp_path: Path) -> None:
    crawler = crawler_with(services(store, tmp_path), YUQING_STORE_BATCH_SIZE=2)
    stage = StorePipeline.from_crawler(crawler)
    for n in range(3):
        stage.process_item(kept_item(n, crawler))
    assert store.count(PostQuery()) == 2  # one full batch written, one post buffered
    stage.close_spider()
    assert store.count(PostQuery()) == 3
    post = store.get(kept_item(1, crawler).post_id or "")
    assert post is not None
    assert post.published_at == datetime(2026, 11, 23, 6, 5, tzinfo=UTC)
    assert post.matched_entities == ["澜海银行"] and post.content_hash
    stats = stats_of(crawler)
    assert stats["yuqing/kept"] == 3 and stats["yuqing/store/inserted"] == 3


def test_a_down_store_spools_the_batch_and_the_next_crawl_replays_it(
    store: LocalPostStore, tmp_path: Path
) -> None:
    down = crawler_with(services(DownStore(), tmp_path))
    stage = StorePipeline.from_crawler(down)
    stage.open_spider()
    for n in range(3):
        stage.process_item(kept_item(n, down))
    stage.close_spider()
    assert stats_of(down)["yuqing/store/spooled"] == 3
    assert Spool(tmp_path / "spool").pending() == 3

    up = crawler_with(services(store, tmp_path))
    StorePipeline.from_crawler(up).open_spider()
    assert store.count(PostQuery()) == 3
    assert Spool(tmp_path / "spool").pending() == 0
    assert stats_of(up)["yuqing/store/replayed"] == 3


def test_a_crawl_without_services_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="YUQING_SERVICES is not set"):
        StorePipeline.from_crawler(crawler_with(None))


# -- stats → CrawlRun ------------------------------------------------------------------


SOURCE = SourceConfig(name="forum", kind="rss", start_urls=["https://bbs.example.com/rss"])


def run_of(stats: dict[str, Any]) -> CrawlRun:
    return crawl_run_from_stats(SOURCE, stats, started=NOW, finished=NOW)


def test_crawl_run_counts_pages_kept_and_drops() -> None:
    run = run_of(
        {
            "response_received_count": 12,
            "robotstxt/response_count": 1,
            "yuqing/kept": 5,
            "yuqing/store/inserted": 4,
            "yuqing/store/updated": 1,
            "yuqing/dropped/no_watched_entity": 3,
            "yuqing/dropped/already_stored": 2,
            "finish_reason": "finished",
        }
    )
    assert run.ok and run.fetched == 11 and run.kept == 5
    assert run.dropped == {"no_watched_entity": 3, "already_stored": 2}
    assert "kept 5 (4 new, 1 updated)" in run.message


@pytest.mark.parametrize(
    ("stats", "words"),
    [
        (
            {
                "yuqing/errors/start": 1,
                "yuqing/errors/request": 1,
                "yuqing/start_error": "http://x/: refused",
            },
            "start URL failed (http://x/: refused)",
        ),
        ({"response_received_count": 3, "yuqing/store/spooled": 7}, "7 posts spooled"),
        ({"response_received_count": 3, "yuqing/errors/empty_listing": 1}, "no item links"),
        ({}, "no page was fetched"),
    ],
)
def test_a_crawl_that_failed_is_not_ok_and_says_why(stats: dict[str, Any], words: str) -> None:
    run = run_of({"finish_reason": "finished", **stats})
    assert not run.ok
    assert words in run.message


def test_scrapy_settings_take_the_crawl_config_and_keep_consoles_off() -> None:
    from core.settings import Settings

    settings = Settings(crawl={"download_delay": 0, "retry_times": 1, "obey_robots": False})
    conf = scrapy_settings(settings)
    assert conf.getfloat("DOWNLOAD_DELAY") == 0
    assert conf.getint("RETRY_TIMES") == 1
    assert conf.getbool("ROBOTSTXT_OBEY") is False
    assert conf.getbool("TELNETCONSOLE_ENABLED") is False
    assert conf.getbool("REMOTE_CONTROL_ENABLED") is False
    assert list(conf.getdict("ITEM_PIPELINES")) == [
        "crawler.pipelines.ValidatePipeline",
        "crawler.pipelines.CleanPipeline",
        "crawler.pipelines.MentionFilterPipeline",
        "crawler.pipelines.DedupPipeline",
        "crawler.pipelines.AnalyzePipeline",
        "crawler.pipelines.StorePipeline",
    ]
