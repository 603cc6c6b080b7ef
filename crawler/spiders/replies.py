"""Replies on a thread page (Baidu Tieba floors, forum replies): one post per reply.

The thread page's opening post is the thread's own post (the ``detail``
selectors). Every other floor matched by ``replies.item`` becomes a
:class:`RawPost` whose URL is the thread URL with ``?<id_param>=<reply id>``
(Tieba's own permalink form ``/p/<tid>?pid=<pid>``), titled
"回复：<thread title>", and whose ``extra`` links it to the thread:
``thread_url``, ``thread_title``, ``floor``. The thread's next pages are
followed up to ``replies.max_pages``; misses are recorded like any selector's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from parsel import Selector
from scrapy import Request
from scrapy.http import Response
from w3lib.url import add_or_replace_parameter

from core.settings import ReplySelectors
from crawler.items import RawPost
from crawler.parsing import parse_count
from crawler.spiders.base import node_links, node_texts, select

if TYPE_CHECKING:
    from crawler.spiders.base import SourceSpider


class ReplyExtractor:
    """Extracts the replies of thread pages for ``spider`` with ``selectors``."""

    def __init__(
        self, spider: SourceSpider, selectors: ReplySelectors, *, more: Callable[..., Any]
    ) -> None:
        # ``more`` is the spider's own callback for a thread's next pages: Scrapy
        # can only queue a request on disk (JOBDIR) whose callback is a spider method.
        self.spider = spider
        self.sel = selectors
        self.more = more

    def _first(self, node: Selector, field: str, query: str | None, url: str) -> str | None:
        if not query:
            return None
        texts = node_texts(select(node, query))
        if not texts:
            self.spider.missed(f"replies.{field}", query, url)
            return None
        return texts[0]

    def parse(
        self, response: Response, *, thread_url: str, thread_title: str, page: int = 1
    ) -> Iterator[RawPost | Request]:
        """The replies on one thread page, then the request for the thread's next page."""
        nodes = list(select(response, self.sel.item))
        if not nodes and page == 1:
            # Even a thread without replies has its opening floor: the layout changed.
            self.spider.missed("replies.item", self.sel.item, response.url)
        if page == 1 and self.sel.skip_first:
            nodes = nodes[1:]
        for node in nodes:
            post = self.reply(node, response, thread_url=thread_url, thread_title=thread_title)
            if post is not None:
                yield post
        if not self.sel.next_page:
            return
        links = node_links(select(response, self.sel.next_page))
        if not links:
            return
        if page >= self.sel.max_pages:
            self.spider._inc("yuqing/replies/max_pages_reached")
            return
        yield response.follow(
            links[0],
            callback=self.more,
            errback=self.spider.request_failed,
            cb_kwargs={"thread_url": thread_url, "thread_title": thread_title, "page": page + 1},
        )

    def parse_more(
        self, response: Response, thread_url: str, thread_title: str, page: int
    ) -> Iterator[RawPost | Request]:
        """A later page of a thread: replies only."""
        if not self.spider.is_text(response) or self.spider.check_login(response, missed=False):
            return
        yield from self.parse(response, thread_url=thread_url, thread_title=thread_title, page=page)

    def reply(
        self, node: Selector, response: Response, *, thread_url: str, thread_title: str
    ) -> RawPost | None:
        """One reply, or ``None`` (counted) when it has no id to make its URL from."""
        url = response.url
        reply_id = self._first(node, "id", self.sel.id, url)
        if reply_id is None:
            self.spider._inc("yuqing/dropped/reply_without_id")
            return None
        texts = node_texts(select(node, self.sel.text))
        if not texts:
            self.spider.missed("replies.text", self.sel.text, url)
        extra: dict[str, str | int] = {"thread_url": thread_url, "thread_title": thread_title}
        floor = parse_count(self._first(node, "floor", self.sel.floor, url))
        if floor is not None:
            extra["floor"] = floor
        self.spider._inc("yuqing/replies")
        return RawPost(
            url=add_or_replace_parameter(thread_url, self.sel.id_param, reply_id),
            source=self.spider.source.name,
            platform=str(self.spider.source.platform),
            title=f"回复：{thread_title}" if thread_title else "",
            text="\n".join(texts),
            author=self._first(node, "author", self.sel.author, url),
            published_at=self._first(node, "published_at", self.sel.published_at, url),
            followers=self._first(node, "followers", self.sel.followers, url),
            likes=self._first(node, "likes", self.sel.likes, url),
            native_id=reply_id,
            extra=extra,
        )
