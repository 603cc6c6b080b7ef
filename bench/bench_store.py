"""Benchmark of the embedded PostStore (``storage.local.LocalPostStore``).

Figures:

* ``local_ingest_posts_per_s`` — posts upserted per second in batches of
  ``BATCH`` (time spent inside ``upsert`` only; generating the posts is not
  counted). Tokenizing is *excluded*: texts are built from fragments that were
  segmented once by ``nlp.segment.tokenize``, and the store's tokenizer looks
  the tokens up. The cost of real jieba segmentation is measured on a sample
  and the rate including it is given in ``detail``.
* ``local_query_p95_ms`` — p95 latency over a mix of dashboard queries on the
  filled store (count of the last 24 h, 30-day hourly histogram, 30-day daily
  histogram by sentiment, terms of topic, a filtered feed page, text search
  newest and by relevance with highlight, a deep keyset page).

Posts are synthetic and deterministic (``random.Random(SEED)``): short Chinese
posts about the fictional 澜海银行 from templates, across sources, platforms,
topics and sentiments, published over the 90 days before ``END``.
"""

from __future__ import annotations

import logging
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.results import Result
from core.ids import post_id_from_url
from core.models import Analysis, Post, PostQuery, Signal
from core.ports import PostStore
from core.vocab import Platform, Sentiment, Topic

log = logging.getLogger(__name__)

SEED = 20240601
END = datetime(2025, 6, 1, tzinfo=UTC)
DAYS = 90
BATCH = 2000
BANK = "澜海银行"

SOURCES: list[tuple[str, Platform]] = [
    ("lanhai_forum", Platform.FORUM),
    ("caijing_news", Platform.NEWS),
    ("tousu_platform", Platform.COMPLAINT),
    ("weibo_search", Platform.WEIBO),
    ("app_reviews", Platform.APP_REVIEW),
    ("regulator_rss", Platform.REGULATOR),
]
BRANCHES = ["东湖支行", "西城支行", "南山支行", "滨江支行", "北郊支行", "临港支行", "青石桥支行"]
PRODUCTS = ["澜海稳盈1号理财", "澜海季季红", "澜海安享债基", "澜海白金信用卡", "澜海e贷"]
PEOPLE = ["张先生", "李女士", "王阿姨", "陈同学", "刘师傅", "赵老师", "周女士", "吴先生"]
TAILS = [
    "",
    "大家怎么看？",
    "求助各位网友。",
    "已经向金融监管部门投诉了。",
    "#维权#",
    "希望银行尽快给个说法。",
    "转发扩散！",
    "有没有同样遭遇的？",
]

