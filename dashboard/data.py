"""The one data module the dashboard pages read through.

:class:`DashboardData` turns the ports (:class:`core.ports.PostStore`,
:class:`core.ports.StateStore`) into what a page shows: pandas DataFrames and
small frozen dataclasses, with times already converted to the display time
zone (Asia/Shanghai) and post text already masked. It imports no Streamlit,
so every number a page shows is tested without a browser.

Failure contract: when a store is down, every method raises
:class:`DataUnavailable` (a :class:`core.errors.StoreUnavailable`) naming the
store. Nothing here turns an outage into "0 posts" or "no incidents" — in a
monitor that would silence the alarm.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pandas as pd

from core.errors import StoreUnavailable
from core.models import Alert, Incident, Post, PostQuery
from core.ports import PostStore, SortOrder, StateStore
from core.vocab import TOPIC_LABELS_ZH, Grade, IncidentStatus, Sentiment, Topic
from dashboard.auth import AuthPolicy
from nlp.pii import mask_pii

SENTIMENT_LABELS_ZH: dict[Sentiment, str] = {
    Sentiment.NEGATIVE: "负面",
    Sentiment.NEUTRAL: "中性",
    Sentiment.POSITIVE: "正面",
}

STATUS_LABELS_ZH: dict[IncidentStatus, str] = {
    IncidentStatus.OPEN: "待处理",
    IncidentStatus.ACKNOWLEDGED: "已确认",
    IncidentStatus.RESOLVED: "已解决",
}

ACTIVE_STATUSES: tuple[IncidentStatus, ...] = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED)
"""Statuses of an incident that still needs attention ("open" in the overview)."""

UNANALYSED = "unanalysed"
"""Sentiment key for posts that carry no analysis (shown as 未分析)."""

POST_STORE = "舆情库 (post store)"
STATE_STORE = "状态库 (state store)"

# Open incidents are counted from one list call of at most this many (the port
# has no count); at the cap the KPI is flagged as a lower bound and shown "1000+".
_OPEN_INCIDENT_CAP = 1000
_SAFE_URL_SCHEMES = frozenset({"http", "https"})


class DataUnavailable(StoreUnavailable):
    """A store the dashboard reads is down. ``store`` names it for the page's error box."""

    def __init__(self, store: str, detail: str) -> None:
        super().__init__(f"{store} unavailable: {detail}")
        self.store = store
        self.detail = detail


@contextmanager
def _reading(store: str) -> Iterator[None]:
    """Re-raise a store outage as :class:`DataUnavailable` that names ``store``."""
    try:
        yield
    except DataUnavailable:
        raise
    except StoreUnavailable as exc:
        raise DataUnavailable(store, str(exc) or type(exc).__name__) from exc


@dataclass(frozen=True)
class RangePreset:
    """A time-range choice of the pickers: how far back, and the chart's bucket size."""

    key: str
    label: str
    span: timedelta
    bucket_seconds: int


RANGE_PRESETS: dict[str, RangePreset] = {
    p.key: p
    for p in (
        RangePreset("24h", "近24小时", timedelta(hours=24), 3600),
        RangePreset("7d", "近7天", timedelta(days=7), 6 * 3600),
        RangePreset("30d", "近30天", timedelta(days=30), 86400),
    )
}


@dataclass(frozen=True)
class TimeWindow:
    """A half-open UTC interval ``[since, until)`` with the bucket size used to chart it."""

    since: datetime
    until: datetime
    bucket_seconds: int

    @classmethod
    def last(cls, preset: str, *, now: datetime | None = None) -> TimeWindow:
        """The window of ``RANGE_PRESETS[preset]`` ending at ``now`` (default: the current time).

        Raises ``KeyError`` for an unknown preset key.
        """
        p = RANGE_PRESETS[preset]
        end = (now or datetime.now(UTC)).astimezone(UTC)
        return cls(since=end - p.span, until=end, bucket_seconds=p.bucket_seconds)


