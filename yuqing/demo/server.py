"""The demo web: a forum, a news site with RSS, a complaint platform and a ticket export.

``DemoWeb(scenario).start()`` serves the scenario on 127.0.0.1 from a
background thread; ``.url`` is the bound base URL (port 0 picks a free one),
``.stop()`` shuts it down. Each request looks at the clock: a post whose
publish time has not come yet is not served anywhere (not in lists, not in
RSS, 404 on its page), so a crawler sees the scripted crisis unfold.

Routes::

    /  /index.html             links to the three sites
    /robots.txt                allows everything but /admin/ (and login/new pages)
    /forum/?page=N             thread list, newest first
    /forum/thread/<id>.html    a thread: first post + replies
    /news/?page=N              article list
    /news/<id>.html            an article
    /news/rss.xml              RSS 2.0, newest ``rss_limit`` articles
    /complaints/?page=N        complaint list
    /complaints/<id>.html      a complaint with 投诉对象/投诉问题/投诉要求/状态/集体投诉人数
    /tickets.csv               complaint tickets created so far
    /healthz                   "ok" (for scripts waiting on the server)
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from yuqing.demo import pages
from yuqing.demo.scenario import (
    DemoPost,
    DemoTicket,
    Scenario,
    ScenarioClock,
    Site,
    World,
    expand,
)

log = logging.getLogger(__name__)

_LIST_ROUTES: dict[str, Site] = {"/forum/": "forum", "/news/": "news", "/complaints/": "complaint"}
_DETAIL_ROUTES: list[tuple[re.Pattern[str], Site]] = [
    (re.compile(r"^/forum/thread/(\d+)\.html$"), "forum"),
    (re.compile(r"^/news/(\d+)\.html$"), "news"),
    (re.compile(r"^/complaints/(\d+)\.html$"), "complaint"),
]
_HOT = 6  # entries in the 相关推荐 sidebar


class DemoWeb:
    """The demo web for one scenario.

    ``start`` defaults to the moment :meth:`start` is called (offsets are
    relative to it); pass an aware datetime to pin it (tests). ``now`` is the
    clock used per request (tests may pass a fake one). ``speed`` is scenario
    minutes per real minute for the future part of the scenario.
    """

    def __init__(
        self,
        scenario: Scenario,
        host: str = "127.0.0.1",
        port: int = 8765,
        speed: float = 1.0,
        *,
        start: datetime | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.scenario = scenario
        self.host = host
        self.port = port
        self.speed = speed
        self._start = start
        self._now = now or (lambda: datetime.now(UTC))
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._world: World | None = None
        self._clock: ScenarioClock | None = None
        if start is not None:
            self._prepare(start)

    # -- lifecycle -----------------------------------------------------------

    def _prepare(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._clock = ScenarioClock(start=start.astimezone(UTC), speed=self.speed)
        self._world = expand(self.scenario, self._clock.start)

    def start(self) -> DemoWeb:
        """Bind and serve in a daemon thread; returns ``self``.

        Raises ``OSError`` if the port is taken.
        """
        if self._server is not None:
            raise RuntimeError("DemoWeb is already running")
        if self._world is None:
            self._prepare(self._now())
        self._server = ThreadingHTTPServer((self.host, self.port), _make_handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-web", daemon=True
        )
        self._thread.start()
        log.info(
            "demo web serving scenario %r at %s (start %s, speed %g)",
            self.scenario.name,
            self.url,
            self.clock.start.isoformat(),
            self.speed,
        )
        return self

    def stop(self) -> None:
        """Stop serving and release the port. Safe to call twice."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> DemoWeb:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:8765``."""
        return f"http://{self.host}:{self.port}"

    @property
    def clock(self) -> ScenarioClock:
        if self._clock is None:
            raise RuntimeError("DemoWeb has no start time yet: call start()")
        return self._clock

    @property
    def world(self) -> World:
        if self._world is None:
            raise RuntimeError("DemoWeb has no start time yet: call start()")
        return self._world

    def published_at(self, post: DemoPost) -> datetime:
        """The UTC publish time of ``post`` on this run."""
        return self.clock.published_at(post.offset_minutes)

    def visible_posts(self, site: Site, now: datetime | None = None) -> list[DemoPost]:
        """Posts of ``site`` published by ``now``, newest first."""
        now = now or self._now()
        clock = self.clock
        posts = [p for p in self.world.by_site[site] if clock.is_published(p.offset_minutes, now)]
        posts.reverse()
        return posts

    def visible_tickets(self, now: datetime | None = None) -> list[DemoTicket]:
        """Tickets created by ``now``, oldest first."""
        now = now or self._now()
        clock = self.clock
        return [t for t in self.world.tickets if clock.is_published(t.offset_minutes, now)]

    def now(self) -> datetime:
        return self._now()


