"""The PostStore contract: every adapter gives the same answers to the same inputs.

Written against ``core.ports.PostStore`` only (the ``post_store`` fixture runs it
for each adapter). Data: the fictional 澜海银行, its branches and customers.
Times are chosen around Asia/Shanghai midnights so that day buckets aligned to
local time and to UTC differ.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from core.errors import PermanentStoreError, QueryError, StoreUnavailable
from core.models import Analysis, Post, PostQuery, Signal, TermCount
from core.ports import ContentIndex, PostStore, Tokenizer
from core.vocab import Platform, Sentiment, Topic
from storage.local import LocalPostStore

SH = timezone(timedelta(hours=8))
BANK = "澜海银行"


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    """An Asia/Shanghai wall-clock time, as UTC."""
    return datetime(y, m, d, hh, mm, tzinfo=SH).astimezone(UTC)


def make_post(
    pid: str,
    text: str,
    published_at: datetime,
    *,
    source: str = "lanhai_forum",
    platform: Platform = Platform.FORUM,
    title: str = "",
    author: str | None = None,
    sentiment: Sentiment | None = Sentiment.NEGATIVE,
    topic: Topic = Topic.OTHER,
    risk: float = 0.5,
    signals: tuple[str, ...] = (),
    critical: bool = False,
    entities: tuple[str, ...] = (BANK,),
) -> Post:
    analysis = None
    if sentiment is not None:
        analysis = Analysis(
            sentiment=sentiment,
            sentiment_score=0.2 if sentiment is Sentiment.NEGATIVE else 0.7,
            topic=topic,
            topic_confidence=0.9,
            signals=[Signal(name=s, triggers=["触发词"], critical=critical) for s in signals],
            risk_score=risk,
            critical=critical,
            keywords=["澜海"],
            entities=list(entities),
            masked_text=text,
        )
    return Post(
        id=f"post-{pid:0>8}",
        url=f"https://demo.example/{source}/{pid}",
        source=source,
        platform=platform,
        title=title,
        text=text,
        author=author,
        published_at=published_at,
        crawled_at=datetime(2025, 3, 14, tzinfo=UTC),
        content_hash=f"hash-{pid}",
        matched_entities=[BANK],
        analysis=analysis,
    )


POSTS = [
    make_post(
        "wm1",
        "澜海银行东湖支行代销的稳盈理财到期亏损，张先生等十多位客户集体投诉",
        local(2025, 3, 10, 1, 0),
        title="稳盈理财亏损",
        author="理财小白",
        topic=Topic.WEALTH_MANAGEMENT,
        risk=0.8,
        signals=("collective_action",),
        entities=(BANK, "东湖支行"),
    ),
    make_post(
        "cc",
        "澜海银行信用卡年费乱收，客服电话一直打不通",
        local(2025, 3, 11, 2, 0),
        source="caijing_news",
        platform=Platform.NEWS,
        author="财经观察",
        topic=Topic.CREDIT_CARD,
        risk=0.4,
    ),
    make_post(
        "app",
        "澜海银行手机银行APP登录失败，转账一直转圈",
        local(2025, 3, 11, 15, 0),
        source="app_reviews",
        platform=Platform.APP_REVIEW,
        topic=Topic.DIGITAL_CHANNELS,
        risk=0.3,
    ),
    make_post(
        "run",
        "网上传言澜海银行西城支行出现挤兑，储户排队取钱",
        local(2025, 3, 12, 23, 30),
        source="weibo_search",
        platform=Platform.WEIBO,
        author="本地生活",
        topic=Topic.LIQUIDITY_RUMOR,
        risk=0.95,
        signals=("bank_run_rumor",),
        critical=True,
        entities=(BANK, "西城支行"),
    ),
    make_post(
        "pos",
        "澜海银行推出新理财产品，西城支行举办公益活动",
        local(2025, 3, 12, 1, 0),
        source="caijing_news",
        platform=Platform.NEWS,
        author="财经观察",
        sentiment=Sentiment.POSITIVE,
        topic=Topic.MARKETING_BRAND,
        risk=0.05,
        entities=(BANK, "西城支行"),
    ),
    make_post(
        "raw",
        "有人知道澜海银行南山支行周末营业吗",
        local(2025, 3, 13, 0, 30),
        sentiment=None,  # not analysed yet
    ),
    make_post(
        "neutral",
        "澜海银行发布年报，营业收入保持增长",
        local(2025, 3, 13, 5, 0),
        source="caijing_news",
        platform=Platform.NEWS,
        sentiment=Sentiment.NEUTRAL,
        risk=0.1,
    ),
]
BY_KEY = {p.id.removeprefix("post-").lstrip("0"): p for p in POSTS}


def ids(*keys: str) -> set[str]:
    return {BY_KEY[k].id for k in keys}


def found(store: PostStore, query: PostQuery, **kwargs: object) -> set[str]:
    page = store.search(query, limit=100, **kwargs)  # type: ignore[arg-type]
    assert page.total == len(page.hits) == store.count(query)
    return {h.post.id for h in page.hits}


@pytest.fixture
def store(post_store: PostStore) -> PostStore:
    post_store.upsert(POSTS)
    return post_store


# ---------------------------------------------------------------------- upsert / get


def test_upsert_counts_inserts_then_updates(post_store: PostStore) -> None:
    first = post_store.upsert(POSTS)
    assert (first.inserted, first.updated, first.failed) == (len(POSTS), 0, 0)
    again = post_store.upsert(POSTS)
    assert (again.inserted, again.updated, again.failed) == (0, len(POSTS), 0)
    assert post_store.count(PostQuery()) == len(POSTS)


def test_upsert_of_an_empty_batch_writes_nothing(post_store: PostStore) -> None:
    result = post_store.upsert([])
    assert (result.inserted, result.updated, result.failed) == (0, 0, 0)
    assert post_store.count(PostQuery()) == 0


def test_id_repeated_in_one_batch_counts_once_each_and_last_wins(post_store: PostStore) -> None:
    old = BY_KEY["cc"]
    new = old.model_copy(update={"text": "澜海银行信用卡分期手续费太高"})
    result = post_store.upsert([old, new])
    assert (result.inserted, result.updated) == (1, 1)
    assert post_store.count(PostQuery()) == 1
    assert post_store.get(old.id) == new


def test_update_replaces_text_index_and_analysis(store: PostStore) -> None:
    old = BY_KEY["wm1"]
    assert old.analysis is not None
    changed = old.model_copy(
        update={
            "text": "澜海银行东湖支行排队两小时，柜员态度冷淡",
            "title": "",
            "analysis": old.analysis.model_copy(
                update={"topic": Topic.SERVICE_QUALITY, "signals": [], "risk_score": 0.2}
            ),
        }
    )
    assert store.upsert([changed]).updated == 1
    assert store.get(old.id) == changed
    assert old.id not in found(store, PostQuery(text="理财"))
    assert old.id in found(store, PostQuery(text="排队"))
    assert found(store, PostQuery(signals=["collective_action"])) == set()
    assert old.id in found(store, PostQuery(topics=[Topic.SERVICE_QUALITY]))
    assert old.id not in found(store, PostQuery(min_risk=0.5))


def test_get_round_trips_the_whole_post(store: PostStore) -> None:
    for post in POSTS:
        got = store.get(post.id)
        assert got == post
        assert got is not None
        assert got.published_at.utcoffset() == timedelta(0)
        assert got.crawled_at.utcoffset() == timedelta(0)
    assert store.get("post-missing") is None


def test_get_many_returns_the_stored_posts_in_the_order_asked(store: PostStore) -> None:
    # get_many is an addition both adapters have (a bulk get()); not in the port.
    get_many = store.get_many  # type: ignore[attr-defined]
    ids = [POSTS[2].id, "post-missing", POSTS[0].id, POSTS[2].id]
    got = get_many(ids)
    assert list(got) == [POSTS[2].id, POSTS[0].id]
    assert got[POSTS[2].id] == POSTS[2] and got[POSTS[0].id] == POSTS[0]
    assert got == {i: store.get(i) for i in ids if store.get(i) is not None}
    assert get_many([]) == {}
    many = [p.id for p in _many_posts(1200)]  # more than one chunk of any adapter
    assert list(get_many([*many, POSTS[1].id])) == [POSTS[1].id]


def test_times_given_in_another_zone_come_back_as_the_same_instant_in_utc(
    post_store: PostStore,
) -> None:
    post = make_post("tz", "澜海银行客服热线无人接听", datetime(2025, 3, 10, 9, 15, 30, tzinfo=SH))
    post_store.upsert([post])
    got = post_store.get(post.id)
    assert got is not None
    assert got.published_at == datetime(2025, 3, 10, 1, 15, 30, tzinfo=UTC)
    assert got.published_at.tzinfo is not None
    assert got.published_at.utcoffset() == timedelta(0)


# ---------------------------------------------------------------------- filters


def test_no_filter_matches_everything(store: PostStore) -> None:
    assert found(store, PostQuery()) == {p.id for p in POSTS}


def test_since_is_inclusive_and_until_exclusive(store: PostStore) -> None:
    at = BY_KEY["app"].published_at
    assert BY_KEY["app"].id in found(store, PostQuery(since=at))
    assert BY_KEY["app"].id not in found(store, PostQuery(until=at))
    assert found(store, PostQuery(since=at, until=at + timedelta(seconds=1))) == ids("app")
    day = found(store, PostQuery(since=local(2025, 3, 11), until=local(2025, 3, 12)))
    assert day == ids("cc", "app")


def test_list_filters_match_any_listed_value(store: PostStore) -> None:
    assert found(store, PostQuery(sources=["caijing_news"])) == ids("cc", "pos", "neutral")
    assert found(store, PostQuery(sources=["app_reviews", "weibo_search"])) == ids("app", "run")
    assert found(store, PostQuery(platforms=[Platform.WEIBO, Platform.APP_REVIEW])) == ids(
        "app", "run"
    )
    assert found(store, PostQuery(sentiments=[Sentiment.POSITIVE, Sentiment.NEUTRAL])) == ids(
        "pos", "neutral"
    )
    assert found(store, PostQuery(topics=[Topic.LIQUIDITY_RUMOR])) == ids("run")
    assert found(store, PostQuery(signals=["bank_run_rumor", "collective_action"])) == ids(
        "run", "wm1"
    )
    assert found(store, PostQuery(entities=["西城支行"])) == ids("run", "pos")


def test_an_empty_list_filter_matches_nothing(store: PostStore) -> None:
    for query in (
        PostQuery(sources=[]),
        PostQuery(platforms=[]),
        PostQuery(sentiments=[]),
        PostQuery(topics=[]),
        PostQuery(signals=[]),
        PostQuery(entities=[]),
    ):
        assert found(store, query) == set()


def test_posts_without_analysis_only_match_analysis_free_filters(store: PostStore) -> None:
    every_sentiment = PostQuery(sentiments=list(Sentiment))
    assert BY_KEY["raw"].id not in found(store, every_sentiment)
    assert BY_KEY["raw"].id not in found(store, PostQuery(topics=list(Topic)))
    assert BY_KEY["raw"].id not in found(store, PostQuery(min_risk=0.0))
    assert BY_KEY["raw"].id in found(store, PostQuery(critical=False))
    assert BY_KEY["raw"].id in found(store, PostQuery(entities=[BANK]))  # matched_entities


def test_risk_and_critical_filters(store: PostStore) -> None:
    assert found(store, PostQuery(min_risk=0.8)) == ids("wm1", "run")
    assert found(store, PostQuery(critical=True)) == ids("run")
    assert len(found(store, PostQuery(critical=False))) == len(POSTS) - 1


def test_filters_combine_with_and(store: PostStore) -> None:
    query = PostQuery(
        sources=["caijing_news", "weibo_search"],
        sentiments=[Sentiment.NEGATIVE],
        since=local(2025, 3, 11),
    )
    assert found(store, query) == ids("cc", "run")
    assert found(store, query.model_copy(update={"text": "挤兑"})) == ids("run")


# ---------------------------------------------------------------------- text search


def test_text_matches_chinese_words(store: PostStore) -> None:
    assert found(store, PostQuery(text="挤兑")) == ids("run")
    assert found(store, PostQuery(text="理财")) == ids("wm1", "pos")
    assert found(store, PostQuery(text="信用卡")) == ids("cc")


def test_every_word_of_the_text_must_appear(store: PostStore) -> None:
    assert found(store, PostQuery(text="西城 支行")) == ids("run", "pos")
    assert found(store, PostQuery(text="西城支行 挤兑")) == ids("run")
    assert found(store, PostQuery(text="挤兑 年费")) == set()


def test_plus_between_words_is_just_a_separator(store: PostStore) -> None:
    assert found(store, PostQuery(text="银行 + 挤兑")) == ids("run")
    assert found(store, PostQuery(text="挤兑+储户")) == ids("run")


def test_text_is_case_insensitive_for_latin_words(store: PostStore) -> None:
    assert found(store, PostQuery(text="app")) == ids("app")
    assert found(store, PostQuery(text="APP")) == ids("app")


def test_title_is_searched_too(post_store: PostStore) -> None:
    post = make_post("titled", "详情见图。", local(2025, 3, 12), title="澜海银行暴力催收")
    post_store.upsert([post])
    assert found(post_store, PostQuery(text="催收")) == {post.id}


def test_blank_text_is_no_filter(store: PostStore) -> None:
    assert found(store, PostQuery(text="")) == {p.id for p in POSTS}
    assert found(store, PostQuery(text="   \n\t")) == {p.id for p in POSTS}


@pytest.mark.parametrize(
    "text",
    ['"', '""', "*", "(", ")", ":", "-", "^", "'", "\\", '"*(:-', "？！。，", "🔥", "🔥🔥"],
)
def test_text_with_nothing_searchable_matches_nothing(store: PostStore, text: str) -> None:
    assert found(store, PostQuery(text=text)) == set()


@pytest.mark.parametrize(
    "text",
    [
        "银行*",
        "*银行",
        '"银行',
        '银行"',
        '"银行"',
        "(银行",
        "银行)",
        "-银行",
        "^银行",
        "银行 🔥",
        "🔥银行🔥",
        "银行\x00",
        "银行" * 3000,
    ],
)
def test_query_syntax_around_a_word_is_just_that_word(store: PostStore, text: str) -> None:
    assert found(store, PostQuery(text=text)) == {p.id for p in POSTS}


@pytest.mark.parametrize(
    "text",
    [
        "AND",
        "OR",
        "NOT",
        "AND OR NOT",
        'AND OR NOT "* ( : -',
        "NEAR",
        "NEAR(银行 挤兑)",
        "银行 NOT 挤兑",
        "银行 OR 挤兑",
        "{tokens}: 银行",
        "x" * 20_000,
        " ".join(f"词{i}" for i in range(2000)),
    ],
)
def test_hostile_text_never_raises_and_is_never_syntax(store: PostStore, text: str) -> None:
    got = found(store, PostQuery(text=text))
    # Operators are words: "银行 NOT 挤兑" needs the word "not", so nothing matches,
    # and in particular not the posts an FTS NOT would have returned.
    assert got == set()
    page = store.search(PostQuery(text=text), sort="relevance", highlight=True)
    assert page.total == 0


# ---------------------------------------------------------------------- highlight


def test_highlight_marks_the_match_in_plain_text(store: PostStore) -> None:
    page = store.search(PostQuery(text="挤兑"), highlight=True)
    snippet = page.hits[0].snippet
    assert snippet is not None
    assert "【挤兑】" in snippet
    assert "<" not in snippet
    assert snippet.replace("【", "").replace("】", "").strip("…") in BY_KEY["run"].text


def test_no_snippet_without_highlight(store: PostStore) -> None:
    page = store.search(PostQuery(text="挤兑"))
    assert page.hits[0].snippet is None


def test_snippet_of_a_long_text_is_short_and_around_the_match(post_store: PostStore) -> None:
    filler = "今天天气不错，我们去公园散步。" * 40
    text = filler + "听说澜海银行北郊支行要撤并了。" + filler
    post_store.upsert([make_post("long", text, local(2025, 3, 12))])
    snippet = post_store.search(PostQuery(text="撤并"), highlight=True).hits[0].snippet
    assert snippet is not None
    assert "【撤并】" in snippet
    assert len(snippet) < 400
    assert snippet.startswith("…") and snippet.endswith("…")


# ---------------------------------------------------------------------- sorting and paging


def test_sort_orders(store: PostStore) -> None:
    by_time = sorted(POSTS, key=lambda p: p.published_at)
    newest = [h.post.id for h in store.search(PostQuery(), sort="newest", limit=100).hits]
    oldest = [h.post.id for h in store.search(PostQuery(), sort="oldest", limit=100).hits]
    assert newest == [p.id for p in reversed(by_time)]
    assert oldest == [p.id for p in by_time]
    risky = [h.post.id for h in store.search(PostQuery(), sort="risk", limit=100).hits]
    assert risky[:2] == [BY_KEY["run"].id, BY_KEY["wm1"].id]
    assert risky[-1] == BY_KEY["raw"].id  # no analysis: last


def test_relevance_puts_the_best_match_first(post_store: PostStore) -> None:
    t = local(2025, 3, 12)
    posts = [
        make_post("r1", "澜海银行发布公告，提及理财一词。" + "另有其他无关内容。" * 10, t),
        make_post("r2", "理财理财理财：澜海银行理财产品亏损，理财经理失联", t - timedelta(hours=1)),
        make_post("r3", "澜海银行信用卡年费", t + timedelta(hours=1)),
    ]
    post_store.upsert(posts)
    page = post_store.search(PostQuery(text="理财"), sort="relevance")
    assert [h.post.id for h in page.hits] == [posts[1].id, posts[0].id]
    # Without text, relevance falls back to newest first.
    page = post_store.search(PostQuery(), sort="relevance")
    assert [h.post.id for h in page.hits] == [posts[2].id, posts[0].id, posts[1].id]


def _many_posts(n: int) -> list[Post]:
    base = local(2025, 3, 1)
    out = []
    for i in range(n):
        # Repeated times, risks and texts: ties must not break paging.
        out.append(
            make_post(
                f"m{i:03d}",
                "澜海银行滨江支行排队" + ("很久" if i % 2 else "两小时"),
                base + timedelta(hours=i // 3),
                risk=(i % 4) / 4,
                sentiment=None if i % 10 == 9 else Sentiment.NEGATIVE,
            )
        )
    return out


@pytest.mark.parametrize("sort", ["newest", "oldest", "risk", "relevance"])
def test_keyset_paging_yields_every_match_exactly_once(post_store: PostStore, sort: str) -> None:
    posts = _many_posts(53)
    post_store.upsert(posts)
    query = PostQuery(text="排队")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = post_store.search(query, sort=sort, limit=10, cursor=cursor)  # type: ignore[arg-type]
        assert page.total == 53
        seen.extend(h.post.id for h in page.hits)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
        assert len(page.hits) == 10
    assert pages == 6
    assert len(seen) == len(set(seen)) == 53
    assert set(seen) == {p.id for p in posts}
    if sort in ("newest", "oldest"):
        times = [post_store.get(i).published_at for i in seen]  # type: ignore[union-attr]
        assert times == sorted(times, reverse=sort == "newest")


def test_last_page_has_no_cursor(store: PostStore) -> None:
    page = store.search(PostQuery(), limit=len(POSTS))
    assert len(page.hits) == len(POSTS)
    assert page.next_cursor is None


@pytest.mark.parametrize("cursor", ["garbage", "!!!", "eyJ4IjoxfQ", "W10", "bnVsbA"])
def test_malformed_cursor_is_a_query_error(store: PostStore, cursor: str) -> None:
    with pytest.raises(QueryError):
        store.search(PostQuery(), cursor=cursor)


def test_cursor_of_another_query_is_a_query_error(store: PostStore) -> None:
    cursor = store.search(PostQuery(), limit=2).next_cursor
    assert cursor is not None
    with pytest.raises(QueryError):
        store.search(PostQuery(sources=["caijing_news"]), limit=2, cursor=cursor)
    with pytest.raises(QueryError):
        store.search(PostQuery(), sort="oldest", limit=2, cursor=cursor)


def test_bad_limit_is_a_query_error(store: PostStore) -> None:
    with pytest.raises(QueryError):
        store.search(PostQuery(), limit=0)


# ---------------------------------------------------------------------- counts


def test_count_agrees_with_search_total(store: PostStore) -> None:
    for query in (PostQuery(), PostQuery(text="银行"), PostQuery(sentiments=[Sentiment.NEGATIVE])):
        assert store.count(query) == store.search(query, limit=1).total
    assert store.count(PostQuery(sentiments=[Sentiment.NEGATIVE])) == 4


def test_day_histogram_is_aligned_to_shanghai_midnight(store: PostStore) -> None:
    buckets = store.histogram(PostQuery(), bucket_seconds=86400)
    assert [(b.start, b.count, b.key) for b in buckets] == [
        (local(2025, 3, 10), 1, None),
        (local(2025, 3, 11), 2, None),
        (local(2025, 3, 12), 2, None),
        (local(2025, 3, 13), 2, None),
    ]
    for b in buckets:
        assert b.start.utcoffset() == timedelta(0)
        assert b.start.astimezone(SH).hour == 0


def test_day_histogram_in_utc_differs(store: PostStore) -> None:
    buckets = store.histogram(PostQuery(), bucket_seconds=86400, tz_offset_minutes=0)
    assert [(b.start, b.count) for b in buckets] == [
        (datetime(2025, 3, 9, tzinfo=UTC), 1),
        (datetime(2025, 3, 10, tzinfo=UTC), 1),
        (datetime(2025, 3, 11, tzinfo=UTC), 2),
        (datetime(2025, 3, 12, tzinfo=UTC), 3),
    ]


def test_hour_histogram_is_sparse_and_ascending(store: PostStore) -> None:
    buckets = store.histogram(PostQuery(min_risk=0.3), bucket_seconds=3600)
    expected = sorted(
        p.published_at.replace(minute=0)
        for p in POSTS
        if p.analysis and p.analysis.risk_score >= 0.3
    )
    assert [b.start for b in buckets] == expected
    assert all(b.count == 1 for b in buckets)


def test_histogram_grouped_by_a_field(store: PostStore) -> None:
    buckets = store.histogram(PostQuery(), bucket_seconds=86400, group_by="sentiment")
    assert [(b.start, b.key, b.count) for b in buckets] == [
        (local(2025, 3, 10), "negative", 1),
        (local(2025, 3, 11), "negative", 2),
        (local(2025, 3, 12), "negative", 1),
        (local(2025, 3, 12), "positive", 1),
        (local(2025, 3, 13), "neutral", 1),  # the unanalysed post has no sentiment
    ]
    by_signal = store.histogram(PostQuery(), bucket_seconds=86400, group_by="signals")
    assert [(b.start, b.key, b.count) for b in by_signal] == [
        (local(2025, 3, 10), "collective_action", 1),
        (local(2025, 3, 12), "bank_run_rumor", 1),
    ]


def test_histogram_respects_filters_and_text(store: PostStore) -> None:
    buckets = store.histogram(PostQuery(text="西城支行"), bucket_seconds=86400)
    assert [(b.start, b.count) for b in buckets] == [(local(2025, 3, 12), 2)]
    assert store.histogram(PostQuery(sources=["nowhere"]), bucket_seconds=3600) == []


def test_fine_buckets_give_the_same_counts(store: PostStore) -> None:
    times = sorted(p.published_at for p in POSTS)
    for seconds in (1, 60):  # many buckets: adapters may switch strategies
        buckets = store.histogram(PostQuery(), bucket_seconds=seconds)
        assert [(b.start, b.count) for b in buckets] == [(t, 1) for t in times]
        texted = store.histogram(PostQuery(text="银行"), bucket_seconds=seconds)
        assert texted == buckets


def test_buckets_before_1970_are_floored(post_store: PostStore) -> None:
    old = datetime(1969, 12, 31, 23, 30, tzinfo=UTC)
    post_store.upsert([make_post("old", "澜海银行前身澜海信用社成立", old)])
    expected = [(datetime(1969, 12, 31, tzinfo=UTC), 1)]
    for query in (PostQuery(), PostQuery(text="信用社"), PostQuery(entities=[BANK])):
        buckets = post_store.histogram(query, bucket_seconds=86400, tz_offset_minutes=0)
        assert [(b.start, b.count) for b in buckets] == expected
    by_day = post_store.histogram(PostQuery(), bucket_seconds=86400, group_by="sentiment")
    assert [(b.start, b.key) for b in by_day] == [(local(1970, 1, 1), "negative")]


def test_histogram_rejects_a_bad_bucket(store: PostStore) -> None:
    with pytest.raises(QueryError):
        store.histogram(PostQuery(), bucket_seconds=0)


def test_terms_by_count_then_value(store: PostStore) -> None:
    assert store.terms(PostQuery(), "source") == [
        TermCount(value="caijing_news", count=3),
        TermCount(value="lanhai_forum", count=2),
        TermCount(value="app_reviews", count=1),
        TermCount(value="weibo_search", count=1),
    ]
    assert store.terms(PostQuery(), "source", size=2) == [
        TermCount(value="caijing_news", count=3),
        TermCount(value="lanhai_forum", count=2),
    ]
    assert store.terms(PostQuery(), "sentiment") == [
        TermCount(value="negative", count=4),
        TermCount(value="neutral", count=1),
        TermCount(value="positive", count=1),
    ]


def test_terms_of_every_field(store: PostStore) -> None:
    assert store.terms(PostQuery(), "platform")[0] == TermCount(value="news", count=3)
    topics = {t.value: t.count for t in store.terms(PostQuery(), "topic", size=20)}
    assert topics == {
        "wealth_management": 1,
        "credit_card": 1,
        "digital_channels": 1,
        "liquidity_rumor": 1,
        "marketing_brand": 1,
        "other": 1,
    }
    assert store.terms(PostQuery(), "signals") == [
        TermCount(value="bank_run_rumor", count=1),
        TermCount(value="collective_action", count=1),
    ]
    assert store.terms(PostQuery(), "entities") == [
        TermCount(value=BANK, count=7),
        TermCount(value="西城支行", count=2),
        TermCount(value="东湖支行", count=1),
    ]
    assert store.terms(PostQuery(), "author") == [
        TermCount(value="财经观察", count=2),
        TermCount(value="本地生活", count=1),
        TermCount(value="理财小白", count=1),
    ]


def test_terms_respect_the_query(store: PostStore) -> None:
    assert store.terms(PostQuery(text="西城支行"), "sentiment") == [
        TermCount(value="negative", count=1),
        TermCount(value="positive", count=1),
    ]


@pytest.mark.parametrize("field", ["title", "text", "id", "published_at", "doc", "1; DROP"])
def test_terms_of_an_unknown_field_is_a_query_error(store: PostStore, field: str) -> None:
    with pytest.raises(QueryError):
        store.terms(PostQuery(), field)  # type: ignore[arg-type]
    with pytest.raises(QueryError):
        store.histogram(PostQuery(), bucket_seconds=3600, group_by=field)  # type: ignore[arg-type]


def test_close_twice_is_safe(post_store: PostStore) -> None:
    post_store.close()
    post_store.close()


# ---------------------------------------------------------------------- content-hash look-ups
# The crawl's dedup stage (core.ports.ContentIndex): exact duplicates in bulk.


def test_existing_hashes_finds_stored_hashes_in_bulk(post_store: PostStore) -> None:
    assert isinstance(post_store, ContentIndex)
    assert post_store.existing_hashes([p.content_hash for p in POSTS]) == {}
    post_store.upsert(POSTS)
    wanted = [BY_KEY["run"].content_hash, BY_KEY["cc"].content_hash, "hash-never-stored", ""]
    assert post_store.existing_hashes(wanted) == {
        BY_KEY["run"].content_hash: BY_KEY["run"].id,
        BY_KEY["cc"].content_hash: BY_KEY["cc"].id,
    }
    assert post_store.existing_hashes([]) == {}


def test_existing_hashes_names_the_first_stored_of_two_copies(post_store: PostStore) -> None:
    assert isinstance(post_store, ContentIndex)
    first = BY_KEY["cc"]
    post_store.upsert([first])
    copy = first.model_copy(update={"id": "post-copy-of-cc", "url": "https://demo.example/x/1"})
    post_store.upsert([copy])
    assert post_store.existing_hashes([first.content_hash]) == {first.content_hash: first.id}


def test_existing_hashes_follow_an_update_of_the_text(post_store: PostStore) -> None:
    assert isinstance(post_store, ContentIndex)
    old = BY_KEY["cc"]
    post_store.upsert([old])
    new = old.model_copy(update={"text": "澜海银行信用卡年费", "content_hash": "hash-cc-v2"})
    post_store.upsert([new])
    assert post_store.existing_hashes([old.content_hash, "hash-cc-v2"]) == {"hash-cc-v2": old.id}


def test_stored_hashes_by_id_in_bulk(post_store: PostStore) -> None:
    assert isinstance(post_store, ContentIndex)
    post_store.upsert(POSTS[:2])
    many = [p.id for p in _many_posts(1200)]  # more than one chunk of any adapter
    got = post_store.stored_hashes([POSTS[0].id, POSTS[1].id, POSTS[2].id, *many])
    assert got == {POSTS[0].id: POSTS[0].content_hash, POSTS[1].id: POSTS[1].content_hash}


def test_set_group_counts_changes_only_the_counts_of_stored_posts(post_store: PostStore) -> None:
    assert isinstance(post_store, ContentIndex)
    post_store.upsert(POSTS)
    run, cc = BY_KEY["run"], BY_KEY["cc"]
    done = post_store.set_group_counts({run.id: (4, 900), cc.id: (1, 7), "post-not-stored": (2, 2)})
    assert done == {run.id, cc.id}
    got = post_store.get(run.id)
    assert got == run.model_copy(update={"duplicates": 4, "duplicate_reach": 900})
    assert found(post_store, PostQuery(text="挤兑")) >= {run.id}  # still indexed as before
    assert post_store.set_group_counts({}) == set()


def test_grouped_copies_round_trip_on_the_post(post_store: PostStore) -> None:
    post = BY_KEY["run"].model_copy(update={"duplicates": 3, "duplicate_reach": 1200})
    post_store.upsert([post])
    got = post_store.get(post.id)
    assert got is not None and (got.duplicates, got.duplicate_reach) == (3, 1200)
    assert got.group_reach == got.reach + 1200


# ---------------------------------------------------------------------- failures


def test_unusable_store_raises_on_write_naming_its_location(broken_post_store: Any) -> None:
    with pytest.raises(StoreUnavailable) as info:
        broken_post_store.store.upsert(POSTS)
    assert broken_post_store.location in str(info.value)


def test_unusable_store_never_answers_reads_with_nothing(broken_post_store: Any) -> None:
    store: PostStore = broken_post_store.store
    reads = [
        lambda: store.get(POSTS[0].id),
        lambda: store.count(PostQuery()),
        lambda: store.search(PostQuery()),
        lambda: store.search(PostQuery(text="挤兑"), sort="relevance"),
        lambda: store.histogram(PostQuery(), bucket_seconds=3600),
        lambda: store.terms(PostQuery(), "topic"),
    ]
    if isinstance(store, ContentIndex):
        reads += [
            lambda: store.existing_hashes([POSTS[0].content_hash]),  # type: ignore[attr-defined]
            lambda: store.stored_hashes([POSTS[0].id]),  # type: ignore[attr-defined]
            lambda: store.set_group_counts({POSTS[0].id: (1, 1)}),  # type: ignore[attr-defined]
        ]
    if hasattr(store, "get_many"):
        reads.append(lambda: store.get_many([POSTS[0].id]))  # type: ignore[attr-defined]
    for read in reads:
        with pytest.raises(StoreUnavailable) as info:
            read()
        assert broken_post_store.location in str(info.value)


# ---------------------------------------------------------------------- the local store only
# Failure modes and concurrency that only an embedded file store has.


def test_local_store_locked_beyond_busy_timeout_is_unavailable_and_data_survives(
    tmp_path: Path, tokenizer: Tokenizer
) -> None:
    path = tmp_path / "posts.db"
    store = LocalPostStore(path, tokenizer, busy_timeout_ms=100)
    store.upsert(POSTS[:3])
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the lock
    try:
        with pytest.raises(StoreUnavailable) as info:
            store.upsert(POSTS[3:])
        assert str(path) in str(info.value)
        # WAL: readers are not blocked by the writer, and see the committed data.
        assert store.count(PostQuery()) == 3
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.upsert(POSTS[3:]).inserted == len(POSTS) - 3
    assert store.count(PostQuery()) == len(POSTS)
    store.close()


def test_local_store_recovers_when_its_directory_comes_back(
    tmp_path: Path, tokenizer: Tokenizer
) -> None:
    blocker = tmp_path / "var"
    blocker.write_text("a stray file where the data directory belongs")
    store = LocalPostStore(blocker / "posts.db", tokenizer)
    with pytest.raises(StoreUnavailable):
        store.upsert(POSTS)
    blocker.unlink()
    assert store.upsert(POSTS).inserted == len(POSTS)
    store.close()


def test_local_store_refuses_a_newer_schema(tmp_path: Path, tokenizer: Tokenizer) -> None:
    path = tmp_path / "posts.db"
    LocalPostStore(path, tokenizer).upsert(POSTS[:1])
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(PermanentStoreError, match="schema version 99"):
        LocalPostStore(path, tokenizer).count(PostQuery())


def test_local_store_upgrades_a_v1_file(tmp_path: Path, tokenizer: Tokenizer) -> None:
    path = tmp_path / "posts.db"
    post = BY_KEY["run"]
    with sqlite3.connect(path) as conn:  # the v1 layout kept the JSON in posts.doc
        conn.execute(
            "CREATE TABLE posts (pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
            "published_at INTEGER NOT NULL, source TEXT NOT NULL, platform TEXT NOT NULL, "
            "sentiment TEXT, topic TEXT, risk REAL NOT NULL, critical INTEGER NOT NULL, "
            "author TEXT, doc TEXT NOT NULL)"
        )
        conn.execute(
            "INSERT INTO posts VALUES (1, ?, ?, 'weibo_search', 'weibo', 'negative', "
            "'liquidity_rumor', 0.95, 1, NULL, ?)",
            (post.id, int(post.published_at.timestamp()), post.model_dump_json()),
        )
        conn.execute("PRAGMA user_version = 1")
    store = LocalPostStore(path, tokenizer)
    assert store.get(post.id) == post
    assert store.count(PostQuery(topics=[Topic.LIQUIDITY_RUMOR])) == 1
    assert store.upsert([post]).updated == 1
    assert found(store, PostQuery(text="挤兑")) == {post.id}
    assert store.existing_hashes([post.content_hash]) == {post.content_hash: post.id}
    store.close()


def test_local_store_upgrades_a_v2_file_with_content_hashes(
    tmp_path: Path, tokenizer: Tokenizer
) -> None:
    path = tmp_path / "posts.db"
    LocalPostStore(path, tokenizer).upsert(POSTS)
    with sqlite3.connect(path) as conn:  # back to the v2 layout: no content_hash column
        conn.execute("DROP INDEX idx_posts_hash")
        conn.execute("ALTER TABLE posts DROP COLUMN content_hash")
        conn.execute("PRAGMA user_version = 2")
    store = LocalPostStore(path, tokenizer)
    wanted = [p.content_hash for p in POSTS]
    assert store.existing_hashes(wanted) == {p.content_hash: p.id for p in POSTS}
    assert store.count(PostQuery()) == len(POSTS)
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3


def test_local_store_counts_tokenizer_failures_per_post(tmp_path: Path) -> None:
    def picky(text: str) -> list[str]:
        if "挤兑" in text:
            raise RuntimeError("cannot segment this")
        return text.split()

    store = LocalPostStore(tmp_path / "posts.db", picky)
    result = store.upsert(POSTS)
    assert (result.inserted, result.failed) == (len(POSTS) - 1, 1)
    assert BY_KEY["run"].id in result.errors[0]
    assert store.get(BY_KEY["run"].id) is None
    store.close()


def test_local_store_is_safe_across_threads(tmp_path: Path, tokenizer: Tokenizer) -> None:
    store = LocalPostStore(tmp_path / "posts.db", tokenizer)
    store.upsert(POSTS)
    batches = [_many_posts(40)[i : i + 10] for i in range(0, 40, 10)]

    def read(_: int) -> int:
        return store.search(PostQuery(text="银行"), limit=5).total

    with ThreadPoolExecutor(max_workers=6) as pool:
        writes = [pool.submit(store.upsert, b) for b in batches]
        totals = list(pool.map(read, range(60)))
        assert sum(w.result().inserted for w in writes) == 40
    assert all(len(POSTS) <= t <= len(POSTS) + 40 for t in totals)
    store.close()  # closes the worker threads' connections too
    assert store.count(PostQuery()) == len(POSTS) + 40  # and reopens on demand
    store.close()


_WRITER = """
import sys
from datetime import UTC, datetime, timedelta
from core.models import Post
from storage.local import LocalPostStore

store = LocalPostStore(sys.argv[1], str.split, busy_timeout_ms=10000)
t0 = datetime(2025, 3, 1, tzinfo=UTC)
for b in range(20):
    store.upsert([
        Post(id=f"writer-{b:03d}-{i:03d}", url=f"https://demo.example/w/{b}/{i}",
             source="proc", text="澜海银行 储户 排队", published_at=t0 + timedelta(minutes=i))
        for i in range(50)
    ])
store.close()
"""


def test_local_store_one_writer_process_and_a_reader(tmp_path: Path) -> None:
    path = tmp_path / "posts.db"
    reader = LocalPostStore(path, str.split)
    reader.upsert(POSTS[:1])
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        cwd=Path(__file__).resolve().parents[2],
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    while proc.poll() is None:
        seen.append(reader.count(PostQuery(sources=["proc"])))  # never "database is locked"
        time.sleep(0.005)
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert seen == sorted(seen)  # committed batches only ever appear whole
    assert all(n % 50 == 0 for n in seen)
    assert reader.count(PostQuery(sources=["proc"])) == 1000
    reader.close()
