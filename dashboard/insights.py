"""Pure computations behind the topics page and the incident room (no store, no Streamlit).

:class:`dashboard.data.DashboardData` fetches posts and counts and hands them
here: keyword tables of a period and the comparison of two periods, topic
shares, and an incident's key authors and signals. Text arriving here is
already PII-masked by the data module; author names are masked here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from core.models import Post
from nlp.keywords import top_keywords
from nlp.pii import mask_pii
from reports.incident import signal_lines

ANONYMOUS = "（匿名）"

TREND_NEW = "新出现"
TREND_UP = "上升"
TREND_DOWN = "下降"
TREND_GONE = "消失"
TREND_FLAT = "持平"

_KEYWORD_COLUMNS = ["word", "score", "posts", "share"]
_COMPARE_COLUMNS = ["word", "posts_a", "share_a", "posts_b", "share_b", "change", "trend"]
_TOPIC_COMPARE_COLUMNS = [
    "topic",
    "topic_zh",
    "count_a",
    "share_a",
    "count_b",
    "share_b",
    "change",
]
_AUTHOR_COLUMNS = ["author", "sources", "posts", "followers", "reposts", "engagement", "reach"]
_SIGNAL_COLUMNS = ["signal", "critical", "posts", "model_posts", "triggers"]


@dataclass(frozen=True)
class PeriodKeywords:
    """The keywords of one period, computed over its newest ``sampled_posts`` posts.

    ``keywords`` columns: ``word``, ``score`` (TF-IDF, the top word scores 1.0),
    ``posts`` (sampled posts containing the word) and ``share`` (posts /
    sampled_posts); best first. Empty when the period has no posts.
    """

    since: datetime
    until: datetime
    total_posts: int
    sampled_posts: int
    keywords: pd.DataFrame

    @property
    def sampled_all(self) -> bool:
        """Whether every post of the period was read (no sampling)."""
        return self.sampled_posts >= self.total_posts

    def frequencies(self) -> dict[str, float]:
        """``{word: score}`` for a word cloud (empty when there are no keywords)."""
        return {
            str(w): float(s)
            for w, s in zip(self.keywords["word"], self.keywords["score"], strict=True)
        }


@dataclass(frozen=True)
class PeriodComparison:
    """Two periods side by side: ``a`` is the earlier (对比期), ``b`` the later (本期).

    ``keywords`` columns: ``word``, ``posts_a``, ``share_a``, ``posts_b``,
    ``share_b``, ``change`` (share_b − share_a, in percentage points) and
    ``trend`` (新出现 / 上升 / 下降 / 消失 / 持平), biggest rise first. The words are
    the union of both periods' top keywords. ``topics`` columns: ``topic``,
    ``topic_zh``, ``count_a``, ``share_a``, ``count_b``, ``share_b``, ``change``
    (percentage points of analysed posts), biggest rise first.
    """

    a: PeriodKeywords
    b: PeriodKeywords
    keywords: pd.DataFrame
    topics: pd.DataFrame

    def rising(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` words whose share rose most (only rises)."""
        up = self.keywords[self.keywords["change"] > 0]
        return up.sort_values(["change", "word"], ascending=[False, True]).head(n)

    def falling(self, n: int = 10) -> pd.DataFrame:
        """The ``n`` words whose share fell most (only falls)."""
        down = self.keywords[self.keywords["change"] < 0]
        return down.sort_values(["change", "word"], ascending=[True, True]).head(n)


def doc_counts(words: Iterable[str], texts: Sequence[str]) -> dict[str, int]:
    """How many of ``texts`` contain each word (substring match on normalised text)."""
    return {w: sum(1 for t in texts if w in t) for w in words}


def keyword_table(texts: Sequence[str], *, k: int, exclude: Iterable[str] = ()) -> pd.DataFrame:
    """The ``k`` best keywords of ``texts`` (already normalised and masked), best first.

    Columns as :attr:`PeriodKeywords.keywords`. Empty frame for no texts.
    """
    ranked = top_keywords(texts, k=k, exclude=exclude)
    counts = doc_counts((w for w, _ in ranked), texts)
    n = len(texts) or 1
    return pd.DataFrame(
        [(w, s, counts[w], counts[w] / n) for w, s in ranked], columns=_KEYWORD_COLUMNS
    )


def _trend(posts_a: int, posts_b: int, change: float) -> str:
    if posts_a == 0 and posts_b > 0:
        return TREND_NEW
    if posts_b == 0 and posts_a > 0:
        return TREND_GONE
    if change > 0:
        return TREND_UP
    if change < 0:
        return TREND_DOWN
    return TREND_FLAT


