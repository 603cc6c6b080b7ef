"""Influential author: a negative post about the bank from someone many people hear.

One post by a big account (``min_followers``) or one that is being widely
shared (``min_reposts``) can do more harm than a hundred forum posts, so it
raises an incident on its own. Matches are keyed per author
(``author:<name>``; a post without an author is keyed by its source), and
their evidence is exactly those posts (``Match.evidence_ids``).

The grade comes from :func:`alerts.grading.grade` with the largest reach
and any critical signals of those posts.

Reach is the post's **group reach** (``Post.group_reach``: its own followers +
engagement plus the summed reach of the reposts and near copies the crawl
grouped under it, docs/dedup.md), and the copies count as reposts
(``reposts + duplicates`` against ``min_reposts``): a text copied 600 times
by small accounts is widely shared even when no copy links back to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from alerts.grading import factors_from_posts, grade
from alerts.rules.base import Match, Rule, Window, register_rule
from alerts.rules.volume_spike import bucket_seconds_for, floor_time
from core.models import Post, PostQuery
from core.ports import PostStore
from core.settings import InfluentialAuthorRule
from core.vocab import Sentiment


def author_key(post: Post) -> str:
    """``author:<name>``, or ``author:?@<source>`` when the page named no author."""
    return f"author:{post.author}" if post.author else f"author:?@{post.source}"


@register_rule
class InfluentialAuthor(Rule[InfluentialAuthorRule]):
    """Negative posts above a reach threshold, one match per author (see module docstring)."""

    type = "influential_author"
    options = InfluentialAuthorRule

    def is_influential(self, post: Post) -> bool:
        """True when ``post`` is negative and its followers or reposts (its own plus the
        copies grouped under it) reach a threshold."""
        cfg = self.config
        if post.analysis is None or post.analysis.sentiment != Sentiment.NEGATIVE:
            return False
        return (post.author_followers or 0) >= cfg.min_followers or (
            post.reposts + post.duplicates >= cfg.min_reposts
        )

    def decide(self, posts: Sequence[Post]) -> list[Match]:
        """One match per author among the influential ``posts`` (largest reach first). Pure."""
        cfg = self.config
        by_author: dict[str, list[Post]] = {}
        for post in posts:
            if self.is_influential(post):
                by_author.setdefault(author_key(post), []).append(post)
        matches: list[Match] = []
        for key, group in by_author.items():
            top = max(group, key=lambda p: p.group_reach)
            factors = replace(
                factors_from_posts(group, count=len(group)),
                max_reach=max(p.group_reach for p in group),
            )
            graded = grade(factors, self.thresholds)
            who = top.author or f"{top.source} 匿名作者"
            copies_zh, copies_en = (
                (
                    f"，转载副本 {top.duplicates} 条，合计影响 {top.group_reach}",
                    f", {top.duplicates} copies, group reach {top.group_reach}",
                )
                if top.duplicates
                else ("", "")
            )
            reason = (
                f"高影响力负面帖：{who}（粉丝 {top.author_followers or 0}，转发 {top.reposts}"
                f"{copies_zh}）{cfg.window_minutes}分钟内 {len(group)} 条 / influential negative "
                f"post(s) by {who} (followers {top.author_followers or 0}, reposts {top.reposts}"
                f"{copies_en})；"
                f"定级依据：{graded.reason_text or '影响力阈值'}"
            )
            matches.append(
                Match(
                    rule=cfg.name,
                    rule_type=self.type,
                    grade=graded.grade,
                    title=f"高影响力负面帖：{who}",
                    reason=reason,
                    key=key,
                    count=len(group),
                    metrics={
                        "author": top.author,
                        "followers": top.author_followers or 0,
                        "reposts": top.reposts,
                        "reach": top.group_reach,
                        "own_reach": top.reach,
                        "copies": top.duplicates,
                        "posts": len(group),
                        "grade_score": graded.score,
                    },
                    evidence_ids=tuple(p.id for p in group),
                )
            )
        matches.sort(key=lambda m: -int(m.metrics["reach"]))
        return matches

    def evaluate_all(
        self, posts: PostStore, now: datetime, *, exclude: Sequence[Window] = ()
    ) -> list[Match]:
        """Scan up to ``scan_limit`` negative posts of the window (one search), then decide.

        The store cannot filter on followers, so the rule reads the window's
        negative posts; ``scan_limit`` bounds that read in a storm (the
        volume rules cover a storm anyway).
        """
        cfg = self.config
        end = floor_time(now, bucket_seconds_for(cfg.window_minutes))
        start = end - timedelta(minutes=cfg.window_minutes)
        query = PostQuery(since=start, until=end, sentiments=[Sentiment.NEGATIVE])
        page = posts.search(query, sort="newest", limit=cfg.scan_limit)
        return [
            replace(m, window_start=start, window_end=end)
            for m in self.decide([hit.post for hit in page.hits])
        ]

    def evaluate(
        self, posts: PostStore, now: datetime, *, exclude: Sequence[Window] = ()
    ) -> Match | None:
        """The match with the largest reach (see :meth:`evaluate_all`)."""
        matches = self.evaluate_all(posts, now, exclude=exclude)
        return matches[0] if matches else None
