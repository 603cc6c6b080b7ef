"""The canonical typed records of yuqing.

A crawled page becomes a :class:`Post` exactly once (in the crawl pipeline);
every store upserts it by ``Post.id``. Times are timezone-aware UTC; a naive
datetime is refused rather than guessed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from core.vocab import Grade, IncidentStatus, Platform, Sentiment, Topic


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware (stored as UTC)")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_require_utc)]
"""A datetime that must carry a time zone; it is converted to UTC on validation."""


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class Signal(_Model):
    """A named crisis signal with the words in the text that triggered it.

    ``source`` says who raised it: ``lexicon`` (its trigger phrases occur in
    the text) or ``model`` (the trained crisis classifier; ``triggers`` are
    then the words that weighed most in its decision).
    """

    name: str
    triggers: list[str] = Field(default_factory=list)
    critical: bool = False
    source: Literal["lexicon", "model"] = "lexicon"


class Analysis(_Model):
    """What ``nlp`` says about one post's text. Deterministic for a given model version."""

    sentiment: Sentiment
    sentiment_score: float = Field(
        ge=0.0, le=1.0, description="0 = most negative, 1 = most positive"
    )
    topic: Topic = Topic.OTHER
    topic_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    signals: list[Signal] = Field(default_factory=list)
    risk_score: float = Field(default=0.0, ge=0.0, le=1.0)
    critical: bool = False
    keywords: list[str] = Field(default_factory=list)
    entities: list[str] = Field(default_factory=list, description="watched entities mentioned")
    masked_text: str = ""
    model_version: str = "baseline"

    @property
    def signal_names(self) -> list[str]:
        return [s.name for s in self.signals]


class Post(_Model):
    """One public post (news article, forum thread, complaint, review) that mentions the bank."""

    id: str = Field(min_length=8, max_length=64)
    url: str
    source: str = Field(min_length=1, description="configured source name")
    platform: Platform = Platform.OTHER
    title: str = ""
    text: str
    author: str | None = None
    author_followers: int | None = Field(default=None, ge=0)
    reposts: int = Field(default=0, ge=0)
    comments: int = Field(default=0, ge=0)
    likes: int = Field(default=0, ge=0)
    published_at: UtcDatetime
    published_at_estimated: bool = Field(
        default=False, description="True when the page had no time and the crawl time was used"
    )
    crawled_at: UtcDatetime = Field(default_factory=utcnow)
    content_hash: str = ""
    matched_entities: list[str] = Field(default_factory=list)
    analysis: Analysis | None = None
    duplicates: int = Field(
        default=0,
        ge=0,
        description="reposts and near-copies of this text seen under other URLs and grouped "
        "here instead of being stored as posts of their own (see docs/dedup.md)",
    )
    duplicate_reach: int = Field(
        default=0, ge=0, description="the summed ``reach`` of those grouped copies"
    )
    extra: dict[str, str | int] = Field(
        default_factory=dict,
        description="what only some platforms have, by name: a complaint's complaint_id, "
        "status, collective_size; a reply's thread_url, thread_title, floor; an app "
        "review's rating, version (see docs/crawling.md). Stored, not indexed.",
    )

    @property
    def reach(self) -> int:
        """A rough audience size: followers plus engagement."""
        return (self.author_followers or 0) + self.reposts + self.comments + self.likes

    @property
    def group_reach(self) -> int:
        """``reach`` of this post plus that of every copy grouped under it (summed: each
        repost reaches its own audience)."""
        return self.reach + self.duplicate_reach


class PostQuery(_Model):
    """Filters shared by every PostStore read. ``None`` means 'no filter'.

    ``since`` is inclusive and ``until`` exclusive, both on ``published_at``.
    """

    text: str | None = None
    since: UtcDatetime | None = None
    until: UtcDatetime | None = None
    sources: list[str] | None = None
    platforms: list[Platform] | None = None
    sentiments: list[Sentiment] | None = None
    topics: list[Topic] | None = None
    signals: list[str] | None = None
    entities: list[str] | None = None
    min_risk: float | None = Field(default=None, ge=0.0, le=1.0)
    critical: bool | None = None


