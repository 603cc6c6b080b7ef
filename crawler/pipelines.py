"""The crawl pipeline: validate → clean → mention filter → dedup → analyze → store.

Each stage is a small class that configures itself in ``from_crawler``
(STYLE #3) and decides one thing. A rejection raises ``DropItem`` with a
reason and counts it under ``yuqing/dropped/<reason>`` in the crawl stats,
which :func:`crawler.runner.run_crawl` copies into ``CrawlRun.dropped``.

Failures follow STYLE #6: duplicates are counted and skipped; a post the
store refuses permanently is counted (``yuqing/errors/store_failed``) and
logged; a store that is down (``StoreUnavailable``) never loses posts — the
batch goes to the spool and is replayed when the next crawl starts.

Stats written here (all under ``yuqing/``): ``dropped/<reason>``, ``kept``,
``store/inserted``, ``store/updated``, ``store/spooled``, ``store/replayed``,
``time/missing``, ``time/unparsed``, ``time/future``, ``errors/<what>``.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Self
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem, NotConfigured
from scrapy.statscollectors import StatsCollector

from core.errors import StoreUnavailable
from core.ids import content_hash, post_id_from_url
from core.models import Post
from core.ports import ContentIndex, PostStore
from core.vocab import Platform
from crawler.items import RawPost
from crawler.neardup import Fingerprint, copy_similarity, fingerprint, normalised
from crawler.parsing import parse_count, parse_published
from crawler.services import SERVICES_KEY, CrawlServices, EntityMatcher, TextAnalyzer
from storage.dedup_index import DedupIndex, DuplicateLink

log = logging.getLogger(__name__)

DROPPED_PREFIX = "yuqing/dropped/"
ERRORS_PREFIX = "yuqing/errors/"

# A page may show a time a little ahead of our clock (skew); beyond this it is wrong.
_FUTURE_TOLERANCE = timedelta(minutes=10)


def reason_key(reason: str) -> str:
    """The stats key fragment of a drop reason: "no watched entity" → "no_watched_entity"."""
    return re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_")


def services_from(crawler: Crawler, stage: str) -> CrawlServices:
    """The :class:`CrawlServices` of this crawl.

    Raises ``RuntimeError`` naming ``stage`` if there are none: a crawl without a
    store must fail loudly, not run and keep nothing.
    """
    services = crawler.settings.get(SERVICES_KEY)
    if services is None:
        raise RuntimeError(
            f"{stage}: the Scrapy setting {SERVICES_KEY} is not set; run crawls through "
            "crawler.runner.run_crawl (or `yuqing crawl SOURCE`), which provides the "
            "post store, spool, analyzer and mention matcher"
        )
    if not isinstance(services, CrawlServices):
        raise RuntimeError(
            f"{stage}: {SERVICES_KEY} must be a crawler.services.CrawlServices, "
            f"got {type(services).__name__}"
        )
    return services


def _require_stats(crawler: Crawler) -> StatsCollector:
    assert crawler.stats is not None  # set by Crawler before pipelines are built
    return crawler.stats


class _Stage:
    """Shared helpers: stats and dropping with a counted reason."""

    def __init__(self, stats: StatsCollector) -> None:
        self.stats = stats

    def drop(self, item: RawPost, reason: str, *, log_level: str = "DEBUG") -> DropItem:
        """Count ``reason`` and return the ``DropItem`` to raise."""
        self.stats.inc_value(DROPPED_PREFIX + reason_key(reason))
        return DropItem(f"{reason}: {item.url}", log_level=log_level)

    @staticmethod
    def _check(item: Any) -> RawPost:
        if not isinstance(item, RawPost):
            raise TypeError(f"the yuqing pipelines take crawler.items.RawPost, got {type(item)!r}")
        return item


class ValidatePipeline(_Stage):
    """Required fields, a stable id, publish time to UTC, counts to ints.

    Times without an offset are local time of ``YUQING_TIMEZONE`` (default
    Asia/Shanghai). A page without a usable time gets the crawl time and
    ``published_at_estimated=True`` (counted under ``yuqing/time/*``).
    """

    def __init__(
        self,
        stats: StatsCollector,
        zone: ZoneInfo,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(stats)
        self.zone = zone
        self.now = now
        self._warned_unparsed = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        zone = ZoneInfo(crawler.settings.get("YUQING_TIMEZONE", "Asia/Shanghai"))
        return cls(_require_stats(crawler), zone)

    def process_item(self, item: Any) -> RawPost:
        raw = self._check(item)
        if not raw.url or not raw.source:
            raise self.drop(raw, "missing field", log_level="WARNING")
        if not (raw.text or "").strip():
            raise self.drop(raw, "empty text", log_level="WARNING")
        try:
            raw.post_id = post_id_from_url(raw.url)
        except ValueError:
            raise self.drop(raw, "invalid url", log_level="WARNING") from None
        crawled = self.now()
        raw.crawled_at = crawled
        published = parse_published(raw.published_at, self.zone, crawled)
        if published is None:
            if raw.published_at is None or not str(raw.published_at).strip():
                self.stats.inc_value("yuqing/time/missing")
            else:
                self.stats.inc_value("yuqing/time/unparsed")
                if not self._warned_unparsed:
                    self._warned_unparsed = True
                    log.warning(
                        "source %s: cannot read the publish time %r on %s; using the crawl "
                        "time (further cases counted in yuqing/time/unparsed)",
                        raw.source,
                        raw.published_at,
                        raw.url,
                    )
        elif published > crawled + _FUTURE_TOLERANCE:
            self.stats.inc_value("yuqing/time/future")
            log.warning(
                "source %s: publish time %s is in the future on %s; using the crawl time",
                raw.source,
                published.isoformat(),
                raw.url,
            )
            published = None
        raw.published_utc = published or crawled
        raw.published_at_estimated = published is None
        raw.counts = {
            name: parse_count(getattr(raw, name))
            for name in ("followers", "reposts", "comments", "likes")
        }
        return raw


class CleanPipeline(_Stage):
    """Text without site chrome and spam lines (``nlp.normalize.clean_text``), and its hash."""

    def __init__(self, stats: StatsCollector, clean: Callable[[str], str]) -> None:
        super().__init__(stats)
        self.clean = clean

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        services = services_from(crawler, "CleanPipeline")
        return cls(_require_stats(crawler), services.clean_text)

    def process_item(self, item: Any) -> RawPost:
        raw = self._check(item)
        raw.text = self.clean(raw.text)
        if not raw.text:
            raise self.drop(raw, "empty text")
        raw.title = " ".join(self.clean(raw.title or "").split())
        raw.author = " ".join((raw.author or "").split()) or None
        raw.content_hash = content_hash(raw.text)
        return raw


class MentionFilterPipeline(_Stage):
    """Keep only posts that name a watched entity (exclusions like 澜海公园 do not count).

    Disabled (``NotConfigured``) when ``YUQING_MENTION_FILTER_ENABLED`` is false.
    """

    def __init__(self, stats: StatsCollector, matcher: EntityMatcher) -> None:
        super().__init__(stats)
        self.matcher = matcher

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("YUQING_MENTION_FILTER_ENABLED", True):
            raise NotConfigured("YUQING_MENTION_FILTER_ENABLED is false")
        services = services_from(crawler, "MentionFilterPipeline")
        return cls(_require_stats(crawler), services.mention_matcher)

    def process_item(self, item: Any) -> RawPost:
        raw = self._check(item)
        matched = self.matcher.match(f"{raw.title}\n{raw.text}")
        if not matched:
            raise self.drop(raw, "no watched entity")
        raw.matched_entities = list(matched)
        return raw


class DedupPipeline(_Stage):
    """Drop what this crawl already kept or the store holds; group reposts under their original.

    In order, for each post (``docs/dedup.md`` has the design and its costs):

    1. the same post id twice in this crawl → "duplicate id";
    2. an id stored with the same content hash → "already stored"; stored with
       another hash → the text changed: the post goes on and is updated;
    3. a new id whose exact text (content hash) was kept earlier in this crawl
       or is stored under another id (``ContentIndex.existing_hashes``, one
       indexed look-up) → a repost: "duplicate content";
    4. a new id whose text is a near-copy of a post of the last
       ``DedupIndex.window``: MinHash LSH candidates (≥ 3 of 16 band keys
       shared), then at least
       ``YUQING_NEAR_DUP_THRESHOLD`` (default 0.9) of the candidate's 3-grams
       repeated, no number of it changed, and no watched entity it lacks
       (滨江支行 vs 城西支行 are two stories) → "near duplicate".

    Copies found in 3 and 4 are recorded in the ``DedupIndex`` under the
    original's id (kind, similarity, reach, URL); the store stage then refreshes
    the original's ``duplicates`` and ``duplicate_reach``. A copy recorded in
    an earlier crawl is found the same way and dropped as "already grouped"
    (counted once, ever). Which copy is the
    original never depends on page order across crawls: it is always the one
    stored first. Without a ``DedupIndex`` exact copies are dropped ungrouped
    and near-copies are kept.

    If the store cannot be asked (``StoreUnavailable``) the post goes on: the
    upsert is idempotent and the store stage spools it; a repost stored twice
    is harmless, a post lost is not. Disabled (``NotConfigured``) when
    ``YUQING_DEDUP_ENABLED`` is false.
    """

    # Texts remembered for near-copy checks without a store read (least recently used out).
    _TEXTS_KEPT = 20_000

    def __init__(
        self,
        stats: StatsCollector,
        store: PostStore,
        index: DedupIndex | None = None,
        *,
        near_threshold: float = 0.9,
    ) -> None:
        super().__init__(stats)
        self.store = store
        self.lookups: ContentIndex | None = store if isinstance(store, ContentIndex) else None
        self.index = index
        self.near_threshold = near_threshold
        self.seen_ids: set[str] = set()
        self.seen_hashes: dict[str, str] = {}
        self._texts: OrderedDict[str, tuple[str, frozenset[str]]] = OrderedDict()
        self._warned: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("YUQING_DEDUP_ENABLED", True):
            raise NotConfigured("YUQING_DEDUP_ENABLED is false")
        services = services_from(crawler, "DedupPipeline")
        threshold = crawler.settings.getfloat("YUQING_NEAR_DUP_THRESHOLD", 0.9)
        return cls(
            _require_stats(crawler),
            services.post_store,
            services.dedup_index,
            near_threshold=threshold,
        )

    def _unavailable(self, what: str, exc: Exception) -> None:
        self.stats.inc_value(f"yuqing/dedup/{what}_unavailable")
        if what not in self._warned:
            self._warned.add(what)
            log.warning(
                "dedup: %s unavailable (%s); keeping posts (the store stage spools them)",
                what,
                exc,
            )

    def process_item(self, item: Any) -> RawPost:
        raw = self._check(item)
        pid, digest = raw.post_id, raw.content_hash
        assert pid is not None and digest is not None, "validate/clean first"
        if pid in self.seen_ids:
            raise self.drop(raw, "duplicate id")
        self.seen_ids.add(pid)
        try:
            stored_hash = self._stored_hash(pid)
            store_known = True
        except StoreUnavailable as exc:
            stored_hash, store_known = None, False
            self._unavailable("store", exc)
        # The store is asked first so a stored post is always "already stored",
        # whichever copy of a repost this crawl happened to see first.
        if stored_hash == digest:
            self.seen_hashes.setdefault(digest, pid)
            raise self.drop(raw, "already stored")
        if stored_hash is not None:
            self.stats.inc_value("yuqing/dedup/changed")
            self.seen_hashes[digest] = pid
            self._remember(raw, fingerprint(raw.text) if self.index is not None else None)
            return raw
        original = self.seen_hashes.get(digest)
        if original is None and store_known and self.lookups is not None:
            try:
                original = self.lookups.existing_hashes([digest]).get(digest)
            except StoreUnavailable as exc:
                self._unavailable("store", exc)
        if original is not None and original != pid:
            if not self._group(raw, original, "exact", 1.0):
                raise self.drop(raw, "already grouped")
            raise self.drop(raw, "duplicate content")
        fp = fingerprint(raw.text) if self.index is not None else None
        if fp is not None:
            near = self._near_copy_of(raw, fp)
            if near is not None:
                if not self._group(raw, near[0], "near", near[1]):
                    raise self.drop(raw, "already grouped")
                raise self.drop(raw, "near duplicate")
        self.seen_hashes[digest] = pid
        self._remember(raw, fp)
        return raw

    def _stored_hash(self, post_id: str) -> str | None:
        if self.lookups is not None:
            return self.lookups.stored_hashes([post_id]).get(post_id)
        stored = self.store.get(post_id)
        return None if stored is None else stored.content_hash

    def _remember(self, raw: RawPost, fp: Fingerprint | None) -> None:
        """Make a kept post a near-copy candidate for the rest of this crawl and later ones."""
        if self.index is None or fp is None or raw.post_id is None:
            return
        self.index.add(raw.post_id, fp.bands)
        self._keep_text(raw.post_id, (fp.norm, frozenset(raw.matched_entities)))

    def _keep_text(self, post_id: str, known: tuple[str, frozenset[str]]) -> None:
        # An LRU: candidates are often the same few early posts of a band key
        # (see DedupIndex), so a store read per candidate would be mostly repeats.
        self._texts[post_id] = known
        if len(self._texts) > self._TEXTS_KEPT:
            self._texts.popitem(last=False)

    def _near_copy_of(self, raw: RawPost, fp: Fingerprint) -> tuple[str, float] | None:
        """(original id, similarity) of the best earlier post this text copies, if any."""
        assert self.index is not None and raw.post_id is not None
        try:
            candidates = self.index.candidates(fp.bands)
        except StoreUnavailable as exc:
            self._unavailable("dedup_index", exc)
            return None
        # Candidates share ≥ 3 of 16 LSH keys (an estimate of the 3-gram
        # Jaccard); the texts decide (neardup.copy_similarity).
        entities = frozenset(raw.matched_entities)
        for cid, _shared in candidates:
            if cid == raw.post_id:
                continue
            known = self._texts.get(cid)
            if known is None:
                try:
                    stored = self.store.get(cid)
                except StoreUnavailable as exc:
                    self._unavailable("store", exc)
                    return None
                if stored is None:
                    continue  # pruned, refused or still spooled: not an original to group under
                known = (normalised(stored.text), frozenset(stored.matched_entities))
                self._keep_text(cid, known)
            else:
                self._texts.move_to_end(cid)  # least recently used goes first
            norm, their_entities = known
            if not entities <= their_entities:
                continue  # names a branch or product the candidate does not: another story
            similarity = copy_similarity(fp.norm, norm)
            if similarity >= self.near_threshold:
                return cid, round(similarity, 3)
        return None

    def _group(self, raw: RawPost, original: str, kind: str, similarity: float) -> bool:
        """Record ``raw`` as a copy of ``original``; ``False`` if it was recorded before."""
        assert raw.post_id is not None
        log.debug("%s is a %s copy of %s (%.2f)", raw.url, kind, original, similarity)
        if self.index is None:
            return True
        counts = raw.counts
        reach = sum(counts.get(k) or 0 for k in ("followers", "reposts", "comments", "likes"))
        link = DuplicateLink(
            id=raw.post_id,
            original_id=original,
            url=raw.url,
            source=raw.source,
            kind=kind,
            similarity=similarity,
            reach=reach,
            seen_at=int(time.time()),
            # The rules count a copy at its own published time, like a stored post.
            published_at=(math.floor(raw.published_utc.timestamp()) if raw.published_utc else None),
        )
        try:
            if not self.index.record(link):
                return False
        except StoreUnavailable as exc:
            self._unavailable("dedup_index", exc)
            return True
        self.stats.inc_value(f"yuqing/dedup/grouped_{kind}")
        return True


class AnalyzePipeline(_Stage):
    """Attach ``nlp`` analysis (sentiment, topic, signals, entities, masked text).

    An analyzer error is logged with its traceback and counted
    (``yuqing/errors/analyze``); the post is kept without analysis rather
    than lost. Disabled when ``YUQING_ANALYZE_ENABLED`` is false.
    """

    def __init__(self, stats: StatsCollector, analyzer: TextAnalyzer) -> None:
        super().__init__(stats)
        self.analyzer = analyzer

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("YUQING_ANALYZE_ENABLED", True):
            raise NotConfigured("YUQING_ANALYZE_ENABLED is false")
        services = services_from(crawler, "AnalyzePipeline")
        return cls(_require_stats(crawler), services.analyzer)

    def process_item(self, item: Any) -> RawPost:
        raw = self._check(item)
        try:
            raw.analysis = self.analyzer.analyze(raw.text, raw.title)
        except Exception:  # a model bug must not lose the post; it is logged and counted
            log.exception("analyze failed for %s; storing it without analysis", raw.url)
            self.stats.inc_value(ERRORS_PREFIX + "analyze")
        return raw


def to_post(item: RawPost) -> Post:
    """The canonical :class:`Post` of a fully processed item. Raises ``ValidationError``."""
    assert item.post_id and item.published_utc and item.crawled_at, "validate first"
    try:
        platform = Platform(item.platform)
    except ValueError:
        platform = Platform.OTHER
    counts = item.counts
    return Post(
        id=item.post_id,
        url=item.url,
        source=item.source,
        platform=platform,
        title=item.title,
        text=item.text,
        author=item.author,
        author_followers=counts.get("followers"),
        reposts=counts.get("reposts") or 0,
        comments=counts.get("comments") or 0,
        likes=counts.get("likes") or 0,
        published_at=item.published_utc,
        published_at_estimated=item.published_at_estimated,
        crawled_at=item.crawled_at,
        content_hash=item.content_hash or "",
        matched_entities=item.matched_entities,
        analysis=item.analysis,
        extra=item.extra,
    )


class StorePipeline(_Stage):
    """Upsert posts in batches; spool a batch when the store is down; replay the spool first.

    Batches of ``YUQING_STORE_BATCH_SIZE`` posts (default 50) are written as
    they fill and at ``close_spider``. Never disabled: without services it
    raises ``RuntimeError`` instead of silently keeping nothing.
    """

    def __init__(self, stats: StatsCollector, services: CrawlServices, batch_size: int) -> None:
        super().__init__(stats)
        self.store = services.post_store
        self.spool = services.spool
        self.index = services.dedup_index
        self.batch_size = batch_size
        self.buffer: list[Post] = []
        self._touched: set[str] = set()  # originals with new copies, stored in an earlier batch

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        services = services_from(crawler, "StorePipeline")
        size = crawler.settings.getint("YUQING_STORE_BATCH_SIZE", 50)
        return cls(_require_stats(crawler), services, max(1, size))

    def open_spider(self) -> None:
        self.replay_spool()
        if self.index is not None:
            # Originals whose repost counts an earlier crawl could not write
            # (they were spooled): refreshed at this crawl's end.
            try:
                self._touched |= self.index.take_stale()
            except StoreUnavailable as exc:
                log.warning("dedup index: %s; stale repost counts wait for the next crawl", exc)

    def replay_spool(self) -> None:
        """Write spooled batches from earlier crawls; leave them spooled if the store is down."""
        pending = self.spool.pending()
        if not pending:
            return
        try:
            replayed = self.spool.replay(self.store)
        except StoreUnavailable as exc:
            self.stats.inc_value("yuqing/store/replay_failed")
            log.warning(
                "store still unavailable (%s); %d spooled posts wait for the next crawl",
                exc,
                pending,
            )
            return
        self.stats.inc_value("yuqing/store/replayed", replayed)
        log.info("replayed %d spooled posts into the store", replayed)

    def process_item(self, item: Any) -> RawPost:
        raw = self._check(item)
        try:
            post = to_post(raw)
        except ValidationError as exc:
            log.warning("post from %s is invalid and was not stored: %s", raw.url, exc)
            raise self.drop(raw, "invalid post", log_level="WARNING") from None
        self.buffer.append(post)
        self.stats.inc_value("yuqing/kept")
        if len(self.buffer) >= self.batch_size:
            self.flush()
        return raw

    def close_spider(self) -> None:
        self.flush(final=True)
        if self.index is not None:
            try:
                self.index.flush()
            except StoreUnavailable as exc:
                log.error("dedup index: %s; repost groups of this crawl are not recorded", exc)
                self.stats.inc_value(ERRORS_PREFIX + "dedup_index")

    # Originals stored in earlier batches are re-read and re-written to refresh
    # their counts; doing it once this many have new copies (and at the end of
    # the crawl), not every batch, writes a much-reposted original once per crawl.
    _REFRESH_EVERY = 1000

    def flush(self, *, final: bool = False) -> None:
        """Upsert the buffered posts; on ``StoreUnavailable`` spool them instead.

        Buffered posts get their ``duplicates`` and ``duplicate_reach`` from the
        dedup index (so re-crawling an original never resets them). Originals
        stored earlier that got new copies (reposts grouped by the dedup stage)
        are re-read and written in the same batch with refreshed counts, when
        ``_REFRESH_EVERY`` are waiting and on the ``final`` flush.
        """
        if self.index is not None:
            self._touched |= self.index.take_touched()
        refresh = final or len(self._touched) >= self._REFRESH_EVERY
        if not self.buffer and not (refresh and self._touched):
            return
        batch, self.buffer = self.buffer, []
        if self.index is not None:
            batch = self._with_group_counts(batch, refresh)
        if not batch:
            return
        try:
            result = self.store.upsert(batch)
        except StoreUnavailable as exc:
            self._spool(batch, exc)
            return
        self.stats.inc_value("yuqing/store/inserted", result.inserted)
        self.stats.inc_value("yuqing/store/updated", result.updated)
        if result.failed:
            self.stats.inc_value(ERRORS_PREFIX + "store_failed", result.failed)
            log.error(
                "store refused %d of %d posts: %s",
                result.failed,
                len(batch),
                "; ".join(result.errors[:5]),
            )

    def _with_group_counts(self, batch: list[Post], refresh: bool) -> list[Post]:
        """``batch`` with group counts set, plus (``refresh``) the touched originals."""
        assert self.index is not None
        ids = {p.id for p in batch}
        self._touched -= ids
        touched, self._touched = (self._touched, set()) if refresh else (set(), self._touched)
        try:
            totals = self.index.group_totals([*ids, *touched])
        except StoreUnavailable as exc:
            log.error("dedup index: %s; repost counts not refreshed in this batch", exc)
            self.stats.inc_value(ERRORS_PREFIX + "dedup_index")
            self._touched |= touched  # tried again at the next refresh
            return batch
        out = [
            p.model_copy(update={"duplicates": t.duplicates, "duplicate_reach": t.reach})
            if (t := totals.get(p.id)) is not None
            else p
            for p in batch
        ]
        stale: list[str] = []
        earlier = {
            oid: (t.duplicates, t.reach)
            for oid in sorted(touched - ids)
            if (t := totals.get(oid)) is not None
        }
        if earlier and isinstance(self.store, ContentIndex):
            # In place: two fields of the stored posts, no re-indexing.
            try:
                done = self.store.set_group_counts(earlier)
            except StoreUnavailable:
                done = set()
            self.stats.inc_value("yuqing/dedup/originals_refreshed", len(done))
            # Not stored (spooled) or the store is down: refreshed after the replay.
            stale = [oid for oid in earlier if oid not in done]
        else:
            for oid, (duplicates, reach) in earlier.items():
                try:
                    original = self.store.get(oid)
                except StoreUnavailable:
                    original = None
                if original is None:
                    stale.append(oid)
                    continue
                counts = {"duplicates": duplicates, "duplicate_reach": reach}
                out.append(original.model_copy(update=counts))
                self.stats.inc_value("yuqing/dedup/originals_refreshed")
        self.stats.inc_value("yuqing/dedup/refresh_deferred", len(stale))
        try:
            self.index.mark_stale(stale)
        except StoreUnavailable as exc:
            log.error("dedup index: %s; %d repost counts stay behind", exc, len(stale))
        return out

    def _spool(self, batch: list[Post], cause: Exception) -> None:
        try:
            self.spool.append(batch)
        except Exception:  # the last line of defence: say loudly what is lost
            log.exception(
                "store unavailable (%s) AND spooling failed: %d posts lost", cause, len(batch)
            )
            self.stats.inc_value(ERRORS_PREFIX + "spool", len(batch))
            return
        self.stats.inc_value("yuqing/store/spooled", len(batch))
        log.warning("store unavailable (%s); spooled %d posts for replay", cause, len(batch))
