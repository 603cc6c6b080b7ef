"""A config-driven list → detail spider for forums, complaint platforms and news lists.

From each start URL it reads list pages (``listing.item_links``), follows
``listing.next_page`` up to ``max_pages`` list pages, and extracts each detail
page with the ``detail`` selectors. Adding a site is a config change.

With ``replies`` selectors (Tieba-style threads), each reply on the thread
page — and on its next pages — is a post of its own, linked to the thread
through ``Post.extra`` (see :mod:`crawler.spiders.replies`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from scrapy import Request
from scrapy.http import Response

from core.settings import SourceConfig
from crawler.items import RawPost
from crawler.spiders.base import SourceSpider, node_links, select
from crawler.spiders.replies import ReplyExtractor


class SiteSpider(SourceSpider):
    """List → detail extraction driven by ``SourceConfig.listing`` and ``.detail``."""

    name = "site"

    def __init__(self, source: SourceConfig | None = None, **kwargs: Any) -> None:
        super().__init__(source, **kwargs)
        if self.source.listing is None or self.source.detail is None:
            raise ValueError(f"source {self.source.name}: an html source needs listing and detail")
        self.listing = self.source.listing
        self.detail = self.source.detail
        self.replies = (
            ReplyExtractor(self, self.source.replies, more=self.parse_replies)
            if self.source.replies is not None
            else None
        )

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Request]:
        """A list page: detail requests, then the next list page while under ``max_pages``."""
        page = int(response.meta.get("yuqing_page", 1))
        self._inc("yuqing/list_pages")
        if not self.is_text(response) or self.check_login(response, missed=False):
            return
        links = node_links(select(response, self.listing.item_links))
        if not links:
            self.missed("listing.item_links", self.listing.item_links, response.url)
            if self.check_login(response, missed=True) or self.check_blocked(response):
                return
            if page == 1:
                # An empty first page is a redesign or an outage page, not "no news".
                self._inc("yuqing/errors/empty_listing")
        # A thread page is fetched again even when its post is stored: new replies
        # appear on it (crawler.incremental skips item pages flagged as items only).
        meta = {"yuqing_item": False} if self.replies is not None else None
        for link in links:
            yield response.follow(
                link, callback=self.parse_detail, errback=self.request_failed, meta=meta
            )
        if not self.listing.next_page:
            return
        next_links = node_links(select(response, self.listing.next_page))
        if not next_links:
            # The last page has no "next" link; that is normal, so no warning.
            self.logger.debug("source %s: no next page after %s", self.source.name, response.url)
            return
        if page >= self.source.max_pages:
            self._inc("yuqing/list_max_pages_reached")
            self.logger.info(
                "source %s: stopping at max_pages=%d (%s has a next page)",
                self.source.name,
                self.source.max_pages,
                response.url,
            )
            return
        yield response.follow(
            next_links[0],
            callback=self.parse,
            errback=self.request_failed,
            meta={"yuqing_page": page + 1},
        )

    def parse_detail(self, response: Response) -> Iterator[RawPost | Request]:
        """A detail page → one :class:`RawPost` (nothing for a binary response).

        With ``replies``: also one post per reply, and the thread's next page.
        """
        if not self.is_text(response) or self.check_login(response, missed=False):
            return
        thread = self.extract_detail(response, self.detail)
        if self.replies is None:
            yield thread
            return
        thread.extra.setdefault("thread_url", response.url)
        thread.extra.setdefault("floor", 1)
        yield thread
        yield from self.replies.parse(response, thread_url=response.url, thread_title=thread.title)

    def parse_replies(
        self, response: Response, thread_url: str, thread_title: str, page: int
    ) -> Iterator[RawPost | Request]:
        """A later page of a thread: its replies (a spider method, so JOBDIR can queue it)."""
        assert self.replies is not None
        yield from self.replies.parse_more(
            response, thread_url=thread_url, thread_title=thread_title, page=page
        )
