"""Source health for the detectors: a source with no successful crawl is a gap, not a zero.

When a source cannot be crawled (blocked, down, timing out) its posts stop
arriving. Counted naively that looks like a drop to zero — harmless for a
spike rule *now*, but it distorts everything compared with it later:

* a past outage inside a baseline lowers the baseline, so normal volume
  afterwards looks like a spike (a false alarm);
* an outage *now* of a big source lowers the current count, so a real
  spike on another source can stay under the threshold (a hidden alarm).

:func:`source_health` reads the crawl runs of the state store
(``crawl_gaps``, see :meth:`storage.state.SqlStateStore.crawl_gaps`) and
returns the sources down right now and the past outage windows of the
sources that are back. The detector leaves those windows out of the
baselines (like past incident windows) and the volume rule counts only the
healthy sources while one is down (:mod:`alerts.rules.volume_spike`).

A state store without ``crawl_gaps`` (a test fake) means "no outage known".
Store errors propagate: unknown health is never reported as "all healthy".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from alerts.rules.base import Window

HEALTH_LOOKBACK = timedelta(days=57)
"""How far back outages are read: the longest baseline (``seasonal_weeks`` ≤ 8) and a day."""


@runtime_checkable
class GapSource(Protocol):
    """A state store that can list source outages (``SqlStateStore``)."""

    def crawl_gaps(
        self, *, since: datetime, until: datetime, limit: int = 5000
    ) -> list[tuple[str, datetime, datetime | None]]: ...


@dataclass(frozen=True)
class SourceHealth:
    """Sources down at ``now`` and past outage windows of sources that are up again."""

    down: frozenset[str] = frozenset()
    gaps: tuple[Window, ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.down and not self.gaps


def health_from_gaps(
    gaps: Sequence[tuple[str, datetime, datetime | None]], now: datetime
) -> SourceHealth:
    """:class:`SourceHealth` from ``(source, start, end or None)`` outages (pure).

    A source whose latest outage has no end is down now; its other outages
    do not matter (its posts are left out of every count while it is down).
    """
    down = frozenset(src for src, _start, end in gaps if end is None or end > now)
    windows = tuple(
        (start, end)
        for src, start, end in gaps
        if src not in down and end is not None and start < end
    )
    return SourceHealth(down=down, gaps=windows)


def source_health(state: object, now: datetime) -> SourceHealth:
    """The health of the crawled sources as of ``now`` (see module docstring)."""
    if not isinstance(state, GapSource):
        return SourceHealth()
    return health_from_gaps(state.crawl_gaps(since=now - HEALTH_LOOKBACK, until=now), now)
