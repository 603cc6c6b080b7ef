"""Copies by time in the dedup index (the CopyCounter port) and group reach (influential_author)."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.grading import THRESHOLDS
from alerts.rules import InfluentialAuthor
from alerts.rules.base import CopyCounter
from core.settings import InfluentialAuthorRule
from core.vocab import Grade, Sentiment
from storage.dedup_index import DedupIndex, DuplicateLink
from tests.unit.fakes import T0, make_post, minutes


def copy_at(
    n: int, published: datetime | None, *, source: str = "weibo", seen: int = 0
) -> DuplicateLink:
    return DuplicateLink(
        id=f"copy{n}",
        original_id="orig",
        url=f"https://weibo.example/r/{n}",
        source=source,
        kind="exact",
        similarity=1.0,
        reach=5,
        seen_at=seen or int(time.time()),
        published_at=None if published is None else int(published.timestamp()),
    )


def test_copies_are_counted_at_their_published_time_not_the_crawl_time(tmp_path: Path) -> None:
    index = DedupIndex(tmp_path / "dedup.db")
    assert isinstance(index, DedupIndex)
    counter: CopyCounter = index  # the port the rules read
    for n in range(5):
        index.record(copy_at(n, T0 - minutes(10) + timedelta(seconds=n)))
    index.record(copy_at(9, T0 - minutes(50)))
    # Buffered (not yet written) copies count as well as written ones.
    assert counter.count_copies(T0 - minutes(30), T0) == 5
    index.flush()
    assert counter.count_copies(T0 - minutes(30), T0) == 5
    assert counter.count_copies(T0 - minutes(60), T0 - minutes(30)) == 1
    # [since, until): a copy exactly at ``until`` belongs to the next window.
    assert counter.count_copies(T0 - minutes(50) + timedelta(seconds=1), T0 - minutes(10)) == 0
    # Seen (crawled) now, but published then: nothing counts in the last hour of real time.
    now = datetime.now(UTC)
    assert counter.count_copies(now - timedelta(hours=1), now + timedelta(minutes=1)) == 0
    index.close()


def test_a_copy_without_a_published_time_counts_when_it_was_seen(tmp_path: Path) -> None:
    index = DedupIndex(tmp_path / "dedup.db")
    index.record(copy_at(1, None, seen=int((T0 - minutes(5)).timestamp())))
    index.flush()
    assert index.count_copies(T0 - minutes(30), T0) == 1
    index.close()


def test_histogram_buckets_are_epoch_aligned_and_down_sources_are_left_out(
    tmp_path: Path,
) -> None:
    index = DedupIndex(tmp_path / "dedup.db")
    index.record(copy_at(1, T0 - minutes(3) + timedelta(seconds=59)))
    index.record(copy_at(2, T0 - minutes(3)))
    index.record(copy_at(3, T0 - minutes(1)))
    index.record(copy_at(4, T0 - minutes(1), source="forum"))
    index.flush()
    assert index.copy_histogram(T0 - minutes(30), T0, bucket_seconds=60) == {
        T0 - minutes(3): 2,
        T0 - minutes(1): 2,
    }
    assert index.copy_histogram(
        T0 - minutes(30), T0, bucket_seconds=60, exclude_sources={"forum"}
    ) == {T0 - minutes(3): 2, T0 - minutes(1): 1}
    assert index.count_copies(T0 - minutes(30), T0, exclude_sources=["forum", "weibo"]) == 0
    with pytest.raises(ValueError, match="naive"):
        index.count_copies(datetime(2025, 3, 3, 11, 0), T0)
    index.close()


def test_an_index_file_of_an_older_crawl_gains_the_published_column(tmp_path: Path) -> None:
    path = tmp_path / "dedup.db"
    with sqlite3.connect(path) as conn:  # the schema before published_at existed
        conn.execute(
            "CREATE TABLE duplicates (id TEXT PRIMARY KEY, original_id TEXT NOT NULL, "
            "url TEXT NOT NULL, source TEXT NOT NULL, kind TEXT NOT NULL, "
            "similarity REAL NOT NULL, reach INTEGER NOT NULL, seen_at INTEGER NOT NULL)"
        )
        conn.execute(
            "INSERT INTO duplicates VALUES ('old', 'orig', 'u', 'weibo', 'exact', 1.0, 3, ?)",
            (int((T0 - minutes(20)).timestamp()),),
        )
    conn.close()
    index = DedupIndex(path)
    assert index.count_copies(T0 - minutes(30), T0) == 1  # counted at its seen time
    index.record(copy_at(1, T0 - minutes(2)))
    index.flush()
    assert index.count_copies(T0 - minutes(30), T0) == 2
    # In the order seen: the old row (seen at T0 - 20 min), then the new one (seen now).
    assert [c.published_at for c in index.copies_of("orig")] == [
        None,
        int((T0 - minutes(2)).timestamp()),
    ]
    index.close()


# -- influential_author: group reach ------------------------------------------------------


def test_influential_author_weighs_a_post_by_its_group_reach_and_copies() -> None:
    rule = InfluentialAuthor(InfluentialAuthorRule(min_followers=100_000, min_reposts=500))
    small = make_post(1, T0 - minutes(5), sentiment=Sentiment.NEGATIVE).model_copy(
        update={"author": "小号", "author_followers": 300, "reposts": 20}
    )
    assert rule.decide([small]) == []  # neither followers nor reposts reach a threshold
    # The same post after the crawl grouped 600 reposts (summed reach 1.2 million) under it.
    storm = small.model_copy(update={"duplicates": 600, "duplicate_reach": 1_200_000})
    (match,) = rule.decide([storm])
    assert storm.group_reach == 300 + 20 + 1_200_000
    assert match.metrics["reach"] == storm.group_reach
    assert match.metrics["own_reach"] == 320
    assert match.metrics["copies"] == 600
    assert "转载副本 600 条" in match.reason
    # Reach ≥ reach_very_high (+2) is what grades it III; the post's own reach would not.
    assert storm.group_reach >= THRESHOLDS.reach_very_high > small.reach
    assert match.grade == Grade.III


def test_influential_author_picks_the_post_with_the_largest_group_reach() -> None:
    rule = InfluentialAuthor(InfluentialAuthorRule(min_followers=100_000, min_reposts=500))
    base = make_post(1, T0 - minutes(5), sentiment=Sentiment.NEGATIVE)
    loud_alone = base.model_copy(update={"author": "大V", "author_followers": 200_000})
    copied = make_post(2, T0 - minutes(4), sentiment=Sentiment.NEGATIVE).model_copy(
        update={
            "author": "大V",
            "author_followers": 150_000,
            "duplicates": 40,
            "duplicate_reach": 90_000,
        }
    )
    (match,) = rule.decide([loud_alone, copied])
    assert match.metrics["reach"] == 150_000 + 90_000
    assert match.count == 2


def test_without_an_index_file_there_are_no_copies_and_no_file_is_created(
    tmp_path: Path,
) -> None:
    index = DedupIndex(tmp_path / "data" / "dedup.db")
    assert index.count_copies(T0 - minutes(30), T0) == 0
    assert index.copy_histogram(T0 - minutes(30), T0, bucket_seconds=60) == {}
    assert not (tmp_path / "data").exists()
    index.close()
