"""Source health for the overview: how each crawled source has been doing, from its crawl runs.

Pure functions over :class:`core.models.CrawlRun` lists (no Streamlit, no store);
:meth:`dashboard.data.DashboardData.source_health` feeds them from the state store.

Per source: the last run and the last successful run, the error rate over the
last ``runs`` finished runs, items per run (fetched / kept / dropped; averages
over those runs and the last run's own numbers) and a status:

* ``stale`` (停滞) — no run started within ``STALE_FACTOR`` × the source's
  schedule interval (a configured source that never ran is stale too): the
  scheduler is not crawling it, whatever its last result was;
* ``failing`` (失败) — the last finished run failed;
* ``ok`` (正常) — otherwise.

A source whose interval is unknown (not in the configuration, or disabled)
is never called stale: there is no schedule to be late against.
Sources are listed failing first, then stale, then ok — a failing source is
never hidden.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Literal, Protocol, cast

import pandas as pd

from core.models import CrawlRun
from core.settings import Settings
from nlp.pii import mask_pii

HealthStatus = Literal["ok", "failing", "stale"]

STALE_FACTOR = 3
"""A source is stale when no run started within this many schedule intervals."""
SOURCE_HEALTH_RUNS = 20
"""How many recent runs the error rate and the per-run averages are computed over."""

STATUS_LABELS_ZH: dict[HealthStatus, str] = {"ok": "正常", "failing": "失败", "stale": "停滞"}
_STATUS_ORDER: dict[HealthStatus, int] = {"failing": 0, "stale": 1, "ok": 2}
_MESSAGE_CHARS = 300
# Sources that ran lately but are no longer configured are found among this many of the
# newest runs of all sources (hours of history; configured sources are always listed).
_DISCOVERY_RUNS = 200
# A source failing for longer than ``runs`` runs: look this far back for its last success.
_SUCCESS_LOOKBACK = 1000

COLUMNS = [
    "source",
    "status",
    "status_zh",
    "interval_minutes",
    "last_run_local",
    "last_run_ok",
    "last_success_local",
    "runs",
    "failed_runs",
    "error_rate",
    "fetched_avg",
    "kept_avg",
    "dropped_avg",
    "last_fetched",
    "last_kept",
    "last_dropped",
    "last_message",
]
"""Columns of :func:`health_frame` (times in the display zone; ``error_rate`` in 0..1)."""


class CrawlRunLog(Protocol):
    """The part of :class:`core.ports.StateStore` source health reads."""

    def list_crawl_runs(self, *, source: str | None = None, limit: int = 100) -> list[CrawlRun]: ...


def collect_runs(
    log: CrawlRunLog, sources: Sequence[str], *, runs: int = SOURCE_HEALTH_RUNS
) -> tuple[dict[str, list[CrawlRun]], dict[str, CrawlRun | None]]:
    """The last ``runs`` runs (newest first) and the last successful run of each source.

    Sources: ``sources`` (the configured ones, listed even when they never ran)
    plus every source among the last runs of all. Store errors propagate.
    """
    names = set(sources) | {r.source for r in log.list_crawl_runs(limit=_DISCOVERY_RUNS)}
    by_source: dict[str, list[CrawlRun]] = {}
    last_success: dict[str, CrawlRun | None] = {}
    for name in sorted(names):
        recent = log.list_crawl_runs(source=name, limit=runs)
        by_source[name] = recent
        success = next((r for r in recent if r.ok and r.finished_at is not None), None)
        if success is None and len(recent) == runs:
            older = log.list_crawl_runs(source=name, limit=_SUCCESS_LOOKBACK)
            success = next((r for r in older if r.ok and r.finished_at is not None), None)
        last_success[name] = success
    return by_source, last_success


def configured_intervals(settings: Settings | None) -> dict[str, float]:
    """``{source name: interval in minutes}`` of the enabled sources in ``settings``."""
    if settings is None:
        return {}
    return {s.name: s.interval_minutes for s in settings.sources if s.enabled}


def _dropped(run: CrawlRun) -> int:
    return sum(run.dropped.values())


def _mean(values: Sequence[int]) -> float | None:
    return sum(values) / len(values) if values else None


def source_row(
    source: str,
    runs: Sequence[CrawlRun],
    last_success: CrawlRun | None,
    interval_minutes: float | None,
    *,
    now: datetime,
    to_local: Callable[[datetime], datetime],
) -> dict[str, object]:
    """One row of :func:`health_frame` from ``runs`` (newest first) of ``source``.

    ``last_success`` is the newest run with ``ok`` (it may be older than ``runs``).
    A run without ``finished_at`` is still going (or died without a word): it
    counts as the last run but not in the error rate or the averages.
    """
    last = runs[0] if runs else None
    finished = [r for r in runs if r.finished_at is not None]
    failed = [r for r in finished if not r.ok]
    last_finished = finished[0] if finished else None
    status: HealthStatus = "ok"
    if last_finished is not None and not last_finished.ok:
        status = "failing"
    if interval_minutes is not None:
        late_after = timedelta(minutes=interval_minutes * STALE_FACTOR)
        if last is None or now - last.started_at > late_after:
            status = "stale"
    message = ""
    if last_finished is not None and not last_finished.ok:
        # Crawl messages quote pages and stderr: mask them like any outside text.
        message = mask_pii(last_finished.message.strip())[:_MESSAGE_CHARS]
    return {
        "source": source,
        "status": status,
        "status_zh": STATUS_LABELS_ZH[status],
        "interval_minutes": interval_minutes,
        "last_run_local": to_local(last.started_at) if last else None,
        "last_run_ok": None if last_finished is None else last_finished.ok,
        "last_success_local": to_local(last_success.started_at) if last_success else None,
        "runs": len(finished),
        "failed_runs": len(failed),
        "error_rate": len(failed) / len(finished) if finished else None,
        "fetched_avg": _mean([r.fetched for r in finished]),
        "kept_avg": _mean([r.kept for r in finished]),
        "dropped_avg": _mean([_dropped(r) for r in finished]),
        "last_fetched": last_finished.fetched if last_finished else None,
        "last_kept": last_finished.kept if last_finished else None,
        "last_dropped": _dropped(last_finished) if last_finished else None,
        "last_message": message,
    }


def health_frame(
    runs_by_source: Mapping[str, Sequence[CrawlRun]],
    last_success: Mapping[str, CrawlRun | None],
    intervals: Mapping[str, float],
    *,
    now: datetime,
    to_local: Callable[[datetime], datetime],
) -> pd.DataFrame:
    """One row per source in ``runs_by_source`` (columns :data:`COLUMNS`), worst first."""
    rows = [
        source_row(
            source,
            runs,
            last_success.get(source),
            intervals.get(source),
            now=now,
            to_local=to_local,
        )
        for source, runs in runs_by_source.items()
    ]
    rows.sort(key=lambda r: (_STATUS_ORDER[cast(HealthStatus, r["status"])], str(r["source"])))
    return pd.DataFrame(rows, columns=COLUMNS)
