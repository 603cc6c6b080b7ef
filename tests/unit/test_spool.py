"""The spool keeps post batches while the store is down and replays them in order."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import StoreUnavailable
from core.models import Post, PostQuery, UpsertResult
from storage.local import LocalPostStore
from storage.spool import Spool

T0 = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)


def posts(batch: int, n: int = 3) -> list[Post]:
    return [
        Post(
            id=f"spool-{batch:03d}-{i:03d}",
            url=f"https://demo.example/forum/{batch}/{i}",
            source="lanhai_forum",
            text=f"澜海银行东湖支行第{batch}批第{i}条投诉",
            published_at=T0 + timedelta(minutes=batch * 10 + i),
        )
        for i in range(n)
    ]


class FakeStore:
    """Records upserted batches; goes down after ``up_for`` successful calls."""

    def __init__(self, up_for: int | None = None, refuse: set[str] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.up_for = up_for
        self.refuse = refuse or set()

    def upsert(self, batch: Sequence[Post]) -> UpsertResult:
        if self.up_for is not None and len(self.batches) >= self.up_for:
            raise StoreUnavailable("post store /var/posts.db unavailable: disk I/O error")
        kept = [p.id for p in batch if p.id not in self.refuse]
        self.batches.append(kept)
        failed = len(batch) - len(kept)
        return UpsertResult(
            inserted=len(kept),
            failed=failed,
            errors=[f"{i}: refused" for i in self.refuse if i in {p.id for p in batch}],
        )


def test_append_writes_one_durable_file_per_batch(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert spool.pending() == 0
    first = spool.append(posts(1))
    second = spool.append(posts(2, n=5))
    assert first is not None and second is not None
    assert spool.files() == [first, second]
    assert spool.pending() == 8
    assert not list((tmp_path / "spool").glob("*.tmp"))
    assert spool.append([]) is None
    assert spool.pending() == 8


def test_replay_upserts_in_spool_order_and_deletes_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for b in range(5):
        spool.append(posts(b))
    store = FakeStore()
    assert spool.replay(store) == 15
    assert store.batches == [[p.id for p in posts(b)] for b in range(5)]
    assert spool.files() == []
    assert spool.pending() == 0
    assert spool.replay(store) == 0


def test_names_stay_ordered_when_the_clock_stalls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("storage.spool.time.time_ns", lambda: 1_700_000_000_000_000_000)
    spool = Spool(tmp_path)
    written = [spool.append(posts(b, n=1)) for b in range(12)]
    assert spool.files() == written


def test_replay_stops_at_an_outage_and_keeps_the_rest(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    files = [spool.append(posts(b)) for b in range(4)]
    down = FakeStore(up_for=1)
    with pytest.raises(StoreUnavailable):
        spool.replay(down)
    assert down.batches == [[p.id for p in posts(0)]]
    assert spool.files() == files[1:]
    assert spool.pending() == 9

    back = FakeStore()
    assert spool.replay(back) == 9
    assert back.batches == [[p.id for p in posts(b)] for b in (1, 2, 3)]
    assert spool.files() == []


def test_corrupt_file_is_quarantined_not_deleted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path)
    spool.append(posts(1))
    bad = spool.append(posts(2))
    spool.append(posts(3))
    assert bad is not None
    bad.write_text('{"id": "truncated', encoding="utf-8")  # e.g. a disk that lied
    store = FakeStore()
    with caplog.at_level(logging.ERROR, logger="storage.spool"):
        assert spool.replay(store) == 6
    assert store.batches == [[p.id for p in posts(b)] for b in (1, 3)]
    moved = tmp_path / "quarantine" / bad.name
    assert moved.read_text(encoding="utf-8") == '{"id": "truncated'
    assert spool.files() == []
    assert spool.pending() == 0
    assert any(bad.name in r.getMessage() for r in caplog.records)


def test_empty_or_invalid_post_file_is_quarantined(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    empty = tmp_path / "00000000000000000000001-000001-0000001.jsonl"
    empty.write_text("\n", encoding="utf-8")
    invalid = tmp_path / "00000000000000000000002-000001-0000001.jsonl"
    invalid.write_text('{"id": "x"}\n', encoding="utf-8")  # valid JSON, not a Post
    assert spool.replay(FakeStore()) == 0
    assert sorted(p.name for p in (tmp_path / "quarantine").iterdir()) == [
        empty.name,
        invalid.name,
    ]


def test_batch_with_refused_posts_is_kept_in_quarantine(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    path = spool.append(posts(1))
    assert path is not None
    refused = posts(1)[1].id
    assert spool.replay(FakeStore(refuse={refused})) == 2
    assert spool.files() == []
    assert refused in (tmp_path / "quarantine" / path.name).read_text(encoding="utf-8")


def test_unfinished_temporary_files_are_ignored(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    (tmp_path / "00000000000000000000001-000001-0000001.jsonl.tmp").write_text("{")
    assert spool.pending() == 0
    assert spool.replay(FakeStore()) == 0


def test_replay_into_a_real_store_survives_a_crawl_twice(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append(posts(1))
    spool.append(posts(1))  # the same batch spooled twice: upserts are idempotent
    store = LocalPostStore(tmp_path / "posts.db", str.split)
    assert spool.replay(store) == 6
    assert store.count(PostQuery()) == 3
    store.close()
