"""Ports: what the rest of yuqing needs from storage and channels.

Adapters live in ``storage/`` and ``alerts/notifiers/``; ``yuqing.bootstrap``
picks them from settings. Unit tests use small hand-written fakes.

Error contract for every port: a temporary outage raises
:class:`core.errors.StoreUnavailable` (or ``NotifierError(temporary=True)``),
a request that can never succeed raises a permanent error. No method returns
an empty result because something failed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from core.models import (
    Alert,
    Bucket,
    CrawlRun,
    Incident,
    Notification,
    Post,
    PostQuery,
    SearchPage,
    TermCount,
    Ticket,
    UpsertResult,
)
from core.vocab import IncidentStatus

Tokenizer = Callable[[str], list[str]]
"""Turns text into index tokens (jieba words). Both stores use the same one."""

SortOrder = Literal["newest", "oldest", "relevance", "risk"]

TermField = Literal["source", "platform", "sentiment", "topic", "signals", "entities", "author"]
"""Fields that ``PostStore.terms`` and ``histogram(group_by=...)`` accept."""

SHANGHAI_OFFSET_MINUTES = 8 * 60


@runtime_checkable
class PostStore(Protocol):
    """Where analysed posts live (SQLite locally, Elasticsearch at scale)."""

    def upsert(self, posts: Sequence[Post]) -> UpsertResult:
        """Insert or replace ``posts`` by ``Post.id``; idempotent.

        Raises ``StoreUnavailable`` if nothing could be written because the store
        is down (the caller spools the batch). Per-post permanent failures are
        counted in ``UpsertResult.failed`` with a reason, never dropped silently.
        """
        ...

    def get(self, post_id: str) -> Post | None:
        """The post with this id, or ``None`` if there is none."""
        ...

    def search(
        self,
        query: PostQuery,
        *,
        sort: SortOrder = "newest",
        limit: int = 20,
        cursor: str | None = None,
        highlight: bool = False,
    ) -> SearchPage:
        """One page of posts matching ``query``.

        ``cursor`` is the ``next_cursor`` of the previous page (keyset paging: it
        stays fast on deep pages). ``total`` counts every match. Free text in
        ``query.text`` is tokenized like the indexed text and matched as words
        (all words must appear); it is never interpreted as query syntax.
        """
        ...

    def count(self, query: PostQuery) -> int:
        """How many posts match ``query``."""
        ...

    def histogram(
        self,
        query: PostQuery,
        *,
        bucket_seconds: int,
        tz_offset_minutes: int = SHANGHAI_OFFSET_MINUTES,
        group_by: TermField | None = None,
    ) -> list[Bucket]:
        """Counts of matching posts per time bucket of ``published_at``.

        Buckets are aligned to local time at ``tz_offset_minutes`` east of UTC
        (a day bucket starts at local midnight) and reported by their UTC start,
        ascending; empty buckets are omitted. With ``group_by`` there is one
        ``Bucket`` per (bucket, value) with ``key`` set.
        """
        ...

    def terms(self, query: PostQuery, field: TermField, *, size: int = 10) -> list[TermCount]:
        """The ``size`` most frequent values of ``field`` among matching posts, by count desc."""
        ...

    def close(self) -> None:
        """Release connections. Safe to call twice."""
        ...


@runtime_checkable
class ContentIndex(Protocol):
    """Bulk look-ups (and repost counts) the crawl's dedup stage needs; both stores have them.

    Kept apart from :class:`PostStore` so that read-only fakes need not grow.
    Both methods take any number of keys (chunked inside) and raise
    ``StoreUnavailable`` when the store cannot be asked — never an empty answer.
    """

    def existing_hashes(self, hashes: Sequence[str]) -> dict[str, str]:
        """``{content_hash: post id}`` for each of ``hashes`` some stored post has.

        When several posts share a hash, the id is the one stored first.
        """
        ...

    def stored_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """``{post id: content_hash}`` for each of ``ids`` that is stored."""
        ...

    def set_group_counts(self, counts: Mapping[str, tuple[int, int]]) -> set[str]:
        """Set ``Post.duplicates`` and ``Post.duplicate_reach`` of stored posts.

        ``counts`` maps a post id to ``(duplicates, duplicate_reach)``; returns
        the ids that are stored and were updated (the others are left alone).
        Nothing else of the posts changes.
        """
        ...


@runtime_checkable
class StateStore(Protocol):
    """Operational state: incidents, alerts, tickets, acks, audit log, outbox, crawl runs."""

    # incidents
    def save_incident(self, incident: Incident) -> Incident:
        """Insert (``id is None``) or update an incident; returns it with its id."""
        ...

    def get_incident(self, incident_id: int) -> Incident | None: ...

    def find_active_incident(self, rule: str, key: str) -> Incident | None:
        """The newest incident of ``rule`` about ``key`` that is not resolved, if any."""
        ...

    def list_incidents(
        self,
        *,
        status: Sequence[IncidentStatus] | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        """Incidents, newest first, optionally filtered by status and ``opened_at >= since``."""
        ...

    def acknowledge(self, incident_id: int, *, user: str, note: str = "") -> Incident:
        """Mark an incident acknowledged by ``user`` (writes an ack and an audit entry)."""
        ...

    def resolve(self, incident_id: int, *, user: str, note: str = "") -> Incident:
        """Mark an incident resolved (writes an audit entry)."""
        ...

    # alerts
    def add_alert(self, alert: Alert) -> Alert: ...

    def list_alerts(self, *, incident_id: int | None = None, limit: int = 100) -> list[Alert]: ...

    # audit
    def audit(self, *, actor: str, action: str, target: str, detail: str = "") -> None: ...

    # outbox
    def enqueue(self, notification: Notification) -> bool:
        """Queue a notification; ``False`` if one with the same (channel, dedup_key) exists."""
        ...

    def due_notifications(self, now: datetime, *, limit: int = 50) -> list[Notification]:
        """Unsent notifications whose next attempt is due, oldest first."""
        ...

    def mark_sent(self, notification_id: int, when: datetime) -> None: ...

    def mark_failed(self, notification_id: int, error: str, retry_at: datetime | None) -> None:
        """Record a failed attempt; ``retry_at=None`` means give up (permanent failure)."""
        ...

    # tickets
    def upsert_tickets(self, tickets: Sequence[Ticket]) -> int:
        """Insert or update tickets by ``ticket_id``; returns how many were written."""
        ...

    def list_tickets(
        self, *, since: datetime | None = None, until: datetime | None = None, limit: int = 500
    ) -> list[Ticket]: ...

    # crawl runs
    def record_crawl_run(self, run: CrawlRun) -> CrawlRun: ...

    def list_crawl_runs(self, *, source: str | None = None, limit: int = 100) -> list[CrawlRun]: ...

    def close(self) -> None: ...


class AckRecord(Protocol):
    """One acknowledgement as a state store returns it."""

    @property
    def user(self) -> str: ...
    @property
    def note(self) -> str: ...
    @property
    def at(self) -> datetime: ...


class AuditRecord(Protocol):
    """One audit-log entry as a state store returns it."""

    @property
    def at(self) -> datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def detail(self) -> str: ...


# Optional extensions: readers check for them with isinstance and say plainly
# when a store lacks one; the shipped stores have them all. They are kept out of
# the StateStore/PostStore protocols so small fakes need not implement them.


@runtime_checkable
class BulkPostReader(Protocol):
    """Optional PostStore extension (both shipped stores have it): many posts in one read."""

    def get_many(self, ids: Sequence[str]) -> dict[str, Post]:
        """The stored posts among ``ids``, by id; missing ids are left out."""
        ...


@runtime_checkable
class AckLog(Protocol):
    """Optional StateStore extension (``SqlStateStore`` has it): an incident's acknowledgements."""

    def list_acks(self, incident_id: int) -> Sequence[AckRecord]: ...


@runtime_checkable
class AuditLog(Protocol):
    """Optional StateStore extension (``SqlStateStore`` has it): the audit log by target."""

    def list_audit(
        self, limit: int = 100, *, target: str | None = None
    ) -> Sequence[AuditRecord]: ...


@runtime_checkable
class NotificationLog(Protocol):
    """Optional StateStore extension (``SqlStateStore`` has it): the outbox, by incident."""

    def list_notifications(
        self, *, incident_id: int | None = None, limit: int = 100
    ) -> Sequence[Notification]: ...


@runtime_checkable
class Notifier(Protocol):
    """One delivery channel (email, webhook, WeCom …). Plugins implement this."""

    name: str

    def send(self, notification: Notification) -> None:
        """Deliver ``notification`` or raise ``NotifierError``.

        ``NotifierError.temporary`` tells the outbox whether to retry.
        """
        ...