# (topic, sentiment, signals, template). Fields in braces are filled per post.
TEMPLATES: list[tuple[Topic, Sentiment, tuple[str, ...], str]] = [
    (
        Topic.WEALTH_MANAGEMENT,
        Sentiment.NEGATIVE,
        ("collective_action",),
        "{bank}{branch}代销的{product}到期亏损{pct}%，理财经理当初说保本，{person}等{n}位客户要求退钱",
    ),
    (
        Topic.WEALTH_MANAGEMENT,
        Sentiment.NEGATIVE,
        (),
        "{bank}的{product}跌破净值，收益远低于预期，到期也没有通知",
    ),
    (
        Topic.CREDIT_CARD,
        Sentiment.NEGATIVE,
        (),
        "{bank}信用卡年费被乱收{amount}元，打客服热线{n}次都没人接",
    ),
    (
        Topic.CREDIT_CARD,
        Sentiment.NEGATIVE,
        (),
        "{person}说{bank}暴力催收，一天打了{n}个电话给家人和同事",
    ),
    (
        Topic.LOANS,
        Sentiment.NEGATIVE,
        (),
        "{bank}房贷LPR重定价后月供涨了{amount}元，提前还款还要排队{n}个月",
    ),
    (
        Topic.DEPOSITS_ACCOUNTS,
        Sentiment.NEGATIVE,
        (),
        "{person}在{bank}{branch}的账户突然被冻结，取不出钱也没有任何通知",
    ),
    (
        Topic.DIGITAL_CHANNELS,
        Sentiment.NEGATIVE,
        (),
        "{bank}手机银行又崩了，登录失败转账失败，从早上{n}点到现在都用不了",
    ),
    (
        Topic.SERVICE_QUALITY,
        Sentiment.NEGATIVE,
        (),
        "{bank}{branch}排队{n}个小时只开一个窗口，大堂经理态度恶劣，来回踢皮球",
    ),
    (
        Topic.FRAUD_SECURITY,
        Sentiment.NEGATIVE,
        ("fraud",),
        "{person}的{bank}银行卡被盗刷{amount}元，银行说是电信诈骗不管",
    ),
    (
        Topic.PRIVACY_DATA,
        Sentiment.NEGATIVE,
        ("data_leak",),
        "{bank}客户信息疑似泄露，{person}接到骚扰电话，对方能报出身份证号和卡号",
    ),
    (
        Topic.LIQUIDITY_RUMOR,
        Sentiment.NEGATIVE,
        ("bank_run_rumor", "collective_action"),
        "网传{bank}{branch}出现挤兑，大量储户排队取钱，行长被带走调查？",
    ),
    (
        Topic.REGULATORY_LEGAL,
        Sentiment.NEGATIVE,
        ("regulator",),
        "{bank}因违规销售理财产品被监管罚款{amount}万元，相关责任人被警告",
    ),
    (
        Topic.MARKETING_BRAND,
        Sentiment.POSITIVE,
        (),
        "{bank}推出{product}新品，首发当日认购火爆，{branch}还举办了公益活动",
    ),
    (
        Topic.SERVICE_QUALITY,
        Sentiment.POSITIVE,
        (),
        "点赞{bank}{branch}的柜员，{person}忘带证件也耐心帮忙办好了业务",
    ),
    (
        Topic.OTHER,
        Sentiment.NEUTRAL,
        (),
        "{bank}发布半年报，营业收入同比增长{pct}%，不良率保持稳定",
    ),
    (
        Topic.LOANS,
        Sentiment.NEUTRAL,
        (),
        "{bank}{branch}下调首套房贷利率，{person}咨询了提前还款的流程",
    ),
]
CRITICAL_SIGNALS = {"bank_run_rumor", "data_leak"}


