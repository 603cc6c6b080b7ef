"""Volume spike: many more posts in the current window than the baseline expects.

The baseline is a list of post counts of earlier windows of the same length:

* by default the ``baseline_windows`` windows right before the current one;
* with ``seasonal_days: N`` the same clock window on each of the past N days
  (hour-of-day seasonality: 09:00–09:30 is compared with earlier
  09:00–09:30s, so the morning rush is not a spike every morning).

* with ``seasonal_weeks: N`` (also) the same clock window on the same weekday
  of each of the past N weeks (hour-of-day × weekday seasonality: a Monday
  morning is compared with Monday mornings); with both set the baseline is
  the union, so the weekday samples keep it honest when the days before
  were unusual.

Windows that overlap a past incident of this rule or a source outage
(``exclude``, passed in by the detector, :mod:`alerts.health`) or a known
special period (``calendar``: 国庆, 春节, 双11 …) are dropped from the
baseline, so one crisis, one outage or one holiday week does not blind (or
trip) the next days. While the current window is in a calendar period the
expected level is multiplied by the period's ``factor`` (a 双11 surge of
app reviews is expected, a quiet Spring Festival makes a real spike stand
out sooner). While a source is down (no successful crawl) only the healthy
sources are counted, now and in the baseline: a gap is not a drop to zero.
Likewise, with a seasonal baseline, windows older than the oldest post held
(a fresh install) are unknown, not zero.

Copies count. The crawl stores one post per text and groups its reposts and
near copies under it (docs/dedup.md), so a Weibo repost storm is one stored
post. Given the crawl's repost groups (a :class:`~alerts.rules.base.CopyCounter`,
wired by the service), every window — current and baseline alike — counts its
stored posts plus the copies published in it, so the baseline stays on the
same scale. Without it (unit tests, backtests) stored posts only. A
``negative_only`` rule does not count copies: a copy's sentiment is not
recorded (the dedup stage runs before the analysis).

The level is the median (``baseline_method: median_mad``, robust
to the odd past spike) or the plain mean; with the median a match also
needs ``current >= median + mad_k × 1.4826 × MAD`` (a robust z-score), which
matters for noisy baselines.

The grade comes from :func:`alerts.grading.grade` (velocity = observed
ratio / configured ratio; volume), so this rule and the detector's
evidence-based regrading speak the same language.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from alerts.grading import THRESHOLDS, GradeFactors, Thresholds, grade
from alerts.rules.base import CopyCounter, Match, Rule, Window, overlaps, register_rule
from core.models import PostQuery
from core.ports import PostStore
from core.settings import VolumeSpikeRule
from core.vocab import Sentiment

BASELINE_FLOOR = 1.0
"""The baseline mean is never taken below one post per window.

