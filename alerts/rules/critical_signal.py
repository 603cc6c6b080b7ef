"""Critical signals: posts the analyzer marked critical raise an incident at once.

A bank-run rumour, collective action, a data leak, a media exposé, a
regulator's penalty or violence must not wait for a volume spike: one
critical post is enough (``min_count: 1``). Matches are keyed per signal
name (``signal:bank_run``), so a bank-run rumour and a data leak are two
incidents with their own grades.

Grading (:mod:`alerts.grading`): any critical signal is at least grade III;
``several`` critical posts of one signal in the window raise it to at least
II; a regulator or media signal adds its points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from alerts.grading import SIGNAL_LABELS_ZH, GradeFactors, grade
from alerts.rules.base import Match, Rule, Window, register_rule
from alerts.rules.volume_spike import bucket_seconds_for, floor_time
from core.models import PostQuery
from core.ports import PostStore
from core.settings import CriticalSignalRule

SIGNAL_TERMS = 50
"""Distinct signal names read per cycle (the lexicon has about ten)."""


@register_rule
class CriticalSignal(Rule[CriticalSignalRule]):
    """Critical posts in the window, one match per signal name (see module docstring)."""

    type = "critical_signal"
    options = CriticalSignalRule

    def decide(self, signal: str, count: int) -> Match | None:
        """Decide for one signal with ``count`` critical posts in the window. Pure."""
        cfg = self.config
        if count < cfg.min_count:
            return None
        if cfg.signals is not None and signal not in cfg.signals:
            return None
        graded = grade(
            GradeFactors(
                count=count,
                window_minutes=cfg.window_minutes,
                window_count=count,
                critical_signals=[signal],
                critical_count=count,
            ),
            replace(self.thresholds, several_critical=cfg.several),
        )
        label = SIGNAL_LABELS_ZH.get(signal, "出现高危信号")
        reason = (
            f"{label}（{signal}）：{cfg.window_minutes}分钟内 {count} 条高危帖子 / "
            f"{count} critical post(s) with signal {signal} in {cfg.window_minutes} min；"
            f"定级依据：{graded.reason_text}"
        )
        return Match(
            rule=cfg.name,
            rule_type=self.type,
            grade=graded.grade,
            title=f"高危信号：{label}（{signal}）",
            reason=reason,
            key=f"signal:{signal}",
            count=count,
            metrics={
                "signal": signal,
                "critical_posts": count,
                "several": cfg.several,
                "window_minutes": cfg.window_minutes,
                "grade_score": graded.score,
            },
        )

    def decide_all(self, counts: dict[str, int]) -> list[Match]:
        """One :meth:`decide` per signal name, most critical posts first. Pure."""
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return [m for name, n in ordered if (m := self.decide(name, n)) is not None]

    def evaluate_all(
        self, posts: PostStore, now: datetime, *, exclude: Sequence[Window] = ()
    ) -> list[Match]:
        """One ``terms`` query (signal names of the critical posts in the window), then
        :meth:`decide_all`. Store errors propagate."""
        cfg = self.config
        end = floor_time(now, bucket_seconds_for(cfg.window_minutes))
        start = end - timedelta(minutes=cfg.window_minutes)
        query = PostQuery(since=start, until=end, critical=True)
        counts = {t.value: t.count for t in posts.terms(query, "signals", size=SIGNAL_TERMS)}
        return [
            replace(
                match,
                window_start=start,
                window_end=end,
                query=query.model_copy(update={"signals": [str(match.metrics["signal"])]}),
            )
            for match in self.decide_all(counts)
        ]

    def evaluate(
        self, posts: PostStore, now: datetime, *, exclude: Sequence[Window] = ()
    ) -> Match | None:
        """The match of the signal with the most critical posts (see :meth:`evaluate_all`)."""
        matches = self.evaluate_all(posts, now, exclude=exclude)
        return matches[0] if matches else None
