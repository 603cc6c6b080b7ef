"""GBK/GB18030 and Big5 pages, declared, undeclared and wrongly declared, through the spiders.

Fixtures (tests/fixtures/pages/thread_{gbk,big5}[_undeclared].html) are small
forum threads about the fictional 澜海银行, encoded with Python's codecs; the
"_undeclared" ones have no ``<meta charset>``. Each page goes through
``CharsetMiddleware`` as Scrapy would pass it, then ``SiteSpider.parse_detail``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scrapy import Request
from scrapy.http import HtmlResponse
from scrapy.utils.test import get_crawler

from core.settings import load_settings
from crawler.items import RawPost
from crawler.middlewares import CharsetMiddleware, corrected_encoding
from crawler.spiders.site import SiteSpider

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "tests" / "fixtures" / "pages"
URL = "http://demo.example/forum/thread/9.html"
FORUM = next(
    s for s in load_settings(ROOT / "config" / "demo.yaml").sources if s.name == "demo_forum"
)

GBK_TITLE = "澜海银行滨江支行排队两小时"
GBK_TEXT = (
    "今天去澜海银行滨江支行办理存款业务，排队足足两个小时。\n"
    "大堂经理说系统升级，柜台只开了一个窗口，希望银行尽快改进服务。"
)
BIG5_TITLE = "瀾海銀行台北分行服務體驗"  # traditional characters are kept as written
BIG5_TEXT = (
    "上週到瀾海銀行台北分行辦理定存，櫃檯人員態度親切。\n"
    "不過網路銀行登入常常失敗，希望儘快修復這個問題。"
)


def through_spider(page: str, content_type: str | None) -> tuple[RawPost, dict[str, Any]]:
    crawler = get_crawler(SiteSpider)
    spider = SiteSpider.from_crawler(crawler, source=FORUM)
    middleware = CharsetMiddleware.from_crawler(crawler)
    headers = {"Content-Type": content_type} if content_type else {}
    request = Request(URL)
    raw = HtmlResponse(URL, body=(PAGES / page).read_bytes(), headers=headers, request=request)
    fixed = middleware.process_response(request, raw)
    (item,) = spider.parse_detail(fixed)
    assert crawler.stats is not None
    return item, crawler.stats.get_stats()


@pytest.mark.parametrize(
    ("page", "content_type", "title", "text"),
    [
        ("thread_gbk.html", None, GBK_TITLE, GBK_TEXT),  # <meta ... charset=gbk>
        ("thread_gbk.html", "text/html; charset=GBK", GBK_TITLE, GBK_TEXT),
        ("thread_gbk.html", "text/html; charset=gb2312", GBK_TITLE, GBK_TEXT),
        ("thread_gbk_undeclared.html", None, GBK_TITLE, GBK_TEXT),
        ("thread_gbk_undeclared.html", "text/html", GBK_TITLE, GBK_TEXT),
        ("thread_big5.html", None, BIG5_TITLE, BIG5_TEXT),  # <meta charset="big5">
        ("thread_big5.html", "text/html; charset=big5", BIG5_TITLE, BIG5_TEXT),
        ("thread_big5_undeclared.html", None, BIG5_TITLE, BIG5_TEXT),
        ("thread_big5_undeclared.html", "text/html", BIG5_TITLE, BIG5_TEXT),
    ],
)
def test_declared_and_undeclared_chinese_encodings_are_read(
    page: str, content_type: str | None, title: str, text: str
) -> None:
    item, stats = through_spider(page, content_type)
    assert (item.title, item.text) == (title, text)
    assert not any(k.startswith("yuqing/encoding/") for k in stats)


@pytest.mark.parametrize(
    ("page", "content_type", "title", "corrected"),
    [
        ("thread_gbk.html", "text/html; charset=utf-8", GBK_TITLE, "utf_8_to_gb18030"),
        (
            "thread_gbk_undeclared.html",
            "text/html; charset=big5",
            GBK_TITLE,
            "big5hkscs_to_gb18030",
        ),
        ("thread_big5.html", "text/html; charset=gbk", BIG5_TITLE, "gb18030_to_big5hkscs"),
        (
            "thread_big5_undeclared.html",
            "text/html; charset=utf-8",
            BIG5_TITLE,
            "utf_8_to_big5hkscs",
        ),
    ],
)
def test_a_wrong_declared_charset_is_corrected_and_counted(
    page: str, content_type: str, title: str, corrected: str, caplog: pytest.LogCaptureFixture
) -> None:
    item, stats = through_spider(page, content_type)
    assert item.title == title
    assert item.author in ("滨江老客户", "台北理財達人")
    assert stats[f"yuqing/encoding/corrected/{corrected}"] == 1
    assert "declares charset" in caplog.text


def test_utf8_pages_and_utf8_with_a_few_broken_bytes_are_left_alone() -> None:
    page = (PAGES / "forum_thread.html").read_bytes()
    assert corrected_encoding(page, "utf-8") is None
    damaged = page[:2000] + b"\xff\xfe" + page[2000:]
    assert corrected_encoding(damaged, "utf-8") is None
    assert corrected_encoding(b"<html>ascii only</html>", "gbk") is None


def test_non_html_responses_pass_unchanged() -> None:
    crawler = get_crawler(SiteSpider)
    middleware = CharsetMiddleware.from_crawler(crawler)
    from scrapy.http import Response

    png = Response(URL, body=b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    assert middleware.process_response(Request(URL), png) is png
