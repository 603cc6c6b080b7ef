"""A real crawl of a site that blocks us: the run is not ok and says "blocked".

pytest-httpserver plays the site: HTTP 403 on the forum, 418 on the news
feed, a captcha page (HTTP 200) on the complaint list. Each crawl runs
``run_crawl`` in a child process, as in ``test_crawl_demo``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.integration.test_crawl_demo import crawl, prepare_stores, write_config

pytestmark = pytest.mark.slow

CAPTCHA = """<html><head><meta charset="utf-8"><title>安全验证</title></head>
<body><p>访问过于频繁，请完成滑动验证后继续。</p></body></html>"""


def test_403_418_and_a_captcha_page_are_reported_as_blocked(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/forum/").respond_with_data("Forbidden", status=403)
    httpserver.expect_request("/news/rss.xml").respond_with_data("I'm a teapot", status=418)
    httpserver.expect_request("/complaints/").respond_with_data(
        CAPTCHA, content_type="text/html; charset=utf-8"
    )
    base = httpserver.url_for("/").rstrip("/")
    config = write_config(tmp_path / "config.yaml", base, tmp_path / "data")
    prepare_stores(tmp_path / "data")
    runs = crawl(config, "demo_forum", "demo_news", "demo_complaints")
    forum, news, complaints = runs["demo_forum"], runs["demo_news"], runs["demo_complaints"]
    assert not forum.ok and "blocked by the site" in forum.message and "HTTP 403" in forum.message
    assert not news.ok and "blocked by the site" in news.message and "HTTP 418" in news.message
    assert not complaints.ok and "blocked by the site" in complaints.message
    assert "captcha or anti-bot page" in complaints.message
    assert all(r.kept == 0 for r in runs.values())
