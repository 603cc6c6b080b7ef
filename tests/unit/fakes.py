"""Small hand-written fakes of the core ports for unit tests (no MagicMock).

They follow the port contracts closely enough for the alerting code: time
filters are ``[since, until)``, histogram buckets are aligned to UTC plus the
offset, the outbox refuses a duplicate ``(channel, dedup_key)``. Set
``fail_with`` to make every call raise, to simulate an outage.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from core.errors import NotifierError, StoreUnavailable
from core.models import (
    Alert,
    Analysis,
    Bucket,
    CrawlRun,
    Incident,
    Notification,
    Post,
    PostHit,
    PostQuery,
    SearchPage,
    TermCount,
    Ticket,
    UpsertResult,
)
from core.ports import SortOrder, TermField
from core.vocab import IncidentStatus, Sentiment

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
"""A fixed 'now' on a minute boundary for tests."""


def make_post(
    n: int,
    published_at: datetime,
    *,
    source: str = "forum",
    sentiment: Sentiment | None = None,
    title: str | None = None,
) -> Post:
    """A minimal valid post number ``n`` (analysis only when ``sentiment`` is given)."""
    analysis = None
    if sentiment is not None:
        analysis = Analysis(sentiment=sentiment, sentiment_score=0.1)
    return Post(
        id=f"post{n:08d}",
        url=f"https://forum.example/t/{n}",
        source=source,
        title=title if title is not None else f"帖子 {n}",
        text=f"澜海银行 帖子正文 {n}",
        published_at=published_at,
        analysis=analysis,
    )


class FakePostStore:
    """In-memory PostStore implementing the filters the detector uses."""

    def __init__(self, posts: Sequence[Post] = ()) -> None:
        self.posts: dict[str, Post] = {p.id: p for p in posts}
        self.fail_with: Exception | None = None
        self.calls: list[str] = []

    def _check(self, name: str) -> None:
        self.calls.append(name)
        if self.fail_with is not None:
            raise self.fail_with

    def _matches(self, post: Post, q: PostQuery) -> bool:
        if q.since is not None and post.published_at < q.since:
            return False
        if q.until is not None and post.published_at >= q.until:
            return False
        if q.sources is not None and post.source not in q.sources:
            return False
        if q.sentiments is not None and (
            post.analysis is None or post.analysis.sentiment not in q.sentiments
        ):
            return False
        if q.topics is not None and (post.analysis is None or post.analysis.topic not in q.topics):
            return False
        if q.signals is not None and (
            post.analysis is None or not set(post.analysis.signal_names) & set(q.signals)
        ):
            return False
        if q.critical is not None and (
            post.analysis is None or post.analysis.critical is not q.critical
        ):
            return False
        return not (q.text is not None and q.text not in post.text)

    def _select(self, q: PostQuery) -> list[Post]:
        return [p for p in self.posts.values() if self._matches(p, q)]

    def upsert(self, posts: Sequence[Post]) -> UpsertResult:
        self._check("upsert")
        result = UpsertResult()
        for post in posts:
            if post.id in self.posts:
                result.updated += 1
            else:
                result.inserted += 1
            self.posts[post.id] = post
        return result

    def get(self, post_id: str) -> Post | None:
        self._check("get")
        return self.posts.get(post_id)

    def search(
        self,
        query: PostQuery,
        *,
        sort: SortOrder = "newest",
        limit: int = 20,
        cursor: str | None = None,
        highlight: bool = False,
    ) -> SearchPage:
        self._check("search")
        found = sorted(
            self._select(query), key=lambda p: (p.published_at, p.id), reverse=sort != "oldest"
        )
        return SearchPage(hits=[PostHit(post=p) for p in found[:limit]], total=len(found))

    def count(self, query: PostQuery) -> int:
        self._check("count")
        return len(self._select(query))

    def histogram(
        self,
        query: PostQuery,
        *,
        bucket_seconds: int,
        tz_offset_minutes: int = 480,
        group_by: TermField | None = None,
    ) -> list[Bucket]:
        self._check("histogram")
        offset = tz_offset_minutes * 60
        counts: Counter[float] = Counter()
        for post in self._select(query):
            local = post.published_at.timestamp() + offset
            counts[math.floor(local / bucket_seconds) * bucket_seconds - offset] += 1
        return [
            Bucket(start=datetime.fromtimestamp(start, UTC), count=n)
            for start, n in sorted(counts.items())
        ]

    def terms(self, query: PostQuery, field: TermField, *, size: int = 10) -> list[TermCount]:
        self._check("terms")
        counts: Counter[str] = Counter()
        for post in self._select(query):
            if field == "source":
                counts[post.source] += 1
            elif field == "topic":
                if post.analysis is not None:
                    counts[post.analysis.topic.value] += 1
            elif field == "signals":
                if post.analysis is not None:
                    counts.update(set(post.analysis.signal_names))
            elif field == "platform":
                counts[post.platform.value] += 1
            else:
                raise NotImplementedError(field)
        return [TermCount(value=v, count=n) for v, n in counts.most_common(size)]

    def close(self) -> None:
        pass


class FakeEscalation:
    """One recorded escalation step (as ``storage.state.Escalation``)."""

    def __init__(self, level: int, audience: str, at: datetime, actor: str, note: str) -> None:
        self.level, self.audience, self.at, self.actor, self.note = level, audience, at, actor, note


class FakeStateStore:
    """In-memory StateStore: incidents, alerts, audit log and outbox."""

    def __init__(self) -> None:
        self.incidents: dict[int, Incident] = {}
        self.alerts: list[Alert] = []
        self.audit_log: list[tuple[str, str, str, str]] = []
        self.outbox: list[Notification] = []
        self.given_up: set[int] = set()
        self.crawl_runs: list[CrawlRun] = []
        self.tickets: dict[str, Ticket] = {}
        self.ticket_reads = 0
        self.fail_with: Exception | None = None
        self.writes = 0
        self.escalations: dict[int, list[FakeEscalation]] = {}
        self.now = T0
        """The time stamped on escalation steps (tests move it)."""

    def _check(self, write: bool = False) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        if write:
            self.writes += 1

    # incidents
    def save_incident(self, incident: Incident) -> Incident:
        self._check(write=True)
        if incident.id is None:
            incident = incident.model_copy(update={"id": len(self.incidents) + 1})
        self.incidents[incident.id] = incident  # type: ignore[index]
        return incident

    def get_incident(self, incident_id: int) -> Incident | None:
        self._check()
        return self.incidents.get(incident_id)

    def find_active_incident(self, rule: str, key: str) -> Incident | None:
        self._check()
        active = [
            i
            for i in self.incidents.values()
            if i.rule == rule and i.key == key and i.status is not IncidentStatus.RESOLVED
        ]
        return max(active, key=lambda i: i.id or 0) if active else None

    def list_incidents(
        self,
        *,
        status: Sequence[IncidentStatus] | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        self._check()
        found = [
            i
            for i in self.incidents.values()
            if (status is None or i.status in status) and (since is None or i.opened_at >= since)
        ]
        return sorted(found, key=lambda i: i.opened_at, reverse=True)[:limit]

    def _set_status(self, incident_id: int, status: IncidentStatus, now: datetime) -> Incident:
        self._check(write=True)
        incident = self.incidents[incident_id]
        update: dict[str, object] = {"status": status, "updated_at": now}
        if status is IncidentStatus.RESOLVED:
            update["resolved_at"] = now
        incident = incident.model_copy(update=update)
        self.incidents[incident_id] = incident
        return incident

    def acknowledge(self, incident_id: int, *, user: str, note: str = "") -> Incident:
        self.audit(actor=user, action="acknowledge", target=f"incident:{incident_id}")
        return self._set_status(incident_id, IncidentStatus.ACKNOWLEDGED, datetime.now(UTC))

    def resolve(self, incident_id: int, *, user: str, note: str = "") -> Incident:
        self.audit(actor=user, action="resolve", target=f"incident:{incident_id}")
        return self._set_status(incident_id, IncidentStatus.RESOLVED, datetime.now(UTC))

    # alerts
    def add_alert(self, alert: Alert) -> Alert:
        self._check(write=True)
        alert = alert.model_copy(update={"id": len(self.alerts) + 1})
        self.alerts.append(alert)
        return alert

    def list_alerts(self, *, incident_id: int | None = None, limit: int = 100) -> list[Alert]:
        self._check()
        found = [a for a in self.alerts if incident_id is None or a.incident_id == incident_id]
        return list(reversed(found))[:limit]

    # audit
    def audit(self, *, actor: str, action: str, target: str, detail: str = "") -> None:
        self._check(write=True)
        self.audit_log.append((actor, action, target, detail))

    # outbox
    def enqueue(self, notification: Notification) -> bool:
        self._check()
        for queued in self.outbox:
            if (queued.channel, queued.dedup_key) == (notification.channel, notification.dedup_key):
                return False
        self.writes += 1
        self.outbox.append(notification.model_copy(update={"id": len(self.outbox) + 1}))
        return True

    def due_notifications(self, now: datetime, *, limit: int = 50) -> list[Notification]:
        self._check()
        due = [
            n
            for n in self.outbox
            if n.sent_at is None
            and n.id not in self.given_up
            and (n.next_attempt_at is None or n.next_attempt_at <= now)
        ]
        return sorted(due, key=lambda n: n.created_at)[:limit]

    def _replace(self, notification_id: int, **update: object) -> None:
        for index, queued in enumerate(self.outbox):
            if queued.id == notification_id:
                self.outbox[index] = queued.model_copy(update=update)
                return
        raise KeyError(notification_id)

    def notification(self, notification_id: int) -> Notification:
        return next(n for n in self.outbox if n.id == notification_id)

    def mark_sent(self, notification_id: int, when: datetime) -> None:
        self._check(write=True)
        attempts = self.notification(notification_id).attempts + 1
        self._replace(notification_id, sent_at=when, attempts=attempts)

    def mark_failed(self, notification_id: int, error: str, retry_at: datetime | None) -> None:
        self._check(write=True)
        attempts = self.notification(notification_id).attempts + 1
        self._replace(
            notification_id, attempts=attempts, last_error=error, next_attempt_at=retry_at
        )
        if retry_at is None:
            self.given_up.add(notification_id)

    # tickets
    def upsert_tickets(self, tickets: Sequence[Ticket]) -> int:
        self._check(write=True)
        for ticket in tickets:
            self.tickets[ticket.ticket_id] = ticket
        return len(tickets)

    def list_tickets(
        self, *, since: datetime | None = None, until: datetime | None = None, limit: int = 500
    ) -> list[Ticket]:
        self._check()
        self.ticket_reads += 1
        found = [
            t
            for t in self.tickets.values()
            if (since is None or t.created_at >= since) and (until is None or t.created_at < until)
        ]
        found.sort(key=lambda t: (-t.created_at.timestamp(), t.ticket_id))
        return found[:limit]

    # crawl runs
    def record_crawl_run(self, run: CrawlRun) -> CrawlRun:
        self._check(write=True)
        run = run.model_copy(update={"id": len(self.crawl_runs) + 1})
        self.crawl_runs.append(run)
        return run

    def list_crawl_runs(self, *, source: str | None = None, limit: int = 100) -> list[CrawlRun]:
        self._check()
        return [r for r in reversed(self.crawl_runs) if source in (None, r.source)][:limit]

    # escalations (SqlStateStore extras used by alerts.escalation)
    def record_escalation(
        self, incident_id: int, level: int, audience: str, *, actor: str, note: str = ""
    ) -> bool:
        self._check(write=True)
        steps = self.escalations.setdefault(incident_id, [])
        if any(s.level == level for s in steps):
            return False
        steps.append(FakeEscalation(level, audience, self.now, actor, note))
        steps.sort(key=lambda s: s.level)
        self.audit(actor=actor, action="escalate", target=f"incident:{incident_id}", detail=note)
        return True

    def list_escalations(self, incident_id: int) -> list[FakeEscalation]:
        self._check()
        return list(self.escalations.get(incident_id, []))

    def list_notifications(
        self, *, incident_id: int | None = None, limit: int = 100
    ) -> list[Notification]:
        self._check()
        found = [n for n in self.outbox if incident_id is None or n.incident_id == incident_id]
        return list(reversed(found))[:limit]

    def close(self) -> None:
        pass


class FakeNotifier:
    """Records what it sends; raises the queued ``failures`` first, one per call."""

    def __init__(self, name: str = "fake", failures: Sequence[Exception] = ()) -> None:
        self.name = name
        self.failures = list(failures)
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(notification)


def outage() -> StoreUnavailable:
    return StoreUnavailable("connection refused (fake outage)")


def temporary(message: str = "503 from channel") -> NotifierError:
    return NotifierError(message, temporary=True)


def permanent(message: str = "401 bad token") -> NotifierError:
    return NotifierError(message, temporary=False)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
