"""A real Scrapy crawl of the local demo web into a temporary SQLite store.

The demo web plays ``tests/fixtures/scenarios/small.yaml`` on an ephemeral
port; each crawl runs ``crawler.runner.run_crawl`` in its own Python process
(Scrapy's reactor starts once per process), with the sources of
``config/demo.yaml`` pointed at that port and storage in a temp directory.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.models import CrawlRun, Post, PostQuery
from core.vocab import Platform, Sentiment, Topic
from nlp.segment import tokenize
from storage.local import LocalPostStore
from storage.spool import Spool
from storage.state import SqlStateStore
from yuqing.demo.scenario import DemoPost, load_scenario
from yuqing.demo.server import DemoWeb

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "tests" / "fixtures" / "scenarios" / "small.yaml"
DEMO_CONFIG = ROOT / "config" / "demo.yaml"
SOURCES = ["demo_news", "demo_forum", "demo_complaints"]
SITE_OF = {"demo_news": "news", "demo_forum": "forum", "demo_complaints": "complaint"}

# What the child process runs: the services a real `yuqing crawl` builds.
CHILD = """
import sys
from core.settings import load_settings
from crawler.runner import CrawlServices, run_crawl
from nlp.analyzer import Analyzer
from nlp.mentions import MentionMatcher
from nlp.segment import tokenize
from storage.local import LocalPostStore
from storage.spool import Spool
from storage.state import SqlStateStore

settings = load_settings(sys.argv[1])
services = CrawlServices(
    post_store=LocalPostStore(settings.storage.posts_path, tokenize),
    spool=Spool(settings.storage.spool_dir),
    analyzer=Analyzer(settings.watchlist),
    mention_matcher=MentionMatcher(settings.watchlist),
    state_store=SqlStateStore(settings.storage.state_url),
)
try:
    run = run_crawl(settings, sys.argv[2], services)
finally:
    services.close()