class PostHit(_Model):
    """A post returned by a search, with an optional highlighted snippet (plain text + marks)."""

    post: Post
    snippet: str | None = None


class SearchPage(_Model):
    """One page of search results. Pass ``next_cursor`` back to get the next page."""

    hits: list[PostHit]
    total: int
    next_cursor: str | None = None


class Bucket(_Model):
    """A count in one time bucket, optionally split by a field value (``key``)."""

    start: UtcDatetime
    count: int
    key: str | None = None


class TermCount(_Model):
    value: str
    count: int


class UpsertResult(_Model):
    """Outcome of a batch upsert: every input is counted in exactly one field."""

    inserted: int = 0
    updated: int = 0
    failed: int = 0
    errors: list[str] = Field(default_factory=list)


class Incident(_Model):
    """A forming crisis: matches about one subject, close in time (one rule or several:
    ``rules``; grouping policy in ``alerts.incidents``)."""

    id: int | None = None
    rule: str
    key: str = Field(description="what the incident is about, e.g. 'all', 'topic:loans'")
    title: str
    grade: Grade = Grade.IV
    status: IncidentStatus = IncidentStatus.OPEN
    opened_at: UtcDatetime = Field(default_factory=utcnow)
    updated_at: UtcDatetime = Field(default_factory=utcnow)
    resolved_at: UtcDatetime | None = None
    first_seen: UtcDatetime | None = None
    post_count: int = 0
    peak_count: int = 0
    post_ids: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    topic: Topic | None = None
    entity: str | None = None
    sources: list[str] = Field(default_factory=list)
    rules: list[str] = Field(
        default_factory=list,
        description="every rule that matched into the incident, the opener first "
        "(matches of several rules about one topic/entity join one incident)",
    )
    members: list[str] = Field(
        default_factory=list,
        description="'<rule>:<key>' of every match that joined the incident (grouping)",
    )
    silenced_by: int | None = Field(
        default=None, description="id of the silence holding its notifications, if any"
    )
    ticket_links: list[dict[str, Any]] = Field(
        default_factory=list,
        description="complaint tickets linked to the incident, best first: "
        "{'ticket_id': str, 'score': float in [0, 1], 'reasons': [Chinese reasons]}",
    )


class Alert(_Model):
    """One detector match, recorded for the audit trail and used to notify."""

    id: int | None = None
    incident_id: int | None = None
    rule: str
    grade: Grade
    created_at: UtcDatetime = Field(default_factory=utcnow)
    summary: str
    details: dict[str, Any] = Field(default_factory=dict)


class Ticket(_Model):
    """A complaint ticket exported from the bank's complaint system."""

    ticket_id: str = Field(min_length=1)
    created_at: UtcDatetime
    updated_at: UtcDatetime | None = None
    channel: str = ""
    branch: str = ""
    product: str = ""
    category: str = ""
    priority: str = ""
    status: str = ""
    summary: str = ""
    customer_ref: str = ""


class CrawlRun(_Model):
    """Statistics of one crawl of one source (source health)."""

    id: int | None = None
    source: str
    started_at: UtcDatetime
    finished_at: UtcDatetime | None = None
    ok: bool = True
    fetched: int = 0
    kept: int = 0
    dropped: dict[str, int] = Field(default_factory=dict)
    errors: int = 0
    message: str = ""


class Notification(_Model):
    """A message waiting in (or delivered from) the outbox."""

    id: int | None = None
    channel: str
    dedup_key: str
    subject: str
    body: str
    incident_id: int | None = None
    created_at: UtcDatetime = Field(default_factory=utcnow)
    attempts: int = 0
    next_attempt_at: UtcDatetime | None = None
    sent_at: UtcDatetime | None = None
    last_error: str | None = None
    payload: dict[str, Any] = Field(
        default_factory=dict,
        description="the structured message (alerts.messages.Message) each channel formats; "
        "empty for plain-text notifications, which channels send as subject + body",
    )
