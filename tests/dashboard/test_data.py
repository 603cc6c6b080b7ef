"""DashboardData over real local stores: numbers equal what the stores say; outages raise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.models import PostQuery
from core.vocab import Grade, IncidentStatus, Sentiment, Topic
from dashboard.data import (
    ACTIVE_STATUSES,
    POST_STORE,
    STATE_STORE,
    UNANALYSED,
    DashboardData,
    DataUnavailable,
    TimeWindow,
    safe_url,
)
from tests.dashboard.fakes import DownPostStore, DownStateStore
from tests.dashboard.seed import FILLER_COUNT, HOSTILE_TEXT, RAW_PHONE, SEARCH_WORD, Seed


def _window(seed: Seed, preset: str) -> TimeWindow:
    return TimeWindow.last(preset, now=seed.now)


# ---------------------------------------------------------------------- overview


def test_kpis_equal_the_store(data: DashboardData, seed: Seed) -> None:
    w = _window(seed, "24h")
    kpis = data.kpis(w.since, w.until)
    q = PostQuery(since=w.since, until=w.until)
    assert kpis.total_posts == seed.post_store.count(q) == 5
    assert kpis.negative_posts == seed.post_store.count(
        q.model_copy(update={"sentiments": [Sentiment.NEGATIVE]})
    )
    assert kpis.negative_posts == 3
    assert kpis.negative_share == pytest.approx(3 / 5)
    assert kpis.critical_posts == 1
    # The resolved incident is not open; the open one is grade II.
    assert kpis.open_incidents == 1
    assert kpis.open_by_grade == {Grade.IV: 0, Grade.III: 0, Grade.II: 1, Grade.I: 0}


def test_negative_share_of_no_posts_is_unknown_not_zero(data: DashboardData, seed: Seed) -> None:
    far = seed.now - timedelta(days=400)
    kpis = data.kpis(far, far + timedelta(hours=1))
    assert kpis.total_posts == 0
    assert kpis.negative_share is None


@pytest.mark.parametrize("preset", ["24h", "7d", "30d"])
def test_volume_over_time_adds_up_to_the_store_count(
    data: DashboardData, seed: Seed, preset: str
) -> None:
    w = _window(seed, preset)
    frame = data.volume_over_time(w.since, w.until, w.bucket_seconds)
    q = PostQuery(since=w.since, until=w.until)
    assert frame["count"].sum() == seed.post_store.count(q)
    for sentiment in Sentiment:
        got = frame.loc[frame["sentiment"] == sentiment.value, "count"].sum()
        assert got == seed.post_store.count(q.model_copy(update={"sentiments": [sentiment]}))
    # The one post without analysis is counted, as 未分析.
    if preset == "24h":
        assert frame.loc[frame["sentiment"] == UNANALYSED, "count"].sum() == 1
        assert set(frame.loc[frame["sentiment"] == UNANALYSED, "sentiment_zh"]) == {"未分析"}


def test_volume_over_time_has_every_bucket_in_local_time(data: DashboardData, seed: Seed) -> None:
    w = _window(seed, "30d")
    frame = data.volume_over_time(w.since, w.until, w.bucket_seconds)
    starts = sorted(set(frame["local_time"]))
    # 30 days of day buckets (31 when the window starts mid-day), each a local midnight.
    assert len(starts) in (30, 31)
    assert all((t.hour, t.minute) == (0, 0) for t in starts)
    assert all(str(t.tzinfo) == "Asia/Shanghai" for t in starts)
    # Every bucket has a row per sentiment, zeros included.
    assert (frame.groupby("local_time")["sentiment"].nunique() >= 3).all()


def test_topic_and_source_mix_equal_store_terms(data: DashboardData, seed: Seed) -> None:
    w = _window(seed, "7d")
    q = PostQuery(since=w.since, until=w.until)
    topics = data.topic_mix(w.since, w.until)
    expected = {t.value: t.count for t in seed.post_store.terms(q, "topic", size=20)}
    assert dict(zip(topics["topic"], topics["count"], strict=True)) == expected
    assert expected["other"] == FILLER_COUNT
    assert "理财/基金/代销" in set(topics["topic_zh"])
    sources = data.source_mix(w.since, w.until)
    assert dict(zip(sources["source"], sources["count"], strict=True)) == {
        t.value: t.count for t in seed.post_store.terms(q, "source")
    }
    assert data.sources() == ["complaints", "forum", "news"]


# ---------------------------------------------------------------------- feed


def test_feed_search_finds_the_post_and_masks_pii(data: DashboardData, seed: Seed) -> None:
    page = data.feed(text=SEARCH_WORD)
    assert [item.id for item in page.items] == [seed.loss_post.id]
    assert page.total == 1
    item = page.items[0]
    assert item.topic_zh == "理财/基金/代销"
    assert item.sentiment_zh == "负面"
    assert item.local_time.utcoffset() == timedelta(hours=8)
    assert item.url == seed.loss_post.url

    hostile = next(i for i in data.feed(page_size=50).items if i.id == seed.hostile_post.id)
    assert RAW_PHONE not in hostile.text
    assert "138****5678" in hostile.text
    # Everything else of the hostile text is kept verbatim (the page shows it as text).
    assert hostile.text == HOSTILE_TEXT.replace(RAW_PHONE, "138****5678")
    assert hostile.url is None  # a javascript: URL never becomes a link


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"理财', 1),  # an unbalanced quote is just punctuation
        ("理财*", 1),
        ("理财 OR 1=1", 0),  # OR is a word that must appear, not an operator
        ("NEAR(理财", 0),
        ("title:理财", 0),
        ("  ", None),  # blank: no text filter
    ],
)
def test_feed_text_is_words_never_syntax(
    data: DashboardData, seed: Seed, text: str, expected: int | None
) -> None:
    page = data.feed(text=text)
    assert page.total == (len(seed.posts) if expected is None else expected)


def test_feed_pages_with_the_cursor(data: DashboardData, seed: Seed) -> None:
    w = _window(seed, "7d")
    seen: list[str] = []
    cursor = None
    while True:
        page = data.feed(since=w.since, until=w.until, cursor=cursor, page_size=10)
        seen.extend(item.id for item in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert page.total == seed.post_store.count(PostQuery(since=w.since, until=w.until))
    assert len(seen) == len(set(seen)) == page.total == 5 + 1 + FILLER_COUNT


def test_feed_filters(data: DashboardData, seed: Seed) -> None:
    assert data.feed(sources=["news"], page_size=50).total == 3
    assert data.feed(sentiments=[Sentiment.POSITIVE]).total == 1
    assert data.feed(topics=[Topic.LIQUIDITY_RUMOR]).items[0].critical is True
    assert data.feed(min_risk=0.5).total == 2
    assert data.feed(min_risk=0.0, sources=[], topics=[]).total == len(seed.posts)


# ---------------------------------------------------------------------- incidents


def test_incidents_list_and_filter(data: DashboardData, seed: Seed) -> None:
    active = data.incidents(ACTIVE_STATUSES)
    assert list(active["id"]) == [seed.incident.id]
    row = active.iloc[0]
    assert row["grade_label"] == "II 重大"
    assert row["grade_color"] == "orange"
    assert row["status_zh"] == "待处理"
    everything = data.incidents()
    assert set(everything["id"]) == {seed.incident.id, seed.resolved.id}
    assert list(data.incidents([IncidentStatus.RESOLVED])["id"]) == [seed.resolved.id]


def test_incident_detail(data: DashboardData, seed: Seed) -> None:
    assert seed.incident.id is not None
    detail = data.incident_detail(seed.incident.id)
    assert detail is not None
    assert detail.incident.title == seed.incident.title
    assert {p.id for p in detail.posts} == {seed.loss_post.id, seed.hostile_post.id}
    assert detail.posts_missing == 1
    assert all(RAW_PHONE not in p.text for p in detail.posts)
    assert list(detail.timeline["event"]) == ["事件开启", "告警"]
    assert detail.timeline.iloc[1]["detail"] == "理财话题帖子数激增"
    assert data.incident_detail(987654) is None


def test_acknowledge_then_resolve(data: DashboardData, seed: Seed) -> None:
    incident_id = seed.incident.id
    assert incident_id is not None
    with pytest.raises(ValueError, match="操作人"):
        data.acknowledge(incident_id, "  ")
    data.acknowledge(incident_id, "analyst", "已通知分行")
    stored = seed.state_store.get_incident(incident_id)
    assert stored is not None and stored.status is IncidentStatus.ACKNOWLEDGED
    detail = data.incident_detail(incident_id)
    assert detail is not None
    assert "确认" in set(detail.timeline["event"])
    data.resolve(incident_id, "head-office")
    stored = seed.state_store.get_incident(incident_id)
    assert stored is not None and stored.status is IncidentStatus.RESOLVED
    assert data.kpis(seed.now - timedelta(hours=1), seed.now).open_incidents == 0


def test_incident_url() -> None:
    data = DashboardData(DownPostStore(), DownStateStore(), public_url="https://yq.example/")
    assert data.incident_url(7) == "https://yq.example/incidents?incident=7"


# ---------------------------------------------------------------------- outages


def test_post_store_outage_raises_naming_it(seed: Seed) -> None:
    data = DashboardData(DownPostStore(), seed.state_store)
    now = seed.now
    calls = [
        lambda: data.kpis(now - timedelta(hours=24), now),
        lambda: data.volume_over_time(now - timedelta(hours=24), now, 3600),
        lambda: data.topic_mix(now - timedelta(hours=24), now),
        lambda: data.source_mix(now - timedelta(hours=24), now),
        lambda: data.sources(),
        lambda: data.feed(text="理财"),
        lambda: data.incident_detail(seed.incident.id or 0),
    ]
    for call in calls:
        with pytest.raises(DataUnavailable) as err:
            call()
        assert err.value.store == POST_STORE
        assert "simulated outage" in err.value.detail
    # Incidents live in the state store, which is up: they still show.
    assert len(data.incidents()) == 2


def test_state_store_outage_raises_naming_it(seed: Seed) -> None:
    data = DashboardData(seed.post_store, DownStateStore())
    now = seed.now
    calls = [
        lambda: data.kpis(now - timedelta(hours=24), now),
        lambda: data.incidents(),
        lambda: data.incident_detail(1),
        lambda: data.acknowledge(1, "analyst"),
        lambda: data.resolve(1, "analyst"),
    ]
    for call in calls:
        with pytest.raises(DataUnavailable) as err:
            call()
        assert err.value.store == STATE_STORE
    # Posts live in the post store, which is up.
    assert data.feed().total == len(seed.posts)


# ---------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://bbs.lanhai.example/t/1", "https://bbs.lanhai.example/t/1"),
        ("http://news.example/a?b=1", "http://news.example/a?b=1"),
        ("javascript:alert(1)", None),
        ("JavaScript:alert(1)", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("//evil.example/x", None),
        ("", None),
        (None, None),
    ],
)
def test_safe_url(url: str | None, expected: str | None) -> None:
    assert safe_url(url) == expected


def test_time_window_presets() -> None:
    now = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
    w = TimeWindow.last("7d", now=now)
    assert (w.since, w.until, w.bucket_seconds) == (now - timedelta(days=7), now, 6 * 3600)
    with pytest.raises(KeyError):
        TimeWindow.last("1y", now=now)


def test_audit_appends_to_the_state_store_and_names_an_outage(
    data: DashboardData, seed: Seed
) -> None:
    data.audit(actor="ana", action="login", target="dashboard", detail="role=analyst")
    entry = seed.state_store.list_audit(target="dashboard")[0]
    assert (entry.actor, entry.action, entry.detail) == ("ana", "login", "role=analyst")
    down = DashboardData(seed.post_store, DownStateStore())
    with pytest.raises(DataUnavailable, match="state store"):
        down.audit(actor="ana", action="login", target="dashboard")