@dataclass(frozen=True)
class Kpis:
    """Headline numbers of the overview for one time window (open incidents: right now)."""

    total_posts: int
    negative_posts: int
    critical_posts: int
    open_incidents: int
    open_by_grade: dict[Grade, int]
    open_incidents_capped: bool = False

    @property
    def negative_share(self) -> float | None:
        """Negative posts / all posts, or ``None`` when there are no posts (not 0 %)."""
        if self.total_posts == 0:
            return None
        return self.negative_posts / self.total_posts


@dataclass(frozen=True)
class FeedItem:
    """One post ready to show: masked text, local time, Chinese labels, a safe link."""

    id: str
    title: str
    text: str
    local_time: datetime
    source: str
    platform: str
    author: str | None
    sentiment: Sentiment | None
    sentiment_zh: str
    topic: Topic | None
    topic_zh: str
    risk: float | None
    critical: bool
    signals: list[str]
    url: str | None
    """The original URL, or ``None`` when it is not http(s) (never link ``javascript:``)."""


_FEED_COLUMNS = [
    "local_time",
    "source",
    "title",
    "text",
    "sentiment_zh",
    "topic_zh",
    "risk",
    "url",
    "id",
]


@dataclass(frozen=True)
class FeedPage:
    """One page of the feed. Pass ``next_cursor`` back to :meth:`DashboardData.feed`."""

    items: list[FeedItem]
    total: int
    next_cursor: str | None

    def to_frame(self) -> pd.DataFrame:
        """The page as a table (columns: local_time, source, title, text, sentiment_zh, …)."""
        rows = [{c: getattr(item, c) for c in _FEED_COLUMNS} for item in self.items]
        return pd.DataFrame(rows, columns=_FEED_COLUMNS)