def compare_keywords(
    a: PeriodKeywords, texts_a: Sequence[str], b: PeriodKeywords, texts_b: Sequence[str]
) -> pd.DataFrame:
    """Shares of the union of both periods' keywords in both periods (see PeriodComparison)."""
    words = list(dict.fromkeys([*a.keywords["word"], *b.keywords["word"]]))
    counts_a = doc_counts(words, texts_a)
    counts_b = doc_counts(words, texts_b)
    rows = []
    for w in words:
        share_a = counts_a[w] / len(texts_a) if texts_a else 0.0
        share_b = counts_b[w] / len(texts_b) if texts_b else 0.0
        change = (share_b - share_a) * 100
        rows.append(
            (
                w,
                counts_a[w],
                share_a,
                counts_b[w],
                share_b,
                change,
                _trend(counts_a[w], counts_b[w], change),
            )
        )
    frame = pd.DataFrame(rows, columns=_COMPARE_COLUMNS)
    return frame.sort_values(["change", "word"], ascending=[False, True]).reset_index(drop=True)


def compare_topics(mix_a: pd.DataFrame, mix_b: pd.DataFrame) -> pd.DataFrame:
    """Topic shares of two periods from two ``topic_mix`` frames (topic, topic_zh, count)."""
    total_a = int(mix_a["count"].sum())
    total_b = int(mix_b["count"].sum())
    names = {
        **dict(zip(mix_a["topic"], mix_a["topic_zh"], strict=True)),
        **dict(zip(mix_b["topic"], mix_b["topic_zh"], strict=True)),
    }
    count_a = dict(zip(mix_a["topic"], mix_a["count"], strict=True))
    count_b = dict(zip(mix_b["topic"], mix_b["count"], strict=True))
    rows = []
    for topic, name in names.items():
        ca, cb = int(count_a.get(topic, 0)), int(count_b.get(topic, 0))
        share_a = ca / total_a if total_a else 0.0
        share_b = cb / total_b if total_b else 0.0
        rows.append((topic, name, ca, share_a, cb, share_b, (share_b - share_a) * 100))
    frame = pd.DataFrame(rows, columns=_TOPIC_COMPARE_COLUMNS)
    return frame.sort_values(["change", "topic"], ascending=[False, True]).reset_index(drop=True)


@dataclass
class _AuthorTally:
    sources: set[str] = field(default_factory=set)
    posts: int = 0
    followers: int = 0
    reposts: int = 0
    engagement: int = 0


def authors_frame(posts: Sequence[Post]) -> pd.DataFrame:
    """Authors of ``posts``: one row each (masked name; no author → 匿名), most posts first.

    Columns: ``author``, ``sources`` (joined), ``posts``, ``followers`` (the
    largest count seen, 0 if unknown), ``reposts`` (sum), ``engagement``
    (reposts + comments + likes, summed) and ``reach`` (followers + engagement).
    """
    tallies: dict[str, _AuthorTally] = {}
    for post in posts:
        name = mask_pii(post.author.strip()) if post.author and post.author.strip() else ANONYMOUS
        t = tallies.setdefault(name, _AuthorTally())
        t.sources.add(post.source)
        t.posts += 1
        t.followers = max(t.followers, post.author_followers or 0)
        t.reposts += post.reposts
        t.engagement += post.reposts + post.comments + post.likes
    frame = pd.DataFrame(
        [
            (
                name,
                "、".join(sorted(t.sources)),
                t.posts,
                t.followers,
                t.reposts,
                t.engagement,
                t.followers + t.engagement,
            )
            for name, t in tallies.items()
        ],
        columns=_AUTHOR_COLUMNS,
    )
    order = frame.sort_values(["posts", "reach", "author"], ascending=[False, False, True])
    return order.reset_index(drop=True)


def top_by_reach(authors: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` authors of an :func:`authors_frame` with the largest reach."""
    order = authors.sort_values(["reach", "posts", "author"], ascending=[False, False, True])
    return order.head(n).reset_index(drop=True)


def signals_frame(posts: Sequence[Post], labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Risk signals found in ``posts`` with the words that triggered them, critical first.

    Columns: ``signal`` (Chinese label from ``labels`` when known, else the key),
    ``critical``, ``posts`` (posts carrying it), ``model_posts`` (of those, the
    ones where the trained crisis model raised it, not the lexicon: its
    "triggers" are the words that weighed most) and ``triggers`` (the distinct
    trigger words, most frequent first, joined with 、). The tally is the
    incident report's (:func:`reports.incident.signal_lines`).
    """
    rows = [
        (
            (labels or {}).get(line.name, line.name),
            line.critical,
            line.posts,
            line.model_posts,
            "、".join(line.triggers),
        )
        for line in signal_lines(posts)
    ]
    frame = pd.DataFrame(rows, columns=_SIGNAL_COLUMNS)
    order = frame.sort_values(["critical", "posts", "signal"], ascending=[False, False, True])
    return order.reset_index(drop=True)
