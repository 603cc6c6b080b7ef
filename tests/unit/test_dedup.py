"""Exact and near duplicates, and repost groups, across crawls (docs/dedup.md).

Real parts only: the post store is a SQLite file, the dedup index another one;
a "later crawl" is a fresh set of pipeline stages and a fresh ``DedupIndex``
object on the same files, as a new crawl process would build them.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datasketch import MinHash
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem
from scrapy.utils.test import get_crawler

from core.models import PostQuery
from core.settings import Watchlist
from crawler import neardup
from crawler.items import RawPost
from crawler.pipelines import CleanPipeline, DedupPipeline, StorePipeline, ValidatePipeline
from crawler.services import SERVICES_KEY, CrawlServices
from nlp.mentions import MentionMatcher
from nlp.segment import tokenize
from storage.dedup_index import DedupIndex, DuplicateLink
from storage.local import LocalPostStore
from storage.spool import Spool

WATCHLIST = Watchlist.model_validate({"bank": {"name": "澜海银行", "aliases": ["澜海"]}})
ORIGINAL = "澜海银行的理财产品到期亏损37%，理财经理当初说保本，李女士要求退钱。大家怎么看？"
# A Weibo-style repost: a short comment and the original (with an @mention) after it.
REPOST = "太坑了！//@王五: " + ORIGINAL
# The same template with other details: a different customer's own story, not a copy.
SIBLING = "澜海银行的理财产品到期亏损12%，理财经理当初说保本，张先生要求退钱。"
TRADITIONAL = "澜海銀行的理財產品到期虧損37%，理財經理當初說保本，李女士要求退錢。大家怎麼看？"


# -- fingerprints ------------------------------------------------------------------------


def test_signature_is_datasketchs_minhash_of_the_3grams() -> None:
    norm = neardup.normalised(ORIGINAL)
    reference = MinHash(
        num_perm=neardup.NUM_PERM, seed=1, scheme="affine32", hashfunc=neardup.gram_hash
    )
    reference.update_batch([g.encode("utf-8") for g in neardup.shingles(ORIGINAL)])
    assert np.array_equal(reference.hashvalues, neardup.signature_of(norm))


def test_fingerprints_are_stable_and_ignore_punctuation_width_and_script() -> None:
    a = neardup.fingerprint(ORIGINAL)
    assert a is not None
    assert a == neardup.fingerprint(ORIGINAL.replace("，", ", ").replace("？", "?"))
    assert a == neardup.fingerprint(TRADITIONAL)
    assert len(a.bands) == neardup.BANDS and len(a.signature) == neardup.SIGNATURE_BYTES


def test_a_repost_shares_bands_and_a_sibling_story_does_not_pass_the_threshold() -> None:
    a, r, s = (neardup.fingerprint(t) for t in (ORIGINAL, REPOST, SIBLING))
    assert a is not None and r is not None and s is not None
    assert len(set(a.bands) & set(r.bands)) >= 3
    assert neardup.jaccard(ORIGINAL, REPOST) >= 0.8
    assert neardup.estimate(a.signature, r.signature) >= 0.6
    assert neardup.jaccard(ORIGINAL, SIBLING) < 0.6
    assert len(set(a.bands) & set(s.bands)) < 3


def test_a_copy_repeats_the_original_and_changes_none_of_its_numbers() -> None:
    def similarity(copy: str, original: str) -> float:
        return neardup.copy_similarity(neardup.normalised(copy), neardup.normalised(original))

    assert similarity(REPOST, ORIGINAL) == 1.0
    assert similarity(TRADITIONAL, ORIGINAL) == 1.0
    assert similarity(ORIGINAL.replace("37%", "12%"), ORIGINAL) == 0.0  # another amount
    story = "城西支行的大堂经理很耐心，帮陈同学办好了社保卡，点赞！"
    assert similarity(story, story.replace("陈同学", "李女士")) < 0.8  # another customer
    # A swap at the very start changes fewer 3-grams: the entity check catches branches.
    assert similarity(story, story.replace("城西", "滨江")) > 0.9


def test_texts_too_short_to_compare_have_no_fingerprint() -> None:
    assert neardup.fingerprint("顶") is None
    assert neardup.fingerprint("！！！ ...") is None


# -- the index file ----------------------------------------------------------------------


def link(copy: str, original: str, reach: int = 10) -> DuplicateLink:
    return DuplicateLink(
        id=copy,
        original_id=original,
        url=f"https://x.example/{copy}",
        source="forum",
        kind="near",
        similarity=0.9,
        reach=reach,
        seen_at=int(time.time()),
    )


def test_groups_count_each_copy_once_across_processes(tmp_path: Path) -> None:
    first = DedupIndex(tmp_path / "dedup.db")
    assert first.record(link("c1", "o1", reach=100))
    assert not first.record(link("c1", "o1", reach=100))  # seen again in the same crawl
    first.close()
    later = DedupIndex(tmp_path / "dedup.db")
    assert not later.record(link("c1", "o1", reach=100))  # and in a later one
    assert later.record(link("c2", "o1", reach=5))
    totals = later.group_totals(["o1", "o2"])
    assert list(totals) == ["o1"]
    assert (totals["o1"].duplicates, totals["o1"].reach) == (2, 105)
    assert later.originals_of(["c1", "c2", "o1"]) == {"c1": "o1", "c2": "o1"}
    assert [c.id for c in later.copies_of("o1")] == ["c1", "c2"]
    later.close()


def test_candidates_come_from_this_crawl_and_earlier_ones(tmp_path: Path) -> None:
    fp, copy = neardup.fingerprint(ORIGINAL), neardup.fingerprint(REPOST)
    assert fp is not None and copy is not None
    first = DedupIndex(tmp_path / "dedup.db")
    first.add("p1", fp.bands)
    assert first.candidates(copy.bands)[0][0] == "p1"  # buffered, not yet written
    first.close()
    later = DedupIndex(tmp_path / "dedup.db")
    ((pid, shared),) = later.candidates(copy.bands)
    assert pid == "p1" and shared >= 3
    sibling = neardup.fingerprint(SIBLING)
    assert sibling is not None and later.candidates(sibling.bands) == []
    later.close()


def test_a_band_key_keeps_only_its_first_posts(tmp_path: Path) -> None:
    index = DedupIndex(tmp_path / "dedup.db")
    for n in range(10):  # ten posts sharing one key (a template), each with its own others
        index.add(f"p{n}", [42, 1000 + n, 2000 + n, 3000 + n])
    index.close()
    with sqlite3.connect(tmp_path / "dedup.db") as conn:
        rows = conn.execute("SELECT COUNT(*) FROM bands WHERE key = 42").fetchone()[0]
    assert rows == 4
    again = DedupIndex(tmp_path / "dedup.db")
    # The last post is still found by its own keys, whatever the crowded key holds.
    assert again.candidates([42, 1009, 2009, 3009]) == [("p9", 3)]
    again.close()


def test_band_rows_older_than_the_window_are_pruned(tmp_path: Path) -> None:
    fp = neardup.fingerprint(ORIGINAL)
    assert fp is not None
    index = DedupIndex(tmp_path / "dedup.db")
    index.add("old", fp.bands)
    index.close()
    with sqlite3.connect(tmp_path / "dedup.db") as conn:  # as if added 8 days ago
        conn.execute("UPDATE bands SET added_at = added_at - 8 * 86400")
        conn.execute("UPDATE meta SET value = value - 86400")  # last pruned a day ago
    again = DedupIndex(tmp_path / "dedup.db", window=timedelta(days=7))
    assert again.candidates(fp.bands) == []
    again.close()


# -- the pipeline across crawls ------------------------------------------------------------


class Crawl:
    """One crawl's stages over the shared store and index files (one per process in life)."""

    def __init__(self, tmp_path: Path, store: LocalPostStore) -> None:
        self.index = DedupIndex(tmp_path / "dedup.db")
        svc = CrawlServices(
            post_store=store,
            spool=Spool(tmp_path / "spool"),
            analyzer=None,  # type: ignore[arg-type]  # analysis is not under test here
            mention_matcher=MentionMatcher(WATCHLIST),
            dedup_index=self.index,
        )
        self.crawler: Crawler = get_crawler(settings_dict={SERVICES_KEY: svc})
        assert self.crawler.stats is not None
        self.validate = ValidatePipeline.from_crawler(self.crawler)
        self.clean = CleanPipeline.from_crawler(self.crawler)
        self.dedup = DedupPipeline.from_crawler(self.crawler)
        self.store = StorePipeline.from_crawler(self.crawler)

    def feed(self, url: str, text: str, **counts: Any) -> str:
        """Run one item through; returns "kept" or the drop reason."""
        item = RawPost(url=url, source="forum", platform="forum", text=text, **counts)
        try:
            item = self.clean.process_item(self.validate.process_item(item))
            item.matched_entities = ["澜海银行"]
            self.store.process_item(self.dedup.process_item(item))
        except DropItem as exc:
            return str(exc).split(":")[0]
        return "kept"

    def close(self) -> dict[str, Any]:
        self.store.close_spider()
        self.index.close()
        assert self.crawler.stats is not None
        return self.crawler.stats.get_stats()


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = LocalPostStore(tmp_path / "posts.db", tokenize)
    yield s
    s.close()