@dataclass
class Corpus:
    """Deterministic synthetic posts plus the tokens of each text (pre-segmented)."""

    tokenize_fragment: Callable[[str], list[str]]
    seed: int = SEED

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._cache: dict[str, list[str]] = {}
        self.tokens: dict[str, list[str]] = {}

    def _toks(self, fragment: str) -> list[str]:
        got = self._cache.get(fragment)
        if got is None:
            got = self._cache[fragment] = self.tokenize_fragment(fragment)
        return got

    def _fill(self, template: str) -> tuple[str, list[str], str | None]:
        rng = self._rng
        values = {
            "bank": BANK,
            "branch": rng.choice(BRANCHES),
            "product": rng.choice(PRODUCTS),
            "person": rng.choice(PEOPLE),
            "pct": str(rng.randint(1, 30)),
            "n": str(rng.randint(2, 60)),
            "amount": str(rng.choice([88, 200, 360, 1200, 5000, 18000, 50000])),
        }
        text_parts: list[str] = []
        toks: list[str] = []
        # Split the template at its fields so each literal piece and each value is
        # segmented once and cached: 1M posts cost a few thousand jieba calls.
        rest = template
        while rest:
            head, brace, tail = rest.partition("{")
            if head:
                text_parts.append(head)
                toks.extend(self._toks(head))
            if not brace:
                break
            name, _, rest = tail.partition("}")
            text_parts.append(values[name])
            toks.extend(self._toks(values[name]))
        tail_text = rng.choice(TAILS)
        if tail_text:
            text_parts.append(tail_text)
            toks.extend(self._toks(tail_text))
        branch = values["branch"] if "{branch}" in template else None
        return "".join(text_parts), toks, branch

    def posts(self, n: int, start: int = 0) -> Iterator[list[Post]]:
        """``n`` posts in batches of ``BATCH``; fills ``self.tokens`` for each batch."""
        rng = self._rng
        span = DAYS * 86400
        batch: list[Post] = []
        self.tokens = {}
        for i in range(start, start + n):
            topic, sentiment, signals, template = rng.choice(TEMPLATES)
            text, toks, branch = self._fill(template)
            source, platform = rng.choice(SOURCES)
            title = text[:16]
            analysed = rng.random() > 0.02  # a few posts wait for analysis
            risk = round(
                min(1.0, rng.random() * (0.9 if sentiment is Sentiment.NEGATIVE else 0.3)), 3
            )
            analysis = (
                Analysis(
                    sentiment=sentiment,
                    sentiment_score=round(rng.random(), 3),
                    topic=topic,
                    topic_confidence=0.8,
                    signals=[
                        Signal(name=s, triggers=[], critical=s in CRITICAL_SIGNALS) for s in signals
                    ],
                    risk_score=risk,
                    critical=any(s in CRITICAL_SIGNALS for s in signals),
                    entities=[BANK, branch] if branch else [BANK],
                )
                if analysed
                else None
            )
            post = Post(
                id=post_id_from_url(f"https://bench.example/{source}/{i}"),
                url=f"https://bench.example/{source}/{i}",
                source=source,
                platform=platform,
                title=title,
                text=text,
                author=f"网友{rng.randint(1, 5000):04d}",
                reposts=rng.randint(0, 50),
                published_at=END - timedelta(seconds=rng.randint(1, span)),
                crawled_at=END,
                matched_entities=[BANK],
                analysis=analysis,
            )
            self.tokens[f"{title}\n{text}"] = self._toks(title) + toks
            batch.append(post)
            if len(batch) == BATCH:
                yield batch
                batch = []
                self.tokens = {}
        if batch:
            yield batch


def _percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    idx = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[idx]


def run(quick: bool) -> list[Result]:
    """Fill a temporary store with N posts (1,000,000; 20,000 when ``quick``) and time it."""
    from nlp.segment import tokenize
    from storage.local import LocalPostStore

    n = 20_000 if quick else 1_000_000
    corpus = Corpus(tokenize_fragment=tokenize)

    def lookup(text: str) -> list[str]:
        return corpus.tokens[text]

    with tempfile.TemporaryDirectory(prefix="yuqing-bench-") as tmp:
        path = Path(tmp) / "posts.db"
        store = LocalPostStore(path, lookup)
        upsert_s = 0.0
        gen_start = time.perf_counter()
        done = 0
        for batch in corpus.posts(n):
            t0 = time.perf_counter()
            store.upsert(batch)
            upsert_s += time.perf_counter() - t0
            done += len(batch)
            if done % 100_000 == 0:
                log.info("ingested %d/%d posts (%.0f posts/s)", done, n, done / upsert_s)
        wall_s = time.perf_counter() - gen_start
        ingest_rate = n / upsert_s
        db_mb = sum(f.stat().st_size for f in Path(tmp).iterdir()) / 2**20

        # Real segmentation cost, for the "with jieba" rate in the detail.
        sample = [f"{p.title}\n{p.text}" for p in next(Corpus(tokenize, seed=SEED + 1).posts(2000))]
        t0 = time.perf_counter()
        for text in sample:
            tokenize(text)
        tok_s_per_post = (time.perf_counter() - t0) / len(sample)
        with_jieba = 1 / (1 / ingest_rate + tok_s_per_post)

        store.close()
        # Queries use the real tokenizer, as the dashboard does.
        store = LocalPostStore(path, tokenize)
        timings = _query_mix(store, reps=15 if quick else 25)
        store.close()

    all_ms = [t for ts in timings.values() for t in ts]
    p95 = _percentile(all_ms, 95)
    per_query = ", ".join(f"{k} {_percentile(v, 95):.1f}" for k, v in timings.items())
    return [
        Result(
            name="local_ingest_posts_per_s",
            value=round(ingest_rate),
            unit="posts/s",
            goal=5000,
            better="higher",
            detail=(
                f"N={n:,} synthetic posts over {DAYS} days, batches of {BATCH}, SQLite WAL + "
                f"FTS5 on one file ({db_mb:.0f} MiB); time inside upsert only, jieba "
                f"tokenizing excluded (pre-segmented); including jieba "
                f"({tok_s_per_post * 1e3:.2f} ms/post) ≈ {with_jieba:.0f} posts/s; "
                f"wall time with generation {wall_s:.0f} s"
            ),
        ),
        Result(
            name="local_query_p95_ms",
            value=round(p95, 1),
            unit="ms",
            goal=200,
            better="lower",
            detail=(
                f"N={n:,} posts; p95 over {len(all_ms)} dashboard queries; per query p95 ms: "
                f"{per_query}; median {statistics.median(all_ms):.1f} ms"
            ),
        ),
    ]


