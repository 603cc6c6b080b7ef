"""话题与关键词: AppTest over the seeded stores, and the keyword/topic data it reads.

Expected numbers are computed from the seeded store (``PostStore.terms``,
``count``), never typed in by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import streamlit as st

from core.models import PostQuery
from core.vocab import TOPIC_LABELS_ZH, Topic
from dashboard.data import DashboardData, TimeWindow
from dashboard.insights import TREND_NEW
from dashboard.pages.topics import wordcloud_png
from nlp.segment import tokenize
from storage.local import LocalPostStore
from tests.dashboard.apptest import (
    OpenApp,
    everything,
    frame_with,
    frames_with,
    make_opener,
)
from tests.dashboard.seed import Seed

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def open_app(
    seed: Seed, store_paths: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OpenApp]:
    """Open a page over the seeded stores (see ``tests.dashboard.apptest.make_opener``)."""
    yield make_opener(store_paths, tmp_path, monkeypatch)
    st.cache_resource.clear()
    st.cache_data.clear()


def _topic_totals(seed: Seed, since: datetime, until: datetime) -> dict[str, int]:
    terms = seed.post_store.terms(PostQuery(since=since, until=until), "topic", size=20)
    return {TOPIC_LABELS_ZH[Topic(t.value)]: t.count for t in terms}


def test_topics_page_numbers_match_the_store(open_app: OpenApp, seed: Seed) -> None:
    at = open_app("topics")
    assert at.title[0].value == "话题与关键词"
    window = TimeWindow.last("7d")
    # Topic trend: one chart, and the totals under it equal the store's topic counts.
    assert len(at.get("vega_lite_chart")) == 1
    totals = _topic_totals(seed, window.since, window.until)
    assert totals  # the seed has analysed posts in the last 7 days
    caption = next(c.value for c in at.caption if c.value.startswith("合计："))
    for name, n in totals.items():
        assert f"{name} {n:,}" in caption
    # Keywords: a word cloud picture and a table equal to what the data module computes.
    assert len(at.get("image")) == 1
    table = frame_with(at, "权重")
    expected = DashboardData(seed.post_store, seed.state_store).period_keywords(
        window.since, window.until
    )
    assert list(table["关键词"]) == list(expected.keywords["word"])
    total_7d = seed.post_store.count(PostQuery(since=window.since, until=window.until))
    assert any(f"全部 {total_7d} 条帖子" in c.value for c in at.caption)
    # 帖子数 of a keyword = posts of the window that contain it (cross-checked with search).
    row = table[table["关键词"] == "挤兑"].iloc[0]
    assert row["帖子数"] == seed.post_store.count(
        PostQuery(text="挤兑", since=window.since, until=window.until)
    )


def test_the_bank_name_is_not_a_keyword_when_settings_name_it(
    open_app: OpenApp, seed: Seed
) -> None:
    without = frame_with(open_app("topics"), "权重")
    assert "澜海" in set(without["关键词"])  # every seeded post says 澜海银行
    at = open_app(
        "topics", config={"watchlist": {"bank": {"name": "澜海银行", "aliases": ["澜海"]}}}
    )
    words = set(frame_with(at, "权重")["关键词"])
    assert words and not {"澜海", "澜海银行"} & words


def test_compare_two_periods(open_app: OpenApp, seed: Seed) -> None:
    at = open_app("topics")
    today = seed.now.astimezone(SHANGHAI).date()
    old_day = (seed.now - timedelta(days=20)).astimezone(SHANGHAI).date()  # post 7: 贷款利率调整
    at.date_input(key="topics_period_a").set_value((old_day, old_day)).run()
    at.date_input(key="topics_period_b").set_value((today - timedelta(days=6), today)).run()
    assert not at.exception

    a_since, a_until = _days(old_day, old_day)
    b_since, b_until = _days(today - timedelta(days=6), today)
    count_a = seed.post_store.count(PostQuery(since=a_since, until=a_until))
    count_b = seed.post_store.count(PostQuery(since=b_since, until=b_until))
    assert count_a >= 1 and count_b >= 1
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["对比期帖子数"] == f"{count_a:,}"
    assert metrics["本期帖子数"] == f"{count_b:,}"

    shares = frame_with(at, "对比期帖子数")
    for name, n in _topic_totals(seed, a_since, a_until).items():
        assert shares.loc[shares["话题"] == name, "对比期帖子数"].item() == n
    for name, n in _topic_totals(seed, b_since, b_until).items():
        assert shares.loc[shares["话题"] == name, "本期帖子数"].item() == n
    loans = TOPIC_LABELS_ZH[Topic.LOANS]
    assert shares.loc[shares["话题"] == loans, "本期帖子数"].item() == 0

    # Rising terms of the later period, falling ones of the earlier (利率 was only in A).
    rising, falling, full = frames_with(at, "趋势")
    assert set(rising["趋势"]) <= {TREND_NEW, "上升"}
    assert rising["关键词"].iloc[0] == full["关键词"].iloc[0]  # the biggest rise leads
    assert "利率" in set(falling["关键词"])
    assert falling.loc[falling["关键词"] == "利率", "趋势"].item() == "消失"
    # A word's share in a period = posts containing it / posts of the period (from the store).
    run = full[full["关键词"] == "挤兑"].iloc[0]
    with_run = seed.post_store.count(PostQuery(text="挤兑", since=b_since, until=b_until))
    assert run["本期占比"] == f"{with_run / count_b:.1%}"
    assert run["对比期占比"] == "0.0%" and run["趋势"] == TREND_NEW


def _days(first: date, last: date) -> tuple[datetime, datetime]:
    return (
        datetime.combine(first, time.min, tzinfo=SHANGHAI),
        datetime.combine(last + timedelta(days=1), time.min, tzinfo=SHANGHAI),
    )


def test_empty_periods_say_no_data(open_app: OpenApp, tmp_path: Path) -> None:
    empty = tmp_path / "empty-posts.db"
    LocalPostStore(empty, tokenize).close()
    at = open_app("topics", posts_db=empty)
    infos = [i.value for i in at.info]
    assert "该时间范围内没有已分析的帖子，无话题走势。" in infos
    assert "该时间范围内没有帖子，无法提取关键词。" in infos
    assert "两个时段都没有帖子，无可对比的数据。" in infos
    assert not at.get("vega_lite_chart") and not at.get("image")
    assert not at.error


def test_a_down_post_store_is_an_error_not_an_empty_chart(open_app: OpenApp) -> None:
    at = open_app("topics", down="posts")
    assert len(at.error) == 1 and "post store" in at.error[0].value
    assert not at.get("vega_lite_chart") and not at.get("image") and not at.dataframe
    assert not at.info  # no "no data" message standing in for the outage


def test_hostile_post_text_stays_text(open_app: OpenApp) -> None:
    at = open_app("topics")
    words = set(frame_with(at, "权重")["关键词"])
    assert {"onerror", "img"} <= words  # from the seeded hostile post, as plain words
    for md in at.markdown:
        assert "<img" not in md.value and "onerror" not in md.value
    assert "<img src=x onerror=alert(1)>" not in everything(at)


def test_wordcloud_png_draws_chinese() -> None:
    png = wordcloud_png({"理财": 1.0, "挤兑": 0.6, "信用卡": 0.3})
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    try:
        wordcloud_png({})
    except ValueError as exc:
        assert "at least one word" in str(exc)
    else:
        raise AssertionError("an empty word cloud must be refused")


def test_period_keywords_sample_is_bounded(data: DashboardData, seed: Seed) -> None:
    since, until = seed.now - timedelta(days=7), seed.now
    full = data.period_keywords(since, until)
    sampled = data.period_keywords(since, until, sample=5)
    assert full.sampled_all and full.sampled_posts == full.total_posts
    assert sampled.total_posts == full.total_posts
    assert sampled.sampled_posts == 5 and not sampled.sampled_all
    assert int(sampled.keywords["posts"].max()) <= 5
    none = data.period_keywords(seed.now - timedelta(days=100), seed.now - timedelta(days=90))
    assert none.total_posts == 0 and none.keywords.empty and none.frequencies() == {}


def test_topic_trends_add_up_to_the_store(data: DashboardData, seed: Seed) -> None:
    since, until = seed.now - timedelta(days=7), seed.now
    trends = data.topic_trends(since, until, 6 * 3600)
    by_topic = trends.groupby("topic")["count"].sum().to_dict()
    terms = seed.post_store.terms(PostQuery(since=since, until=until), "topic", size=20)
    assert by_topic == {t.value: t.count for t in terms}
    buckets = trends["start"].nunique()
    assert len(trends) == buckets * len(by_topic)  # a full grid: quiet buckets are zeros


def test_a_very_long_post_counts_once_and_is_cut(data: DashboardData, seed: Seed) -> None:
    long_post = seed.posts[0].model_copy(
        update={
            "id": "dashlong00001",
            "url": "https://bbs.lanhai.example/t/long",
            "title": "长帖",
            "text": "澜海银行暴雷了" + "。" * 6000 + "澜海银行倒闭",
            "analysis": None,
        }
    )
    assert seed.post_store.upsert([long_post]).failed == 0
    kw = data.period_keywords(seed.now - timedelta(days=7), seed.now)
    words = set(kw.keywords["word"])
    assert "暴雷" in words  # from the start of the post
    assert "倒闭" not in words  # past the 5 000 characters read of one post
    assert kw.total_posts == seed.post_store.count(
        PostQuery(since=seed.now - timedelta(days=7), until=seed.now)
    )