Without it a bank that is usually silent (mean 0) would show an infinite
ratio; with it the ``min_count`` floor and ``ratio`` both have to be met.
"""

SOURCE_TERMS = 200
"""Distinct sources read per window while some are down (far more than are configured)."""

MAD_SCALE = 1.4826
"""MAD × this estimates the standard deviation of normally distributed counts."""


def bucket_seconds_for(window_minutes: int) -> int:
    """The histogram bucket used to rebuild windows of ``window_minutes``.

    Windows end at ``now`` floored to this bucket, so every window boundary is
    a bucket boundary and the summed buckets are exact (no partial buckets).
    The bucket is a whole number of minutes that divides both the window and
    an hour (so UTC-epoch and local-midnight alignment agree), as coarse as
    roughly 1/30 of the window: one minute for windows up to an hour, which
    keeps detection latency below a minute where it matters.
    """
    limit = max(1, window_minutes // 30)
    step = max(d for d in range(1, 61) if 60 % d == 0 and window_minutes % d == 0 and d <= limit)
    return step * 60


def floor_time(moment: datetime, seconds: int) -> datetime:
    """``moment`` floored to a multiple of ``seconds`` since the UTC epoch (a UTC datetime)."""
    epoch = moment.astimezone(UTC).timestamp()
    return datetime.fromtimestamp(math.floor(epoch / seconds) * seconds, UTC)


def _fmt(value: float) -> str:
    return f"{value:.1f}"


@register_rule
class VolumeSpike(Rule[VolumeSpikeRule]):
    """Current-window post count vs the mean of the previous windows (see module docstring)."""

    type = "volume_spike"
    options = VolumeSpikeRule

    def __init__(self, config: VolumeSpikeRule, *, thresholds: Thresholds = THRESHOLDS) -> None:
        super().__init__(config, thresholds=thresholds)
        self._earliest: datetime | None = None

    def baseline_level(self, baseline: Sequence[int]) -> float:
        """The expected count per window: the median or the mean (``baseline_method``)."""
        if not baseline:
            return 0.0
        if self.config.baseline_method == "mean":
            return sum(baseline) / len(baseline)
        return float(statistics.median(baseline))

    def decide(self, current: int, baseline: Sequence[int], *, factor: float = 1.0) -> Match | None:
        """Decide on counts alone: ``current`` posts now, ``baseline`` counts of earlier windows.

        Matches only when ``current >= min_count`` *and*
        ``current >= ratio × max(level, BASELINE_FLOOR)`` (level: median or
        mean, times the calendar ``factor``) *and*, for ``median_mad``,
        ``current >= level + mad_k × 1.4826 × MAD × factor``.
        Pure: no store, no clock. Returns ``None`` for a quiet window.
        """
        cfg = self.config
        if current < cfg.min_count:
            return None
        level = self.baseline_level(baseline) * factor
        reference = max(level, BASELINE_FLOOR)
        observed = current / reference
        if observed < cfg.ratio:
            return None
        mad = 0.0
        if cfg.baseline_method == "median_mad" and baseline:
            mad = float(statistics.median(abs(c * factor - level) for c in baseline))
            if current < level + cfg.mad_k * MAD_SCALE * mad:
                return None
        graded = grade(
            GradeFactors(
                count=current,
                window_minutes=cfg.window_minutes,
                window_count=current,
                velocity=observed / cfg.ratio,
            ),
            self.thresholds,
        )
        what_zh, what_en = ("负面", "negative posts") if cfg.negative_only else ("", "posts")
        floored_zh = "，基线按 1 条计" if level < BASELINE_FLOOR else ""
        level_zh, level_en = (
            ("均值", "mean") if cfg.baseline_method == "mean" else ("中位数", "median")
        )
        seasonal = ""
        if cfg.seasonal_days or cfg.seasonal_weeks:
            parts = [f"近{cfg.seasonal_days}天"] if cfg.seasonal_days else []
            parts += [f"近{cfg.seasonal_weeks}周同星期"] if cfg.seasonal_weeks else []
            seasonal = f"（{'、'.join(parts)}同时段）"
        if factor != 1.0:
            seasonal += f"（特殊时期 ×{factor:g}）"
        reason = (
            f"{cfg.window_minutes}分钟内{what_zh} {current} 条，基线{seasonal}{level_zh} "
            f"{_fmt(level)} 条 ({_fmt(observed)}×{floored_zh}) / {current} {what_en} in "
            f"{cfg.window_minutes} min vs baseline {level_en} {_fmt(level)} ({_fmt(observed)}×)"
        )
        title = f"{what_zh}舆情声量激增：{cfg.window_minutes}分钟内 {current} 条"
        return Match(
            rule=cfg.name,
            rule_type=self.type,
            grade=graded.grade,
            title=title,
            reason=reason,
            count=current,
            metrics={
                "current": current,
                "baseline_level": round(level, 3),
                "baseline_method": cfg.baseline_method,
                "baseline_mad": round(mad, 3),
                "baseline_windows": len(baseline),
                "ratio": round(observed, 3),
                "threshold_ratio": cfg.ratio,
                "min_count": cfg.min_count,
                "window_minutes": cfg.window_minutes,
                "calendar_factor": factor,
                "grade_score": graded.score,
            },
        )

    def baseline_starts(self, end: datetime) -> list[datetime]:
        """Starts of the baseline windows for a current window ending at ``end``, oldest first
        (module docstring: windows just before, same clock window of past days and/or weeks)."""
        cfg = self.config
        window = timedelta(minutes=cfg.window_minutes)
        if not (cfg.seasonal_days or cfg.seasonal_weeks):
            return [
                end - (cfg.baseline_windows + 1 - i) * window for i in range(cfg.baseline_windows)
            ]
        days = set(range(1, cfg.seasonal_days + 1))
        days.update(7 * w for w in range(1, cfg.seasonal_weeks + 1))
        return [end - window - timedelta(days=d) for d in sorted(days, reverse=True)]

    def calendar_factor(self, start: datetime, end: datetime) -> float:
        """The ``factor`` of the calendar period(s) overlapping ``[start, end)`` (the largest
        deviation from 1 when several do; 1.0 outside every period)."""
        factors = [p.factor for p in self.config.calendar if p.start < end and start < p.end]
        return max(factors, key=lambda f: abs(math.log(f)), default=1.0)

    def _histogram_windows(
        self,
        posts: PostStore,
        starts: Sequence[datetime],
        window: timedelta,
        bucket: int,
        down_sources: Collection[str],
    ) -> list[int]:
        """Counts of consecutive windows from one histogram query (the windows just before)."""
        counts = [0] * len(starts)
        end = starts[-1] + window
        buckets = posts.histogram(
            self.query(starts[0], end),
            bucket_seconds=bucket,
            tz_offset_minutes=0,
            group_by="source" if down_sources else None,
        )
        for b in buckets:
            if down_sources and b.key in down_sources:
                continue
            for index, w_start in enumerate(starts):
                if w_start <= b.start < w_start + window:
                    counts[index] += b.count
                    break
        return counts

    def _count_windows(
        self,
        posts: PostStore,
        starts: Sequence[datetime],
        window: timedelta,
        down_sources: Collection[str],
    ) -> list[int]:
        """Counts of scattered windows (seasonal), one indexed count per window: cheaper
        than a minute histogram over four weeks. With sources down, per-source terms."""
        counts: list[int] = []
        for w_start in starts:
            query = self.query(w_start, w_start + window)
            if down_sources:
                terms = posts.terms(query, "source", size=SOURCE_TERMS)
                counts.append(sum(t.count for t in terms if t.value not in down_sources))
            else:
                counts.append(posts.count(query))
        return counts

    def _earliest_post(self, posts: PostStore) -> datetime | None:
        """When the data begins (the oldest post counted by this rule); cached once known."""
        if self._earliest is None:
            page = posts.search(self.query_all(), sort="oldest", limit=1)
            if page.hits:
                self._earliest = page.hits[0].post.published_at
        return self._earliest

    def query_all(self) -> PostQuery:
        """Every post this rule counts, whenever published."""
        sentiments = [Sentiment.NEGATIVE] if self.config.negative_only else None
        return PostQuery(sentiments=sentiments)

    def query(self, since: datetime, until: datetime) -> PostQuery:
        """The posts this rule counts between ``since`` (incl.) and ``until`` (excl.)."""
        sentiments = [Sentiment.NEGATIVE] if self.config.negative_only else None
        return PostQuery(since=since, until=until, sentiments=sentiments)

    def evaluate(
        self, posts: PostStore, now: datetime, *, exclude: Sequence[Window] = ()
    ) -> Match | None:
        """Count the current and baseline windows (one histogram query), then :meth:`decide`.

        The current window is ``[end - window, end)`` with ``end`` = ``now``
        floored to :func:`bucket_seconds_for` (one minute for windows up to an
        hour; posts of the last partial minute count in the next cycle). The
        baseline windows (see the module docstring) that overlap ``exclude``
        or a calendar period are left out. Store errors propagate.
        """
        return self.evaluate_healthy(posts, now, exclude=exclude, down_sources=())

    def evaluate_all(
        self, posts: PostStore, now: datetime, *, exclude: Sequence[Window] = ()
    ) -> list[Match]:
        match = self.evaluate(posts, now, exclude=exclude)
        return [] if match is None else [match]

    def evaluate_sources(
        self,
        posts: PostStore,
        now: datetime,
        *,
        exclude: Sequence[Window] = (),
        down_sources: Collection[str] = (),
    ) -> list[Match]:
        """:meth:`evaluate` counting only the sources not in ``down_sources`` (they have no
        successful crawl now: :mod:`alerts.health`), now and in the baseline."""
        match = self.evaluate_healthy(posts, now, exclude=exclude, down_sources=down_sources)
        return [] if match is None else [match]

    def evaluate_copies(
        self,
        posts: PostStore,
        now: datetime,
        *,
        copies: CopyCounter,
        exclude: Sequence[Window] = (),
        down_sources: Collection[str] = (),
    ) -> list[Match]:
        """:meth:`evaluate_sources` counting, in every window, the stored posts plus the
        grouped copies published in it (module docstring; not for ``negative_only``)."""
        match = self.evaluate_healthy(
            posts, now, exclude=exclude, down_sources=down_sources, copies=copies
        )
        return [] if match is None else [match]

    def _copy_counts(
        self,
        copies: CopyCounter,
        starts: Sequence[datetime],
        window: timedelta,
        bucket: int,
        down_sources: Collection[str],
        *,
        seasonal: bool,
    ) -> list[int]:
        """Copies per window, read the same way as the posts (one count per scattered
        seasonal window, one histogram over consecutive windows)."""
        if seasonal:
            return [
                copies.count_copies(w, w + window, exclude_sources=down_sources) for w in starts
            ]
        counts = [0] * len(starts)
        buckets = copies.copy_histogram(
            starts[0], starts[-1] + window, bucket_seconds=bucket, exclude_sources=down_sources
        )
        for b_start, n in buckets.items():
            for index, w_start in enumerate(starts):
                if w_start <= b_start < w_start + window:
                    counts[index] += n
                    break
        return counts

    def evaluate_healthy(
        self,
        posts: PostStore,
        now: datetime,
        *,
        exclude: Sequence[Window],
        down_sources: Collection[str],
        copies: CopyCounter | None = None,
    ) -> Match | None:
        """The one implementation behind :meth:`evaluate`, :meth:`evaluate_sources` and
        :meth:`evaluate_copies` (``copies``: also count grouped copies, see the module doc)."""
        cfg = self.config
        bucket = bucket_seconds_for(cfg.window_minutes)
        end = floor_time(now, bucket)
        window = timedelta(minutes=cfg.window_minutes)
        starts = [*self.baseline_starts(end), end - window]
        left_out = [(p.start, p.end) for p in cfg.calendar]
        if cfg.seasonal_days or cfg.seasonal_weeks:
            counts = self._count_windows(posts, starts, window, down_sources)
            earliest = self._earliest_post(posts)
            if earliest is not None and earliest >= starts[0] + window:
                # Windows that end before the first post we hold (a fresh install) are
                # unknown, not zero: a quiet history that never happened would lower the level.
                left_out.append((starts[0], earliest - window + timedelta(microseconds=1)))
        else:
            counts = self._histogram_windows(posts, starts, window, bucket, down_sources)
        copy_counts = [0] * len(starts)
        if copies is not None and not cfg.negative_only:
            seasonal = bool(cfg.seasonal_days or cfg.seasonal_weeks)
            copy_counts = self._copy_counts(
                copies, starts, window, bucket, down_sources, seasonal=seasonal
            )
            counts = [p + c for p, c in zip(counts, copy_counts, strict=True)]
        baseline = [
            c
            for c, w_start in zip(counts[:-1], starts[:-1], strict=True)
            if not overlaps(w_start, w_start + window, exclude)
            and not overlaps(w_start, w_start + window, left_out)
        ]
        match = self.decide(counts[-1], baseline, factor=self.calendar_factor(end - window, end))
        if match is None:
            return None
        if copy_counts[-1]:
            stored = counts[-1] - copy_counts[-1]
            match = replace(
                match,
                reason=(
                    f"{match.reason}（含转载/重复副本 {copy_counts[-1]} 条，独立帖子 {stored} 条 / "
                    f"incl. {copy_counts[-1]} grouped reposts/copies and {stored} stored posts）"
                ),
                metrics={**match.metrics, "copies": copy_counts[-1], "stored_posts": stored},
            )
        if down_sources:
            down = ", ".join(sorted(down_sources))
            match = replace(
                match,
                reason=f"{match.reason}（{down} 暂无成功采集，未计入 / not counted: down）",
                metrics={**match.metrics, "down_sources": sorted(down_sources)},
            )
        return replace(
            match,
            window_start=end - window,
            window_end=end,
            query=self.query(end - window, end),
        )
