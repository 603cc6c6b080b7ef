"""Real crawls of the platform sources on saved pages served over HTTP.

pytest-httpserver plays the sites with the pages in
``tests/fixtures/pages/sources``: a Weibo mobile-search JSON API (with a
long-text endpoint and a cookie check), a complaint platform in the style of
黑猫投诉, Baidu Tieba threads with reply floors, App Store reviews (JSON) and
a news article cleaned by trafilatura. The sources are those of
``config/yuqing.example.yaml``, switched on and pointed at the test server.
Each source is crawled by ``crawler.runner.run_crawl`` in its own child
process (see ``tests/integration/test_crawl_demo.py``) into its own
temporary SQLite store.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from core.models import CrawlRun, Post, PostQuery
from core.vocab import Platform
from nlp.segment import tokenize
from storage.local import LocalPostStore
from tests.integration.test_crawl_demo import CHILD, DEMO_CONFIG, prepare_stores

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "tests" / "fixtures" / "pages" / "sources"
GOOD_COOKIE = "SUB=_2A25good-cookie; SUBP=0033WrSX"


def page(name: str) -> str:
    return (PAGES / name).read_text(encoding="utf-8")


EXAMPLE = ROOT / "config" / "yuqing.example.yaml"
_HOSTS = re.compile(
    r"https://(m\.weibo\.cn|tousu\.example\.com|tieba\.baidu\.com|itunes\.apple\.com"
    r"|finance\.example\.com)"
)


def example(source: str, base: str, name: str, **overrides: Any) -> dict[str, Any]:
    """The source ``source`` of config/yuqing.example.yaml, switched on, its hosts on ``base``."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    (entry,) = [s for s in data["sources"] if s["name"] == source]
    entry = json.loads(_HOSTS.sub(base, json.dumps(entry, ensure_ascii=False)))
    entry.update(name=name, enabled=True, **overrides)
    return entry


def weibo_api(base: str, name: str, **overrides: Any) -> dict[str, Any]:
    return example("weibo_search", base, name, **overrides)


def complaints(base: str, name: str = "complaints", path: str = "/search") -> dict[str, Any]:
    return example("complaint_platform", base, name, start_urls=[f"{base}{path}?keywords=澜海银行"])


def tieba(base: str, name: str = "tieba", path: str = "/f") -> dict[str, Any]:
    return example("tieba_bank", base, name, start_urls=[f"{base}{path}?kw=澜海银行&ie=utf-8"])


def appstore(base: str, name: str = "app_reviews") -> dict[str, Any]:
    return example("app_store_reviews", base, name, max_pages=2)


def articles(base: str, name: str = "news_auto") -> dict[str, Any]:
    return example("finance_news_site", base, name)


NEWS_LIST = """<html><head><meta charset="utf-8"><title>银行_钱塘财经网</title></head>
<body><ul class="news-list">
<li><a href="/bank/20261122/1005.html">澜海银行滨江支行被曝违规收取账户管理费</a></li>
</ul></body></html>"""


def write_config(path: Path, data_dir: Path, sources: list[dict[str, Any]]) -> Path:
    data = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    data["sources"] = sources
    data["data_dir"] = str(data_dir)
    data["storage"] = {
        "posts_path": str(data_dir / "posts.db"),
        "state_url": f"sqlite:///{data_dir / 'state.db'}",
        "spool_dir": str(data_dir / "spool"),
    }
    data["crawl"]["retry_times"] = 0
    data["crawl"]["obey_robots"] = False
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def crawl(config: Path, *sources: str) -> dict[str, CrawlRun]:
    """Crawl each source in its own child process and its own store (``<data>/<source>``).

    Separate stores keep the sources' dedup apart: the sources of one test
    must not drop each other's posts as duplicates.
    """
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data_dir = Path(data["storage"]["posts_path"]).parent
    procs = {}
    for source in sources:
        own = data_dir / source
        own.mkdir(parents=True, exist_ok=True)
        prepare_stores(own)
        data["storage"] = {
            "posts_path": str(own / "posts.db"),
            "state_url": f"sqlite:///{own / 'state.db'}",
            "spool_dir": str(own / "spool"),
        }
        path = config.with_name(f"{config.stem}.{source}.yaml")
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        procs[source] = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), source],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    runs: dict[str, CrawlRun] = {}
    for source, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        lines = [ln for ln in out.splitlines() if ln.startswith("CRAWLRUN ")]
        assert proc.returncode == 0 and lines, f"crawl {source} failed:\n{err[-3000:]}"
        runs[source] = CrawlRun.model_validate_json(lines[-1].removeprefix("CRAWLRUN "))
    return runs