def _query_mix(store: PostStore, reps: int) -> dict[str, list[float]]:
    """Timings in ms of each dashboard query of the mix (any PostStore: bench_es uses it too)."""
    day = timedelta(days=1)
    texts = ["理财 亏损", "挤兑", "手机银行 登录失败", "东湖支行", "信用卡 年费", "盗刷", "罚款"]
    neg = [Sentiment.NEGATIVE]
    deep_pages = 50

    def deep_cursor() -> tuple[PostQuery, str | None]:
        q = PostQuery(since=END - 30 * day, until=END)
        cursor = None
        for _ in range(deep_pages):
            cursor = store.search(q, limit=20, cursor=cursor).next_cursor
        return q, cursor

    deep_q, deep_c = deep_cursor()
    mix: dict[str, Callable[[int], object]] = {
        "count_24h": lambda i: store.count(
            PostQuery(since=END - day - timedelta(minutes=i), until=END)
        ),
        "hist_30d_hourly": lambda i: store.histogram(
            PostQuery(since=END - 30 * day, until=END), bucket_seconds=3600
        ),
        "hist_30d_daily_by_sentiment": lambda i: store.histogram(
            PostQuery(since=END - 30 * day, until=END), bucket_seconds=86400, group_by="sentiment"
        ),
        "terms_topic_30d": lambda i: store.terms(
            PostQuery(since=END - 30 * day, until=END), "topic", size=12
        ),
        "feed_filtered": lambda i: store.search(
            PostQuery(
                since=END - 7 * day,
                until=END,
                sentiments=neg,
                sources=[SOURCES[i % 6][0], SOURCES[(i + 1) % 6][0]],
            ),
            limit=20,
        ),
        "text_newest": lambda i: store.search(
            PostQuery(text=texts[i % len(texts)], since=END - 30 * day), limit=20, highlight=True
        ),
        "text_relevance": lambda i: store.search(
            PostQuery(text=texts[(i + 3) % len(texts)]),
            sort="relevance",
            limit=20,
            highlight=True,
        ),
        "deep_page_50": lambda i: store.search(deep_q, limit=20, cursor=deep_c),
    }
    timings: dict[str, list[float]] = {name: [] for name in mix}
    for fn in mix.values():
        fn(0)  # warm the page cache the way a dashboard session does
    for i in range(reps):
        for name, fn in mix.items():
            t0 = time.perf_counter()
            fn(i)
            timings[name].append((time.perf_counter() - t0) * 1000)
    return timings


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for res in run(quick=True):
        print(f"{res.name} = {res.value:g} {res.unit} (goal {res.goal}, {res.better} is better)")
        print(f"    {res.detail}")
