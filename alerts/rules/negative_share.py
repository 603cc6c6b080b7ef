"""Negative share: the share of negative posts in the window rises well above its baseline.

Volume alone misses a crisis that replaces praise with anger at the same
volume; this rule watches the mix. It compares the negative share of the
last ``window_minutes`` with the share over the ``baseline_hours`` before it.

Floors (so 2 negative posts out of 3 is not "67 % negative"): at least
``min_count`` posts and ``min_negative`` negative posts in the window, and a
share of at least ``min_share``; then the share must exceed the baseline
share by ``rise`` (absolute, e.g. 0.2 = 20 percentage points).

The baseline is a share over a long period, so one past incident barely
moves it; ``exclude`` is therefore not applied here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from alerts.grading import GradeFactors, grade
from alerts.rules.base import Match, Rule, Window, register_rule
from alerts.rules.volume_spike import bucket_seconds_for, floor_time
from core.models import PostQuery
from core.ports import PostStore
from core.settings import NegativeShareRule
from core.vocab import Sentiment


@register_rule
class NegativeShare(Rule[NegativeShareRule]):
    """Negative share of the window vs the baseline share (see module docstring)."""

    type = "negative_share"
    options = NegativeShareRule

    def decide(
        self, total: int, negative: int, base_total: int, base_negative: int
    ) -> Match | None:
        """Decide on four counts (window total/negative, baseline total/negative). Pure.

        An empty baseline has share 0. Returns ``None`` for a quiet window.
        """
        cfg = self.config
        if total < cfg.min_count or negative < cfg.min_negative:
            return None
        share = negative / total
        base_share = base_negative / base_total if base_total else 0.0
        if share < cfg.min_share or share < base_share + cfg.rise:
            return None
        graded = grade(
            GradeFactors(
                count=total,
                window_minutes=cfg.window_minutes,
                window_count=total,
                negative_share=share,
            ),
            self.thresholds,
        )
        reason = (
            f"{cfg.window_minutes}分钟内负面占比 {share:.0%}（{negative}/{total} 条），"
            f"基线 {base_share:.0%} / negative share {share:.0%} ({negative}/{total}) in "
            f"{cfg.window_minutes} min vs baseline {base_share:.0%}"
        )
        return Match(
            rule=cfg.name,
            rule_type=self.type,
            grade=graded.grade,
            title=f"负面舆情占比升高：{share:.0%}",
            reason=reason,
            count=negative,
            metrics={
                "total": total,
                "negative": negative,
                "share": round(share, 4),
                "baseline_total": base_total,
                "baseline_negative": base_negative,
                "baseline_share": round(base_share, 4),
                "rise": cfg.rise,
                "grade_score": graded.score,
            },
        )

    def evaluate(
        self, posts: PostStore, now: datetime, *, exclude: Sequence[Window] = ()
    ) -> Match | None:
        """Four counts (window and baseline, all and negative), then :meth:`decide`."""
        cfg = self.config
        end = floor_time(now, bucket_seconds_for(cfg.window_minutes))
        start = end - timedelta(minutes=cfg.window_minutes)
        base_start = start - timedelta(hours=cfg.baseline_hours)
        negative = [Sentiment.NEGATIVE]
        window_q = PostQuery(since=start, until=end)
        base_q = PostQuery(since=base_start, until=start)
        match = self.decide(
            posts.count(window_q),
            posts.count(window_q.model_copy(update={"sentiments": negative})),
            posts.count(base_q),
            posts.count(base_q.model_copy(update={"sentiments": negative})),
        )
        if match is None:
            return None
        return replace(
            match,
            window_start=start,
            window_end=end,
            query=PostQuery(since=start, until=end, sentiments=negative),
        )
