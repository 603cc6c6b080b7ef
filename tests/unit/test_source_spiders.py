"""Pure logic of the platform sources: config checks, paging, login pages, main text, extras.

The crawls themselves run over real HTTP in tests/integration/test_crawl_sources.py;
these tests pin the pieces with saved pages and hand-built responses.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from scrapy import Request
from scrapy.http import HtmlResponse, TextResponse
from scrapy.utils.test import get_crawler

from core.errors import ConfigError
from core.models import Post
from core.settings import SourceConfig, load_settings
from crawler.items import RawPost
from crawler.middlewares import SourceCookiesMiddleware
from crawler.parsing import parse_published
from crawler.spiders.base import extra_value, login_marker
from crawler.spiders.jsonapi import JsonApiSpider, place_exists
from crawler.spiders.maintext import extract_main_text
from crawler.spiders.site import SiteSpider
from nlp.segment import tokenize
from storage.elastic import build_document
from storage.local import LocalPostStore

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "pages" / "sources"
API = "http://api.example/search?q=澜海银行"


def source(**api: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "items": "data.cards[*].mblog",
        "url_template": "https://m.weibo.cn/detail/{id}",
        "fields": {"id": "id", "text": "text"},
    }
    body.update(api)
    return {"name": "weibo_search", "kind": "json_api", "start_urls": [API], "api": body}


def load(tmp_path: Path, *sources: dict[str, Any]) -> Any:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"sources": list(sources)}, allow_unicode=True), "utf-8")
    return load_settings(path)


# -- config checks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "words"),
    [
        ({"items": "data.cards[*.mblog"}, "api.items: bad JSONPath 'data.cards[*.mblog'"),
        (
            {"fields": {"id": "id", "text": "text", "author": "user..[screen"}},
            "api.fields.author: bad JSONPath",
        ),
        ({"extra": {"rating": {"query": "'im:rating.label"}}}, "api.extra.rating: bad JSONPath"),
        ({"url_template": "https://m.weibo.cn/{bid}"}, "api.url_template uses ['bid']"),
        ({"url_template": None}, "fields.url or url_template"),
        ({"pagination": {"start": 1}}, "needs 'param' or {page}"),
        ({"pagination": {"cursor": "data.next"}}, "needs 'param' or {cursor}"),
    ],
)
def test_a_bad_json_api_config_names_the_source_and_the_key(
    tmp_path: Path, api: dict[str, Any], words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, source(**api))
    message = str(err.value)
    assert "source 'weibo_search'" in message and words in message, message


def test_section_and_selector_rules(tmp_path: Path) -> None:
    rss = {"name": "feed", "kind": "rss", "start_urls": ["http://a.example/rss"]}
    with pytest.raises(ConfigError, match="'api' is for json_api sources"):
        load(tmp_path, {**rss, "api": source()["api"]})
    with pytest.raises(ConfigError, match="a json_api source needs an 'api' section"):
        load(tmp_path, {**rss, "kind": "json_api"})
    with pytest.raises(ConfigError, match="login_required needs cookies_env"):
        load(tmp_path, {**rss, "login_required": True})
    with pytest.raises(ConfigError, match="cookies_env"):
        load(tmp_path, {**rss, "cookies_env": "lower-case"})
    html = {
        "name": "site",
        "kind": "html",
        "start_urls": ["http://a.example/"],
        "listing": {"item_links": "a::attr(href)"},
    }
    with pytest.raises(ConfigError, match="either a 'text' selector or 'main_text: auto'"):
        load(tmp_path, {**html, "detail": {"title": "h1", "text": "p", "main_text": "auto"}})
    with pytest.raises(ConfigError, match="'text' and 'title' selectors are needed"):
        load(tmp_path, {**html, "detail": {"text": "p", "main_text": "selectors"}})
    with pytest.raises(ConfigError, match="lower_snake_case"):
        load(tmp_path, {**html, "detail": {"main_text": "auto", "extra": {"Status": "b"}}})
    settings = load(tmp_path, {**html, "detail": {}})  # no text selector: main text is auto
    assert settings.sources[0].detail.main_text == "auto"


def test_the_example_config_sources_load() -> None:
    root = Path(__file__).resolve().parents[2]
    data = yaml.safe_load((root / "config" / "yuqing.example.yaml").read_text("utf-8"))
    kinds = {SourceConfig.model_validate(s).kind for s in data["sources"]}
    assert {"rss", "html", "json_api"} <= kinds


# -- JSON API paging and items ----------------------------------------------------------------


def spider(start_url: str = API, **api: Any) -> JsonApiSpider:
    config = SourceConfig.model_validate({**source(**api), "start_urls": [start_url]})
    return JsonApiSpider.from_crawler(get_crawler(JsonApiSpider), source=config)  # type: ignore[return-value]


def json_response(url: str, data: Any, **meta: Any) -> TextResponse:
    body = json.dumps(data, ensure_ascii=False).encode()
    return TextResponse(url=url, body=body, encoding="utf-8", request=Request(url, meta=meta))


def test_page_numbers_go_into_a_parameter_or_the_url() -> None:
    paged = spider(pagination={"param": "page", "start": 0, "step": 20})
    assert paged.page_url(API, 1, None).endswith("page=0")
    assert paged.page_url(API, 3, None).endswith("page=40")
    template = "http://a.example/reviews/page={page}/json"
    in_path = spider(template, pagination={"start": 1})
    assert in_path.page_url(template, 2, None) == ("http://a.example/reviews/page=2/json")


def test_cursor_paging_follows_the_cursor_until_it_stops() -> None:
    s = spider(pagination={"param": "since_id", "cursor": "data.cardlistInfo.since_id"})
    assert s.page_url(API, 1, None) == API  # the first page goes without a cursor
    data = json.loads((PAGES / "weibo_search_page1.json").read_text("utf-8"))
    data["data"]["cardlistInfo"]["since_id"] = 4_870_000_000_000_001
    out = list(s.parse(json_response(API, data, yuqing_page=1, yuqing_base=API)))
    posts = [o for o in out if isinstance(o, RawPost)]
    (nxt,) = [o for o in out if isinstance(o, Request)]
    assert len(posts) == 2  # data.cards[*].mblog: the card_group's mblogs are not direct
    assert nxt.url.endswith("since_id=4870000000000001") and nxt.meta["yuqing_page"] == 2
    data["data"]["cardlistInfo"].pop("since_id")
    last = list(s.parse(json_response(nxt.url, data, yuqing_page=2, yuqing_base=API)))
    assert not [o for o in last if isinstance(o, Request)]


def test_an_empty_result_is_not_a_layout_change() -> None:
    assert place_exists("data.cards[*].mblog", {"ok": 0, "data": {"cards": []}})
    assert not place_exists("data.cards[*].mblog", {"ok": 1, "data": {"items": [1]}})
    assert not place_exists("data.cards[*].mblog", {"ok": 1, "data": {"cards": [{"x": 1}]}})
    s = spider()
    empty = json.loads((PAGES / "weibo_search_page3.json").read_text("utf-8"))
    assert list(s.parse(json_response(API, empty, yuqing_page=1))) == []
    stats = s.crawler.stats.get_stats()  # type: ignore[union-attr]
    assert "yuqing/errors/empty_listing" not in stats and not any("miss" in k for k in stats)
    changed = {"ok": 1, "data": {"items": [{"status": {"text": "澜海银行"}}]}}
    assert list(s.parse(json_response(API, changed, yuqing_page=2))) == []  # past the end
    assert not any("miss" in k for k in stats)
    assert list(s.parse(json_response(API, changed, yuqing_page=1))) == []  # a new layout
    stats = s.crawler.stats.get_stats()  # type: ignore[union-attr]
    assert (
        stats["yuqing/errors/empty_listing"] == 1 and stats["yuqing/selector_miss/api.items"] == 1
    )


def test_counts_and_times_stay_as_shown_for_the_validate_stage() -> None:
    s = spider(
        fields={
            "id": "id",
            "text": "text",
            "author_followers": "user.followers_count",
            "published_at": "created_at",
        },
        text_html=True,
    )
    data = json.loads((PAGES / "weibo_search_page1.json").read_text("utf-8"))
    posts = [o for o in s.parse(json_response(API, data)) if isinstance(o, RawPost)]
    assert [p.followers for p in posts] == [356, "12.3万"]
    assert [p.published_at for p in posts] == ["3分钟前", "昨天 12:30"]
    assert posts[0].text.startswith("@澜海银行客服 滨江支行") and "<span" not in posts[0].text


def test_weibo_api_times() -> None:
    zone, now = ZoneInfo("Asia/Shanghai"), datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    assert parse_published("Sat Nov 21 09:05:09 +0800 2026", zone, now) == datetime(
        2026, 11, 21, 1, 5, 9, tzinfo=UTC
    )
    assert parse_published("11-20", zone, now) == datetime(2026, 11, 19, 16, 0, tzinfo=UTC)


def test_extra_values() -> None:
    assert extra_value("集体投诉 23人", "int") == 23
    assert extra_value(" 处理 中 ", "str") == "处理 中"
    assert extra_value(5, "int") == 5 and extra_value("--", "int") is None
    assert extra_value({"label": "x"}, "str") is None


# -- logins and cookies ------------------------------------------------------------------------


def html(url: str, body: str, **meta: Any) -> HtmlResponse:
    return HtmlResponse(
        url=url, body=body.encode(), encoding="utf-8", request=Request(url, meta=meta)
    )


def test_login_pages_are_recognised() -> None:
    redirected = html("https://passport.example/signin/login?r=x", "<p>hi</p>", redirect_urls=[API])
    assert "redirected to a login page" in (login_marker(redirected, missed=False) or "")
    form = html(API, "<form><input type='password'></form>")
    assert login_marker(form, missed=False) is None  # content only counts on a miss
    assert login_marker(form, missed=True) == "a login form"
    json_login = TextResponse(
        url=API,
        body=(PAGES / "weibo_login_required.json").read_bytes(),
        encoding="utf-8",
        request=Request(API),
    )
    assert login_marker(json_login, missed=True) == "the API answered that a login is needed"
    article = html(API, "<title>新闻</title><p>澜海银行登录页面改版，用户吐槽。</p>")
    assert login_marker(article, missed=True) is None


def test_cookies_go_only_to_the_sources_own_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUQING_COOKIES__WEIBO", "SUB=secret")
    config = SourceConfig.model_validate(
        {
            **source(),
            "start_urls": ["https://m.weibo.cn/api"],
            "cookies_env": "YUQING_COOKIES__WEIBO",
        }
    )
    crawler = get_crawler(JsonApiSpider)
    crawler.spider = JsonApiSpider.from_crawler(crawler, source=config)
    middleware = SourceCookiesMiddleware.from_crawler(crawler)
    own, other = (
        Request("https://m.weibo.cn/statuses/extend?id=1"),
        Request("https://cdn.example/x"),
    )
    middleware.process_request(own)
    middleware.process_request(other)
    assert own.headers.get("Cookie") == b"SUB=secret"
    assert "Cookie" not in other.headers


# -- main text and Post.extra --------------------------------------------------------------------


def test_main_text_leaves_out_navigation_related_links_footer_and_spam() -> None:
    page = (PAGES / "article_noisy.html").read_text("utf-8")
    main = extract_main_text(page, "http://news.example/bank/1005.html")
    assert main is not None
    assert main.title == "澜海银行滨江支行被曝违规收取账户管理费"
    assert (main.author, main.published_at) == ("记者 林晓舟", "2026-11-22 09:15:00")
    assert main.text.splitlines()[0].startswith("近日，多名储户向本网反映")
    for noise in ("首页", "相关阅读", "已阅读5页", "加微信", "版权所有", "热门文章", "广告"):
        assert noise not in main.text, noise
    # Without the <meta> time, the time of day shown next to the title is used.
    bare = page.replace('<meta property="article:published_time"', "<meta name='x'")
    again = extract_main_text(bare, "http://news.example/bank/1005.html")
    assert again is not None and again.published_at == "2026-11-22 09:15:00"
    assert extract_main_text("", "http://news.example/") is None


def test_post_extra_round_trips_through_the_stores(tmp_path: Path) -> None:
    post = Post(
        id="a" * 24,
        url="https://tousu.example/complaint/view/17359012345/",
        source="complaints",
        text="投诉对象：澜海银行",
        published_at=datetime(2026, 11, 22, 2, 31, tzinfo=UTC),
        extra={"complaint_id": "17359012345", "status": "处理中", "collective_size": 23},
    )
    store = LocalPostStore(tmp_path / "posts.db", tokenize)
    try:
        store.upsert([post])
        assert store.get(post.id).extra == post.extra  # type: ignore[union-attr]
    finally:
        store.close()
    doc = build_document(post, tokenize(post.text), indexed_at=datetime.now(UTC))
    assert Post.model_validate(doc["post"]).extra == post.extra


# -- Tieba replies -----------------------------------------------------------------------------


def test_thread_replies_link_to_the_thread_and_queue_on_disk() -> None:
    root = Path(__file__).resolve().parents[2]
    data = yaml.safe_load((root / "config" / "yuqing.example.yaml").read_text("utf-8"))
    (entry,) = [s for s in data["sources"] if s["name"] == "tieba_bank"]
    config = SourceConfig.model_validate(entry)
    site = SiteSpider.from_crawler(get_crawler(SiteSpider), source=config)
    thread_url = "https://tieba.baidu.com/p/9000000001"
    body = (PAGES / "tieba_thread_9000000001_p1.html").read_text("utf-8")
    out = list(site.parse_detail(html(thread_url, body)))
    posts = [o for o in out if isinstance(o, RawPost)]
    (more,) = [o for o in out if isinstance(o, Request)]
    assert [p.extra.get("floor") for p in posts] == [1, 2, 3]
    assert posts[1].url == f"{thread_url}?pid=150000000002"
    assert posts[1].extra["thread_url"] == thread_url
    assert more.url == f"{thread_url}?pn=2" and more.cb_kwargs["page"] == 2
    # JOBDIR keeps queued requests on disk: the callback must be a spider method.
    assert more.to_dict(spider=site)["callback"] == "parse_replies"
    listing = (PAGES / "tieba_list.html").read_text("utf-8")
    (thread_request, _) = [r for r in site.parse(html("https://tieba.baidu.com/f?kw=x", listing))]
    assert thread_request.meta["yuqing_item"] is False  # re-fetched for new replies


def test_a_repost_carries_its_original_so_it_still_names_the_bank() -> None:
    s = spider(
        fields={
            "id": "id",
            "text": "text",
            "quoted_text": "retweeted_status.text",
            "quoted_author": "retweeted_status.user.screen_name",
        },
        text_html=True,
    )
    data = json.loads((PAGES / "weibo_search_page1.json").read_text("utf-8"))
    original = data["data"]["cards"][0]["mblog"]
    repost = {
        "id": "5108800000000099",
        "created_at": "1分钟前",
        # The comment alone does not name the bank: the mention filter would drop it.
        "text": '太离谱了，大家避雷<span class="url-icon"><img alt=[怒] src="x.png" /></span>',
        "user": {"screen_name": "路人甲", "followers_count": 12},
        "retweeted_status": original,
    }
    data["data"]["cards"].append({"card_type": 9, "mblog": repost})
    posts = [o for o in s.parse(json_response(API, data)) if isinstance(o, RawPost)]
    by_id = {p.native_id: p for p in posts}
    quoted = by_id["5108800000000099"].text
    assert quoted.startswith("太离谱了，大家避雷")
    assert "//@滨江小王: @澜海银行客服 滨江支行今天又让我排了两个小时的队" in quoted
    assert "<span" not in quoted
    # Items that are not reposts are unchanged, and their missing original is no miss.
    assert by_id["5108800000000001"].text.startswith("@澜海银行客服 滨江支行")
    assert "//@" not in by_id["5108800000000001"].text
    stats = s.crawler.stats.get_stats()  # type: ignore[union-attr]
    assert not any("quoted" in k for k in stats)


def test_a_bad_quoted_text_path_is_refused_at_load(tmp_path: Path) -> None:
    bad = source(fields={"id": "id", "text": "text", "quoted_text": "retweeted_status..[x"})
    with pytest.raises(ConfigError, match=r"fields\.quoted_text"):
        load(tmp_path, bad)
