"""Topic burst: a topic that was rare in the baseline becomes frequent.

Compares each topic's share of the window with its share over the
``baseline_hours`` before. A topic matches when it has at least
``min_count`` posts in the window, was rarer than ``max_baseline_share`` in
the baseline, and its share rose at least ``ratio`` times. The baseline
share is floored at :data:`SHARE_FLOOR`, so a topic never seen before gives
a large but finite ratio and the ``min_count`` floor still has to be met.
Matches are keyed ``topic:<key>`` (one incident per topic).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from alerts.grading import GradeFactors, grade
from alerts.rules.base import Match, Rule, Window, register_rule
from alerts.rules.volume_spike import bucket_seconds_for, floor_time
from core.models import PostQuery
from core.ports import PostStore
from core.settings import TopicBurstRule
from core.vocab import TOPIC_LABELS_ZH, Topic

SHARE_FLOOR = 0.01
"""The baseline share is taken as at least 1 %."""
TOPIC_TERMS = 50


def topic_label(key: str) -> str:
    """The Chinese label of topic ``key`` (the key itself when unknown)."""
    try:
        return TOPIC_LABELS_ZH[Topic(key)]
    except ValueError:
        return key


@register_rule
class TopicBurst(Rule[TopicBurstRule]):
    """Per-topic share of the window vs the baseline share (see module docstring)."""

    type = "topic_burst"
    options = TopicBurstRule

    def decide(
        self,
        current: Mapping[str, int],
        total: int,
        baseline: Mapping[str, int],
        base_total: int,
    ) -> list[Match]:
        """Per-topic counts of the window (``current``, of ``total`` posts) and of the
        baseline; one match per bursting topic, largest ratio first. Pure."""
        cfg = self.config
        matches: list[Match] = []
        if total <= 0:
            return matches
        for topic, count in current.items():
            if topic in cfg.ignore_topics or count < cfg.min_count:
                continue
            share = count / total
            base_share = baseline.get(topic, 0) / base_total if base_total else 0.0
            if base_share > cfg.max_baseline_share:
                continue
            observed = share / max(base_share, SHARE_FLOOR)
            if observed < cfg.ratio:
                continue
            graded = grade(
                GradeFactors(
                    count=count,
                    window_minutes=cfg.window_minutes,
                    window_count=count,
                    velocity=observed / cfg.ratio,
                ),
                self.thresholds,
            )
            label = topic_label(topic)
            reason = (
                f"话题“{label}”突增：{cfg.window_minutes}分钟内 {count} 条（占 {share:.0%}），"
                f"基线占 {base_share:.1%} / topic {topic} burst: {count} posts "
                f"({share:.0%}) in {cfg.window_minutes} min vs baseline share {base_share:.1%}"
            )
            matches.append(
                Match(
                    rule=cfg.name,
                    rule_type=self.type,
                    grade=graded.grade,
                    title=f"话题突增：{label}",
                    reason=reason,
                    key=f"topic:{topic}",
                    count=count,
                    topic=topic,
                    metrics={
                        "topic": topic,
                        "count": count,
                        "share": round(share, 4),
                        "baseline_share": round(base_share, 4),
                        "ratio": round(observed, 3),
                        "threshold_ratio": cfg.ratio,
                        "grade_score": graded.score,
                    },
                )
            )
        matches.sort(key=lambda m: -float(m.metrics["ratio"]))
        return matches

    def evaluate_all(
        self, posts: PostStore, now: datetime, *, exclude: Sequence[Window] = ()
    ) -> list[Match]:
        """Two ``terms`` and two ``count`` queries (window and baseline), then :meth:`decide`."""
        cfg = self.config
        end = floor_time(now, bucket_seconds_for(cfg.window_minutes))
        start = end - timedelta(minutes=cfg.window_minutes)
        window_q = PostQuery(since=start, until=end)
        base_q = PostQuery(since=start - timedelta(hours=cfg.baseline_hours), until=start)
        current = {t.value: t.count for t in posts.terms(window_q, "topic", size=TOPIC_TERMS)}
        if not any(n >= cfg.min_count for n in current.values()):
            return []  # the floor cannot be met: spare the store the baseline queries
        baseline = {t.value: t.count for t in posts.terms(base_q, "topic", size=TOPIC_TERMS)}
        matches = self.decide(current, posts.count(window_q), baseline, posts.count(base_q))
        return [
            replace(
                m,
                window_start=start,
                window_end=end,
                query=window_q.model_copy(update={"topics": [Topic(str(m.metrics["topic"]))]}),
            )
            for m in matches
        ]

    def evaluate(
        self, posts: PostStore, now: datetime, *, exclude: Sequence[Window] = ()
    ) -> Match | None:
        """The match with the largest ratio (see :meth:`evaluate_all`)."""
        matches = self.evaluate_all(posts, now, exclude=exclude)
        return matches[0] if matches else None
