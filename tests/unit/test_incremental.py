"""The incremental middleware reads the running spider from the crawler.

Scrapy passes ``spider`` to ``process_spider_output`` only when the method
requires it, so a check on ``spider.replies`` must not depend on the argument.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from scrapy import Request
from scrapy.statscollectors import MemoryStatsCollector
from scrapy.utils.test import get_crawler

from core.ids import post_id_from_url
from core.models import Post
from core.vocab import Platform
from crawler.incremental import SeenItemsMiddleware
from storage.local import LocalPostStore

THREAD = "https://tieba.lanhai.example/p/7001"


def _middleware(tmp_path: Any, spider: object) -> tuple[SeenItemsMiddleware, LocalPostStore]:
    store = LocalPostStore(tmp_path / "posts.db", lambda text: text.split())
    store.upsert(
        [
            Post(
                id=post_id_from_url(THREAD),
                url=THREAD,
                source="tieba",
                platform=Platform.FORUM,
                title="澜海银行滨江支行排队",
                text="澜海银行滨江支行排队两小时",
                published_at=datetime(2026, 11, 20, tzinfo=UTC),
            )
        ]
    )
    crawler: Any = SimpleNamespace(spider=spider)
    stats = MemoryStatsCollector(get_crawler())
    return SeenItemsMiddleware(stats, store, None, frozenset({"parse_detail"}), crawler), store


def test_a_stored_item_page_is_not_fetched_again(tmp_path: Any) -> None:
    middleware, store = _middleware(tmp_path, SimpleNamespace(replies=None))
    try:
        request = Request(THREAD, meta={"yuqing_item": True})
        assert middleware.skip(request, None) is True
        assert middleware.stats.get_value("yuqing/incremental/skipped") == 1
        fresh = Request("https://tieba.lanhai.example/p/7002", meta={"yuqing_item": True})
        assert middleware.skip(fresh, None) is False
    finally:
        store.close()


def test_a_thread_with_replies_is_refetched_even_without_the_spider_argument(
    tmp_path: Any,
) -> None:
    middleware, store = _middleware(tmp_path, SimpleNamespace(replies={"item": ".floor"}))
    try:
        request = Request(THREAD, meta={"yuqing_item": True})
        # ``spider`` is None, as Scrapy calls the method: the crawler's spider is used.
        assert middleware.skip(request, None) is False
    finally:
        store.close()
