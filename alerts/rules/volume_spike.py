"""Volume spike: many more posts in the current window than the baseline expects.

The baseline is a list of post counts of earlier windows of the same length:

* by default the ``baseline_windows`` windows right before the current one;
* with ``seasonal_days: N`` the same clock window on each of the past N days
  (hour-of-day seasonality: 09:00–09:30 is compared with earlier
  09:00–09:30s, so the morning rush is not a spike every morning).

Windows that overlap a past incident of this rule (``exclude``, passed in by
the detector) are dropped from the baseline, so one crisis does not blind
the next. The level is the median (``baseline_method: median_mad``, robust
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
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from alerts.grading import GradeFactors, grade
from alerts.rules.base import Match, Rule, Window, overlaps, register_rule
from core.models import PostQuery
from core.ports import PostStore
from core.settings import VolumeSpikeRule
from core.vocab import Sentiment

BASELINE_FLOOR = 1.0
"""The baseline mean is never taken below one post per window.

Without it a bank that is usually silent (mean 0) would show an infinite
ratio; with it the ``min_count`` floor and ``ratio`` both have to be met.
"""

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

    def baseline_level(self, baseline: Sequence[int]) -> float:
        """The expected count per window: the median or the mean (``baseline_method``)."""
        if not baseline:
            return 0.0
        if self.config.baseline_method == "mean":
            return sum(baseline) / len(baseline)
        return float(statistics.median(baseline))

    def decide(self, current: int, baseline: Sequence[int]) -> Match | None:
        """Decide on counts alone: ``current`` posts now, ``baseline`` counts of earlier windows.

        Matches only when ``current >= min_count`` *and*
        ``current >= ratio × max(level, BASELINE_FLOOR)`` (level: median or
        mean) *and*, for ``median_mad``, ``current >= median + mad_k × 1.4826 × MAD``.
        Pure: no store, no clock. Returns ``None`` for a quiet window.
        """
        cfg = self.config
        if current < cfg.min_count:
            return None
        level = self.baseline_level(baseline)
        reference = max(level, BASELINE_FLOOR)
        observed = current / reference
        if observed < cfg.ratio:
            return None
        mad = 0.0
        if cfg.baseline_method == "median_mad" and baseline:
            mad = float(statistics.median(abs(c - level) for c in baseline))
            if current < level + cfg.mad_k * MAD_SCALE * mad:
                return None
        graded = grade(
            GradeFactors(
                count=current,
                window_minutes=cfg.window_minutes,
                window_count=current,
                velocity=observed / cfg.ratio,
            )
        )
        what_zh, what_en = ("负面", "negative posts") if cfg.negative_only else ("", "posts")
        floored_zh = "，基线按 1 条计" if level < BASELINE_FLOOR else ""
        level_zh, level_en = (
            ("均值", "mean") if cfg.baseline_method == "mean" else ("中位数", "median")
        )
        seasonal = f"（近{cfg.seasonal_days}天同时段）" if cfg.seasonal_days else ""
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
                "grade_score": graded.score,
            },
        )

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
        are left out. Store errors propagate.
        """
        cfg = self.config
        bucket = bucket_seconds_for(cfg.window_minutes)
        end = floor_time(now, bucket)
        window = timedelta(minutes=cfg.window_minutes)
        if cfg.seasonal_days:
            # The same clock window on each past day, oldest first, then the current one.
            starts = [end - window - timedelta(days=d) for d in range(cfg.seasonal_days, 0, -1)]
        else:
            starts = [
                end - (cfg.baseline_windows + 1 - i) * window for i in range(cfg.baseline_windows)
            ]
        starts.append(end - window)
        counts = [0] * len(starts)
        for b in posts.histogram(
            self.query(starts[0], end), bucket_seconds=bucket, tz_offset_minutes=0
        ):
            for index, w_start in enumerate(starts):
                if w_start <= b.start < w_start + window:
                    counts[index] += b.count
                    break
        baseline = [
            c
            for c, w_start in zip(counts[:-1], starts[:-1], strict=True)
            if not overlaps(w_start, w_start + window, exclude)
        ]
        match = self.decide(counts[-1], baseline)
        if match is None:
            return None
        return replace(
            match,
            window_start=end - window,
            window_end=end,
            query=self.query(end - window, end),
        )
