"""``yuqing crawl SOURCE`` against a forum played by pytest-httpserver, in child processes.

What a bank running this for years relies on: a live progress line and a
summary; a second crawl that does not fetch stored threads again; a crawl
interrupted half-way that resumes without fetching any thread twice or losing
one; and a post store that goes down mid-crawl without any post lost or
stored twice (spool, then replay in order).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from core.ids import post_id_from_url
from core.models import PostQuery
from nlp.segment import tokenize
from storage.local import LocalPostStore
from storage.spool import Spool

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
THREADS = 10

LIST = """<html><head><meta charset="utf-8"><title>澜海社区</title></head><body>
<ul class="thread-list">{items}</ul></body></html>"""
ITEM = '<li><a class="thread-title" href="/forum/thread/{n}.html">帖子 {n}</a></li>'
DETAIL = """<html><head><meta charset="utf-8"><title>{title}</title></head><body>
<h1 class="thread-title">{title}</h1>
<div class="post first"><a class="author-name">网友{n}</a>
<div class="post-time">2026-11-23 10:{n:02d}</div>
<div class="post-content"><p>{text}</p></div></div></body></html>"""


def thread_text(n: int) -> str:
    if n == 7:
        return "周末去澜海公园散步，湖边的桂花开了。"  # names only an exclusion: dropped
    if n == 8:
        return thread_text(3)  # a repost of thread 3 under another URL: grouped
    stories = [
        "信用卡被盗刷",
        "理财到期亏损",
        "手机银行转账失败",
        "网点排队两小时",
        "房贷利率没有调整",
    ]
    return f"澜海银行{stories[n % 5]}，第{n}位客户的遭遇，编号{n * 37}，请大家评评理。"


class Forum:
    """The site: one list page, THREADS thread pages; counts every thread request."""

    def __init__(self, server: HTTPServer, *, delay: float = 0.0, threads: int = THREADS) -> None:
        self.server = server
        self.delay = delay
        self.threads = threads
        self.served: list[int] = []
        self.on_thread: Any = None  # called with the thread number before answering
        self.lock = threading.Lock()
        server.expect_request("/robots.txt").respond_with_data("", status=404)
        items = "".join(ITEM.format(n=n) for n in range(1, threads + 1))
        server.expect_request("/forum/").respond_with_data(
            LIST.format(items=items), content_type="text/html; charset=utf-8"
        )
        for n in range(1, threads + 1):
            server.expect_request(f"/forum/thread/{n}.html").respond_with_handler(self._handler(n))

    def _handler(self, n: int) -> Any:
        def handle(request: Request) -> Response:
            with self.lock:
                self.served.append(n)
            if self.on_thread is not None:
                self.on_thread(n)
            if self.delay:
                time.sleep(self.delay)
            body = DETAIL.format(n=n, title=f"社区 帖子{n}", text=thread_text(n))
            return Response(body, content_type="text/html; charset=utf-8")

        return handle

    def url(self, n: int) -> str:
        return self.server.url_for(f"/forum/thread/{n}.html")

    def list_requests(self) -> int:
        return sum(1 for req, _ in self.server.log if req.path == "/forum/")


def write_config(tmp: Path, server: HTTPServer, **crawl: Any) -> Path:
    data = {
        "data_dir": str(tmp / "data"),
        "watchlist": {
            "bank": {"name": "澜海银行", "aliases": ["澜海"]},
            "exclusions": ["澜海公园"],
        },
        "sources": [
            {
                "name": "forum",
                "kind": "html",
                "platform": "forum",
                "start_urls": [server.url_for("/forum/")],
                "listing": {"item_links": "ul.thread-list a.thread-title::attr(href)"},
                "detail": {
                    "title": "h1.thread-title::text",
                    "text": "div.post.first div.post-content p",
                    "author": "div.post.first a.author-name::text",
                    "published_at": "div.post.first div.post-time::text",
                },
            }
        ],
        "storage": {
            "posts_path": str(tmp / "data" / "posts.db"),
            "state_url": f"sqlite:///{tmp / 'data' / 'state.db'}",
            "spool_dir": str(tmp / "data" / "spool"),
        },
        "crawl": {
            "obey_robots": False,
            "autothrottle": False,
            "download_delay": 0,
            "retry_times": 0,
            # One request at a time: the order pages are served is the order posts are kept.
            "concurrent_per_domain": 1,
            **crawl,
        },
    }
    path = tmp / "yuqing.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def start_crawl(config: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUQING_")}
    return subprocess.Popen(
        [sys.executable, "-m", "yuqing", "crawl", "forum", "--config", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=240)
    return proc.returncode, out, err


def stored(tmp: Path) -> list[Any]:
    store = LocalPostStore(tmp / "data" / "posts.db", tokenize)
    try:
        return [h.post for h in store.search(PostQuery(), limit=1000).hits]
    finally:
        store.close()


# 7 names only an exclusion; 3 and 8 carry the same text: whichever is crawled
# first is stored, the other grouped under it as a repost.
def sure(forum: Forum) -> list[int]:
    return [n for n in range(1, forum.threads + 1) if n not in (3, 7, 8)]


def kept_threads(forum: Forum, posts: list[Any]) -> tuple[list[int], int]:
    """(stored thread numbers, the one of 3/8 that was grouped) — checking the pair."""
    by_url = {p.url: p for p in posts}
    twins = [n for n in (3, 8) if forum.url(n) in by_url]
    assert len(twins) == 1, f"exactly one of the twins 3 and 8 is stored, got {twins}"
    assert by_url[forum.url(twins[0])].duplicates == 1
    return sorted([*sure(forum), twins[0]]), 11 - twins[0]


def test_progress_line_summary_and_no_refetch_of_stored_threads(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    forum = Forum(httpserver)
    config = write_config(tmp_path, httpserver)
    code, out, err = finish(start_crawl(config))
    assert code == 0, err[-3000:]
    # The progress line (plain on a pipe) and the summary table.
    assert "crawl forum done  fetched 11 · kept 8 · dropped 2 · errors 0" in out
    for row in (
        "fetched pages",
        "kept posts",
        "dropped: duplicate content",
        "dropped: no watched entity",
        "errors",
        "spooled (store down)",
    ):
        assert row in out, out
    assert sorted(forum.served) == list(range(1, THREADS + 1))
    posts = stored(tmp_path)
    kept, grouped = kept_threads(forum, posts)
    assert sorted(p.url for p in posts) == sorted(forum.url(n) for n in kept)

    # Second crawl: the list page again, but no page of a stored thread nor of
    # the grouped twin (known as a copy). Thread 7 was dropped, never stored:
    # it is fetched and dropped again.
    code, out, err = finish(start_crawl(config))
    assert code == 0, err[-3000:]
    assert forum.list_requests() == 2
    assert Counter(forum.served) == Counter({**{n: 1 for n in range(1, THREADS + 1)}, 7: 2})
    assert grouped not in kept
    assert "item pages not refetched (stored)" in out and "dropped: no watched entity" in out
    assert len(stored(tmp_path)) == len(kept)
    assert not (tmp_path / "data" / "jobs" / "forum").exists()  # finished: nothing to resume


def test_an_interrupted_crawl_resumes_and_fetches_each_thread_once(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    # More threads than Scrapy takes into its downloader at once (CONCURRENT_REQUESTS
    # 16): the rest wait in the scheduler's queue, which the JOBDIR keeps on disk.
    forum = Forum(httpserver, delay=0.1, threads=40)
    config = write_config(tmp_path, httpserver)
    proc = start_crawl(config)

    def interrupt(n: int) -> None:
        if len(forum.served) == 4:  # Ctrl-C half-way: Scrapy stops gracefully
            os.kill(proc.pid, signal.SIGINT)

    forum.on_thread = interrupt
    code, out, err = finish(proc)
    first = list(forum.served)
    assert 4 <= len(first) < forum.threads, ("the interrupt did not land mid-crawl", out)
    assert code == 3 and "crawl ended early: shutdown" in out, (out, err[-2000:])
    assert any((tmp_path / "data" / "jobs" / "forum").iterdir())  # the queue is kept

    forum.on_thread = None
    code, out, err = finish(start_crawl(config))
    assert code == 0, err[-3000:]
    # Every thread page fetched exactly once over both runs; nothing lost.
    assert sorted(forum.served) == list(range(1, forum.threads + 1)), forum.served
    posts = stored(tmp_path)
    kept, _ = kept_threads(forum, posts)
    assert sorted(p.url for p in posts) == sorted(forum.url(n) for n in kept)
    assert not (tmp_path / "data" / "jobs" / "forum").exists()  # finished: removed


def test_store_down_mid_crawl_every_post_arrives_exactly_once(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    forum = Forum(httpserver, delay=0.1)
    config = write_config(tmp_path, httpserver, store_batch_size=2)
    db = tmp_path / "data" / "posts.db"
    LocalPostStore(db, tokenize).count(PostQuery())  # the schema exists before the lock
    holder: dict[str, sqlite3.Connection] = {}

    def outage(n: int) -> None:
        # From the 5th thread on, another process-level writer holds the database
        # (a long migration, a stuck backup): every write waits out busy_timeout
        # and fails with StoreUnavailable.
        if len(forum.served) == 5 and "conn" not in holder:
            conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
            conn.execute("BEGIN EXCLUSIVE")
            holder["conn"] = conn

    forum.on_thread = outage
    code, out, err = finish(start_crawl(config))
    holder["conn"].execute("ROLLBACK")
    holder["conn"].close()
    assert code == 3 and "post store unavailable" in out, (out, err[-2000:])
    served_first = list(forum.served)

    spool = Spool(tmp_path / "data" / "spool")
    spooled = [
        post_id
        for path in spool.files()
        for post_id in (
            yaml.safe_load(line)["id"] for line in path.read_text("utf-8").splitlines() if line
        )
    ]
    assert spooled, "nothing was spooled: the outage did not hit a write"
    # Spooled in the order the threads were served (one request at a time).
    order = [post_id_from_url(forum.url(n)) for n in served_first]
    assert spooled == [i for i in order if i in set(spooled)]
    before = {p.id for p in stored(tmp_path)}
    assert not before & set(spooled)

    # The store is back: the next crawl replays the spool first, fetches nothing twice.
    forum.on_thread = None
    code, out, err = finish(start_crawl(config))
    assert code == 0, err[-3000:]
    assert "replayed from the spool" in out
    assert spool.pending() == 0
    posts = stored(tmp_path)
    ids = [p.id for p in posts]
    kept, grouped = kept_threads(forum, posts)
    assert len(ids) == len(set(ids)) == len(kept)
    assert set(ids) == {post_id_from_url(forum.url(n)) for n in kept}
    assert Counter(forum.served) == Counter({**{n: 1 for n in range(1, THREADS + 1)}, 7: 2})
    assert grouped not in kept


def test_elasticsearch_down_mid_crawl_every_post_arrives_exactly_once(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """The same with the Elasticsearch store: the noida-db server is stopped mid-crawl."""
    from storage.elastic import ElasticPostStore
    from tests.es_server import binary_path, noida_elasticsearch

    if binary_path() is None:
        pytest.skip("the noida-db package is not installed (pip install noida-db)")
    es_data = tmp_path / "es"
    server = noida_elasticsearch(es_data)
    url = server.__enter__()
    prefix = "yuqing-crawl-test"

    def es_config(es_url: str) -> Path:
        config = write_config(tmp_path, httpserver, store_batch_size=2)
        data = yaml.safe_load(config.read_text("utf-8"))
        data["storage"].update(
            posts_backend="elasticsearch",
            es_url=es_url,
            es_index_prefix=prefix,
            es_request_timeout_seconds=2,
        )
        config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        return config

    store = ElasticPostStore(url, tokenize, index_prefix=prefix, number_of_replicas=0)
    store.ensure_index()
    store.close()
    forum = Forum(httpserver, delay=0.1)
    stopped: list[bool] = []

    def outage(n: int) -> None:
        if len(forum.served) == 5 and not stopped:
            stopped.append(True)
            server.__exit__(None, None, None)  # SIGINT: the server saves and exits

    forum.on_thread = outage
    try:
        code, out, _ = finish(start_crawl(es_config(url)))
        assert stopped and code == 3 and "post store unavailable" in out, out
        spool = Spool(tmp_path / "data" / "spool")
        assert spool.pending() > 0

        with noida_elasticsearch(es_data) as again:  # back, on the data it saved
            forum.on_thread = None
            code, out, err = finish(start_crawl(es_config(again)))
            assert code == 0, err[-3000:]
            assert "replayed from the spool" in out and spool.pending() == 0
            es = ElasticPostStore(again, tokenize, index_prefix=prefix)
            try:
                posts = [h.post for h in es.search(PostQuery(), limit=1000).hits]
            finally:
                es.close()
    finally:
        if not stopped:
            server.__exit__(None, None, None)
    ids = [p.id for p in posts]
    kept, grouped = kept_threads(forum, posts)
    assert grouped not in kept
    assert len(ids) == len(set(ids)) == len(kept)
    assert set(ids) == {post_id_from_url(forum.url(n)) for n in kept}
    assert Counter(forum.served) == Counter({**{n: 1 for n in range(1, THREADS + 1)}, 7: 2})
