"""What the yuqing spiders share: the source config, selectors, detail extraction, errbacks.

Spiders only extract (STYLE: "spiders/ (extraction only)"): they yield
:class:`crawler.items.RawPost` with fields as the page shows them; the
pipelines validate, clean, filter and store.

Selectors come from config: CSS, or XPath when the string starts with
``xpath:``. A selector may select elements (their whole text is taken) or
text/attribute nodes (``::text``, ``::attr(href)``, ``/@href``). A selector
that matches nothing is never silent: the first miss per field logs a warning
naming the source and the selector, every miss counts in
``yuqing/selector_miss/<field>``, and a summary is logged when the spider closes.

A block is never "no posts" (STYLE #6): HTTP 401/403/418/429 after retries,
or a page whose selectors match nothing and that reads like a captcha or an
"access denied" page, counts in ``yuqing/errors/blocked`` and leaves the
reason in ``yuqing/blocked``, which makes the crawl run not ok. A response
that is not text (an image on a detail URL) counts in ``yuqing/errors/not_text``;
a page over ``DOWNLOAD_MAXSIZE`` in ``yuqing/errors/too_large``.

Cookies and logins: a source with ``cookies_env`` sends the Cookie header
held in that environment variable (only to the hosts of its start URLs;
see :class:`crawler.middlewares.SourceCookiesMiddleware`). A missing
variable is said by name; with ``login_required`` nothing is fetched. A
redirect to a login page, or — where the selectors matched nothing — a
login form or a "please log in" JSON answer, counts in ``yuqing/errors/login``
with the reason in ``yuqing/login``: the run is not ok, and the message says
which variable to set or refresh.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from parsel import Selector, SelectorList
from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DownloadCancelledError, IgnoreRequest
from scrapy.http import HtmlResponse, Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from core.settings import DetailSelectors, ExtraField, SourceConfig
from crawler.items import RawPost
from crawler.parsing import parse_count
from crawler.spiders.maintext import MAX_HTML_CHARS, extract_main_text

log = logging.getLogger(__name__)

XPATH_PREFIX = "xpath:"
COUNT_FIELDS = ("followers", "reposts", "comments", "likes")

BLOCK_STATUSES = {
    401: "login required",
    403: "forbidden",
    418: "refused as a bot",
    429: "rate limited",
}
"""HTTP statuses that mean the site refuses us (429 only once retries are spent)."""

# Said by captcha, anti-bot and "access denied" pages. Only looked for on a page
# whose selectors matched nothing: a real complaint about an SMS 验证码 is a post.
_BLOCK_MARKERS = re.compile(
    r"验证码|人机验证|安全验证|滑动验证|滑块验证|访问过于频繁|请求过于频繁|访问频率过高|"
    r"访问受限|访问被拒绝|异常访问|异常流量|请登录后|captcha|access denied|are you a robot|"
    r"unusual traffic|verify you are human",
    re.IGNORECASE,
)


# Where sites send a visitor who must log in, and what their login answers say.
_LOGIN_URL = re.compile(
    r"(?i)(?:^|[/._?=-])(?:login|signin|sign_in|logon|passport|sso)(?:$|[/._?=&-])"
)
_LOGIN_TEXT = re.compile(
    r"请先登录|请登录|登录后(?:查看|继续|访问)|未登录|登录已过期|login required|not logged in",
    re.IGNORECASE,
)
_LOGIN_LINK = re.compile(r"https?:\\?/\\?/[^\"\s]*(?:login|signin|passport)", re.IGNORECASE)


# Content types that are never a page to read, whatever the URL says.
_BINARY_TYPE = re.compile(
    r"\s*(image|audio|video|font)/|\s*application/(octet-stream|pdf|zip|gzip|x-rar|x-7z|msword|vnd\.ms-|vnd\.openxml)"
)


def as_html(response: TextResponse) -> TextResponse | Selector:
    """Something to run XPath on: a JSON-typed response's selector refuses XPath."""
    if isinstance(response, HtmlResponse):
        return response
    return Selector(text=response.text or "<html></html>", type="html")