print("CRAWLRUN " + run.model_dump_json(), flush=True)
"""

# Posts of small.yaml the pipelines must drop, and why.
DROPPED = {
    "周末去澜海公园散步": "no_watched_entity",  # exclusion only
    "今天地铁故障": "no_watched_entity",  # unrelated
    "央行开展逆回购操作": "no_watched_entity",
    "澜海大道今晚封路施工": "no_watched_entity",  # exclusion only
    "快递丢件": "no_watched_entity",
}
REPOST_PAIR = {"澜海银行要倒闭了？", "转：澜海银行要倒闭了？"}  # same text: one is kept


@dataclass
class Env:
    web: DemoWeb
    tmp: Path
    config: Path
    first: dict[str, CrawlRun]

    def store(self) -> LocalPostStore:
        return LocalPostStore(self.tmp / "data" / "posts.db", tokenize)


def write_config(path: Path, base_url: str, data_dir: Path, **overrides: Any) -> Path:
    """config/demo.yaml with the sources on ``base_url`` and storage under ``data_dir``."""
    data = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    for source in data["sources"]:
        source["start_urls"] = [
            u.replace("http://127.0.0.1:8765", base_url) for u in source["start_urls"]
        ]
    data["storage"] = {
        "posts_path": str(data_dir / "posts.db"),
        "state_url": f"sqlite:///{data_dir / 'state.db'}",
        "spool_dir": str(data_dir / "spool"),
    }
    data["crawl"]["retry_times"] = 0  # a down source must fail fast in tests
    data.update(overrides)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def crawl(config: Path, *sources: str) -> dict[str, CrawlRun]:
    """Crawl ``sources`` in parallel child processes; their CrawlRuns by source."""
    procs = {
        s: subprocess.Popen(
            [sys.executable, "-c", CHILD, str(config), s],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in sources
    }
    runs: dict[str, CrawlRun] = {}
    for source, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        lines = [ln for ln in out.splitlines() if ln.startswith("CRAWLRUN ")]
        assert proc.returncode == 0 and lines, f"crawl {source} failed:\n{err[-3000:]}"
        runs[source] = CrawlRun.model_validate_json(lines[-1].removeprefix("CRAWLRUN "))
    return runs


def not_refetched(run: CrawlRun) -> int:
    """Item pages the crawl did not fetch because their posts are stored (incremental)."""
    found = re.search(r"not refetched (\d+) stored item pages", run.message)
    return int(found.group(1)) if found else 0


def prepare_stores(data_dir: Path) -> None:
    # Create both databases before parallel crawls race to create their schemas.
    LocalPostStore(data_dir / "posts.db", tokenize).count(PostQuery())
    SqlStateStore(f"sqlite:///{data_dir / 'state.db'}").close()


def demo_post(web: DemoWeb, post: Post) -> DemoPost:
    site = "forum" if post.source == "demo_forum" else SITE_OF[post.source]
    number = int(re.search(r"(\d+)\.html$", post.url).group(1))  # type: ignore[union-attr]
    found = web.world.get(site, number)  # type: ignore[arg-type]
    assert found is not None, post.url
    return found


def all_posts(store: LocalPostStore, source: str | None = None) -> list[Post]:
    query = PostQuery(sources=[source] if source else None)
    return [h.post for h in store.search(query, limit=500).hits]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("crawl_demo")
    web = DemoWeb(load_scenario(SMALL), port=0).start()
    try:
        data_dir = tmp / "data"
        config = write_config(tmp / "config.yaml", web.url, data_dir)
        prepare_stores(data_dir)
        yield Env(web=web, tmp=tmp, config=config, first=crawl(config, *SOURCES))
    finally:
        web.stop()


def test_every_source_crawls_ok(env: Env) -> None:
    for source, run in env.first.items():
        assert run.ok, f"{source}: {run.message}"
        assert run.fetched > 0 and run.kept > 0 and run.errors == 0, run.message


def test_the_posts_that_mention_the_bank_are_stored_once(env: Env) -> None:
    store = env.store()
    for source in SOURCES:
        visible = env.web.visible_posts(SITE_OF[source])  # type: ignore[arg-type]
        expected = {p.id for p in visible if p.title not in DROPPED}
        stored = [demo_post(env.web, p) for p in all_posts(store, source)]
        assert len(stored) == len({p.id for p in stored}) == env.first[source].kept
        if source == "demo_forum":
            reposts = [p for p in stored if p.title in REPOST_PAIR]
            assert len(reposts) == 1  # the other copy was dropped as duplicate content
            expected -= {p.id for p in visible if p.title in REPOST_PAIR}
            stored = [p for p in stored if p.title not in REPOST_PAIR]
        assert {p.id for p in stored} == expected, source
    store.close()


def test_exclusions_unrelated_reposts_and_future_posts_are_not_stored(env: Env) -> None:
    store = env.store()
    titles = {p.title for p in all_posts(store)}
    assert not titles & set(DROPPED)
    assert not any(p.offset_minutes > 0 and p.title in titles for p in env.web.world.posts)
    dropped = {
        k: sum(r.dropped.get(k, 0) for r in env.first.values())
        for k in ("no_watched_entity", "duplicate_content")
    }
    assert dropped == {"no_watched_entity": len(DROPPED), "duplicate_content": 1}
    store.close()


def test_posts_carry_analysis_platform_and_entities(env: Env) -> None:
    store = env.store()
    posts = all_posts(store)
    for post in posts:
        assert post.analysis is not None, post.url
        assert post.analysis.sentiment in set(Sentiment)
        assert post.analysis.topic in set(Topic)
        assert "澜海银行" in post.matched_entities
        assert post.content_hash and not post.published_at_estimated
    by_title = {p.title: p for p in posts}
    news = by_title["澜海稳盈3号跌破净值"]
    assert news.platform is Platform.NEWS
    assert news.analysis is not None and news.analysis.topic is Topic.WEALTH_MANAGEMENT
    assert "澜海稳盈3号" in news.analysis.entities
    assert news.author == "记者 乙" and news.likes == 30
    rumor = next(p for t, p in by_title.items() if t in REPOST_PAIR)
    assert rumor.analysis is not None and rumor.analysis.sentiment is Sentiment.NEGATIVE
    forum = by_title["澜海银行滨江支行的服务不错"]
    assert (forum.author, forum.author_followers, forum.comments) == ("大V理财师", 12000, 2)
    complaint = by_title["理财亏损要求赔偿"]
    assert complaint.platform is Platform.COMPLAINT and complaint.reposts == 12  # 集体投诉人数
    assert "澜海银行滨江支行" in complaint.matched_entities  # named only in 投诉对象
    assert "瀾海銀行門口排隊" in by_title  # traditional characters are kept
    store.close()


def test_text_is_clean_of_site_chrome_and_spam(env: Env) -> None:
    store = env.store()
    posts = all_posts(store)
    for post in posts:
        for chrome in (
            "相关推荐",
            "版权所有",
            "分享到",
            "免责声明",
            "扫码关注",
            "发自",
            "投诉编号",
        ):
            assert chrome not in post.text, (chrome, post.url)
    forum = next(p for p in posts if p.title == "澜海银行滨江支行的服务不错")
    assert forum.text == "今天去澜海银行滨江支行办业务，大堂经理很耐心。\n点赞。"
    complaint = next(p for p in posts if p.title == "理财亏损要求赔偿")
    assert complaint.text.startswith("投诉对象：澜海银行滨江支行\n投诉问题：理财亏损")
    store.close()


def test_publish_times_are_utc_and_match_the_scenario(env: Env) -> None:
    store = env.store()
    for post in all_posts(store):
        expected: datetime = env.web.published_at(demo_post(env.web, post))
        if post.source == "demo_forum":  # the forum shows minutes only
            expected = expected.replace(second=0, microsecond=0)
        else:  # RSS pubDate and complaint pages show seconds
            expected = expected.replace(microsecond=0)
        assert post.published_at == expected, post.url
        assert post.published_at.utcoffset() is not None and post.published_at.tzname() == "UTC"
    store.close()


def test_recrawling_adds_no_duplicates(env: Env) -> None:
    store = env.store()
    before = store.count(PostQuery())
    store.close()
    again = crawl(env.config, *SOURCES)
    for source, run in again.items():
        assert run.ok, run.message
        assert run.kept == 0 and "(0 new, 0 updated)" in run.message
        # Stored posts are either not fetched again (incremental) or dropped.
        assert run.dropped.get("already_stored", 0) + not_refetched(run) == env.first[source].kept
    store = env.store()
    assert store.count(PostQuery()) == before
    store.close()
    state = SqlStateStore(f"sqlite:///{env.tmp / 'data' / 'state.db'}")
    runs = state.list_crawl_runs()
    state.close()
    assert sorted(r.source for r in runs) == sorted(SOURCES * 2)
    assert all(r.ok and r.id is not None for r in runs)


def test_a_source_that_is_down_or_forbidden_is_reported_not_empty(env: Env, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    config = write_config(tmp_path / "config.yaml", f"http://127.0.0.1:{closed}", tmp_path / "d")
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["sources"][2]["start_urls"] = [f"{env.web.url}/admin/complaints/"]  # robots.txt: no
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    prepare_stores(tmp_path / "d")
    runs = crawl(config, "demo_forum", "demo_complaints")
    down, forbidden = runs["demo_forum"], runs["demo_complaints"]
    assert not down.ok and down.errors >= 1
    assert "start URL failed" in down.message and "refused" in down.message.lower()
    assert not forbidden.ok and "robots.txt" in forbidden.message


def test_an_unwritable_store_spools_and_the_next_crawl_replays(env: Env, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    blocker = data_dir / "posts.db"  # the store path's parent will be a file: unwritable
    config = write_config(tmp_path / "config.yaml", env.web.url, data_dir)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["storage"]["posts_path"] = str(blocker / "posts.db")
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    blocker.write_text("not a directory", encoding="utf-8")

    down = crawl(config, "demo_complaints")["demo_complaints"]
    assert not down.ok and f"{down.kept} posts spooled" in down.message
    assert down.kept > 0 and Spool(data_dir / "spool").pending() == down.kept

    blocker.unlink()  # the store is writable again
    up = crawl(config, "demo_complaints")["demo_complaints"]
    assert up.ok, up.message
    assert f"replayed {down.kept} spooled" in up.message
    assert Spool(data_dir / "spool").pending() == 0
    store = LocalPostStore(blocker / "posts.db", tokenize)
    assert store.count(PostQuery()) == down.kept
    assert up.kept == 0
    assert up.dropped.get("already_stored", 0) + not_refetched(up) == down.kept
    store.close()
