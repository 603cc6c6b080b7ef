"""Helpers both gatherers share: labels, safe text, post items, store-outage wording."""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from urllib.parse import urlsplit

from core.models import Post
from core.vocab import TOPIC_LABELS_ZH, Grade, IncidentStatus, Sentiment, Topic
from nlp.pii import mask_pii
from reports.model import PostItem, Share

SENTIMENT_ZH: dict[str, str] = {
    Sentiment.NEGATIVE.value: "负面",
    Sentiment.NEUTRAL.value: "中性",
    Sentiment.POSITIVE.value: "正面",
    "unanalysed": "未分析",
}
STATUS_ZH: dict[IncidentStatus, str] = {
    IncidentStatus.OPEN: "待处理",
    IncidentStatus.ACKNOWLEDGED: "已确认",
    IncidentStatus.RESOLVED: "已解决",
}
EXCERPT_CHARS = 160
TITLE_CHARS = 60
TIME_FORMAT = "%Y-%m-%d %H:%M"

# C0/C1 control characters (except tab and newline) and lone surrogates: invisible in
# a report, and python-docx refuses them outright ("not XML compatible"). Bidi overrides
# too: a post must not reverse the text that follows it in the report.
_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_SAFE_SCHEMES = frozenset({"http", "https"})


def clean(text: str | None) -> str:
    """``text`` without control characters, PII masked."""
    return mask_pii(_CONTROL.sub("", text or ""))


def one_line(text: str, limit: int) -> str:
    """Whitespace collapsed to single spaces and cut to ``limit`` characters with "…"."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def grade_label(grade: Grade) -> str:
    """``"II 重大"``."""
    return f"{grade.value} {grade.label_zh}"


def topic_zh(key: str) -> str:
    try:
        return TOPIC_LABELS_ZH[Topic(key)]
    except ValueError:
        return key


def safe_url(url: str | None) -> str | None:
    """``url`` when it is an absolute http(s) URL, else ``None`` (never a ``javascript:`` link)."""
    if not url:
        return None
    candidate = url.strip()
    parts = urlsplit(candidate)
    if parts.scheme.lower() not in _SAFE_SCHEMES or not parts.netloc:
        return None
    if _CONTROL.search(candidate) or any(c.isspace() for c in candidate):
        return None
    return candidate


def local(when: datetime, tz: tzinfo) -> str:
    return when.astimezone(tz).strftime(TIME_FORMAT)


def masked_text(post: Post) -> str:
    """The post's whole text, PII masked (the analyzer's masked text when it made one)."""
    analysis = post.analysis
    return clean(analysis.masked_text if analysis and analysis.masked_text else post.text)


def post_item(post: Post, tz: tzinfo) -> PostItem:
    """The report line of ``post``: masked title and excerpt (the analyzer's masked text when
    present, masked again anyway), local time, Chinese labels, a safe link."""
    analysis = post.analysis
    excerpt = one_line(masked_text(post), EXCERPT_CHARS)
    title = one_line(clean(post.title), TITLE_CHARS) or one_line(excerpt, 30)
    return PostItem(
        id=post.id,
        title=title,
        excerpt=excerpt,
        source=clean(post.source),
        published=local(post.published_at, tz),
        sentiment=SENTIMENT_ZH[analysis.sentiment.value] if analysis else "未分析",
        topic=topic_zh(analysis.topic.value) if analysis else "未分析",
        risk=analysis.risk_score if analysis else None,
        reach=post.reach,
        signals=list(analysis.signal_names) if analysis else [],
        url=safe_url(post.url),
    )


def shares(counts: list[tuple[str, str, int]], whole: int) -> list[Share]:
    """``(key, label, count)`` rows as :class:`Share` of ``whole``."""
    return [Share(k, label, n, n / whole if whole else None) for k, label, n in counts]


def percent(value: float | None) -> str:
    """``"12.5%"``, or ``"—"`` when there is nothing to divide (no posts is not 0 %)."""
    return "—" if value is None else f"{value * 100:.1f}%"
