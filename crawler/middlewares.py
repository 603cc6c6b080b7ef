"""Downloader middlewares of the yuqing crawler."""

from __future__ import annotations

import codecs
import logging
from typing import Self

from charset_normalizer import from_bytes
from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.http import HtmlResponse, Response
from scrapy.settings import BaseSettings
from scrapy.statscollectors import StatsCollector
from scrapy.utils.asyncio import sleep

log = logging.getLogger(__name__)


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's retry, waiting ``RETRY_BACKOFF_BASE * 2**(n-1)`` seconds before retry ``n``.

    A site that is overloaded or briefly down gets time to recover instead of
    three immediate hits; the wait is capped at ``RETRY_BACKOFF_MAX``. Only the
    retried request waits: the sleep is asynchronous.
    """

    def __init__(self, settings: BaseSettings) -> None:
        super().__init__(settings)
        self.backoff_base = settings.getfloat("RETRY_BACKOFF_BASE", 1.0)
        self.backoff_max = settings.getfloat("RETRY_BACKOFF_MAX", 30.0)

    async def process_response(  # type: ignore[override]
        self, request: Request, response: Response
    ) -> Request | Response:
        result = super().process_response(request, response)
        if isinstance(result, Request):
            await self._wait(result)
        return result

    async def process_exception(  # type: ignore[override]
        self, request: Request, exception: Exception
    ) -> Request | Response | None:
        result = super().process_exception(request, exception)
        if isinstance(result, Request):
            await self._wait(result)
        return result

    async def _wait(self, retry: Request) -> None:
        attempt = int(retry.meta.get("retry_times", 1))
        delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        if delay > 0:
            log.debug("backing off %.1f s before retry %d of %s", delay, attempt, retry.url)
            await sleep(delay)


# The encodings Chinese-language sites use. GB18030 is a superset of GB2312 and
# GBK; Big5-HKSCS of Big5. Each decodes most bytes of the others without an
# error, so a wrong declaration shows only as nonsense text.
_CANDIDATES = ("utf_8", "gb18030", "big5hkscs")
_CJK_FAMILY = {"gb18030", "big5", "big5hkscs", "cp950", "hz"}  # as _codec names them


# Browsers (WHATWG) decode pages labelled gbk or gb2312 as GB18030, and w3lib
# before 2.6 reported such pages' encoding as gb18030; 2.6 reports the label.
# One name for the family keeps the decode check and the yuqing/encoding/*
# counters the same under either.
_WHATWG_DECODER = {"gbk": "gb18030", "gb2312": "gb18030"}


def _codec(name: str) -> str:
    try:
        codec = codecs.lookup(name).name.replace("-", "_")
    except LookupError:
        codec = name.lower()
    return _WHATWG_DECODER.get(codec, codec)


def corrected_encoding(body: bytes, declared: str) -> str | None:
    """The encoding ``body`` is really in, when it is not ``declared``; else ``None``.

    ``declared`` is what Scrapy chose (HTTP header, then ``<meta>``, then
    charset-normalizer). It is kept when it decodes the body and is not a
    Chinese multi-byte encoding, and also for UTF-8 with a few broken bytes
    (a truncated page). A Chinese multi-byte declaration that decodes is
    checked anyway — GBK bytes read as Big5 (and the reverse) decode without
    an error — by charset-normalizer's coherence among UTF-8, GB18030 and Big5.
    """
    if body.isascii():
        return None
    codec = _codec(declared)
    try:
        body.decode(codec)
        decodes = True
    except (UnicodeDecodeError, LookupError):
        decodes = False
    if decodes and codec not in _CJK_FAMILY:
        return None
    if not decodes and codec == "utf_8":
        text = body.decode("utf-8", errors="replace")
        if text.count("\ufffd") <= max(3, len(text) // 1000):
            return None  # UTF-8 with a few damaged bytes, not another encoding
    best = from_bytes(body, cp_isolation=list(_CANDIDATES)).best()
    if best is None or _codec(best.encoding) == codec:
        return None
    if _codec(best.encoding) == "big5hkscs" and codec in {"big5", "cp950"}:
        return None
    return _codec(best.encoding)


class CharsetMiddleware:
    """Re-decode HTML pages whose declared charset is wrong (counted in ``yuqing/encoding/*``).

    Scrapy's ``TextResponse`` trusts the HTTP header, then ``<meta charset>``,
    and only detects the encoding when neither is given; a page whose header
    says UTF-8 (or GBK) while its bytes are GBK (or Big5) would be read as
    nonsense and match no watched name. Pages without a declaration are
    already detected by Scrapy (charset-normalizer) and pass unchanged.
    """

    def __init__(self, stats: StatsCollector) -> None:
        self.stats = stats
        self._warned: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        assert crawler.stats is not None
        return cls(crawler.stats)

    def process_response(self, request: Request, response: Response) -> Response:
        if not isinstance(response, HtmlResponse):
            return response
        declared = response.encoding
        actual = corrected_encoding(response.body, declared)
        if actual is None:
            return response
        self.stats.inc_value(f"yuqing/encoding/corrected/{_codec(declared)}_to_{actual}")
        host = request.url.split("/")[2] if "//" in request.url else request.url
        if host not in self._warned:
            self._warned.add(host)
            log.warning(
                "%s declares charset %s but is %s; decoding it as %s "
                "(further pages counted in yuqing/encoding/corrected/*)",
                request.url,
                declared,
                actual,
                actual,
            )
        return response.replace(encoding=actual)


class SourceCookiesMiddleware:
    """Send a source's Cookie header (from its ``cookies_env`` variable) to its own hosts.

    The spider holds the header in ``cookie_header`` and the hosts of its
    start URLs in ``cookie_hosts``; a request to any other host (a link to
    another site, a CDN) never carries the cookies. Scrapy's own cookie
    handling stays off (``COOKIES_ENABLED = False``): a monitor must not
    collect session state between runs.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_request(self, request: Request) -> None:
        spider = self.crawler.spider
        header = getattr(spider, "cookie_header", None)
        if not header or "Cookie" in request.headers:
            return
        host = request.url.split("/")[2].split(":")[0].lower() if "//" in request.url else ""
        hosts = {h.lower() for h in getattr(spider, "cookie_hosts", ())}
        if host in hosts or any(host.endswith("." + h) for h in hosts):
            request.headers["Cookie"] = header
