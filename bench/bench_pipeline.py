"""Benchmark of the crawl pipeline: validate → clean → mention filter → dedup → analyze → store.

Figure:

* ``pipeline_posts_per_s`` — synthetic :class:`crawler.items.RawPost` items
  (100,000; 5,000 when ``quick``) per second through the six stage objects of
  ``crawler.pipelines``, driven directly (no network, no Scrapy engine), with
  the shipped NLP models (``nlp.analyzer.Analyzer``, ``nlp.mentions.MentionMatcher``)
  and a real ``storage.local.LocalPostStore`` in a temporary directory,
  including the final flush. Dropped items count as processed: deciding to
  drop them is the pipeline's work. Generating the items is not timed.

* ``pipeline_peak_mb_100k`` — the peak resident memory (``ru_maxrss``) of the
  process that ran those posts, models included (the detail gives the growth
  over the models-loaded baseline). Only reported for the full 100,000-post run.

The mix is what a crawl sees: most posts name the bank (or a branch or a
product), some do not or name only an exclusion (澜海公园), some are exact
reposts of an earlier text, some near-copies (a Weibo-style "comment
//@someone: original" repost), some the same URL twice; publish times come in
the formats of ``crawler.parsing``. Dedup runs with its near-duplicate index
(``storage.dedup_index.DedupIndex``, a second SQLite file in the temp dir), as
``yuqing crawl`` does. ``detail`` gives the time per stage, the drops per
reason and the memory.
"""

from __future__ import annotations

import logging
import os
import random
import resource
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.results import Result

log = logging.getLogger(__name__)

SEED = 20261123
NOW = datetime(2026, 11, 23, 6, 30, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]

BRANCHES = ["澜海银行滨江支行", "滨江支行", "澜海银行城西支行", "城西支行"]
PEOPLE = ["张先生", "李女士", "王阿姨", "陈同学", "刘师傅", "赵老师"]
BANK_TEMPLATES = [
    "今天去{branch}办业务，排队{n}分钟，{person}说柜台只开了一个窗口。",
    "澜海银行的理财产品到期亏损{n}%，理财经理当初说保本，{person}要求退钱。",
    "澜海银行APP又登录不上了，转账失败{n}次，客服电话一直占线。",
    "{branch}的大堂经理很耐心，帮{person}办好了社保卡，点赞！",
    "澜海银行信用卡被盗刷{n}元，{person}已经报警并向监管部门投诉。",
    "听说澜海银行要裁员{n}人？有没有内部人士说说情况。",
]
OTHER_TEMPLATES = [
    "周末去澜海公园散步，{person}说湖边的桂花开了，走了{n}分钟。",
    "今天地铁故障，{person}在站台等了{n}分钟，上班迟到了。",
    "澜海大道今晚封路施工，预计持续{n}天，请绕行。",
]
TAILS = ["", "大家怎么看？", "#维权#", "转发扩散！", "\n免责声明：本文仅代表作者个人观点。"]
TIME_FORMATS = [
    lambda t: t.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M"),
    lambda t: t.astimezone(ZoneInfo("Asia/Shanghai")).strftime("发表于 %Y年%m月%d日 %H:%M"),
    lambda t: t.isoformat(),
    lambda t: t.strftime("%a, %d %b %Y %H:%M:%S +0000"),
    lambda t: f"{max(1, int((NOW - t).total_seconds() // 60) % 59)}分钟前",
    lambda t: str(int(t.timestamp())),
    lambda t: None,
]


def synthetic_posts(n: int, seed: int = SEED) -> Iterator[Any]:
    """``n`` deterministic RawPost items: ~80 % about the bank, ~5 % exact reposts,
    ~3 % near-copies (a comment in front), ~2 % the same URL twice."""
    from crawler.items import RawPost

    rng = random.Random(seed)
    recent: list[str] = []
    for i in range(n):
        roll = rng.random()
        url = f"https://bbs{i % 7}.example.com/thread/{i}.html"
        if roll < 0.05 and recent:
            text = rng.choice(recent)  # a repost under another URL
        elif roll < 0.08 and recent:
            # A near-copy: a repost with a short comment in front (grouped, not stored).
            text = f"{rng.choice(['太坑了', '转发', '同遭遇', '扩散'])}//@{rng.choice(PEOPLE)}: "
            text += rng.choice(recent)
        elif roll < 0.10 and i:
            url = f"https://bbs{(i - 1) % 7}.example.com/thread/{i - 1}.html"  # seen twice
            text = f"第{i}楼：" + rng.choice(BANK_TEMPLATES)
        else:
            pool = OTHER_TEMPLATES if roll > 0.90 else BANK_TEMPLATES
            text = rng.choice(pool) + rng.choice(TAILS)
        text = text.format(
            branch=rng.choice(BRANCHES), person=rng.choice(PEOPLE), n=rng.randint(2, 500)
        )
        if roll >= 0.08:
            text = f"{text}（帖子{i}）"
            recent.append(text)
            if len(recent) > 500:
                recent.pop(0)
        published = NOW - timedelta(minutes=rng.randint(1, 60 * 24 * 30))
        yield RawPost(
            url=url,
            source=f"bench_forum_{i % 5}",
            platform="forum",
            title=text[:18],
            text=text,
            author=rng.choice(PEOPLE),
            published_at=rng.choice(TIME_FORMATS)(published),
            followers=rng.choice(["1.2万", "356", None, "粉丝 3k"]),
            comments=str(rng.randint(0, 300)),
            likes=rng.randint(0, 5000),
        )


