"""Live progress of a crawl: a Scrapy extension that hands the stats to a callback.

:func:`crawler.runner.run_crawl` installs :class:`ProgressExtension` when it
is given a ``progress`` callback (``yuqing crawl`` draws a rich progress line
with it). The callback gets a :class:`CrawlProgress` a few times a second and
once more when the spider closes (``done=True``, with the final stats); it runs
in the reactor thread and must be quick.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from twisted.internet import task

log = logging.getLogger(__name__)

PROGRESS_KEY = "YUQING_PROGRESS"
"""The Scrapy setting that holds the progress callback."""

DROPPED_PREFIX = "yuqing/dropped/"
ERRORS_PREFIX = "yuqing/errors/"


@dataclass(frozen=True)
class CrawlProgress:
    """Counts of a running (or, with ``done``, finished) crawl, read from its Scrapy stats."""

    fetched: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    spooled: int = 0
    replayed: int = 0
    skipped_known: int = 0
    done: bool = False

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @classmethod
    def from_stats(cls, stats: Mapping[str, Any], *, done: bool = False) -> CrawlProgress:
        """The counts in a Scrapy stats dict (the keys the yuqing pipelines write)."""
        robots = int(stats.get("robotstxt/response_count", 0))
        errors = sum(
            int(v)
            for k, v in stats.items()
            if k.startswith(ERRORS_PREFIX) and k != ERRORS_PREFIX + "start"
        )
        return cls(
            fetched=max(0, int(stats.get("response_received_count", 0)) - robots),
            kept=int(stats.get("yuqing/kept", 0)),
            dropped={
                k[len(DROPPED_PREFIX) :]: int(v)
                for k, v in sorted(stats.items())
                if k.startswith(DROPPED_PREFIX)
            },
            errors=errors + int(stats.get("spider_exceptions/count", 0)),
            spooled=int(stats.get("yuqing/store/spooled", 0)),
            replayed=int(stats.get("yuqing/store/replayed", 0)),
            skipped_known=int(stats.get("yuqing/incremental/skipped", 0)),
            done=done,
        )


ProgressCallback = Callable[[CrawlProgress], None]


class ProgressExtension:
    """Calls the ``YUQING_PROGRESS`` callback every ``interval`` seconds and at the end."""

    def __init__(self, crawler: Crawler, callback: ProgressCallback, interval: float) -> None:
        self.crawler = crawler
        self.callback = callback
        self.interval = interval
        self._loop: task.LoopingCall | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        callback = crawler.settings.get(PROGRESS_KEY)
        if callback is None:
            raise NotConfigured(f"{PROGRESS_KEY} is not set")
        ext = cls(crawler, callback, crawler.settings.getfloat("YUQING_PROGRESS_INTERVAL", 0.25))
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def _report(self, *, done: bool = False) -> None:
        stats = self.crawler.stats.get_stats() if self.crawler.stats else {}
        try:
            self.callback(CrawlProgress.from_stats(stats, done=done))
        except Exception:  # a display problem must never stop a crawl
            log.exception("progress callback failed")

    def spider_opened(self) -> None:
        self._loop = task.LoopingCall(self._report)
        self._loop.start(self.interval, now=True)

    def spider_closed(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._report(done=True)