def login_marker(response: Response, *, missed: bool) -> str | None:
    """Why ``response`` looks like a login page (or ``None``).

    A redirect to a login URL always counts. The page's own content (a
    password field, "请先登录", a JSON answer pointing at a sign-in URL) is
    only looked at when ``missed``: the selectors or item path found nothing.
    """
    redirected = response.request is not None and bool(response.meta.get("redirect_urls"))
    parts = urlsplit(response.url)
    if redirected and (
        _LOGIN_URL.search(f"{parts.path}?{parts.query}") or _LOGIN_URL.search(parts.hostname or "")
    ):
        return f"redirected to a login page ({response.url})"
    if not missed or not isinstance(response, TextResponse):
        return None
    head = response.text[:20_000]
    if head.lstrip().startswith(("{", "[")):
        if _LOGIN_TEXT.search(head) or _LOGIN_LINK.search(head):
            return "the API answered that a login is needed"
        return None
    page = as_html(response)
    if page.xpath("//input[@type='password']"):
        return "a login form"
    m = _LOGIN_TEXT.search(" ".join(page.xpath("//title//text()").getall()) + " " + head)
    return f"a login page ({m.group(0)!r})" if m else None


def block_marker(response: Response) -> str | None:
    """The captcha/anti-bot phrase in the page's title or first text, or ``None``."""
    if not isinstance(response, TextResponse):
        return None
    page = as_html(response)
    title = " ".join(page.xpath("//title//text()").getall())
    head = " ".join(
        page.xpath("//body//text()[not(ancestor::script or ancestor::style)]").getall()[:200]
    )
    m = _BLOCK_MARKERS.search(f"{title} {head[:5000]}")
    return m.group(0) if m else None


def extra_value(raw: object, kind: str) -> str | int | None:
    """A ``Post.extra`` value: text with whitespace collapsed, or a count ("12人" → 12)."""
    if raw is None or isinstance(raw, dict | list):
        return None
    if kind == "int":
        return parse_count(raw if isinstance(raw, int) and not isinstance(raw, bool) else str(raw))
    text = " ".join(str(raw).split())
    return text or None


def select(node: Response | Selector, query: str) -> SelectorList[Selector]:
    """Apply a config selector: XPath if it starts with ``xpath:``, CSS otherwise."""
    if query.startswith(XPATH_PREFIX):
        return node.xpath(query[len(XPATH_PREFIX) :].strip())
    return node.css(query)


def node_texts(nodes: SelectorList[Selector]) -> list[str]:
    """The non-empty, stripped text of each selected node (whole text of an element)."""
    out = []
    for node in nodes:
        root = node.root
        value = root if isinstance(root, str) else (node.xpath("string()").get() or "")
        value = value.strip()
        if value:
            out.append(value)
    return out


def node_links(nodes: SelectorList[Selector]) -> list[str]:
    """URLs from selected nodes: attribute/text values as they are, elements by their @href."""
    out = []
    for node in nodes:
        value = node.root if isinstance(node.root, str) else node.attrib.get("href")
        if value and value.strip():
            out.append(value.strip())
    return out


