"""The demo scenario: validation, deterministic expansion, the clock, and what the web serves."""

from __future__ import annotations

import csv
import io
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
import yaml

from core.settings import load_settings
from nlp.mentions import MentionMatcher
from yuqing.demo.scenario import (
    DemoPost,
    ScenarioClock,
    ScenarioError,
    default_scenario_path,
    expand,
    load_scenario,
    parse_scenario,
)
from yuqing.demo.server import DemoWeb

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "tests" / "fixtures" / "scenarios" / "small.yaml"
START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def _text(post: DemoPost) -> str:
    extra = f"\n{post.complaint.target}" if post.complaint else ""
    return f"{post.title}\n{post.text}{extra}"


# -- the file ----------------------------------------------------------------------------


def test_the_default_scenario_validates_and_has_every_site() -> None:
    scenario = load_scenario(default_scenario_path())
    world = expand(scenario, START)
    sites = Counter(p.site for p in world.posts)
    assert set(sites) == {"forum", "news", "complaint"}
    assert len(world.posts) > 250  # a week of background plus the script
    assert any(t.product == "澜海稳盈3号" and t.offset_minutes > 0 for t in world.tickets)


def test_expansion_is_deterministic_and_depends_on_the_seed() -> None:
    scenario = load_scenario(default_scenario_path())
    a, b = expand(scenario, START), expand(scenario, START)
    assert a.posts == b.posts and a.tickets == b.tickets
    data = yaml.safe_load(default_scenario_path().read_text(encoding="utf-8"))
    data["background"]["seed"] += 1
    other = expand(parse_scenario(data), START)
    assert [p.text for p in other.posts] != [p.text for p in a.posts]


def test_background_texts_are_unique_and_ids_follow_publish_order() -> None:
    world = expand(load_scenario(default_scenario_path()), START)
    background = [p.text for p in world.posts if not p.scripted]
    assert len(background) == len(set(background))
    for site, posts in world.by_site.items():
        offsets = [p.offset_minutes for p in posts]
        assert offsets == sorted(offsets), site
        ids = [p.id for p in posts]
        assert ids == list(range(ids[0], ids[0] + len(ids))), site
    assert all(p.offset_minutes < 0 for p in world.posts if not p.scripted)


def test_the_crisis_is_a_volume_spike_for_the_demo_rule() -> None:
    """In one 30-minute window: ≥ 8 mentions and ≥ 3× the mean of the 48 windows before."""
    settings = load_settings(ROOT / "config" / "demo.yaml")
    rule = settings.rules[0]
    matcher = MentionMatcher(settings.watchlist)
    world = expand(load_scenario(default_scenario_path()), START)
    mentions = [p.offset_minutes for p in world.posts if matcher.match(_text(p))]
    window = rule.window_minutes
    current = sum(1 for o in mentions if 0 <= o < window)
    baseline = sum(1 for o in mentions if -window * rule.baseline_windows <= o < 0)
    mean = baseline / rule.baseline_windows
    assert current >= rule.min_count
    assert current >= rule.ratio * max(mean, 1e-9)
    # ~1–3 mentions per hour on ordinary days
    assert 1.0 <= baseline / (window * rule.baseline_windows / 60) <= 3.0


def test_exclusions_unrelated_posts_and_reposts_are_in_the_script() -> None:
    settings = load_settings(ROOT / "config" / "demo.yaml")
    matcher = MentionMatcher(settings.watchlist)
    scripted = [
        p for p in expand(load_scenario(default_scenario_path()), START).posts if p.scripted
    ]
    assert any("澜海公园" in p.text and not matcher.match(_text(p)) for p in scripted)
    assert any(not matcher.match(_text(p)) and "澜海" not in p.text for p in scripted)
    texts = Counter(p.text for p in scripted)
    assert sum(n - 1 for n in texts.values()) >= 3  # exact reposts
    assert any("瀾海銀行" in p.text for p in scripted)  # traditional characters


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d["posts"][0].update(site="blog"), "posts.0.site"),
        (lambda d: d["posts"][0].update(offset_minutes="soon"), "posts.0.offset_minutes"),
        (lambda d: d["posts"][-1].pop("complaint"), "needs a 'complaint' block"),
        (lambda d: d["background"].update(hourly_profile=[1.0] * 23), "background.hourly_profile"),
        (
            lambda d: d["background"]["templates"][0].update(title="{nope}"),
            "templates.0 uses undeclared slot(s) ['nope']",
        ),
        (lambda d: d.update(colour="red"), "colour"),
        (lambda d: d.update(timezone="Mars/Olympus"), "unknown time zone"),
    ],
)
def test_a_bad_scenario_names_the_field(tmp_path: Path, change: object, words: str) -> None:
    data = yaml.safe_load(SMALL.read_text(encoding="utf-8"))
    change(data)  # type: ignore[operator]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value)
    assert words in str(info.value)


def test_a_missing_or_broken_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed", encoding="utf-8")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(broken)


# -- the clock -------------------------------------------------------------------------------


def test_speed_compresses_the_future_but_not_the_history() -> None:
    clock = ScenarioClock(start=START, speed=10)
    assert clock.published_at(-60) == START - timedelta(minutes=60)
    assert clock.published_at(30) == START + timedelta(minutes=3)
    assert clock.is_published(30, START + timedelta(minutes=3))
    assert not clock.is_published(30, START + timedelta(minutes=2, seconds=59))
    with pytest.raises(ValueError):
        ScenarioClock(start=START, speed=0)