@dataclass(frozen=True)
class IncidentDetail:
    """Everything the incident room shows about one incident."""

    incident: Incident
    timeline: pd.DataFrame
    """Columns local_time, event, grade, actor, detail: alerts, acks, open/resolve; oldest first."""
    posts: list[FeedItem]
    posts_missing: int
    """Post ids of the incident that the post store no longer has."""
    posts_not_loaded: int
    """Post ids beyond ``max_posts`` that were not fetched."""
    acks: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Columns local_time, user, note; oldest first."""


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


@runtime_checkable
class AuditSink(Protocol):
    """Optional StateStore extension (``SqlStateStore`` has it): append to the audit log."""

    def audit(self, *, actor: str, action: str, target: str, detail: str = "") -> None: ...


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


AUDIT_ACTIONS_ZH: dict[str, str] = {
    "acknowledge": "确认",
    "resolve": "解决",
    "escalate": "升级",
    "note": "备注",
}


IncidentAction = Callable[[int, str, str, str], Incident]
"""``(incident_id, action, user, note) -> Incident`` for action ``acknowledge`` or ``resolve``."""


class DashboardData:
    """Read (and act) on yuqing's stores for the dashboard.

    ``post_store`` and ``state_store`` are already-built adapters (picked by
    ``yuqing.bootstrap``); this class never chooses one. ``tz`` is the display
    time zone; ``public_url`` is where the dashboard is served, for links to an
    incident. Every method raises :class:`DataUnavailable` when a store is down.
    """

    def __init__(
        self,
        post_store: PostStore,
        state_store: StateStore,
        *,
        tz: str = "Asia/Shanghai",
        public_url: str = "http://127.0.0.1:8501",
        act: IncidentAction | None = None,
        auth: AuthPolicy | None = None,
    ) -> None:
        self._posts = post_store
        self._state = state_store
        # The alerting engine's action (audit + escalation messages), injected by
        # bootstrap; without it the dashboard changes the status in the state store only.
        self._act = act
        # Who may log in (bootstrap: from settings.dashboard). The default has no
        # users, so a dashboard built without a policy lets nobody in.
        self.auth = auth or AuthPolicy()
        self.tz = ZoneInfo(tz)
        self.public_url = public_url.rstrip("/")

    # ------------------------------------------------------------------ helpers

    def to_local(self, when: datetime) -> datetime:
        """``when`` (aware) in the display time zone."""
        return when.astimezone(self.tz)

    def _tz_offset_minutes(self, at: datetime) -> int:
        offset = at.astimezone(self.tz).utcoffset() or timedelta(0)
        return int(offset.total_seconds() // 60)

    def _bucket_starts(
        self, since: datetime, until: datetime, bucket_seconds: int
    ) -> list[datetime]:
        """UTC starts of the local-time-aligned buckets covering ``[since, until)``.

        Same alignment rule as ``PostStore.histogram``: buckets start at multiples
        of ``bucket_seconds`` in local wall-clock time (a day starts at midnight).
        """
        offset = self._tz_offset_minutes(since) * 60
        start = int(since.timestamp())
        first = (start + offset) // bucket_seconds * bucket_seconds - offset
        end = until.timestamp()
        starts = []
        t = first
        while t < end:
            starts.append(datetime.fromtimestamp(t, UTC))
            t += bucket_seconds
        return starts

    def _feed_item(self, post: Post) -> FeedItem:
        analysis = post.analysis
        # Prefer the analyzer's masked text, and mask again anyway: a post stored
        # by an older analyzer (or none) must not show a phone or ID number.
        text = mask_pii(analysis.masked_text if analysis and analysis.masked_text else post.text)
        sentiment = analysis.sentiment if analysis else None
        topic = analysis.topic if analysis else None
        return FeedItem(
            id=post.id,
            title=mask_pii(post.title),
            text=text,
            local_time=self.to_local(post.published_at),
            source=post.source,
            platform=str(post.platform),
            author=mask_pii(post.author) if post.author else None,
            sentiment=sentiment,
            sentiment_zh=SENTIMENT_LABELS_ZH[sentiment] if sentiment else "未分析",
            topic=topic,
            topic_zh=TOPIC_LABELS_ZH[topic] if topic else "未分析",
            risk=analysis.risk_score if analysis else None,
            critical=bool(analysis and analysis.critical),
            signals=analysis.signal_names if analysis else [],
            url=safe_url(post.url),
        )

    # ------------------------------------------------------------------ overview

    def volume_over_time(
        self, since: datetime, until: datetime, bucket_seconds: int
    ) -> pd.DataFrame:
        """Posts per time bucket split by sentiment, every bucket present (zeros included).

        Columns: ``start`` (UTC), ``local_time`` and ``local_end`` (the bucket in
        the display zone), ``sentiment`` (key, or ``"unanalysed"``),
        ``sentiment_zh``, ``count``; sorted by time, then negative, neutral,
        positive, unanalysed. The counts add up to ``PostStore.count`` over the
        window. Raises :class:`DataUnavailable`.
        """
        query = PostQuery(since=since, until=until)
        offset = self._tz_offset_minutes(since)
        with _reading(POST_STORE):
            by_sentiment = self._posts.histogram(
                query, bucket_seconds=bucket_seconds, tz_offset_minutes=offset, group_by="sentiment"
            )
            # A grouped histogram leaves out posts without analysis; the ungrouped
            # one counts them, so each bar adds up to what the store holds.
            overall = self._posts.histogram(
                query, bucket_seconds=bucket_seconds, tz_offset_minutes=offset
            )
        counts: dict[tuple[datetime, str], int] = {}
        # A complete grid, so a quiet hour is a real 0 on the chart, not a gap.
        for start in self._bucket_starts(since, until, bucket_seconds):
            for s in Sentiment:
                counts[(start, s.value)] = 0
        grouped_total: dict[datetime, int] = {}
        for b in by_sentiment:
            key = (b.start, b.key or UNANALYSED)
            counts[key] = counts.get(key, 0) + b.count
            grouped_total[b.start] = grouped_total.get(b.start, 0) + b.count
        for b in overall:
            rest = b.count - grouped_total.get(b.start, 0)
            if rest > 0:
                counts[(b.start, UNANALYSED)] = counts.get((b.start, UNANALYSED), 0) + rest
        step = timedelta(seconds=bucket_seconds)
        order = {s.value: i for i, s in enumerate(Sentiment)}
        rows = sorted(counts.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99)))
        frame = pd.DataFrame(
            [
                {
                    "start": start,
                    "local_time": self.to_local(start),
                    "local_end": self.to_local(start + step),
                    "sentiment": key,
                    "sentiment_zh": _sentiment_zh(key),
                    "count": n,
                }
                for (start, key), n in rows
            ],
            columns=["start", "local_time", "local_end", "sentiment", "sentiment_zh", "count"],
        )
        return frame

    def kpis(self, since: datetime, until: datetime) -> Kpis:
        """Total, negative and critical posts in ``[since, until)`` and incidents open now.

        Raises :class:`DataUnavailable` naming the store that is down.
        """
        window = PostQuery(since=since, until=until)
        with _reading(POST_STORE):
            total = self._posts.count(window)
            negative = self._posts.count(
                window.model_copy(update={"sentiments": [Sentiment.NEGATIVE]})
            )
            critical = self._posts.count(window.model_copy(update={"critical": True}))
        with _reading(STATE_STORE):
            active = self._state.list_incidents(
                status=list(ACTIVE_STATUSES), limit=_OPEN_INCIDENT_CAP
            )
        by_grade = {g: 0 for g in Grade}
        for inc in active:
            by_grade[inc.grade] += 1
        return Kpis(
            total_posts=total,
            negative_posts=negative,
            critical_posts=critical,
            open_incidents=len(active),
            open_by_grade=by_grade,
            open_incidents_capped=len(active) >= _OPEN_INCIDENT_CAP,
        )

    def topic_mix(self, since: datetime, until: datetime) -> pd.DataFrame:
        """Posts per topic in the window, most first. Columns: topic, topic_zh, count."""
        with _reading(POST_STORE):
            terms = self._posts.terms(
                PostQuery(since=since, until=until), "topic", size=len(Topic) + 1
            )
        rows = [{"topic": t.value, "topic_zh": _topic_zh(t.value), "count": t.count} for t in terms]
        return pd.DataFrame(rows, columns=["topic", "topic_zh", "count"])

    def source_mix(self, since: datetime, until: datetime, *, size: int = 10) -> pd.DataFrame:
        """The ``size`` busiest sources in the window, most first. Columns: source, count."""
        with _reading(POST_STORE):
            terms = self._posts.terms(PostQuery(since=since, until=until), "source", size=size)
        return pd.DataFrame(
            [{"source": t.value, "count": t.count} for t in terms], columns=["source", "count"]
        )

    def sources(self, *, size: int = 200) -> list[str]:
        """Names of sources that have posts (for filter pickers), sorted by name."""
        with _reading(POST_STORE):
            terms = self._posts.terms(PostQuery(), "source", size=size)
        return sorted(t.value for t in terms)

    # ------------------------------------------------------------------ feed

    def feed(
        self,
        *,
        text: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        sources: Sequence[str] | None = None,
        sentiments: Sequence[Sentiment] | None = None,
        topics: Sequence[Topic] | None = None,
        min_risk: float | None = None,
        sort: SortOrder = "newest",
        cursor: str | None = None,
        page_size: int = 20,
    ) -> FeedPage:
        """One page of posts matching the filters, newest first, text masked.

        ``text`` is free text, matched as words (the store never reads it as
        query syntax); blank means no text filter. Empty filter lists and a
        ``min_risk`` of 0 mean "no filter". ``cursor`` is ``next_cursor`` of the
        previous page. Raises :class:`DataUnavailable`; a stale or foreign
        cursor raises the store's ``QueryError``.
        """
        query = PostQuery(
            text=text.strip() if text and text.strip() else None,
            since=since,
            until=until,
            sources=list(sources) if sources else None,
            sentiments=list(sentiments) if sentiments else None,
            topics=list(topics) if topics else None,
            min_risk=min_risk if min_risk else None,
        )
        with _reading(POST_STORE):
            page = self._posts.search(query, sort=sort, limit=page_size, cursor=cursor)
        return FeedPage(
            items=[self._feed_item(hit.post) for hit in page.hits],
            total=page.total,
            next_cursor=page.next_cursor,
        )

    # ------------------------------------------------------------------ incidents

    def incidents(
        self, status: Sequence[IncidentStatus] | None = None, *, limit: int = 200
    ) -> pd.DataFrame:
        """Incidents, newest first, optionally only those in ``status``.

        Columns: id, grade, grade_label (e.g. "I 特别重大"), grade_color, status,
        status_zh, title, rule, key, opened_local, updated_local, post_count,
        peak_count, sources. Raises :class:`DataUnavailable`.
        """
        with _reading(STATE_STORE):
            items = self._state.list_incidents(status=list(status) if status else None, limit=limit)
        columns = [
            "id",
            "grade",
            "grade_label",
            "grade_color",
            "status",
            "status_zh",
            "title",
            "rule",
            "key",
            "opened_local",
            "updated_local",
            "post_count",
            "peak_count",
            "sources",
        ]
        rows = [
            {
                "id": inc.id,
                "grade": inc.grade.value,
                "grade_label": grade_label(inc.grade),
                "grade_color": inc.grade.color,
                "status": inc.status.value,
                "status_zh": STATUS_LABELS_ZH[inc.status],
                "title": inc.title,
                "rule": inc.rule,
                "key": inc.key,
                "opened_local": self.to_local(inc.opened_at),
                "updated_local": self.to_local(inc.updated_at),
                "post_count": inc.post_count,
                "peak_count": inc.peak_count,
                "sources": ", ".join(inc.sources),
            }
            for inc in items
        ]
        return pd.DataFrame(rows, columns=columns)

    def incident_detail(self, incident_id: int, *, max_posts: int = 50) -> IncidentDetail | None:
        """The incident, its timeline and up to ``max_posts`` of its posts, masked.

        The timeline holds the opening, every alert and every human action
        (acknowledge, resolve … from the audit log when the state store keeps
        one, else its acknowledgements and the resolution time), oldest first.
        Returns ``None`` if there is no such incident. Post ids the post store no
        longer has are counted in ``posts_missing``. Raises
        :class:`DataUnavailable` naming the store that is down.
        """
        with _reading(STATE_STORE):
            incident = self._state.get_incident(incident_id)
            if incident is None:
                return None
            alerts = self._state.list_alerts(incident_id=incident_id, limit=500)
            acks = (
                list(self._state.list_acks(incident_id)) if isinstance(self._state, AckLog) else []
            )
            audit = (
                list(self._state.list_audit(500, target=f"incident:{incident_id}"))
                if isinstance(self._state, AuditLog)
                else None
            )
        posts: list[FeedItem] = []
        missing = 0
        wanted = incident.post_ids[:max_posts]
        with _reading(POST_STORE):
            for post_id in wanted:
                post = self._posts.get(post_id)
                if post is None:
                    missing += 1
                else:
                    posts.append(self._feed_item(post))
        posts.sort(key=lambda p: p.local_time, reverse=True)
        return IncidentDetail(
            incident=incident,
            timeline=self._timeline(incident, alerts, acks, audit),
            posts=posts,
            posts_missing=missing,
            posts_not_loaded=max(0, len(incident.post_ids) - len(wanted)),
            acks=pd.DataFrame(
                [{"local_time": self.to_local(a.at), "user": a.user, "note": a.note} for a in acks],
                columns=["local_time", "user", "note"],
            ),
        )

    def _timeline(
        self,
        incident: Incident,
        alerts: Sequence[Alert],
        acks: Sequence[AckRecord],
        audit: Sequence[AuditRecord] | None,
    ) -> pd.DataFrame:
        events: list[tuple[datetime, str, str, str, str]] = [
            (incident.opened_at, "事件开启", grade_label(incident.grade), "system", "")
        ]
        events += [(a.created_at, "告警", grade_label(a.grade), a.rule, a.summary) for a in alerts]
        if audit is not None:
            events += [
                (e.at, AUDIT_ACTIONS_ZH.get(e.action, e.action), "", e.actor, e.detail)
                for e in audit
            ]
        else:
            events += [(a.at, "确认", "", a.user, a.note) for a in acks]
            if incident.resolved_at is not None:
                events.append((incident.resolved_at, "解决", "", "", ""))
        events.sort(key=lambda e: e[0])  # stable: the opening stays before same-time alerts
        return pd.DataFrame(
            [(self.to_local(when), *rest) for when, *rest in events],
            columns=["local_time", "event", "grade", "actor", "detail"],
        )

    def acknowledge(self, incident_id: int, user: str, note: str = "") -> Incident:
        """Acknowledge the incident as ``user``; returns it updated.

        Raises ``ValueError`` for a blank user and :class:`DataUnavailable` when
        the state store is down; the store's own errors (unknown id) propagate.
        """
        who = _require_user(user)
        with _reading(STATE_STORE):
            if self._act is not None:
                return self._act(incident_id, "acknowledge", who, note.strip())
            return self._state.acknowledge(incident_id, user=who, note=note.strip())

    def resolve(self, incident_id: int, user: str, note: str = "") -> Incident:
        """Resolve the incident as ``user``; returns it updated. Raises as :meth:`acknowledge`."""
        who = _require_user(user)
        with _reading(STATE_STORE):
            if self._act is not None:
                return self._act(incident_id, "resolve", who, note.strip())
            return self._state.resolve(incident_id, user=who, note=note.strip())

    def audit(self, *, actor: str, action: str, target: str, detail: str = "") -> None:
        """Append an entry (login, logout, a denied action …) to the state store's audit log.

        Raises :class:`DataUnavailable` when the state store is down; a state
        store without an audit log (a test fake) records nothing.
        """
        if not isinstance(self._state, AuditSink):
            return
        with _reading(STATE_STORE):
            self._state.audit(actor=actor, action=action, target=target, detail=detail)

    def incident_url(self, incident_id: int) -> str:
        """The dashboard link of the incident room for ``incident_id`` (for notifications)."""
        return f"{self.public_url}/incidents?incident={incident_id}"

    def close(self) -> None:
        """Close both stores. Safe to call twice."""
        self._posts.close()
        self._state.close()


# ---------------------------------------------------------------------- helpers


def grade_label(grade: Grade) -> str:
    """``"II 重大"`` — the grade key with its Chinese name."""
    return f"{grade.value} {grade.label_zh}"


def safe_url(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) URL, else ``None``.

    Crawled URLs are user-influenced; a ``javascript:`` or ``data:`` link must
    never become a clickable button.
    """
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in _SAFE_URL_SCHEMES or not parts.netloc:
        return None
    return url.strip()


def _sentiment_zh(key: str) -> str:
    try:
        return SENTIMENT_LABELS_ZH[Sentiment(key)]
    except ValueError:
        return "未分析"


def _topic_zh(key: str) -> str:
    try:
        return TOPIC_LABELS_ZH[Topic(key)]
    except ValueError:
        return key


def _require_user(user: str) -> str:
    who = (user or "").strip()
    if not who:
        raise ValueError("操作人不能为空 (a user name is required)")
    return who
