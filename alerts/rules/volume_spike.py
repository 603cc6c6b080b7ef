"""Volume spike: many more posts in the current window than in the windows before it.

The first detector of the spine issue. It compares the number of posts in the
last ``window_minutes`` with the mean of the ``baseline_windows`` windows of
the same length just before it. Issue 6 replaces that flat mean with a
seasonal, outlier-robust baseline (hour-of-day × weekday, median/MAD or EWMA,
past incident windows excluded); only :meth:`VolumeSpike.baseline_level`
and :meth:`VolumeSpike.evaluate` need to change for that.

Grading here is deliberately simple (issue 6 brings the real grader):
grade ``IV`` for a match, ``III`` when the observed ratio is at least twice
the configured ``ratio`` (e.g. ≥ 6× for the default 3×).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from alerts.rules.base import Match, Rule, register_rule
from core.models import PostQuery
from core.ports import PostStore
from core.settings import VolumeSpikeRule
from core.vocab import Grade, Sentiment

BASELINE_FLOOR = 1.0
"""The baseline mean is never taken below one post per window.

Without it a bank that is usually silent (mean 0) would show an infinite
ratio; with it the ``min_count`` floor and ``ratio`` both have to be met.
"""

HIGHER_GRADE_FACTOR = 2.0
"""A match whose ratio is at least this many times the configured ratio is grade III."""


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


def _floor(moment: datetime, seconds: int) -> datetime:
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
        """The expected count per window: the plain mean (issue 6: seasonal, robust)."""
        return sum(baseline) / len(baseline) if baseline else 0.0

    def decide(self, current: int, baseline: Sequence[int]) -> Match | None:
        """Decide on counts alone: ``current`` posts now, ``baseline`` counts of earlier windows.

        Matches only when ``current >= min_count`` *and*
        ``current >= ratio × max(baseline mean, BASELINE_FLOOR)``. Pure: no
        store, no clock. Returns ``None`` for a quiet window.
        """
        cfg = self.config
        if current < cfg.min_count:
            return None
        mean = self.baseline_level(baseline)
        reference = max(mean, BASELINE_FLOOR)
        observed = current / reference
        if observed < cfg.ratio:
            return None
        grade = Grade.III if observed >= HIGHER_GRADE_FACTOR * cfg.ratio else Grade.IV
        what_zh, what_en = ("负面", "negative posts") if cfg.negative_only else ("", "posts")
        floored_zh = "，基线按 1 条计" if mean < BASELINE_FLOOR else ""
        reason = (
            f"{cfg.window_minutes}分钟内{what_zh} {current} 条，基线均值 {_fmt(mean)} 条 "
            f"({_fmt(observed)}×{floored_zh}) / {current} {what_en} in {cfg.window_minutes} min "
            f"vs baseline mean {_fmt(mean)} ({_fmt(observed)}×)"
        )
        title = f"{what_zh}舆情声量激增：{cfg.window_minutes}分钟内 {current} 条"
        return Match(
            rule=cfg.name,
            rule_type=self.type,
            grade=grade,
            title=title,
            reason=reason,
            count=current,
            metrics={
                "current": current,
                "baseline_mean": round(mean, 3),
                "baseline_windows": len(baseline),
                "ratio": round(observed, 3),
                "threshold_ratio": cfg.ratio,
                "min_count": cfg.min_count,
                "window_minutes": cfg.window_minutes,
            },
        )

    def query(self, since: datetime, until: datetime) -> PostQuery:
        """The posts this rule counts between ``since`` (incl.) and ``until`` (excl.)."""
        sentiments = [Sentiment.NEGATIVE] if self.config.negative_only else None
        return PostQuery(since=since, until=until, sentiments=sentiments)

    def evaluate(self, posts: PostStore, now: datetime) -> Match | None:
        """One histogram query over the baseline and current windows, then :meth:`decide`.

        The current window is ``[end - window, end)`` with ``end`` = ``now``
        floored to :func:`bucket_seconds_for` (one minute for windows up to an
        hour; posts of the last partial minute count in the next cycle). The
        baseline is the ``baseline_windows`` windows right before it.
        """
        cfg = self.config
        bucket = bucket_seconds_for(cfg.window_minutes)
        end = _floor(now, bucket)
        window = timedelta(minutes=cfg.window_minutes)
        windows = cfg.baseline_windows + 1
        start = end - windows * window
        counts = [0] * windows  # oldest first; the last one is the current window
        for b in posts.histogram(
            self.query(start, end), bucket_seconds=bucket, tz_offset_minutes=0
        ):
            index = int((b.start - start) // window)
            if 0 <= index < windows:  # a store honouring since/until never breaks this
                counts[index] += b.count
        match = self.decide(counts[-1], counts[:-1])
        if match is None:
            return None
        return replace(
            match,
            window_start=end - window,
            window_end=end,
            query=self.query(end - window, end),
        )