# -- the web -----------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode("utf-8")


@pytest.fixture
def web() -> DemoWeb:
    clock = FakeClock(START)
    demo = DemoWeb(load_scenario(SMALL), port=0, speed=60, start=START, now=clock)
    demo.start()
    demo.fake_clock = clock  # type: ignore[attr-defined]
    yield demo
    demo.stop()


def test_future_posts_and_tickets_are_served_only_once_published(web: DemoWeb) -> None:
    future = next(p for p in web.world.by_site["forum"] if p.offset_minutes > 0)
    page_url = f"{web.url}/forum/thread/{future.id}.html"
    forum = "".join(get(f"{web.url}/forum/?page={n}")[2] for n in (1, 2, 3))
    assert future.title not in forum
    assert get(page_url)[0] == 404
    assert "未来的新闻" not in get(f"{web.url}/news/rss.xml")[2]
    assert "未来的工单" not in get(f"{web.url}/tickets.csv")[2]

    # +600 scenario minutes at speed 60 is 10 real minutes after the start.
    web.fake_clock.now = START + timedelta(minutes=10)  # type: ignore[attr-defined]
    status, _, body = get(page_url)
    assert status == 200 and future.title in body
    assert future.title in get(f"{web.url}/forum/")[2]
    assert "未来的新闻" in get(f"{web.url}/news/rss.xml")[2]
    assert "未来的工单" in get(f"{web.url}/tickets.csv")[2]


def test_pages_are_utf8_html_with_site_chrome_and_local_times(web: DemoWeb) -> None:
    post = next(p for p in web.world.by_site["forum"] if p.title == "澜海银行滨江支行的服务不错")
    status, ctype, body = get(f"{web.url}/forum/thread/{post.id}.html")
    assert status == 200 and ctype == "text/html; charset=utf-8"
    local = (START + timedelta(minutes=-200)).astimezone(web.scenario.zone)
    assert f"发表于 {local:%Y-%m-%d %H:%M}" in body
    for chrome in ("相关推荐", "版权所有", "<nav", "分享到", "粉丝 1.2万"):
        assert chrome in body


def test_list_pages_paginate_newest_first(web: DemoWeb) -> None:
    visible = web.visible_posts("forum")
    first = get(f"{web.url}/forum/")[2]
    last = get(f"{web.url}/forum/?page=2")[2]
    assert 'class="next" href="/forum/?page=2"' in first
    assert 'class="next"' not in last
    assert first.index(visible[0].title) < first.index(visible[1].title)
    assert visible[-1].title in last


def test_complaint_pages_show_the_complaint_header(web: DemoWeb) -> None:
    post = next(p for p in web.world.by_site["complaint"] if p.title == "理财亏损要求赔偿")
    body = get(f"{web.url}/complaints/{post.id}.html")[2]
    for label in (
        "投诉对象：",
        "投诉问题：",
        "投诉要求：",
        "状态：",
        "集体投诉人数：",
        "涉诉金额：",
    ):
        assert label in body
    assert "澜海银行滨江支行" in body


def test_rss_is_valid_with_rfc822_dates_in_local_time(web: DemoWeb) -> None:
    status, ctype, body = get(f"{web.url}/news/rss.xml")
    assert status == 200 and ctype.startswith("application/rss+xml")
    feed = feedparser.parse(body.encode("utf-8"))
    assert not feed.bozo and feed.entries
    titles = [e.title for e in feed.entries]
    assert "澜海稳盈3号跌破净值" in titles
    entry = feed.entries[titles.index("澜海稳盈3号跌破净值")]
    assert entry.published.endswith("+0800")
    assert entry.link.startswith(web.url + "/news/")


def test_tickets_csv_has_the_export_columns(web: DemoWeb) -> None:
    status, ctype, body = get(f"{web.url}/tickets.csv")
    assert status == 200 and ctype.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert list(rows[0]) == [
        "ticket_id",
        "created_at",
        "channel",
        "branch",
        "product",
        "category",
        "priority",
        "status",
        "summary",
        "customer_ref",
    ]
    surge = [r for r in rows if r["product"] == "澜海稳盈3号"]
    assert len(surge) == 3
    created = datetime.fromisoformat(surge[0]["created_at"])
    assert surge[0]["created_at"].endswith("+08:00")
    assert created == (START - timedelta(minutes=5)).replace(microsecond=0)
    assert all("****" in r["customer_ref"] for r in rows)


def test_robots_txt_allows_the_sites_and_disallows_admin(web: DemoWeb) -> None:
    body = get(f"{web.url}/robots.txt")[2]
    assert "Disallow: /admin/" in body
    assert "Disallow: /forum/\n" not in body
    assert get(f"{web.url}/admin/")[0] == 403
    index = get(f"{web.url}/index.html")[2]
    for link in ("/forum/", "/news/", "/news/rss.xml", "/complaints/", "/tickets.csv"):
        assert f'href="{link}"' in index


def test_start_reports_the_bound_port_and_stop_releases_it() -> None:
    demo = DemoWeb(load_scenario(SMALL), port=0).start()
    try:
        assert demo.port != 0
        assert get(f"{demo.url}/healthz")[2] == "ok\n"
    finally:
        demo.stop()
        demo.stop()  # idempotent
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{demo.url}/healthz", timeout=2)
