"""The spiders' extraction on saved pages (tests/fixtures/pages) with the demo selectors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from scrapy import Request
from scrapy.http import HtmlResponse, TextResponse, XmlResponse
from scrapy.utils.test import get_crawler

from core.settings import SourceConfig, load_settings
from crawler.items import RawPost
from crawler.spiders.rss import RssSpider, html_to_text
from crawler.spiders.site import SiteSpider

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "tests" / "fixtures" / "pages"
BASE = "http://demo.example"
SOURCES = {s.name: s for s in load_settings(ROOT / "config" / "demo.yaml").sources}


def spider(cls: type[Any], source: SourceConfig) -> Any:
    return cls.from_crawler(get_crawler(cls), source=source)


def response(name: str, url: str, cls: type[TextResponse] = HtmlResponse, **meta: Any) -> Any:
    body = (PAGES / name).read_bytes()
    return cls(url=url, body=body, encoding="utf-8", request=Request(url, meta=meta))


def stats(s: Any) -> dict[str, Any]:
    return s.crawler.stats.get_stats()


# -- list → detail ------------------------------------------------------------------------


def test_a_list_page_yields_its_threads_then_the_next_page() -> None:
    forum = spider(SiteSpider, SOURCES["demo_forum"])
    out = list(forum.parse(response("forum_list_page1.html", f"{BASE}/forum/", yuqing_page=1)))
    details = [r for r in out if r.callback == forum.parse_detail]
    pages = [r for r in out if r.callback == forum.parse]
    assert [r.url for r in details][:2] == [
        f"{BASE}/forum/thread/100007.html",
        f"{BASE}/forum/thread/100006.html",
    ]
    assert len(details) == 4  # page_size of the small scenario; sidebar links are not items
    assert [(r.url, r.meta["yuqing_page"]) for r in pages] == [(f"{BASE}/forum/?page=2", 2)]
    assert all(r.errback == forum.request_failed for r in out)


def test_the_last_list_page_and_max_pages_end_the_listing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    forum = spider(SiteSpider, SOURCES["demo_forum"])
    last = response("forum_list_page2.html", f"{BASE}/forum/?page=2", yuqing_page=2)
    assert all(r.callback == forum.parse_detail for r in forum.parse(last))
    capped = SOURCES["demo_forum"].model_copy(update={"max_pages": 1})
    one_page = spider(SiteSpider, capped)
    first = response("forum_list_page1.html", f"{BASE}/forum/", yuqing_page=1)
    assert all(r.callback == one_page.parse_detail for r in one_page.parse(first))
    assert stats(one_page)["yuqing/list_max_pages_reached"] == 1
    assert "stopping at max_pages=1" in caplog.text


def test_a_forum_thread_gives_the_first_post_only() -> None:
    forum = spider(SiteSpider, SOURCES["demo_forum"])
    (item,) = forum.parse_detail(response("forum_thread.html", f"{BASE}/forum/thread/100001.html"))
    assert isinstance(item, RawPost)
    assert item.title == "澜海银行滨江支行的服务不错"
    assert (
        item.text == "今天去澜海银行滨江支行办业务，大堂经理很耐心。\n加微信 abc123 领红包\n点赞。"
    )
    assert item.author == "大V理财师"
    assert item.published_at == "发表于 2026-11-23 06:40"
    assert (item.followers, item.reposts, item.comments, item.likes) == (
        "粉丝 1.2万",
        "3",
        "2",
        "5",
    )
    assert (item.source, item.platform) == ("demo_forum", "forum")
    assert not stats(forum).get("yuqing/selector_miss/text")


def test_xpath_selectors_read_the_complaint_header() -> None:
    complaints = spider(SiteSpider, SOURCES["demo_complaints"])
    page = response("complaint_detail.html", f"{BASE}/complaints/17000002.html")
    (item,) = complaints.parse_detail(page)
    assert item.text.splitlines()[:2] == ["投诉对象：澜海银行滨江支行", "投诉问题：理财亏损"]
    assert "投诉编号" not in item.text and "集体投诉人数" not in item.text
    assert item.reposts == "12"  # 集体投诉人数
    assert item.author == "投诉人甲"
    assert item.published_at == "发布时间：2026-11-23 08:40:00"


def test_a_selector_that_matches_nothing_warns_once_and_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = SOURCES["demo_forum"].model_copy(
        update={
            "detail": SOURCES["demo_forum"].detail.model_copy(  # type: ignore[union-attr]
                update={"text": "div.article-body p", "likes": "xpath://em[@id='likes']"}
            )
        }
    )
    forum = spider(SiteSpider, broken)
    page = response("forum_thread.html", f"{BASE}/forum/thread/100001.html")
    for _ in range(3):
        (item,) = forum.parse_detail(page)
        assert item.text == "" and item.likes is None
    assert stats(forum)["yuqing/selector_miss/text"] == 3
    assert stats(forum)["yuqing/selector_miss/likes"] == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2  # one per field, not one per page
    assert (
        "source demo_forum: selector for text 'div.article-body p' matched nothing" in warnings[0]
    )


def test_a_list_page_without_item_links_is_an_error() -> None:
    forum = spider(SiteSpider, SOURCES["demo_forum"])
    page = response("news_article.html", f"{BASE}/forum/", yuqing_page=1)
    assert list(forum.parse(page)) == []
    assert stats(forum)["yuqing/errors/empty_listing"] == 1
    assert stats(forum)["yuqing/selector_miss/listing.item_links"] == 1


# -- feeds ---------------------------------------------------------------------------------


def test_an_rss_feed_without_detail_selectors_yields_its_entries() -> None:
    source = SOURCES["demo_news"].model_copy(update={"detail": None})
    news = spider(RssSpider, source)
    items = list(news.parse(response("news_rss.xml", f"{BASE}/news/rss.xml", XmlResponse)))
    assert all(isinstance(i, RawPost) for i in items)
    first = next(i for i in items if i.title == "澜海稳盈3号跌破净值")
    assert first.url == f"{BASE}/news/50001.html"
    assert first.published_at == "Mon, 23 Nov 2026 08:30:00 +0800"
    assert first.text == "澜海银行发行的澜海稳盈3号净值跌破1元，投资者集体维权。"
    assert first.author == "记者 乙"


def test_an_rss_source_with_detail_selectors_reads_the_article() -> None:
    news = spider(RssSpider, SOURCES["demo_news"])
    requests = list(news.parse(response("news_rss.xml", f"{BASE}/news/rss.xml", XmlResponse)))
    request = next(r for r in requests if r.url == f"{BASE}/news/50001.html")
    page = response("news_article.html", request.url)
    (item,) = news.parse_article(page, **request.cb_kwargs)
    assert item.text == (
        "澜海银行发行的澜海稳盈3号净值跌破1元，投资者集体维权。\n澜海银行表示正在核实情况。\n"
        "扫码关注江南财经网公众号，获取更多财经资讯。\n免责声明：本文仅代表作者个人观点，不构成任何投资建议。"
    )  # boilerplate lines go in the clean stage, not here
    assert item.published_at == "Mon, 23 Nov 2026 08:30:00 +0800"  # the feed's exact time wins
    assert (item.author, item.likes) == ("记者 乙", "30")


def test_a_failed_article_keeps_the_feed_entry() -> None:
    from scrapy.spidermiddlewares.httperror import HttpError
    from twisted.python.failure import Failure

    news = spider(RssSpider, SOURCES["demo_news"])
    requests = list(news.parse(response("news_rss.xml", f"{BASE}/news/rss.xml", XmlResponse)))
    request = requests[0]
    gone = HtmlResponse(url=request.url, status=404, body=b"", request=request)
    failure = Failure(HttpError(gone, "Ignoring non-200 response"))
    failure.request = request  # type: ignore[attr-defined]
    (item,) = news.article_failed(failure)
    assert item is request.cb_kwargs["base"] and item.text
    assert stats(news)["yuqing/errors/http_404"] == 1
    assert stats(news)["yuqing/feed_summary_only"] == 1


def test_an_atom_feed_is_read_and_entries_without_links_are_counted() -> None:
    source = SourceConfig(
        name="atom_news", kind="rss", platform="news", start_urls=["https://news.example/atom.xml"]
    )
    feed = spider(RssSpider, source)
    items = list(feed.parse(response("atom.xml", "https://news.example/atom.xml", XmlResponse)))
    (item,) = items
    assert item.url == "https://news.example/finance/2026/1123/lanhai.html"
    assert item.published_at == "2026-11-23T14:05:00+08:00"
    assert item.text == "澜海银行表示，澜海稳盈3号净值波动系债券市场调整所致。\n存款安全。"
    assert item.author == "钱江记者"
    assert stats(feed)["yuqing/selector_miss/feed.link"] == 1


def test_a_page_that_is_not_a_feed_is_an_error() -> None:
    news = spider(RssSpider, SOURCES["demo_news"])
    assert list(news.parse(response("news_article.html", f"{BASE}/news/rss.xml"))) == []
    assert stats(news)["yuqing/errors/feed"] == 1


def test_feed_summaries_become_plain_text() -> None:
    assert html_to_text("<p>第一段&amp;</p><p>第二段<br/>第三行</p>") == "第一段&\n第二段\n第三行"


def test_a_spider_needs_a_source_config() -> None:
    with pytest.raises(TypeError, match=r"source=<core\.settings\.SourceConfig>"):
        SiteSpider(source="demo_forum")  # type: ignore[arg-type]
