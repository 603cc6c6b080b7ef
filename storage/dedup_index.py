"""The crawl's near-duplicate index and repost groups, in one small SQLite file.

Every crawl is its own process, so what one crawl learned about texts must be
on disk for the next: this file (``<data_dir>/dedup.db`` by default) holds,
beside whichever PostStore is configured,

    bands        (LSH band key, post id, when added): the candidate index
    duplicates   a copy (its own post id, URL, source, kind, similarity,
                 reach, when seen, when published) → the id of the stored post it
                 was grouped under
    stale_groups originals whose counts could not be written yet (spooled)
    meta         when the index was last pruned

The band keys are computed by :mod:`crawler.neardup` (this module only stores
integers, so ``storage`` does not import ``nlp``). A key keeps at most
``_PER_KEY`` posts (the first ones): a key shared by very many posts comes
from a template or a slogan, and a real copy shares many keys, not one; so a
look-up reads at most ``BANDS × _PER_KEY`` rows. Rows older than ``window``
are pruned at most once a day, when a crawl opens the index: reposts come
within days of their original, and the index stays small (≈ 0.8 KB per post).

The duplicate table is the authority for repost counts: recording a copy is
``INSERT OR IGNORE`` by the copy's post id, so seeing it again in a later
crawl (or two crawls racing) never counts it twice. ``Post.duplicates`` and
``Post.duplicate_reach`` in the PostStore are a denormalised copy that the
crawl's store stage refreshes from :meth:`DedupIndex.group_totals`; an
original it cannot read yet (its batch is spooled) is remembered in
``stale_groups`` and refreshed by the next crawl, after the spool replay.

Writes are buffered in memory and written in one transaction per
``_FLUSH_POSTS`` posts and by :meth:`DedupIndex.flush`; reads see the
buffered rows too. Errors: ``StoreUnavailable`` naming the file when it
cannot be opened, read or written.

The detection rules read the copies back by time (:meth:`DedupIndex.count_copies`,
:meth:`DedupIndex.copy_histogram`, the ``CopyCounter`` port of
:mod:`alerts.rules.base`): a repost storm is one stored post but many copies,
and a volume rule must hear all of them. A copy's time is its published time
(``published_at``, recorded since this column was added; older rows and
copies without a page time fall back to ``seen_at``, the crawl time), on the
same clock as ``Post.published_at``, which the rules count stored posts by.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.errors import StoreUnavailable
from storage.sqlite_in import rows_in

log = logging.getLogger(__name__)

# Posts a band key keeps at most (its first ones; see the module doc).
_PER_KEY = 4
# Buffered posts written in one transaction (and always by flush/close).
_FLUSH_POSTS = 5000
_PRUNE_EVERY = 86_400  # seconds
# When a copy counts (epoch seconds): its published time, else when the crawl saw it.
# The same expression in the index and the queries, so SQLite uses the index.
_COPY_TIME = "COALESCE(published_at, seen_at)"
_MIGRATIONS = (("published_at", "ALTER TABLE duplicates ADD COLUMN published_at INTEGER"),)
_TIME_INDEX = f"CREATE INDEX IF NOT EXISTS idx_duplicates_time ON duplicates ({_COPY_TIME}, source)"

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS bands (
        key      INTEGER NOT NULL,
        post_id  TEXT    NOT NULL,
        added_at INTEGER NOT NULL,
        PRIMARY KEY (key, post_id)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS duplicates (
        id          TEXT    PRIMARY KEY,
        original_id TEXT    NOT NULL,
        url         TEXT    NOT NULL,
        source      TEXT    NOT NULL,
        kind        TEXT    NOT NULL,   -- 'exact' or 'near'
        similarity  REAL    NOT NULL,
        reach       INTEGER NOT NULL,
        seen_at     INTEGER NOT NULL    -- epoch seconds
    )
    """,
    "CREATE INDEX IF NOT EXISTS idx_duplicates_original ON duplicates (original_id)",
    # _COPY_TIME is added by _migrate (older files lack published_at), then indexed there.
    "CREATE TABLE IF NOT EXISTS stale_groups (original_id TEXT PRIMARY KEY) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)


