"""Bad input through the spiders and the validate stage: each case a test.

Responses are Scrapy response objects built from bytes, as the downloader
would hand them over; the spiders use the demo sources of config/demo.yaml.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from scrapy import Request
from scrapy.exceptions import DownloadCancelledError, DropItem
from scrapy.http import HtmlResponse, Response, XmlResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.test import get_crawler
from twisted.python.failure import Failure

from core.settings import SourceConfig, load_settings
from crawler.items import RawPost
from crawler.middlewares import CharsetMiddleware
from crawler.pipelines import ValidatePipeline
from crawler.runner import crawl_run_from_stats
from crawler.spiders.rss import RssSpider
from crawler.spiders.site import SiteSpider

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "tests" / "fixtures" / "pages"
SOURCES = {s.name: s for s in load_settings(ROOT / "config" / "demo.yaml").sources}
BASE = "http://demo.example"
THREAD = f"{BASE}/forum/thread/100001.html"
NOW = datetime(2026, 11, 23, 6, 30, tzinfo=UTC)

CAPTCHA_PAGE = """<html><head><title>安全验证</title></head><body>
<div class="verify"><p>访问过于频繁，请输入验证码后继续访问。</p>
<img src="/captcha.png"><input name="captcha"></div></body></html>"""


def spider(cls: type[Any], source: SourceConfig) -> Any:
    return cls.from_crawler(get_crawler(cls), source=source)


def html(url: str, body: bytes | str, **meta: Any) -> HtmlResponse:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return HtmlResponse(url, body=data, encoding="utf-8", request=Request(url, meta=meta))


def stats(s: Any) -> dict[str, Any]:
    return dict(s.crawler.stats.get_stats())


def validate(item: RawPost) -> RawPost:
    crawler = get_crawler()
    assert crawler.stats is not None
    return ValidatePipeline(crawler.stats, ZoneInfo("Asia/Shanghai"), now=lambda: NOW).process_item(
        item
    )


def run_of(source: SourceConfig, spider_stats: dict[str, Any]) -> Any:
    return crawl_run_from_stats(
        source, {"finish_reason": "finished", **spider_stats}, started=NOW, finished=NOW
    )


def failure_for(request: Request, error: Exception) -> Failure:
    failure = Failure(error)
    failure.request = request  # type: ignore[attr-defined]
    return failure


# -- malformed, empty, binary, huge ------------------------------------------------------


def test_malformed_html_is_read_as_far_as_it_goes() -> None:
    forum = spider(SiteSpider, SOURCES["demo_forum"])
    page = (
        '<html><body><h1 class="thread-title">澜海银行滨江支行<b>排队</h1>'
        '<div class="post first"><a class="author-name">网友<div class="post-content">'
        "<p>澜海银行滨江支行排队<p>两小时 &nbsp &lt没有结束标签"
    )
    (item,) = forum.parse_detail(html(THREAD, page))
    assert item.title == "澜海银行滨江支行"
    assert item.text.startswith("澜海银行滨江支行排队\n两小时")
    assert item.author == "网友"


def test_an_empty_page_counts_selector_misses_and_is_dropped_as_empty_text() -> None:
    forum = spider(SiteSpider, SOURCES["demo_forum"])
    (item,) = forum.parse_detail(html(THREAD, b""))
    assert item.text == "" and item.title == ""
    assert stats(forum)["yuqing/selector_miss/text"] == 1
    assert "yuqing/errors/blocked" not in stats(forum)
    with pytest.raises(DropItem, match="empty text"):
        validate(item)


def test_an_empty_list_page_is_an_error_not_an_empty_site() -> None:
    forum = spider(SiteSpider, SOURCES["demo_forum"])
    assert list(forum.parse(html(f"{BASE}/forum/", b"", yuqing_page=1))) == []
    run = run_of(SOURCES["demo_forum"], {"response_received_count": 1, **stats(forum)})
    assert not run.ok and "no item links" in run.message


def test_a_binary_response_on_a_detail_url_is_skipped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    forum = spider(SiteSpider, SOURCES["demo_forum"])
    png = Response(
        THREAD,
        body=b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        headers={"Content-Type": "image/png"},
        request=Request(THREAD),
    )
    middleware = CharsetMiddleware.from_crawler(forum.crawler)
    assert list(forum.parse_detail(middleware.process_response(Request(THREAD), png))) == []
    assert list(forum.parse(png)) == []
    assert stats(forum)["yuqing/errors/not_text"] == 2
    assert "is not a text page (Content-Type 'image/png'" in caplog.text


def test_a_10_mb_page_is_extracted_without_blowing_up() -> None:
    forum = spider(SiteSpider, SOURCES["demo_forum"])
    middleware = CharsetMiddleware.from_crawler(forum.crawler)
    head = (PAGES / "forum_thread.html").read_bytes()
    filler = b"<p class='ad'>" + "广告位招租，联系客服。".encode() * 50 + b"</p>\n"
    body = head.replace(b"</body>", filler * (10 * 1024 * 1024 // len(filler)) + b"</body>")
    assert len(body) >= 10 * 1024 * 1024
    start = time.perf_counter()
    response = middleware.process_response(Request(THREAD), html(THREAD, body))
    (item,) = forum.parse_detail(response)
    assert time.perf_counter() - start < 30
    assert item.title == "澜海银行滨江支行的服务不错"
    assert item.text.startswith("今天去澜海银行滨江支行办业务")


def test_a_page_over_the_size_cap_is_counted_and_makes_the_run_not_ok() -> None:
    forum = spider(SiteSpider, SOURCES["demo_forum"])
    request = Request(THREAD)
    error = DownloadCancelledError(
        f"Expected to receive 40000000 bytes which is larger than download max size "
        f"(16777216) in request {request}."
    )
    forum.request_failed(failure_for(request, error))
    assert stats(forum)["yuqing/errors/too_large"] == 1
    run = run_of(SOURCES["demo_forum"], {"response_received_count": 2, **stats(forum)})
    assert not run.ok and "over DOWNLOAD_MAXSIZE" in run.message


def test_the_size_caps_are_set() -> None:
    from crawler import settings

    assert settings.DOWNLOAD_WARNSIZE < 10 * 1024 * 1024 < settings.DOWNLOAD_MAXSIZE


# -- feeds ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"   \n", b"\x00\x01\x02 not xml", b'{"items": [}'])
def test_invalid_or_empty_feeds_are_errors(body: bytes) -> None:
    news = spider(RssSpider, SOURCES["demo_news"])
    url = f"{BASE}/news/rss.xml"
    assert list(news.parse(XmlResponse(url, body=body, request=Request(url)))) == []
    assert stats(news)["yuqing/errors/feed"] == 1
    run = run_of(SOURCES["demo_news"], {"response_received_count": 1, **stats(news)})
    assert not run.ok and "feed could not be parsed" in run.message


def test_a_truncated_feed_gives_its_readable_entries_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = SOURCES["demo_news"].model_copy(update={"detail": None})
    news = spider(RssSpider, source)
    body = (PAGES / "news_rss.xml").read_bytes()
    url = f"{BASE}/news/rss.xml"
    items = list(news.parse(XmlResponse(url, body=body[: len(body) // 2], request=Request(url))))
    assert items and all(isinstance(i, RawPost) and i.title for i in items)
    assert stats(news)["yuqing/feed_malformed"] == 1
    assert "is not well-formed" in caplog.text


# -- unexpected layout ------------------------------------------------------------------------


def test_a_redesigned_page_warns_per_source_and_is_not_a_block(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    forum = spider(SiteSpider, SOURCES["demo_forum"])
    redesigned = (
        "<html><body><section class='new-layout'><p>澜海银行新版页面</p></section></body></html>"
    )
    (item,) = forum.parse_detail(html(THREAD, redesigned))
    assert item.text == ""
    assert "source demo_forum: selector for text" in caplog.text
    assert "yuqing/errors/blocked" not in stats(forum)


# -- blocks are never "no posts" -----------------------------------------------------------


@pytest.mark.parametrize(("status", "words"), [(403, "forbidden"), (418, "refused as a bot")])
def test_http_403_and_418_are_blocks(status: int, words: str) -> None:
    forum = spider(SiteSpider, SOURCES["demo_forum"])
    for url, meta in ((f"{BASE}/forum/", {"yuqing_start": True}), (THREAD, {})):
        request = Request(url, meta=meta)
        refused = HtmlResponse(url, status=status, body=b"", request=request)
        forum.request_failed(failure_for(request, HttpError(refused, "Ignoring non-200 response")))
    got = stats(forum)
    assert got["yuqing/errors/blocked"] == 2
    assert got["yuqing/blocked"] == f"{BASE}/forum/: HTTP {status} ({words})"
    run = run_of(SOURCES["demo_forum"], {"response_received_count": 2, **got})
    assert not run.ok
    assert run.message.startswith(f"blocked by the site on 2 pages ({BASE}/forum/: HTTP {status}")


def test_a_blocked_detail_page_alone_makes_the_run_not_ok() -> None:
    forum = spider(SiteSpider, SOURCES["demo_forum"])
    request = Request(THREAD)
    refused = HtmlResponse(THREAD, status=403, body=b"", request=request)
    forum.request_failed(failure_for(request, HttpError(refused, "Ignoring non-200 response")))
    run = run_of(SOURCES["demo_forum"], {"response_received_count": 5, **stats(forum)})
    assert not run.ok and "blocked" in run.message


def test_a_captcha_list_page_is_a_block_not_an_empty_listing() -> None:
    forum = spider(SiteSpider, SOURCES["demo_forum"])
    assert list(forum.parse(html(f"{BASE}/forum/", CAPTCHA_PAGE, yuqing_page=1))) == []
    got = stats(forum)
    assert got["yuqing/errors/blocked"] == 1 and "yuqing/errors/empty_listing" not in got
    assert "captcha or anti-bot page" in got["yuqing/blocked"]
    run = run_of(SOURCES["demo_forum"], {"response_received_count": 1, **got})
    assert not run.ok and "blocked by the site" in run.message


def test_a_captcha_detail_page_and_a_captcha_feed_are_blocks() -> None:
    forum = spider(SiteSpider, SOURCES["demo_forum"])
    (item,) = forum.parse_detail(html(THREAD, CAPTCHA_PAGE))
    assert item.text == "" and stats(forum)["yuqing/errors/blocked"] == 1
    news = spider(RssSpider, SOURCES["demo_news"])
    url = f"{BASE}/news/rss.xml"
    assert list(news.parse(html(url, CAPTCHA_PAGE))) == []
    assert stats(news)["yuqing/errors/blocked"] == 1


def test_a_post_that_talks_about_verification_codes_is_not_a_block() -> None:
    forum = spider(SiteSpider, SOURCES["demo_forum"])
    page = (PAGES / "forum_thread.html").read_text(encoding="utf-8")
    page = page.replace("大堂经理很耐心。", "手机一直收不到验证码，大堂经理很耐心。")
    (item,) = forum.parse_detail(html(THREAD, page))
    assert "收不到验证码" in item.text
    assert "yuqing/errors/blocked" not in stats(forum)
