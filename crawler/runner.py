"""Run one crawl of one source and report it as a :class:`core.models.CrawlRun`.

Scrapy's Twisted reactor starts once per process and cannot be restarted, so
:func:`run_crawl` is meant for a dedicated process: ``yuqing crawl SOURCE``
(which the scheduler spawns as a child process) or a test's subprocess.
Calling it twice in one process raises ``ReactorNotRestartable``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings as ScrapySettings
from twisted.python.failure import Failure

from core.models import CrawlRun, utcnow
from core.settings import Settings, SourceConfig
from core.vocab import SourceKind
from crawler.jobs import crawl_job
from crawler.pipelines import DROPPED_PREFIX, ERRORS_PREFIX
from crawler.progress import PROGRESS_KEY, ProgressCallback
from crawler.services import SERVICES_KEY, CrawlServices
from crawler.spiders.base import SourceSpider
from crawler.spiders.jsonapi import JsonApiSpider
from crawler.spiders.rss import RssSpider
from crawler.spiders.site import SiteSpider

__all__ = ["CrawlServices", "crawl_run_from_stats", "run_crawl", "scrapy_settings"]

log = logging.getLogger(__name__)

SPIDERS: dict[SourceKind, type[SourceSpider]] = {
    SourceKind.RSS: RssSpider,
    SourceKind.HTML: SiteSpider,
    SourceKind.JSON_API: JsonApiSpider,
}


def scrapy_settings(settings: Settings, services: CrawlServices | None = None) -> ScrapySettings:
    """Scrapy settings: ``crawler.settings`` overridden by ``settings.crawl`` and the services."""
    result = ScrapySettings()
    result.setmodule("crawler.settings", priority="project")
    crawl = settings.crawl
    result.setdict(
        {
            "USER_AGENT": crawl.user_agent,
            "ROBOTSTXT_OBEY": crawl.obey_robots,
            "AUTOTHROTTLE_ENABLED": crawl.autothrottle,
            "DOWNLOAD_DELAY": crawl.download_delay,
            "CONCURRENT_REQUESTS_PER_DOMAIN": crawl.concurrent_per_domain,
            "RETRY_TIMES": crawl.retry_times,
            "DOWNLOAD_TIMEOUT": crawl.timeout_seconds,
            "YUQING_TIMEZONE": settings.timezone,
            "YUQING_STORE_BATCH_SIZE": crawl.store_batch_size,
            "YUQING_INCREMENTAL": crawl.incremental,
        },
        priority="cmdline",
    )
    if services is not None:
        result.set(SERVICES_KEY, services, priority="cmdline")
    return result


def run_crawl(
    settings: Settings,
    source_name: str,
    services: CrawlServices,
    *,
    resume: bool = True,
    progress: ProgressCallback | None = None,
) -> CrawlRun:
    """Crawl ``source_name`` once through the pipelines into ``services.post_store``.

    ``resume``: the crawl keeps a Scrapy JOBDIR in ``<data_dir>/jobs/<source>``
    (:mod:`crawler.jobs`): if an earlier crawl of this source was interrupted
    it goes on from there, and an interrupted one can be resumed in turn;
    ``resume=False`` discards an interrupted crawl's state first.
    ``progress`` is called with live counts (:mod:`crawler.progress`).

    Returns the :class:`CrawlRun` (fetched pages, kept posts, drops per
    reason, errors, ``ok`` and a message), after recording it with
    ``services.state_store`` when there is one. A source that is down, a
    start page that yields nothing, or posts that could only be spooled give
    ``ok=False`` with the reason in ``message`` — never a quiet "0 posts".

    Raises ``ConfigError`` for an unknown source. Runs Scrapy's reactor: call
    it at most once per process.
    """
    source = settings.source(source_name)
    started = utcnow()
    if not source.enabled:
        log.info("source %s is disabled in the config; crawling it anyway as asked", source.name)
    scrapy_conf = scrapy_settings(settings, services)
    # The CLI configures logging itself; only let Scrapy install its handler
    # when nobody has, so lines are not printed twice.
    scrapy_conf.set(
        "LOG_INSTALL_ROOT_HANDLER", not logging.getLogger().handlers, priority="cmdline"
    )
    if progress is not None:
        scrapy_conf.set(PROGRESS_KEY, progress, priority="cmdline")
        extensions = dict(scrapy_conf.getdict("EXTENSIONS"))
        extensions["crawler.progress.ProgressExtension"] = 500
        scrapy_conf.set("EXTENSIONS", extensions, priority="cmdline")
    failures: list[str] = []
    with crawl_job(Path(settings.data_dir), source.name, resume=resume) as job:
        if job.path is not None:
            scrapy_conf.set("JOBDIR", str(job.path), priority="cmdline")
        process = CrawlerProcess(scrapy_conf)
        crawler = process.create_crawler(SPIDERS[source.kind])

        def _failed(failure: Failure) -> None:
            # Scrapy logs a crawl that could not start (a pipeline or spider that
            # raised while being built) and carries on; keep the reason for the run.
            error = failure.value
            failures.append(f"crawl failed: {type(error).__name__}: {error}")

        process.crawl(crawler, source=source).addErrback(_failed)
        try:
            process.start()
        except Exception as exc:  # reported in the CrawlRun, not swallowed
            log.exception("crawl of %s failed", source.name)
            failures.append(f"crawl failed: {type(exc).__name__}: {exc}")
        stats: dict[str, Any] = crawler.stats.get_stats() if crawler.stats else {}
        job.finished(stats.get("finish_reason"), failed=bool(failures))
    failure = "; ".join(failures) or None
    log.debug("crawl %s stats: %s", source.name, stats)
    run = crawl_run_from_stats(source, stats, started=started, finished=utcnow(), failure=failure)
    level = logging.INFO if run.ok else logging.WARNING
    log.log(level, "crawl %s: %s", source.name, run.message)
    if services.state_store is not None:
        try:
            run = services.state_store.record_crawl_run(run)
        except Exception:  # the run is still returned; the caller sees it and the log says why
            log.exception("could not record the crawl run of %s in the state store", source.name)
    return run


def crawl_run_from_stats(
    source: SourceConfig,
    stats: dict[str, Any],
    *,
    started: datetime,
    finished: datetime,
    failure: str | None = None,
) -> CrawlRun:
    """Summarise Scrapy stats of one crawl as a :class:`CrawlRun` (pure; used by tests)."""
    robots = int(stats.get("robotstxt/response_count", 0))
    fetched = max(0, int(stats.get("response_received_count", 0)) - robots)
    kept = int(stats.get("yuqing/kept", 0))
    dropped = {
        key[len(DROPPED_PREFIX) :]: int(value)
        for key, value in stats.items()
        if key.startswith(DROPPED_PREFIX)
    }
    error_counts = {
        key[len(ERRORS_PREFIX) :]: int(value)
        for key, value in stats.items()
        if key.startswith(ERRORS_PREFIX)
    }
    # "start" repeats a request error already counted under its own key.
    errors = sum(v for k, v in error_counts.items() if k != "start")
    errors += int(stats.get("spider_exceptions/count", 0))
    errors += 1 if failure else 0
    inserted = int(stats.get("yuqing/store/inserted", 0))
    updated = int(stats.get("yuqing/store/updated", 0))
    spooled = int(stats.get("yuqing/store/spooled", 0))
    replayed = int(stats.get("yuqing/store/replayed", 0))

    problems: list[str] = []
    if failure:
        problems.append(failure)
    if error_counts.get("blocked"):
        # First: a block must never read as "the site had no posts".
        problems.append(
            f"blocked by the site on {error_counts['blocked']} pages "
            f"({stats.get('yuqing/blocked', 'see log')})"
        )
    if error_counts.get("login"):
        problems.append(f"login needed ({stats.get('yuqing/login', 'see log')})")
    if error_counts.get("invalid_json"):
        problems.append(f"{error_counts['invalid_json']} API answers were not JSON")
    if error_counts.get("start"):
        problems.append(f"start URL failed ({stats.get('yuqing/start_error', 'see log')})")
    elif fetched == 0 and not failure:
        problems.append("no page was fetched")
    reason = stats.get("finish_reason")
    if reason not in (None, "finished"):
        problems.append(f"crawl ended early: {reason}")
    if error_counts.get("empty_listing"):
        problems.append("a list page had no item links (site changed or down?)")
    if error_counts.get("feed"):
        problems.append("the feed could not be parsed")
    if error_counts.get("too_large"):
        problems.append(f"{error_counts['too_large']} pages over DOWNLOAD_MAXSIZE were skipped")
    if spooled:
        problems.append(f"post store unavailable: {spooled} posts spooled for replay")
    if error_counts.get("spool"):
        problems.append(f"{error_counts['spool']} posts could be neither stored nor spooled")
    if int(stats.get("yuqing/store/replay_failed", 0)):
        problems.append("spooled posts from earlier crawls are still waiting")
    if error_counts.get("store_failed"):
        problems.append(f"store refused {error_counts['store_failed']} posts")

    parts = [f"fetched {fetched} pages", f"kept {kept} ({inserted} new, {updated} updated)"]
    if replayed:
        parts.append(f"replayed {replayed} spooled")
    skipped_known = int(stats.get("yuqing/incremental/skipped", 0))
    if skipped_known:
        parts.append(f"not refetched {skipped_known} stored item pages")
    if dropped:
        parts.append("dropped " + ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())))
    if errors:
        parts.append(f"{errors} errors")
    misses = {
        k.rsplit("/", 1)[-1]: v for k, v in stats.items() if k.startswith("yuqing/selector_miss/")
    }
    if misses:
        parts.append("selector misses " + ", ".join(f"{k} {v}" for k, v in sorted(misses.items())))
    message = "; ".join(problems + parts)
    return CrawlRun(
        source=source.name,
        started_at=started,
        finished_at=finished,
        ok=not problems,
        fetched=fetched,
        kept=kept,
        dropped=dropped,
        errors=errors,
        message=message,
    )