def _epoch(moment: datetime) -> int:
    """Whole epoch seconds of an aware ``moment`` (floored, like the stored copy times)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: copy times are compared in UTC")
    return math.floor(moment.timestamp())


@dataclass(frozen=True)
class DuplicateLink:
    """A copy (``id``, ``url``) grouped under the stored post ``original_id``."""

    id: str
    original_id: str
    url: str
    source: str
    kind: str  # "exact" | "near"
    similarity: float
    reach: int
    seen_at: int  # epoch seconds (crawl time)
    published_at: int | None = None
    """Epoch seconds of the copy's own published time (``None``: unknown, ``seen_at`` counts)."""


@dataclass(frozen=True)
class GroupTotals:
    """How many copies a post has, and their summed reach."""

    duplicates: int
    reach: int


class DedupIndex:
    """Signatures, LSH bands and repost groups in the SQLite file ``path``.

    ``window`` bounds how long a post stays a near-duplicate candidate.
    One per crawl process (the crawl pipelines run in one thread); its SQLite calls are
    serialised by a lock, so the detection service may read copies from its scheduler threads.
    """

    def __init__(self, path: str | Path, *, window: timedelta = timedelta(days=7)) -> None:
        self.path = Path(path)
        self.window = window
        self._conn: sqlite3.Connection | None = None
        self._pending: dict[str, tuple[int, ...]] = {}
        self._mem_bands: dict[int, list[str]] = {}
        self._links: dict[str, DuplicateLink] = {}
        self._pending_totals: dict[str, GroupTotals] = {}  # of the links not yet written
        self._touched: set[str] = set()
        # The detection service reads copies from its scheduler's worker threads.
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"DedupIndex({str(self.path)!r})"

    # ------------------------------------------------------------------ connection

    @contextmanager
    def _db(self, action: str) -> Iterator[sqlite3.Connection]:
        try:
            with self._lock:
                if self._conn is None:
                    self._conn = self._open()
                yield self._conn
        except sqlite3.Error as exc:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
            raise StoreUnavailable(
                f"dedup index {self.path} unavailable ({action}): {exc}"
            ) from exc

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread off: calls are serialised by self._lock (see _db).
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            # A look-up per post: keep the band index in memory (address space, not RAM).
            conn.execute("PRAGMA cache_size = -32768")
            conn.execute("PRAGMA mmap_size = 268435456")
            conn.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA:
                conn.execute(stmt)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(duplicates)")}
            for column, alter in _MIGRATIONS:  # additive: files of older crawls keep working
                if column not in columns:
                    conn.execute(alter)
            conn.execute(_TIME_INDEX)
            now = int(time.time())
            row = conn.execute("SELECT value FROM meta WHERE name = 'pruned_at'").fetchone()
            pruned = 0
            if row is None or now - int(row[0]) >= _PRUNE_EVERY:
                # A full scan of the band table: once a day, not at every crawl.
                cutoff = now - int(self.window.total_seconds())
                pruned = conn.execute("DELETE FROM bands WHERE added_at < ?", (cutoff,)).rowcount
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('pruned_at', ?)", (now,))
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        if pruned:
            log.info(
                "dedup index %s: pruned %d band rows older than %s", self.path, pruned, self.window
            )
        return conn

    def close(self) -> None:
        """Write what is buffered and close the file. Safe to call twice."""
        try:
            self.flush()
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ------------------------------------------------------------------ near duplicates

    def add(self, post_id: str, bands: Sequence[int]) -> None:
        """Make ``post_id`` a near-copy candidate for later texts with these band keys."""
        self._pending[post_id] = tuple(bands)
        for key in bands:
            ids = self._mem_bands.setdefault(key, [])
            if len(ids) < _PER_KEY:  # as in the file: a key keeps its first posts
                ids.append(post_id)
        if len(self._pending) >= _FLUSH_POSTS:
            self.flush()

    def candidates(
        self, bands: Sequence[int], *, min_shared: int = 3, limit: int = 3
    ) -> list[tuple[str, int]]:
        """``(post id, shared keys)`` of up to ``limit`` posts sharing ``min_shared`` keys.

        Most shared first. Texts of 3-gram Jaccard J share each of the 16 keys
        with probability J⁴, so at least 3 of them with probability 0.90 at
        J = 0.75, 0.97 at 0.8 and ≈ 1 at 0.9, but only 0.08 at 0.5: the count
        of shared keys is the similarity estimate, and the texts decide.
        """
        hits: Counter[str] = Counter()
        for key in bands:
            hits.update(self._mem_bands.get(key, ()))
        if bands:
            # One multi-seek of the primary key (at most len(bands) x _PER_KEY rows),
            # counted and ranked in SQLite: at most ``limit`` rows come back.
            marks = ",".join("?" * len(bands))
            with self._db("candidate look-up") as conn:
                rows = conn.execute(
                    f"SELECT post_id, COUNT(*) AS n FROM bands WHERE key IN ({marks}) "
                    "GROUP BY post_id HAVING n >= ? ORDER BY n DESC LIMIT ?",
                    [*bands, min_shared, limit],
                ).fetchall()
            # A post both buffered and written (flushed mid-crawl) is one post.
            for pid, n in rows:
                hits[pid] = max(hits[pid], n)
        return [(pid, n) for pid, n in hits.most_common(limit) if n >= min_shared]

    # ------------------------------------------------------------------ repost groups

    def record(self, link: DuplicateLink) -> bool:
        """Group the copy ``link.id`` under ``link.original_id``; ``False`` if already grouped."""
        if link.id in self._links or self.originals_of([link.id]):
            return False
        self._links[link.id] = link
        t = self._pending_totals.get(link.original_id, GroupTotals(0, 0))
        self._pending_totals[link.original_id] = GroupTotals(t.duplicates + 1, t.reach + link.reach)
        self._touched.add(link.original_id)
        return True

    def originals_of(self, ids: Sequence[str]) -> dict[str, str]:
        """``{copy id: original id}`` for each of ``ids`` already grouped as a copy."""
        found = {i: self._links[i].original_id for i in ids if i in self._links}
        rest = [i for i in dict.fromkeys(ids) if i not in found]
        if not rest:
            return found
        with self._db("duplicate look-up") as conn:
            found.update(
                rows_in(conn, "SELECT id, original_id FROM duplicates WHERE id IN ({marks})", rest)
            )
        return found

    def take_touched(self) -> set[str]:
        """Originals that got a new copy since the last call (their counts need refreshing)."""
        touched, self._touched = self._touched, set()
        return touched

    def group_totals(self, original_ids: Sequence[str]) -> dict[str, GroupTotals]:
        """Copies and summed reach per original, buffered copies included."""
        wanted = list(dict.fromkeys(original_ids))
        found: dict[str, GroupTotals] = {}
        if not wanted:
            return found
        with self._db("group totals") as conn:
            for oid, n, reach in rows_in(
                conn,
                "SELECT original_id, COUNT(*), COALESCE(SUM(reach), 0) FROM duplicates "
                "WHERE original_id IN ({marks}) GROUP BY original_id",
                wanted,
            ):
                found[oid] = GroupTotals(duplicates=int(n), reach=int(reach))
        for oid in wanted:  # copies not yet written (record() ruled out repeats)
            if (t := self._pending_totals.get(oid)) is not None:
                have = found.get(oid, GroupTotals(0, 0))
                found[oid] = GroupTotals(have.duplicates + t.duplicates, have.reach + t.reach)
        return found

    def mark_stale(self, original_ids: Sequence[str]) -> None:
        """Remember originals whose stored counts are behind (refreshed by a later crawl)."""
        if not original_ids:
            return
        with self._db("mark stale groups") as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO stale_groups VALUES (?)", [(i,) for i in original_ids]
            )

    def take_stale(self) -> set[str]:
        """The originals :meth:`mark_stale` remembered, forgetting them."""
        with self._db("take stale groups") as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                ids = {row[0] for row in conn.execute("SELECT original_id FROM stale_groups")}
                conn.execute("DELETE FROM stale_groups")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return ids

    def copies_of(self, original_id: str) -> list[DuplicateLink]:
        """The copies grouped under ``original_id``, in the order they were seen."""
        self.flush()
        with self._db("copies") as conn:
            rows = conn.execute(
                "SELECT id, original_id, url, source, kind, similarity, reach, seen_at, "
                "published_at FROM duplicates WHERE original_id = ? ORDER BY seen_at, rowid",
                (original_id,),
            ).fetchall()
        return [DuplicateLink(*row) for row in rows]

    # ------------------------------------------------------------------ copies by time

    def _copy_rows(
        self, since: datetime, until: datetime, exclude_sources: Collection[str]
    ) -> list[tuple[int, int]]:
        """``(epoch second, copies)`` of the copies in ``[since, until)``, buffered ones too."""
        lo, hi = _epoch(since), _epoch(until)
        if self._conn is None and not self._links and not self.path.exists():
            # No crawl has recorded a copy yet (a fresh install): zero, and a reader (the
            # detection service) does not create the crawl's file.
            return []
        excluded = sorted(set(exclude_sources))
        marks = ",".join("?" * len(excluded))
        not_in = f" AND source NOT IN ({marks})" if excluded else ""
        with self._db("copies by time") as conn:
            # One range scan of idx_duplicates_time, grouped by second in SQLite.
            rows = conn.execute(
                f"SELECT {_COPY_TIME} AS t, COUNT(*) FROM duplicates "
                f"WHERE {_COPY_TIME} >= ? AND {_COPY_TIME} < ?{not_in} GROUP BY t",
                [lo, hi, *excluded],
            ).fetchall()
        found = [(int(t), int(n)) for t, n in rows]
        # Buffered copies (this crawl's own): record() keeps them out of the table until flush.
        for link in self._links.values():
            t = link.published_at if link.published_at is not None else link.seen_at
            if lo <= t < hi and link.source not in excluded:
                found.append((t, 1))
        return found

    def count_copies(
        self, since: datetime, until: datetime, *, exclude_sources: Collection[str] = ()
    ) -> int:
        """Copies grouped under stored posts whose time is in ``[since, until)``.

        A copy's time is its published time, else when it was seen (see the
        module doc); copies from ``exclude_sources`` are left out. One indexed
        range query. Raises ``StoreUnavailable`` when the file cannot be read.
        """
        return sum(n for _, n in self._copy_rows(since, until, exclude_sources))

    def copy_histogram(
        self,
        since: datetime,
        until: datetime,
        *,
        bucket_seconds: int,
        exclude_sources: Collection[str] = (),
    ) -> dict[datetime, int]:
        """Copies in ``[since, until)`` per bucket of ``bucket_seconds``, keyed by the bucket's
        start (UTC, aligned to the epoch like ``PostStore.histogram(tz_offset_minutes=0)``);
        empty buckets are absent. Same filters and errors as :meth:`count_copies`."""
        if bucket_seconds <= 0:
            raise ValueError(f"bucket_seconds must be positive, got {bucket_seconds}")
        buckets: Counter[int] = Counter()
        for t, n in self._copy_rows(since, until, exclude_sources):
            buckets[t - t % bucket_seconds] += n
        return {datetime.fromtimestamp(b, UTC): n for b, n in sorted(buckets.items())}

    # ------------------------------------------------------------------ writes

    @staticmethod
    def _capped(
        conn: sqlite3.Connection, rows: list[tuple[int, str, int]]
    ) -> list[tuple[int, str, int]]:
        """``rows`` minus those of keys that already hold ``_PER_KEY`` posts (see module doc).

        One grouped count per 500 distinct keys (each holds ≤ ``_PER_KEY`` rows),
        rather than a sub-query per inserted row.
        """
        keys = list({key for key, _, _ in rows})
        have: dict[int, int] = dict(
            rows_in(
                conn, "SELECT key, COUNT(*) FROM bands WHERE key IN ({marks}) GROUP BY key", keys
            )
        )
        kept: list[tuple[int, str, int]] = []
        for row in rows:
            n = have.get(row[0], 0)
            if n < _PER_KEY:
                have[row[0]] = n + 1
                kept.append(row)
        return kept

    def flush(self) -> None:
        """Write buffered band keys and copies in one transaction.

        Raises ``StoreUnavailable`` (keeping the buffer) if the file cannot be written.
        """
        if not self._pending and not self._links:
            return
        now = int(time.time())
        bands = [(key, pid, now) for pid, keys in self._pending.items() for key in keys]
        links = [
            (
                link.id,
                link.original_id,
                link.url,
                link.source,
                link.kind,
                link.similarity,
                link.reach,
                link.seen_at,
                link.published_at,
            )
            for link in self._links.values()
        ]
        with self._db(f"write of {len(self._pending)} posts and {len(links)} copies") as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR IGNORE INTO bands VALUES (?, ?, ?)", self._capped(conn, bands)
                )
                conn.executemany(
                    "INSERT OR IGNORE INTO duplicates (id, original_id, url, source, kind, "
                    "similarity, reach, seen_at, published_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    links,
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._pending.clear()
        self._mem_bands.clear()
        self._links.clear()
        self._pending_totals.clear()
