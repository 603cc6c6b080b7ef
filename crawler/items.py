"""The item that flows from a spider through the pipelines.

A spider fills the *raw* fields exactly as the page shows them (strings,
possibly messy). Pipeline stages fill the *derived* fields in order; the store
stage turns the result into one :class:`core.models.Post` (STYLE #1: the
canonical record is built once, in a pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.models import Analysis


@dataclass(repr=False)
class RawPost:
    """One page (or feed entry) as extracted, plus what the pipelines derive from it."""

    # -- raw, set by the spider ------------------------------------------------
    url: str
    source: str
    platform: str = "other"
    title: str = ""
    text: str = ""
    author: str | None = None
    published_at: str | datetime | None = None
    """As shown on the page ("2026-11-23 14:05", ISO 8601, RFC 822, "5分钟前") or a datetime."""
    followers: str | int | None = None
    reposts: str | int | None = None
    comments: str | int | None = None
    likes: str | int | None = None
    """Counts as shown ("1.2万", "1,234", "回复 12") or ints; parsed by the validate stage."""
    native_id: str | None = None
    """The platform's own id of the item, when the page shows one (kept for logs)."""
    extra: dict[str, str | int] = field(default_factory=dict)
    """Platform-specific values copied to ``Post.extra`` (complaint status, thread link …)."""

    # -- derived, set by the pipeline stages ------------------------------------
    post_id: str | None = None
    """validate: stable id from the canonical URL."""
    published_utc: datetime | None = None
    """validate: publish time in UTC (crawl time when the page has none)."""
    published_at_estimated: bool = False
    crawled_at: datetime | None = None
    counts: dict[str, int | None] = field(default_factory=dict)
    """validate: parsed followers/reposts/comments/likes."""
    content_hash: str | None = None
    """clean: hash of the cleaned text (exact-duplicate detection)."""
    matched_entities: list[str] = field(default_factory=list)
    """mention filter: watched entities named in title + text."""
    analysis: Analysis | None = None
    """analyze: the nlp result."""

    def __repr__(self) -> str:
        # Scrapy logs dropped items with repr(); the full text would flood the log.
        return f"<RawPost {self.source} {self.url} {self.title[:30]!r}>"
