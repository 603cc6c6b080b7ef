"""A config-driven JSON API spider (``kind: json_api``): Weibo search, app reviews, …

Each page of the API is fetched (``start_urls`` plus ``api.pagination``), the
items are found with the ``api.items`` JSONPath and each item's fields with
``api.fields`` (jsonpath-ng syntax, paths relative to the item), so a new API
is a config change. What the item gives is kept as the API shows it —
"12.3万" followers, "3分钟前" times, HTML in the text (``text_html``) — and
the pipelines parse it.

Never silent: a body that is not JSON counts in ``yuqing/errors/invalid_json``
(unless it is a captcha or login page, which count as a block or a login);
an items path that finds nothing on the first page where the response has no
such place (a changed layout) is a selector miss and an
``yuqing/errors/empty_listing`` that makes the run not ok. An API that
answers an empty list (a search without results), or a later page without
items (past the end), is normal and only logged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from jsonpath_ng import JSONPath
from jsonpath_ng.ext import parse as jsonpath_parse
from scrapy import Request
from scrapy.http import Response, TextResponse
from twisted.python.failure import Failure
from w3lib.url import add_or_replace_parameter

from core.settings import JSON_FIELDS, JsonApiConfig, SourceConfig
from crawler.items import RawPost
from crawler.spiders.base import SourceSpider, extra_value
from crawler.spiders.rss import html_to_text

_RAW_FIELDS = {"author_followers": "followers"}
"""JSON field names that are named differently on :class:`RawPost`."""


@lru_cache(maxsize=512)
def compiled(expr: str) -> JSONPath:
    """The parsed JSONPath (validated at config load, so this does not raise)."""
    return jsonpath_parse(expr)


def find_all(expr: str, data: Any) -> list[Any]:
    """Every value ``expr`` selects in ``data``."""
    return [match.value for match in compiled(expr).find(data)]


def find_first(expr: str | None, data: Any) -> Any:
    """The first value ``expr`` selects in ``data``, or ``None``."""
    if expr is None:
        return None
    values = find_all(expr, data)
    return values[0] if values else None


def place_exists(expr: str, data: Any) -> bool:
    """Whether the container the items path points into is there (maybe empty).

    ``data.cards[*].mblog`` on ``{"data": {"cards": []}}`` is an empty result;
    on ``{"data": {"list": …}}`` it is a layout the config does not know.
    """
    path = compiled(expr)
    while hasattr(path, "left"):
        path = path.left
        values = [m.value for m in path.find(data)]
        if values:
            return all(isinstance(v, list | dict) and not v for v in values)
    return False


def _scalar(value: Any) -> str | int | None:
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else str(value)
    text = str(value).strip()
    return text or None


def _text(value: str | int | None) -> str | None:
    return None if value is None else str(value)


class JsonApiSpider(SourceSpider):
    """JSON API pages → :class:`RawPost` per item, driven by ``SourceConfig.api``."""

    name = "json_api"

    def __init__(self, source: SourceConfig | None = None, **kwargs: Any) -> None:
        super().__init__(source, **kwargs)
        if self.source.api is None:
            raise ValueError(f"source {self.source.name}: a json_api source needs 'api'")
        self.api: JsonApiConfig = self.source.api

    # -- paging ------------------------------------------------------------------

    def page_url(self, base: str, page: int, cursor: str | None) -> str:
        """The URL of page ``page`` (1-based) of ``base``, or the page after ``cursor``."""
        paging = self.api.pagination
        if paging is None:
            return base
        if paging.cursor is not None:
            if "{cursor}" in base:
                return base.replace("{cursor}", quote(cursor or "", safe=""))
            if cursor is None or paging.param is None:
                return base
            return str(add_or_replace_parameter(base, paging.param, cursor))
        number = str(paging.start + (page - 1) * paging.step)
        if "{page}" in base:
            return base.replace("{page}", number)
        assert paging.param is not None  # the config requires param or {page}
        return str(add_or_replace_parameter(base, paging.param, number))

    async def start(self) -> Any:
        if self.cookies_missing():
            return
        for base in self.start_urls:
            yield Request(
                self.page_url(base, 1, None),
                callback=self.parse,
                errback=self.request_failed,
                dont_filter=True,
                meta={"yuqing_start": True, "yuqing_page": 1, "yuqing_base": base},
            )

    # -- pages ---------------------------------------------------------------------

    def parse(self, response: Response, **kwargs: Any) -> Iterator[RawPost | Request]:
        """One API page: an item per match of ``api.items``, then the next page."""
        page = int(response.meta.get("yuqing_page", 1))
        base = str(response.meta.get("yuqing_base", response.url))
        self._inc("yuqing/list_pages")
        if not self.is_text(response) or self.check_login(response, missed=False):
            return
        assert isinstance(response, TextResponse)
        data = self.load_json(response)
        if data is None:
            return
        items = find_all(self.api.items, data)
        if len(items) == 1 and isinstance(items[0], list):
            items = items[0]  # "data.list" selects the list itself, not its elements
        if not items:
            if place_exists(self.api.items, data) or page > 1:
                # An empty list, or a later page past the end (the App Store feed
                # leaves "entry" out there): the results end, nothing changed.
                self.logger.info(
                    "source %s: no items on %s (page %d); paging ends",
                    self.source.name,
                    response.url,
                    page,
                )
                return
            self.missed("api.items", self.api.items, response.url)
            if self.check_login(response, missed=True) or self.check_blocked(response):
                return
            # A first page without its items is a changed API or an error answer.
            self._inc("yuqing/errors/empty_listing")
            return
        self._inc("yuqing/api_items", len(items))
        for item in items:
            yield from self.item_post(item, response)
        yield from self.next_page(response, data, base, page)

    def load_json(self, response: TextResponse) -> Any:
        """The parsed body, or ``None`` after counting why it is not JSON."""
        if not response.body.strip():
            self._inc("yuqing/errors/invalid_json")
            self.logger.error("source %s: %s gave an empty body", self.source.name, response.url)
            return None
        try:
            return json.loads(response.text)
        except ValueError as exc:
            if self.check_login(response, missed=True) or self.check_blocked(response):
                return None
            self._inc("yuqing/errors/invalid_json")
            self.logger.error(
                "source %s: %s is not JSON (%s; Content-Type %r; starts %r)",
                self.source.name,
                response.url,
                exc,
                (response.headers.get("Content-Type") or b"").decode("latin-1"),
                response.text[:80],
            )
            return None

    def next_page(self, response: Response, data: Any, base: str, page: int) -> Iterator[Request]:
        """The request for the page after ``page``, unless paging ends here."""
        paging = self.api.pagination
        if paging is None:
            return
        cursor: str | None = None
        if paging.cursor is not None:
            value = _scalar(find_first(paging.cursor, data))
            cursor = None if value in (None, 0, "0", "") else str(value)
            if cursor is None or cursor == response.meta.get("yuqing_cursor"):
                self.logger.debug("source %s: no next cursor on %s", self.source.name, response.url)
                return
        if page >= self.source.max_pages:
            self._inc("yuqing/list_max_pages_reached")
            self.logger.info(
                "source %s: stopping at max_pages=%d after %s",
                self.source.name,
                self.source.max_pages,
                response.url,
            )
            return
        yield Request(
            self.page_url(base, page + 1, cursor),
            callback=self.parse,
            errback=self.request_failed,
            meta={"yuqing_page": page + 1, "yuqing_base": base, "yuqing_cursor": cursor},
        )

    # -- items ---------------------------------------------------------------------

    def item_post(self, item: Any, response: Response) -> Iterator[RawPost | Request]:
        """The :class:`RawPost` of one item (or the request for its full text)."""
        values: dict[str, Any] = {}
        for name in JSON_FIELDS:
            expr = getattr(self.api.fields, name)
            if expr is None:
                continue
            value = _scalar(find_first(expr, item))
            if value is None:
                self.missed(f"fields.{name}", expr, response.url)
            values[name] = value
        url = self.item_url(values, response)
        if url is None:
            return
        text = values.get("text")
        text = "" if text is None else str(text)
        if self.api.text_html:
            text = html_to_text(text)
        text += self.quoted(item)
        post = RawPost(
            url=url,
            source=self.source.name,
            platform=str(self.source.platform),
            title=self.item_title(values),
            text=text,
            author=_text(values.get("author")),
            published_at=_text(values.get("published_at")),
            native_id=_text(values.get("id")),
            extra=self.item_extra(item, response.url),
        )
        for name in ("author_followers", "reposts", "comments", "likes"):
            setattr(post, _RAW_FIELDS.get(name, name), values.get(name))
        long_text = self.api.long_text
        if long_text is not None and find_first(long_text.flag, item) in (True, 1, "true", "1"):
            try:
                full_url = long_text.url_template.format(
                    **{k: quote(str(v), safe="") for k, v in values.items() if v is not None}
                )
            except KeyError as exc:
                self.missed(f"long_text.{exc.args[0]}", long_text.url_template, response.url)
                yield post
                return
            yield Request(
                response.urljoin(full_url),
                callback=self.parse_long_text,
                errback=self.long_text_failed,
                cb_kwargs={"post": post},
            )
            return
        yield post

    def quoted(self, item: Any) -> str:
        """``//@author: text`` of the original this item reposts, or ``""``.

        Only reposts carry an original, so a miss is normal and not counted as
        a selector miss.
        """
        fields = self.api.fields
        if fields.quoted_text is None:
            return ""
        original = _scalar(find_first(fields.quoted_text, item))
        if original is None or not str(original).strip():
            return ""
        original = html_to_text(str(original)) if self.api.text_html else str(original).strip()
        author = None
        if fields.quoted_author is not None:
            author = _text(_scalar(find_first(fields.quoted_author, item)))
        return f"//@{author}: {original}" if author else f"//{original}"

    def item_title(self, values: dict[str, Any]) -> str:
        """``title_template`` filled with the mapped fields, else the mapped title."""
        title = _text(values.get("title")) or ""
        template = self.api.title_template
        if template is None:
            return title
        try:
            return template.format(**{k: ("" if v is None else v) for k, v in values.items()})
        except KeyError:
            return title

    def item_url(self, values: dict[str, Any], response: Response) -> str | None:
        """The item's URL from ``fields.url`` or ``url_template``; ``None`` is counted."""
        if values.get("url") is not None:
            return response.urljoin(str(values["url"]))
        template = self.api.url_template
        if template is not None:
            try:
                return response.urljoin(
                    template.format(
                        **{k: quote(str(v), safe="") for k, v in values.items() if v is not None}
                    )
                )
            except KeyError:
                pass  # a field the template needs is missing (counted as its miss)
        self._inc("yuqing/dropped/no_url")
        self.logger.debug("source %s: an item on %s has no URL", self.source.name, response.url)
        return None

    def item_extra(self, item: Any, url: str) -> dict[str, str | int]:
        out: dict[str, str | int] = {}
        for key, spec in self.api.extra.items():
            expr, kind = (spec, "str") if isinstance(spec, str) else (spec.query, spec.type)
            optional = not isinstance(spec, str) and spec.optional
            raw = _scalar(find_first(expr, item))
            value = extra_value(raw, kind)
            if value is None:
                if not optional:
                    self.missed(f"extra.{key}", expr, url)
                continue
            out[key] = value
        return out

    def parse_long_text(self, response: Response, post: RawPost) -> Iterator[RawPost]:
        """The full text of a cut item; the cut text stays if it is not there."""
        assert self.api.long_text is not None
        full = None
        if isinstance(response, TextResponse):
            try:
                full = _scalar(find_first(self.api.long_text.text, json.loads(response.text)))
            except ValueError:
                full = None
        if full is None:
            self.missed("long_text.text", self.api.long_text.text, response.url)
            self._inc("yuqing/long_text/missing")
        else:
            post.text = html_to_text(str(full)) if self.api.text_html else str(full)
            self._inc("yuqing/long_text/fetched")
        yield post

    def long_text_failed(self, failure: Failure) -> Iterator[RawPost]:
        """The full-text request failed: count it, keep the cut text."""
        self.request_failed(failure)
        self._inc("yuqing/long_text/missing")
        yield failure.request.cb_kwargs["post"]  # type: ignore[attr-defined]