def _make_handler(web: DemoWeb) -> type[BaseHTTPRequestHandler]:
    class Handler(_DemoHandler):
        demo = web

    return Handler


class _DemoHandler(BaseHTTPRequestHandler):
    demo: DemoWeb
    server_version = "DemoWeb/1.0"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        # The stdlib writes every request to stderr; route it through logging instead.
        log.debug("%s - %s", self.address_string(), format % args)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    # -- routing ---------------------------------------------------------------

    def _dispatch(self, *, head: bool) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        query = parse_qs(parts.query)
        web = self.demo
        now = web.now()
        zone = web.scenario.zone
        try:
            if path in ("/", "/index.html"):
                return self._send(200, "text/html", pages.index_page(self._base_url()), head)
            if path == "/robots.txt":
                return self._send(200, "text/plain", pages.robots_txt(), head)
            if path == "/healthz":
                return self._send(200, "text/plain", "ok\n", head)
            if path == "/tickets.csv":
                tickets = web.visible_tickets(now)
                created = {t.ticket_id: web.clock.published_at(t.offset_minutes) for t in tickets}
                return self._send(200, "text/csv", pages.tickets_csv(tickets, created, zone), head)
            if path == "/news/rss.xml":
                posts = web.visible_posts("news", now)[: web.scenario.rss_limit]
                when = {p.id: web.published_at(p) for p in posts}
                body = pages.news_rss(posts, self._base_url(), when, zone, now)
                return self._send(200, "application/rss+xml", body, head)
            if path.startswith("/admin"):
                return self._send(403, "text/html", pages.not_found_page("禁止访问"), head)
            if path in _LIST_ROUTES or path.rstrip("/") + "/" in _LIST_ROUTES:
                site = _LIST_ROUTES[path.rstrip("/") + "/"]
                return self._list(site, query, now, head)
            for pattern, site in _DETAIL_ROUTES:
                m = pattern.match(path)
                if m:
                    return self._detail(site, int(m.group(1)), now, head)
            return self._send(404, "text/html", pages.not_found_page("页面不存在"), head)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("client went away during %s", path)

    def _list(self, site: Site, query: dict[str, list[str]], now: datetime, head: bool) -> None:
        web = self.demo
        try:
            page = max(1, int(query.get("page", ["1"])[0]))
        except ValueError:
            page = 1
        posts = web.visible_posts(site, now)
        size = web.scenario.page_size
        pages_total = max(1, math.ceil(len(posts) / size))
        chunk = posts[(page - 1) * size : page * size]
        when = {p.id: web.published_at(p) for p in chunk}
        hot = _hot(posts)
        zone = web.scenario.zone
        render = {
            "forum": pages.forum_list,
            "news": pages.news_list,
            "complaint": pages.complaint_list,
        }[site]
        self._send(200, "text/html", render(chunk, page, pages_total, zone, when, hot), head)

    def _detail(self, site: Site, post_id: int, now: datetime, head: bool) -> None:
        web = self.demo
        post = web.world.get(site, post_id)
        if post is None or not web.clock.is_published(post.offset_minutes, now):
            # Not yet published is indistinguishable from never existed.
            self._send(404, "text/html", pages.not_found_page("帖子不存在或已被删除"), head)
            return
        visible = web.visible_posts(site, now)
        hot = [p for p in _hot(visible, _HOT + 1) if p.id != post.id][:_HOT]
        zone = web.scenario.zone
        when = web.published_at(post)
        render = {
            "forum": pages.forum_thread,
            "news": pages.news_article,
            "complaint": pages.complaint_detail,
        }[site]
        self._send(200, "text/html", render(post, zone, when, hot), head)

    # -- helpers -----------------------------------------------------------------

    def _base_url(self) -> str:
        host = self.headers.get("Host") or f"{self.demo.host}:{self.demo.port}"
        return f"http://{host}"

    def _send(self, status: int, ctype: str, body: str, head: bool) -> None:
        data = body.encode("utf-8")
        self.send_response(HTTPStatus(status))
        self.send_header("Content-Type", f"{ctype}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(data)


def _hot(posts: list[DemoPost], n: int = _HOT) -> list[DemoPost]:
    """The sidebar: the most-liked of the newest posts (like a real 相关推荐 box)."""
    recent = posts[:50]
    return sorted(recent, key=lambda p: (-p.likes, -p.id))[:n]
