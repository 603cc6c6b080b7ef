"""Incremental crawling: a detail page whose post is already known is not fetched again.

:class:`SeenItemsMiddleware` (a downloader middleware) looks at each request
for an item page — a request with ``meta["yuqing_item"] = True``, or one whose
callback is named in ``YUQING_ITEM_CALLBACKS`` (``parse_detail``,
``parse_article``) — computes the post id of its canonical URL
(:func:`core.ids.post_id_from_url`) and drops the request
(``IgnoreRequest``, counted in ``yuqing/incremental/skipped``) when that id is
stored in the PostStore or grouped as a copy in the dedup index. List pages,
feeds and start URLs are always fetched: that is where new items appear.

What it does not skip, on purpose:

* item pages of a spider that also extracts replies from them
  (``spider.replies`` set): a stored thread still grows new replies;
* anything while the store cannot be asked (``StoreUnavailable``): fetching a
  page twice is harmless (upserts are idempotent), missing one is not;
* anything when ``YUQING_INCREMENTAL`` is false (a full re-crawl that
  refreshes counts such as likes and comments).

Each look-up is one indexed query (``ContentIndex.stored_hashes``) per item
request, made before the request is scheduled (so a skipped page never
reaches the JOBDIR queue either).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, Self

from scrapy import Request, Spider
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.statscollectors import StatsCollector

from core.errors import StoreUnavailable
from core.ids import post_id_from_url
from core.ports import ContentIndex, PostStore
from crawler.pipelines import services_from
from storage.dedup_index import DedupIndex

log = logging.getLogger(__name__)

ITEM_META = "yuqing_item"
# Not parse_article: the RSS spider keeps the feed entry when its article request
# fails, so an article of a stored entry is fetched and dropped as "already stored".
DEFAULT_ITEM_CALLBACKS = ("parse_detail",)


class SeenItemsMiddleware:
    """Drop requests for item pages whose post is already stored or grouped (see module doc)."""

    def __init__(
        self,
        stats: StatsCollector,
        store: PostStore,
        index: DedupIndex | None,
        callbacks: frozenset[str],
        crawler: Crawler | None = None,
    ) -> None:
        # Scrapy passes ``spider`` to middleware methods only when their
        # signature requires it, so the running spider is read from the crawler.
        self.crawler = crawler
        self.stats = stats
        self.store = store
        self.index = index
        self.callbacks = callbacks
        self._warned = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("YUQING_INCREMENTAL", True):
            raise NotConfigured("YUQING_INCREMENTAL is false")
        services = services_from(crawler, "SeenItemsMiddleware")
        callbacks = frozenset(
            crawler.settings.getlist("YUQING_ITEM_CALLBACKS", list(DEFAULT_ITEM_CALLBACKS))
        )
        assert crawler.stats is not None
        return cls(crawler.stats, services.post_store, services.dedup_index, callbacks, crawler)

    def is_item_request(self, request: Request) -> bool:
        """Whether ``request`` fetches one item's page (see the module doc)."""
        flag = request.meta.get(ITEM_META)
        if flag is not None:
            return bool(flag)
        return getattr(request.callback, "__name__", None) in self.callbacks

    def process_spider_output(
        self, response: Response, result: Iterable[Any], spider: Spider | None = None
    ) -> Iterator[Any]:
        for obj in result:
            if not (isinstance(obj, Request) and self.skip(obj, spider)):
                yield obj

    async def process_spider_output_async(
        self, response: Response, result: AsyncIterator[Any], spider: Spider | None = None
    ) -> AsyncIterator[Any]:
        async for obj in result:
            if not (isinstance(obj, Request) and self.skip(obj, spider)):
                yield obj

    def skip(self, request: Request, spider: Spider | None) -> bool:
        """Whether ``request`` fetches the page of an item already stored or grouped."""
        if not self.is_item_request(request):
            return False
        if spider is None and self.crawler is not None:
            spider = self.crawler.spider
        if spider is not None and getattr(spider, "replies", None) is not None:
            return False
        try:
            post_id = post_id_from_url(request.url)
        except ValueError:
            return False  # not http(s): the downloader will say so
        if not self._known(post_id):
            return False
        self.stats.inc_value("yuqing/incremental/skipped")
        log.debug("incremental: %s is stored; not fetched again", request.url)
        return True

    def _known(self, post_id: str) -> bool:
        try:
            if isinstance(self.store, ContentIndex):
                stored = post_id in self.store.stored_hashes([post_id])
            else:
                stored = self.store.get(post_id) is not None
            if stored:
                return True
            return self.index is not None and bool(self.index.originals_of([post_id]))
        except StoreUnavailable as exc:
            self.stats.inc_value("yuqing/incremental/store_unavailable")
            if not self._warned:
                self._warned = True
                log.warning("incremental: store unavailable (%s); fetching every item page", exc)
            return False
