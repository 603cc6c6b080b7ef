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
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Self
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem, NotConfigured
from scrapy.statscollectors import StatsCollector

from core.errors import PermanentStoreError, StoreUnavailable
from core.ids import content_hash, post_id_from_url
from core.models import Post, PostQuery
from core.ports import PostStore
from core.vocab import Platform
from crawler.items import RawPost
from crawler.parsing import parse_count, parse_published
from crawler.services import SERVICES_KEY, CrawlServices, EntityMatcher, TextAnalyzer

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
    """Drop what this crawl already kept, and what the store holds unchanged.

    Within a run: the same post id twice ("duplicate id") or the same cleaned
    text under another URL — a repost ("duplicate content"). Against the store:
    a post whose id is stored with the same content hash ("already stored");
    a stored post whose text changed goes on and is updated; a new id whose
    exact text is already stored under another id is a repost too
    ("duplicate content", found by a full-text search on the text and a
    content-hash comparison) — without that, which copy of a repost is kept
    would depend on the order pages arrive, and a re-crawl could add the
    other one. If the store cannot be asked (``StoreUnavailable``) the post
    goes on: the upsert is idempotent and the store stage spools it.

    Disabled (``NotConfigured``) when ``YUQING_DEDUP_ENABLED`` is false.
    """

    def __init__(self, stats: StatsCollector, store: PostStore) -> None:
        super().__init__(stats)
        self.store = store
        self.seen_ids: set[str] = set()
        self.seen_hashes: dict[str, str] = {}
        self._warned_store = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.getbool("YUQING_DEDUP_ENABLED", True):
            raise NotConfigured("YUQING_DEDUP_ENABLED is false")
        services = services_from(crawler, "DedupPipeline")
        return cls(_require_stats(crawler), services.post_store)

    def process_item(self, item: Any) -> RawPost:
        raw = self._check(item)
        assert raw.post_id is not None and raw.content_hash is not None, "validate/clean first"
        if raw.post_id in self.seen_ids:
            raise self.drop(raw, "duplicate id")
        self.seen_ids.add(raw.post_id)
        try:
            stored = self.store.get(raw.post_id)
            store_known = True
        except StoreUnavailable as exc:
            stored, store_known = None, False
            self.stats.inc_value("yuqing/dedup/store_unavailable")
            if not self._warned_store:
                self._warned_store = True
                log.warning(
                    "dedup: store unavailable (%s); keeping posts, the store stage will spool them",
                    exc,
                )
        # The store is asked first so a stored post is always "already stored",
        # whichever copy of a repost this crawl happened to see first.
        if stored is not None and stored.content_hash == raw.content_hash:
            self.seen_hashes.setdefault(raw.content_hash, raw.post_id)
            raise self.drop(raw, "already stored")
        if raw.content_hash in self.seen_hashes:
            raise self.drop(raw, "duplicate content")
        self.seen_hashes[raw.content_hash] = raw.post_id
        if stored is not None:
            self.stats.inc_value("yuqing/dedup/changed")
            return raw
        if store_known:
            twin = self._stored_twin(raw)
            if twin is not None:
                log.debug("%s repeats the text of stored post %s", raw.url, twin)
                raise self.drop(raw, "duplicate content")
        return raw

    def _stored_twin(self, item: RawPost) -> str | None:
        """The id of a stored post with exactly this text under another id, if any."""
        try:
            page = self.store.search(PostQuery(text=item.text), sort="relevance", limit=20)
        except (StoreUnavailable, PermanentStoreError) as exc:
            # Not knowing means keeping the post: a repost stored twice is harmless,
            # a post lost is not.
            self.stats.inc_value("yuqing/dedup/twin_check_failed")
            log.debug("dedup: cannot search the store for a twin of %s: %s", item.url, exc)
            return None
        for hit in page.hits:
            if hit.post.content_hash == item.content_hash and hit.post.id != item.post_id:
                return hit.post.id
        return None


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
        self.batch_size = batch_size
        self.buffer: list[Post] = []

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        services = services_from(crawler, "StorePipeline")
        size = crawler.settings.getint("YUQING_STORE_BATCH_SIZE", 50)
        return cls(_require_stats(crawler), services, max(1, size))

    def open_spider(self) -> None:
        self.replay_spool()

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
        self.flush()

    def flush(self) -> None:
        """Upsert the buffered posts; on ``StoreUnavailable`` spool them instead."""
        if not self.buffer:
            return
        batch, self.buffer = self.buffer, []
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