def test_reposts_are_grouped_under_the_stored_original_across_crawls(
    store: LocalPostStore, tmp_path: Path
) -> None:
    first = Crawl(tmp_path, store)
    assert first.feed("https://bbs.example.com/t/1", ORIGINAL, followers="1000") == "kept"
    assert first.feed("https://bbs.example.com/t/2", SIBLING) == "kept"
    first.close()

    second = Crawl(tmp_path, store)
    assert second.feed("https://weibo.example.com/r/1", REPOST, followers="2万") == "near duplicate"
    assert second.feed("https://news.example.com/a/1", ORIGINAL, likes=5) == "duplicate content"
    assert second.feed("https://tw.example.com/p/1", TRADITIONAL) == "near duplicate"
    stats = second.close()
    assert stats["yuqing/dedup/grouped_near"] == 2
    assert stats["yuqing/dedup/grouped_exact"] == 1
    assert stats["yuqing/dedup/originals_refreshed"] == 1

    assert store.count(PostQuery()) == 2  # the original and the sibling story; no copies
    original = store.search(PostQuery(text="李女士")).hits[0].post
    assert original.url == "https://bbs.example.com/t/1"
    assert (original.duplicates, original.duplicate_reach) == (3, 20_005)
    assert original.group_reach == 1000 + 20_005

    third = Crawl(tmp_path, store)  # the same copies seen again: counted once, ever
    assert third.feed("https://weibo.example.com/r/1", REPOST) == "already grouped"
    assert third.feed("https://bbs.example.com/t/1", ORIGINAL) == "already stored"
    third.close()
    again = store.get(original.id)
    assert again is not None and again.duplicates == 3