def _max_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB else


def run(quick: bool) -> list[Result]:
    """Push N synthetic posts through the six stages into a temporary LocalPostStore."""
    from scrapy.exceptions import DropItem
    from scrapy.utils.test import get_crawler

    from core.models import PostQuery
    from core.settings import load_settings
    from crawler.pipelines import (
        AnalyzePipeline,
        CleanPipeline,
        DedupPipeline,
        MentionFilterPipeline,
        StorePipeline,
        ValidatePipeline,
    )
    from crawler.services import CrawlServices
    from nlp.analyzer import Analyzer
    from nlp.mentions import MentionMatcher
    from nlp.normalize import clean_text
    from nlp.segment import tokenize
    from storage.dedup_index import DedupIndex
    from storage.local import LocalPostStore
    from storage.spool import Spool

    n = 5_000 if quick else 100_000
    watchlist = load_settings(ROOT / "config" / "demo.yaml").watchlist
    analyzer = Analyzer(watchlist)
    analyzer.analyze("澜海银行预热")  # load models and caches outside the timing
    tokenize("澜海银行预热")
    rss_before = _max_rss_mb()

    stats = get_crawler().stats
    assert stats is not None
    with tempfile.TemporaryDirectory(prefix="yuqing-bench-pipeline-") as tmp:
        store = LocalPostStore(Path(tmp) / "posts.db", tokenize)
        index = DedupIndex(Path(tmp) / "dedup.db")
        services = CrawlServices(
            post_store=store,
            spool=Spool(Path(tmp) / "spool"),
            analyzer=analyzer,
            mention_matcher=MentionMatcher(watchlist),
            dedup_index=index,
        )
        store_stage = StorePipeline(stats, services, batch_size=50)
        stages: list[tuple[str, Any]] = [
            ("validate", ValidatePipeline(stats, ZoneInfo("Asia/Shanghai"), now=lambda: NOW)),
            ("clean", CleanPipeline(stats, clean_text)),
            ("filter", MentionFilterPipeline(stats, services.mention_matcher)),
            ("dedup", DedupPipeline(stats, store, index)),
            ("analyze", AnalyzePipeline(stats, analyzer)),
            ("store", store_stage),
        ]
        per_stage: defaultdict[str, float] = defaultdict(float)
        clock = time.perf_counter
        cpu = time.process_time  # beside wall time: the machine may be shared
        total = cpu_total = 0.0
        for done, item in enumerate(synthetic_posts(n), start=1):
            cpu_start = cpu()
            start = clock()
            t0 = start
            try:
                for name, stage in stages:
                    item = stage.process_item(item)
                    t1 = clock()
                    per_stage[name] += t1 - t0
                    t0 = t1
            except DropItem:
                per_stage[name] += clock() - t0
            total += clock() - start
            cpu_total += cpu() - cpu_start
            if done % 20_000 == 0:
                log.info("pipeline: %d/%d posts (%.0f posts/s)", done, n, done / total)
        t0, cpu_start = clock(), cpu()
        store_stage.close_spider()
        per_stage["store"] += clock() - t0
        total += clock() - t0
        cpu_total += cpu() - cpu_start
        stored = store.count(PostQuery())
        store.close()
        index.close()

    rss_after = _max_rss_mb()
    rate = n / total
    got = stats.get_stats()
    drops = ", ".join(
        f"{k.rsplit('/', 1)[-1]} {v}"
        for k, v in sorted(got.items())
        if k.startswith("yuqing/dropped/")
    )
    stage_ms = ", ".join(f"{k} {per_stage[k] / n * 1000:.3f}" for k, _ in stages)
    grouped = ", ".join(
        f"{k.rsplit('_', 1)[-1]} {v}"
        for k, v in sorted(got.items())
        if k.startswith("yuqing/dedup/grouped_")
    )
    memory = f"peak RSS {rss_after:.0f} MB (models loaded: {rss_before:.0f} MB)"
    results = [
        Result(
            name="pipeline_posts_per_s",
            value=round(rate, 1),
            unit="posts/s",
            goal=1000,
            better="higher",
            detail=(
                f"{n} synthetic posts through validate→clean→filter→dedup→analyze→store "
                f"(LocalPostStore + DedupIndex in a temp dir, batches of 50), one thread, "
                f"{total:.1f} s wall ({n / cpu_total:.0f} posts/s by process CPU time, "
                f"{os.getloadavg()[0]:.1f} load average at the end); "
                f"ms/post by stage: {stage_ms}; stored {stored}; "
                f"grouped as reposts: {grouped}; dropped: {drops}; {memory}"
            ),
        )
    ]
    if not quick:
        results.append(
            Result(
                name="pipeline_peak_mb_100k",
                value=round(rss_after),
                unit="MB",
                goal=None,
                better="lower",
                detail=(
                    f"{memory}: +{rss_after - rss_before:.0f} MB for {n} posts through the "
                    "pipeline (dedup's in-crawl id/hash sets and recent texts, SQLite caches)"
                ),
            )
        )
    return results
