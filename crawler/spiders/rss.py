"""An RSS/Atom spider: each feed entry becomes a post.

The feed gives the link, title, author, publish time and a summary. When the
source has ``detail`` selectors, the spider follows each entry's link and
takes the full text (and counts) from the article page, keeping the feed's
title, link and time, which are structured and exact. If the article page
fails, the entry is still yielded with the feed's summary as its text (the
failure is logged and counted).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import feedparser  # type: ignore[import-untyped]  # ships no type hints
from scrapy import Request
from scrapy.http import Response
from twisted.python.failure import Failure
from w3lib.html import remove_tags, replace_entities

from crawler.items import RawPost
from crawler.spiders.base import COUNT_FIELDS, SourceSpider

_BLOCK_END = re.compile(r"(?i)<\s*(br\s*/?|/p|/div|/li|/h\d)\s*>")


def html_to_text(html: str) -> str:
    """Plain text of a feed summary: block ends become line breaks, tags and entities go."""
    return replace_entities(remove_tags(_BLOCK_END.sub("\n", html))).strip()


class RssSpider(SourceSpider):
    """Feed entries → :class:`RawPost`; optionally the article page for the full text."""

    name = "rss"

    def parse(self, response: Response, **kwargs: Any) -> Iterator[RawPost | Request]:
        """The feed: one item (or one article request) per entry."""
        if not response.body.strip():
            self._inc("yuqing/errors/feed")
            self.logger.error("source %s: %s is empty, not a feed", self.source.name, response.url)
            return
        feed = feedparser.parse(response.body)
        entries = feed.entries
        if not entries:
            if self.check_blocked(response):
                return
            if feed.bozo:
                self._inc("yuqing/errors/feed")
                self.logger.error(
                    "source %s: %s is not a readable feed: %s",
                    self.source.name,
                    response.url,
                    feed.get("bozo_exception"),
                )
            else:
                self.missed("feed.entries", "<item>/<entry>", response.url)
            return
        if feed.bozo:
            # feedparser reads what it can of a broken feed; say that it is broken.
            self._inc("yuqing/feed_malformed")
            self.logger.warning(
                "source %s: %s is not well-formed (%s); read %d entries from it",
                self.source.name,
                response.url,
                feed.get("bozo_exception"),
                len(entries),
            )
        self._inc("yuqing/feed_entries", len(entries))
        for entry in entries:
            # feedparser falls back to the entry id for a missing link; an id such
            # as "urn:uuid:…" is no page to store.
            url = response.urljoin(entry.get("link") or "")
            if not url.startswith(("http://", "https://")) or url == response.url:
                self.missed("feed.link", "<link>", response.url)
                continue
            summary = entry.get("summary") or ""
            if not summary and entry.get("content"):
                summary = entry["content"][0].get("value", "")
            base = RawPost(
                url=url,
                source=self.source.name,
                platform=str(self.source.platform),
                title=entry.get("title", ""),
                text=html_to_text(summary),
                author=entry.get("author"),
                published_at=entry.get("published") or entry.get("updated"),
                native_id=entry.get("id"),
            )
            if self.source.detail is None:
                yield base
            else:
                yield Request(
                    base.url,
                    callback=self.parse_article,
                    errback=self.article_failed,
                    cb_kwargs={"base": base},
                )

    def parse_article(self, response: Response, base: RawPost) -> Iterator[RawPost]:
        """The article page: full text and counts; the feed's title, time and link win."""
        assert self.source.detail is not None
        if not self.is_text(response):
            yield base
            return
        page = self.extract_detail(response, self.source.detail)
        base.text = page.text or base.text
        base.title = base.title or page.title
        base.author = page.author or base.author
        base.published_at = base.published_at or page.published_at
        for name in COUNT_FIELDS:
            setattr(base, name, getattr(page, name))
        yield base

    def article_failed(self, failure: Failure) -> Iterator[RawPost]:
        """The article page failed: log and count it, then keep the feed entry."""
        self.request_failed(failure)
        base: RawPost = failure.request.cb_kwargs["base"]  # type: ignore[attr-defined]
        self._inc("yuqing/feed_summary_only")
        yield base