def test_copies_within_one_crawl_are_grouped_under_the_first(
    store: LocalPostStore, tmp_path: Path
) -> None:
    crawl = Crawl(tmp_path, store)
    assert crawl.feed("https://bbs.example.com/t/1", ORIGINAL) == "kept"
    assert crawl.feed("https://weibo.example.com/r/1", REPOST, reposts="12") == "near duplicate"
    assert crawl.feed("https://bbs.example.com/t/9", ORIGINAL) == "duplicate content"
    crawl.close()
    (hit,) = store.search(PostQuery()).hits
    assert (hit.post.duplicates, hit.post.duplicate_reach) == (2, 12)


def test_an_edited_original_keeps_its_repost_count(store: LocalPostStore, tmp_path: Path) -> None:
    first = Crawl(tmp_path, store)
    first.feed("https://bbs.example.com/t/1", ORIGINAL)
    first.feed("https://weibo.example.com/r/1", REPOST)
    first.close()
    second = Crawl(tmp_path, store)
    assert second.feed("https://bbs.example.com/t/1", ORIGINAL + "（已编辑）") == "kept"
    second.close()
    (hit,) = store.search(PostQuery()).hits
    assert hit.post.text.endswith("（已编辑）") and hit.post.duplicates == 1


def test_a_near_copy_naming_another_branch_is_another_story(
    store: LocalPostStore, tmp_path: Path
) -> None:
    crawl = Crawl(tmp_path, store)
    text = "今天去澜海银行滨江支行办业务，排队一个小时，柜台只开了一个窗口，大堂经理也不管。"
    assert crawl.feed("https://bbs.example.com/t/1", text) == "kept"
    item = RawPost(url="https://bbs.example.com/t/2", source="forum", text=text + "真的")
    item = crawl.clean.process_item(crawl.validate.process_item(item))
    item.matched_entities = ["澜海银行", "澜海银行城西支行"]  # names a branch the first does not
    assert crawl.dedup.process_item(item) is item
    crawl.close()


def test_without_a_dedup_index_exact_copies_are_still_dropped(
    store: LocalPostStore, tmp_path: Path
) -> None:
    svc = CrawlServices(
        post_store=store,
        spool=Spool(tmp_path / "spool"),
        analyzer=None,  # type: ignore[arg-type]
        mention_matcher=MentionMatcher(WATCHLIST),
    )
    crawler = get_crawler(settings_dict={SERVICES_KEY: svc})
    stages = [
        ValidatePipeline.from_crawler(crawler),
        CleanPipeline.from_crawler(crawler),
        DedupPipeline.from_crawler(crawler),
    ]

    def run(url: str, text: str) -> Any:
        item: Any = RawPost(url=url, source="forum", text=text)
        for stage in stages:
            item = stage.process_item(item)
        return item

    run("https://bbs.example.com/t/1", ORIGINAL)
    with pytest.raises(DropItem, match="duplicate content"):
        run("https://bbs.example.com/t/2", ORIGINAL)
    assert run("https://bbs.example.com/t/3", REPOST).url.endswith("/t/3")  # near: kept