def posts_of(data_dir: Path, source: str) -> list[Post]:
    store = LocalPostStore(data_dir / source / "posts.db", tokenize)
    try:
        hits = store.search(PostQuery(sources=[source]), limit=500).hits
    finally:
        store.close()
    return [h.post for h in hits]


def weibo_handler(cookie: str | None) -> Any:
    """The search API: pages 1–3 when ``cookie`` matches, else a redirect to the login page."""

    def handle(request: Request) -> Response:
        if cookie is not None and request.headers.get("Cookie") != cookie:
            return Response(
                status=302, headers={"Location": "/signin/login?entry=mweibo&r=getIndex"}
            )
        number = int(request.args.get("page", "1"))
        body = page(f"weibo_search_page{min(number, 3)}.json")
        return Response(body, content_type="application/json; charset=utf-8")

    return handle


def serve_json(httpserver: HTTPServer, uri: str, name: str) -> None:
    httpserver.expect_request(uri).respond_with_data(
        page(name), content_type="application/json; charset=utf-8"
    )


def serve_html(
    httpserver: HTTPServer, uri: str, body: str | bytes, query_string: str | None = None, **kw: Any
) -> None:
    kw.setdefault("content_type", "text/html; charset=utf-8")
    httpserver.expect_request(uri, query_string=query_string).respond_with_data(body, **kw)


NEW_FLOOR = """  <div class="l_post j_l_post l_post_bright" data-pid="150000000006">
    <div class="d_author"><ul class="p_author"><li class="d_name">
      <a class="p_author_name j_user_card">后来的人</a></li></ul></div>
    <div class="d_post_content_main">
      <div class="p_content"><div class="d_post_content j_d_post_content">
        我今天也被吞卡了，同一台机器</div></div>
      <div class="core_reply j_lzl_wrapper"><div class="post-tail-wrap">
        <span class="tail-info">6楼</span>
        <span class="tail-info">2026-11-23 12:05</span></div></div>
    </div>
  </div>
</div>
<div class="l_thread_info">"""


def serve_sites(httpserver: HTTPServer, tieba_page2: dict[str, str] | None = None) -> None:
    """The happy-path sites: Weibo (cookie checked), complaints, Tieba, App Store, news.

    ``tieba_page2["html"]``, when given, is the thread's second page (a test may grow it).
    """
    httpserver.expect_request("/api/container/getIndex").respond_with_handler(
        weibo_handler(GOOD_COOKIE)
    )
    httpserver.expect_request(
        "/statuses/extend", query_string="id=5108800000000002"
    ).respond_with_handler(
        lambda r: Response(
            page("weibo_extend_5108800000000002.json")
            if r.headers.get("Cookie") == GOOD_COOKIE
            else '{"ok": -100}',
            content_type="application/json",
        )
    )
    serve_html(httpserver, "/search", page("complaint_list.html"))
    for cid in ("17359012345", "17359012377"):
        serve_html(httpserver, f"/complaint/view/{cid}/", page(f"complaint_{cid}.html"))
    serve_html(httpserver, "/f", page("tieba_list.html"))
    second = tieba_page2 if tieba_page2 is not None else {}
    second.setdefault("html", page("tieba_thread_9000000001_p2.html"))
    httpserver.expect_request("/p/9000000001", query_string="pn=2").respond_with_handler(
        lambda r: Response(second["html"], content_type="text/html; charset=utf-8")
    )
    serve_html(httpserver, "/p/9000000001", page("tieba_thread_9000000001_p1.html"))
    serve_html(httpserver, "/p/9000000002", page("tieba_thread_9000000002_p1.html"))
    for n in (1, 2):
        serve_json(
            httpserver,
            f"/cn/rss/customerreviews/page={n}/id=1234567890/sortby=mostrecent/json",
            f"appstore_reviews_page{n}.json",
        )
    serve_html(httpserver, "/bank/", NEWS_LIST)
    serve_html(httpserver, "/bank/20261122/1005.html", page("article_noisy.html"))