class SourceSpider(Spider):
    """Base of the yuqing spiders; takes the :class:`SourceConfig` as ``source``."""

    def __init__(self, source: SourceConfig | None = None, **kwargs: Any) -> None:
        if not isinstance(source, SourceConfig):
            raise TypeError(
                f"{type(self).__name__} needs source=<core.settings.SourceConfig>, got "
                f"{type(source).__name__}; run it through crawler.runner.run_crawl"
            )
        # The spider is named after the source so logs and stats say which one.
        kwargs.pop("name", None)
        super().__init__(source.name, **kwargs)
        self.source = source
        self.start_urls = list(source.start_urls)
        self._misses: Counter[str] = Counter()
        self.cookie_header: str | None = None
        """The Cookie header from ``source.cookies_env`` (never logged)."""
        self.cookie_hosts = {urlsplit(u).hostname or "" for u in source.start_urls}
        if source.cookies_env:
            self.cookie_header = (os.environ.get(source.cookies_env) or "").strip() or None

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> SourceSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider._summarize_misses, signal=signals.spider_closed)
        return spider

    def cookies_missing(self) -> bool:
        """Say which variable is missing; ``True`` if the source cannot be crawled without it."""
        if not self.source.cookies_env or self.cookie_header:
            return False
        if self.source.login_required:
            self.login_needed(
                self.start_urls[0],
                f"cookies missing: set {self.source.cookies_env} to the site's Cookie header",
            )
            return True
        self._inc("yuqing/login/cookies_missing")
        self.logger.warning(
            "source %s: %s is not set; crawling without cookies (the site may show less "
            "or ask for a login)",
            self.source.name,
            self.source.cookies_env,
        )
        return False

    def login_needed(self, url: str, reason: str) -> None:
        """Record that the site wants a login for ``url`` (the crawl run will not be ok)."""
        self._inc("yuqing/errors/login")
        env = self.source.cookies_env
        if env and self.cookie_header and "cookies missing" not in reason:
            reason += f"; the cookies in {env} were sent: expired? refresh {env}"
        elif env and "cookies missing" not in reason:
            reason += f"; set {env} to the site's Cookie header"
        elif not env:
            reason += "; this source needs cookies: set cookies_env in its config"
        assert self.crawler.stats is not None
        if not self.crawler.stats.get_value("yuqing/login"):
            self.crawler.stats.set_value("yuqing/login", f"{url}: {reason}")
        self.logger.error("source %s: login needed on %s: %s", self.source.name, url, reason)

    def check_login(self, response: Response, *, missed: bool) -> bool:
        """Is ``response`` a login page (see :func:`login_marker`)? Records it if so."""
        marker = login_marker(response, missed=missed)
        if marker is None:
            return False
        self.login_needed(response.url, marker)
        return True

    async def start(self) -> Any:
        if self.cookies_missing():
            return
        for url in self.start_urls:
            yield Request(
                url,
                callback=self.parse,
                errback=self.request_failed,
                dont_filter=True,
                meta={"yuqing_start": True, "yuqing_page": 1},
            )

    # -- selectors -------------------------------------------------------------

    def _inc(self, key: str, count: int = 1) -> None:
        assert self.crawler.stats is not None
        self.crawler.stats.inc_value(key, count)

    def missed(self, field: str, query: str, url: str) -> None:
        """Record that ``query`` (for ``field``) matched nothing on ``url``."""
        self._inc(f"yuqing/selector_miss/{field}")
        self._misses[field] += 1
        if self._misses[field] == 1:
            self.logger.warning(
                "source %s: selector for %s %r matched nothing on %s "
                "(further misses are counted in yuqing/selector_miss/%s)",
                self.source.name,
                field,
                query,
                url,
                field,
            )

    def _summarize_misses(self, spider: Spider) -> None:
        if spider is not self or not self._misses:
            return
        summary = ", ".join(f"{f}: {n}" for f, n in sorted(self._misses.items()))
        self.logger.warning(
            "source %s: selectors that matched nothing: %s", self.source.name, summary
        )

    def blocked(self, url: str, reason: str) -> None:
        """Record that the site refused ``url`` (the crawl run will not be ok)."""
        self._inc("yuqing/errors/blocked")
        assert self.crawler.stats is not None
        if not self.crawler.stats.get_value("yuqing/blocked"):
            self.crawler.stats.set_value("yuqing/blocked", f"{url}: {reason}")
        self.logger.error("source %s: blocked on %s: %s", self.source.name, url, reason)

    def check_blocked(self, response: Response) -> bool:
        """After a selector miss: is ``response`` a captcha/anti-bot page? Records it if so."""
        marker = block_marker(response)
        if marker is None:
            return False
        self.blocked(response.url, f"captcha or anti-bot page ({marker!r})")
        return True

    def is_text(self, response: Response) -> bool:
        """Whether ``response`` is a text page; a binary one is counted and logged.

        Scrapy picks the response class from the URL when the Content-Type has
        no text class of its own, so an ``image/png`` answer on a ``.html`` URL
        arrives as an ``HtmlResponse``: a declared binary type is checked too.
        """
        ctype = (response.headers.get("Content-Type") or b"").decode("latin-1").lower()
        if isinstance(response, TextResponse) and not _BINARY_TYPE.match(ctype):
            return True
        self._inc("yuqing/errors/not_text")
        self.logger.warning(
            "source %s: %s is not a text page (Content-Type %r, %d bytes); skipped",
            self.source.name,
            response.url,
            (response.headers.get("Content-Type") or b"").decode("latin-1"),
            len(response.body),
        )
        return False

    def first_text(self, response: Response, field: str, query: str | None) -> str | None:
        """The first text that ``query`` selects, or ``None`` (a miss is recorded)."""
        if not query:
            return None
        texts = node_texts(select(response, query))
        if not texts:
            self.missed(field, query, response.url)
            return None
        return texts[0]

    def extract_detail(self, response: Response, detail: DetailSelectors) -> RawPost:
        """A :class:`RawPost` from a detail page using the configured selectors.

        With ``main_text: auto`` the text (and, where no selector is given, the
        title, author and time) comes from :func:`extract_main_text`.
        """
        if detail.main_text == "auto":
            return self._extract_auto(response, detail)
        assert detail.text is not None  # the config requires it unless main_text: auto
        texts = node_texts(select(response, detail.text))
        if not texts:
            self.missed("text", detail.text, response.url)
            if not self.check_login(response, missed=True):
                self.check_blocked(response)
        item = RawPost(
            url=response.url,
            source=self.source.name,
            platform=str(self.source.platform),
            title=self.first_text(response, "title", detail.title) or "",
            text="\n".join(texts),
            author=self.first_text(response, "author", detail.author),
            published_at=self.first_text(response, "published_at", detail.published_at),
            extra=self.extract_extra(response, detail.extra),
        )
        for name in COUNT_FIELDS:
            setattr(item, name, self.first_text(response, name, getattr(detail, name)))
        return item

    def _extract_auto(self, response: Response, detail: DetailSelectors) -> RawPost:
        assert isinstance(response, TextResponse)
        if len(response.text) > MAX_HTML_CHARS:
            self._inc("yuqing/main_text/truncated")
        main = extract_main_text(response.text, response.url)
        if main is None:
            self.missed("text", "main_text: auto", response.url)
            if not self.check_login(response, missed=True):
                self.check_blocked(response)
        self._inc("yuqing/main_text/" + ("extracted" if main else "none"))
        item = RawPost(
            url=response.url,
            source=self.source.name,
            platform=str(self.source.platform),
            # Configured selectors win; a miss falls back to the page's metadata.
            title=self.first_text(response, "title", detail.title) or (main.title if main else ""),
            text=main.text if main else "",
            author=self.first_text(response, "author", detail.author)
            or (main.author if main else None),
            published_at=self.first_text(response, "published_at", detail.published_at)
            or (main.published_at if main else None),
            extra=self.extract_extra(response, detail.extra),
        )
        for name in COUNT_FIELDS:
            setattr(item, name, self.first_text(response, name, getattr(detail, name)))
        return item

    def extract_extra(
        self, node: Response | Selector, extra: dict[str, str | ExtraField], url: str = ""
    ) -> dict[str, str | int]:
        """``Post.extra`` values by the configured selectors (a miss is recorded, not stored)."""
        out: dict[str, str | int] = {}
        for key, spec in extra.items():
            query, kind = (spec, "str") if isinstance(spec, str) else (spec.query, spec.type)
            optional = not isinstance(spec, str) and spec.optional
            texts = node_texts(select(node, query))
            if not texts:
                if not optional:
                    self.missed(f"extra.{key}", query, url or getattr(node, "url", ""))
                continue
            value = extra_value(texts[0], kind)
            if value is not None:
                out[key] = value
        return out

    # -- failures ----------------------------------------------------------------

    def request_failed(self, failure: Failure) -> None:
        """Count and log a request that failed for good (after retries)."""
        request = failure.request  # type: ignore[attr-defined]
        is_start = bool(request.meta.get("yuqing_start"))
        error = failure.value
        if isinstance(error, HttpError):  # checked first: HttpError is an IgnoreRequest
            status = error.response.status
            self._inc(f"yuqing/errors/http_{status}")
            reason = f"HTTP {status}"
            if status in BLOCK_STATUSES:
                reason = f"HTTP {status} ({BLOCK_STATUSES[status]})"
                self.blocked(request.url, reason)
        elif isinstance(error, IgnoreRequest):
            # RobotsTxtMiddleware (or another policy) refused it: not an outage.
            self._inc("yuqing/ignored")
            reason = f"not fetched: {error or 'ignored by a downloader policy'}"
        elif isinstance(error, DownloadCancelledError) and "max size" in str(error):
            self._inc("yuqing/errors/too_large")
            reason = f"larger than DOWNLOAD_MAXSIZE: {error}"
        else:
            self._inc("yuqing/errors/request")
            reason = f"{type(error).__name__}: {error}"
        if is_start:
            self._inc("yuqing/errors/start")
            assert self.crawler.stats is not None
            self.crawler.stats.set_value("yuqing/start_error", f"{request.url}: {reason}")
            self.logger.error(
                "source %s: start URL %s failed: %s", self.source.name, request.url, reason
            )
        else:
            self.logger.warning("source %s: %s failed: %s", self.source.name, request.url, reason)