def test_platform_sources_extract_reach_extra_fields_and_replies(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tieba_page2: dict[str, str] = {}
    serve_sites(httpserver, tieba_page2)
    base = httpserver.url_for("/").rstrip("/")
    data = tmp_path / "data"
    config = write_config(
        tmp_path / "c.yaml",
        data,
        [
            weibo_api(base, "weibo"),
            complaints(base),
            tieba(base),
            appstore(base),
            articles(base),
        ],
    )
    monkeypatch.setenv("YUQING_COOKIES__WEIBO", GOOD_COOKIE)
    runs = crawl(config, "weibo", "complaints", "tieba", "app_reviews", "news_auto")
    for name, run in runs.items():
        assert run.ok, f"{name}: {run.message}"
        assert run.errors == 0 and "selector misses" not in run.message, (name, run.message)

    # Weibo: 5 mblogs on 2 pages (+ an empty third page), 澜海公园 is not the bank.
    weibo = {p.extra["mblog_bid"]: p for p in posts_of(data, "weibo")}
    assert runs["weibo"].kept == 4 and runs["weibo"].dropped == {"no_watched_entity": 1}
    first = weibo["PbQx1aBcD"]
    assert first.url == f"{base}/detail/5108800000000001"
    assert first.platform is Platform.WEIBO
    assert first.text.startswith("@澜海银行客服 滨江支行今天又让我排了两个小时的队")
    assert "<" not in first.text and "url-icon" not in first.text
    assert (first.author, first.author_followers) == ("滨江小王", 356)
    assert (first.reposts, first.comments, first.likes) == (12, 30, 88)
    assert not first.published_at_estimated
    assert abs((first.crawled_at - first.published_at).total_seconds() - 180) < 120  # 3分钟前
    long = weibo["PbQx2eFgH"]
    assert long.author_followers == 123_000 and long.comments == 12_000  # "12.3万", "1.2万"
    assert "准备集体向监管部门反映" in long.text and "全文" not in long.text  # isLongText
    assert long.published_at.strftime("%H:%M") == "04:30"  # 昨天 12:30 in Shanghai
    assert weibo["PbQx3iJkL"].published_at.strftime("%m-%d %H:%M") == "11-19 16:00"  # "11-20"
    assert weibo["PbQx5qRsT"].published_at.isoformat() == "2026-11-21T01:05:09+00:00"
    assert weibo["PbQx5qRsT"].author_followers == 8412

    # Complaints: the header fields are kept in Post.extra; 集体投诉 23人 → 23.
    found = {p.extra["complaint_id"]: p for p in posts_of(data, "complaints")}
    assert set(found) == {"17359012345", "17359012377"}
    big = found["17359012345"]
    assert big.extra == {
        "complaint_id": "17359012345",
        "target": "澜海银行",
        "issue": "虚假宣传，诱导消费",
        "demand": "退款,赔偿",
        "status": "处理中",
        "collective_size": 23,
    }
    assert big.text.startswith(
        "投诉对象：澜海银行\n投诉问题：虚假宣传，诱导消费\n投诉要求：退款,赔偿"
    )
    assert big.author == "理财亏了的王先生" and big.published_at.isoformat().startswith(
        "2026-11-22T02:31"
    )
    done = found["17359012377"]
    assert done.extra["status"] == "已完成" and "collective_size" not in done.extra

    # Tieba: the thread (floor 1) and its 4 replies on two pages, each linked to it.
    thread_url = f"{base}/p/9000000001"
    tieba_posts = sorted(posts_of(data, "tieba"), key=lambda p: int(p.extra["floor"]))
    assert [p.extra["floor"] for p in tieba_posts] == [1, 2, 3, 4, 5]
    assert {p.extra["thread_url"] for p in tieba_posts} == {thread_url}
    opening, *replies = tieba_posts
    assert (
        opening.url == thread_url and opening.title == "澜海银行高新支行ATM吞卡，等了三天还没拿回来"
    )
    assert opening.author == "高新区小李" and opening.text.startswith("周一晚上在澜海银行高新支行")
    assert [r.url for r in replies] == [f"{thread_url}?pid=15000000000{n}" for n in (2, 3, 4, 5)]
    assert all(r.title == "回复：" + opening.title for r in replies)
    assert replies[0].author == "路过的老王" and replies[0].text.startswith("我上个月也被吞过")
    assert replies[3].published_at.isoformat() == "2026-11-23T03:30:00+00:00"
    assert runs["tieba"].dropped == {"no_watched_entity": 1}  # the 澜海公园 thread
    # A re-crawl fetches the stored thread again (new replies appear on its pages) and
    # keeps only the new floor.
    tieba_page2["html"] = tieba_page2["html"].replace(
        '</div>\n<div class="l_thread_info">', NEW_FLOOR
    )
    (again,) = crawl(config, "tieba").values()
    assert again.ok and again.kept == 1, again.message
    assert again.dropped.get("already_stored") == 5, again.message
    newest = max(posts_of(data, "tieba"), key=lambda p: int(p.extra["floor"]))
    assert (newest.extra["floor"], newest.author) == (6, "后来的人")
    assert newest.url == f"{thread_url}?pid=150000000006"

    # App Store: the rating is kept, not turned into sentiment; votes are the likes.
    reviews = {
        p.extra["version"] + "/" + str(p.extra["rating"]): p for p in posts_of(data, "app_reviews")
    }
    assert set(reviews) == {"8.6.0/1", "8.6.0/5", "8.5.2/2"}
    bad = reviews["8.6.0/1"]
    assert bad.title == "澜海手机银行 App Store 评价：更新后无法登录"
    assert bad.author == "不想再排队了" and bad.likes == 37
    assert bad.published_at.isoformat() == "2026-11-23T02:42:10+00:00"
    assert reviews["8.5.2/2"].likes == 1203

    # The news article: main text only, with title, author and time.
    (article,) = posts_of(data, "news_auto")
    assert article.title == "澜海银行滨江支行被曝违规收取账户管理费"
    assert article.author == "记者 林晓舟"
    assert article.published_at.isoformat() == "2026-11-22T01:15:00+00:00"
    assert article.text.startswith("近日，多名储户向本网反映")
    assert article.text.endswith("截至发稿，澜海银行尚未对此作出正式回应。")
    for noise in (
        "首页",
        "相关阅读",
        "已阅读",
        "还剩13页未读",
        "加微信",
        "版权所有",
        "Copyright",
        "热门文章",
        "精装小区",
        "分享到",
        "责任编辑",
        "澜海银行三季度净利润",
    ):
        assert noise not in article.text, noise


LOGIN_PAGE = """<html><head><meta charset="utf-8"><title>微博 - 登录</title></head><body>
<form action="/sso/login" method="post"><input name="username">
<input type="password" name="password"><button>登录</button></form></body></html>"""
CAPTCHA = """<html><head><meta charset="utf-8"><title>安全验证</title></head>
<body><p>访问过于频繁，请完成滑动验证后继续。</p></body></html>"""


def test_missing_or_expired_cookies_and_blocks_are_reported_never_empty(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    httpserver.expect_request("/api/container/getIndex").respond_with_handler(
        weibo_handler(GOOD_COOKIE)
    )
    serve_html(httpserver, "/signin/login", LOGIN_PAGE)
    serve_json(httpserver, "/wb-json-login/api", "weibo_login_required.json")
    httpserver.expect_request("/wb418/api").respond_with_data("I'm a teapot", status=418)
    serve_html(httpserver, "/wbcaptcha/api", CAPTCHA)
    httpserver.expect_request("/tieba403/f").respond_with_data("Forbidden", status=403)
    serve_html(httpserver, "/ts-captcha/search", CAPTCHA)
    base = httpserver.url_for("/").rstrip("/")

    def api_at(name: str, path: str, **kw: Any) -> dict[str, Any]:
        return weibo_api(base, name, start_urls=[f"{base}{path}?q=澜海银行"], **kw)

    config = write_config(
        tmp_path / "c.yaml",
        tmp_path / "data",
        [
            weibo_api(base, "weibo_expired", cookies_env="YUQING_COOKIES__WEIBO_OLD"),
            weibo_api(
                base,
                "weibo_no_cookie",
                cookies_env="YUQING_COOKIES__WEIBO_UNSET",
                login_required=True,
            ),
            api_at("weibo_json_login", "/wb-json-login/api"),
            api_at("weibo_418", "/wb418/api"),
            api_at("weibo_captcha", "/wbcaptcha/api"),
            tieba(base, "tieba_403", path="/tieba403/f"),
            complaints(base, "complaints_captcha", path="/ts-captcha/search"),
        ],
    )
    monkeypatch.setenv("YUQING_COOKIES__WEIBO_OLD", "SUB=expired")
    monkeypatch.setenv("YUQING_COOKIES__WEIBO", "SUB=also-expired")
    monkeypatch.delenv("YUQING_COOKIES__WEIBO_UNSET", raising=False)
    runs = crawl(
        config,
        *[
            s
            for s in (
                "weibo_expired",
                "weibo_no_cookie",
                "weibo_json_login",
                "weibo_418",
                "weibo_captcha",
                "tieba_403",
                "complaints_captcha",
            )
        ],
    )
    assert all(not r.ok and r.kept == 0 for r in runs.values()), {
        k: r.message for k, r in runs.items()
    }
    expired = runs["weibo_expired"].message
    assert "login needed" in expired and "redirected to a login page" in expired
    assert "refresh YUQING_COOKIES__WEIBO_OLD" in expired
    missing = runs["weibo_no_cookie"].message
    assert "cookies missing: set YUQING_COOKIES__WEIBO_UNSET" in missing
    json_login = runs["weibo_json_login"].message
    assert "login needed" in json_login and "the API answered that a login is needed" in json_login
    assert "blocked by the site" in runs["weibo_418"].message
    assert "HTTP 418" in runs["weibo_418"].message
    assert "captcha or anti-bot page" in runs["weibo_captcha"].message
    assert "HTTP 403" in runs["tieba_403"].message
    assert "captcha or anti-bot page" in runs["complaints_captcha"].message
    # The secret never reaches the crawl record.
    assert not any("expired" in r.message and "SUB=" in r.message for r in runs.values())


BIG_JSON_ITEMS = 40_000


def big_weibo_page() -> bytes:
    """A ~10 MB search page: one real mblog among 40,000 padding cards without one."""
    data = json.loads(page("weibo_search_page2.json"))
    filler = {"card_type": 42, "desc": "相关推荐" * 20}
    data["data"]["cards"] = [filler] * BIG_JSON_ITEMS + data["data"]["cards"]
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def big_article() -> bytes:
    """The noisy article followed by ~10 MB of comment markup."""
    html = page("article_noisy.html")
    comments = "<div class='comment'><p>沙发，路过看看。</p></div>\n" * 200_000
    return html.replace("<footer", f"<div id='comments'>{comments}</div><footer").encode()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 2000


def test_bad_input_on_the_new_sources_is_counted_and_named(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    serve_json_bytes = httpserver.expect_request
    serve_json_bytes("/empty/api").respond_with_data(b"", content_type="application/json")
    serve_json_bytes("/broken/api").respond_with_data(
        page("weibo_search_page1.json")[:700], content_type="application/json"
    )
    serve_json(httpserver, "/changed/api", "weibo_layout_changed.json")
    serve_json_bytes("/big/api").respond_with_data(
        big_weibo_page(), content_type="application/json"
    )
    serve_html(httpserver, "/bank/", NEWS_LIST.replace("/bank/20261122/", "/big/"))
    serve_html(httpserver, "/big/1005.html", big_article())
    # A list of "articles": one is an image, one is cut off mid-tag, one is empty.
    serve_html(
        httpserver,
        "/odd/",
        '<ul class="news-list"><a href="/odd/1.html">1</a><a href="/odd/2.html">2</a>'
        '<a href="/odd/3.html">3</a></ul>',
    )
    httpserver.expect_request("/odd/1.html").respond_with_data(PNG, content_type="image/png")
    cut = page("article_noisy.html")
    serve_html(httpserver, "/odd/2.html", cut[: cut.index("记者以客户身份")])
    serve_html(httpserver, "/odd/3.html", b"")
    # The complaint platform redesigned its list: the selector matches nothing.
    serve_html(
        httpserver,
        "/redesign/search",
        page("complaint_list.html").replace("blackcat-con", "tousu-card"),
    )
    base = httpserver.url_for("/").rstrip("/")

    def api_at(name: str, path: str) -> dict[str, Any]:
        return weibo_api(
            base,
            name,
            start_urls=[f"{base}{path}?q=澜海银行"],
            cookies_env=None,
            login_required=False,
            api={**weibo_api(base, name)["api"], "pagination": None, "long_text": None},
        )

    odd = articles(base, "news_odd")
    odd["start_urls"] = [f"{base}/odd/"]
    config = write_config(
        tmp_path / "c.yaml",
        tmp_path / "data",
        [
            api_at("api_empty", "/empty/api"),
            api_at("api_broken", "/broken/api"),
            api_at("api_changed", "/changed/api"),
            api_at("api_big", "/big/api"),
            articles(base, "news_big"),
            odd,
            complaints(base, "complaints_redesign", path="/redesign/search"),
        ],
    )
    runs = crawl(
        config,
        "api_empty",
        "api_broken",
        "api_changed",
        "api_big",
        "news_big",
        "news_odd",
        "complaints_redesign",
    )
    messages = {k: r.message for k, r in runs.items()}
    assert not runs["api_empty"].ok and "1 API answers were not JSON" in messages["api_empty"]
    assert not runs["api_broken"].ok and "1 API answers were not JSON" in messages["api_broken"]
    changed = runs["api_changed"]
    assert not changed.ok and "a list page had no item links" in changed.message
    assert "selector misses api.items 1" in changed.message
    assert runs["api_big"].ok and runs["api_big"].kept == 1, messages["api_big"]
    assert runs["news_big"].ok and runs["news_big"].kept == 1, messages["news_big"]
    odd_run = runs["news_odd"]
    # The image is skipped and counted; the cut page keeps what it has; the empty one
    # is a selector miss and dropped as empty text — none of it crashes the crawl.
    assert odd_run.kept == 1 and odd_run.dropped.get("empty_text") == 1, odd_run.message
    assert odd_run.errors == 1 and re.search(r"selector misses .*\btext 1", odd_run.message)
    redesign = runs["complaints_redesign"]
    assert not redesign.ok and "a list page had no item links" in redesign.message
    assert re.search(r"selector misses .*listing.item_links 1", redesign.message)
