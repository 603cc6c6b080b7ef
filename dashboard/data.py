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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from datetime import date as date_type
from time import monotonic
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from core.errors import StoreUnavailable
from core.models import Alert, Incident, Notification, Post, PostQuery
from core.ports import (
    AckLog,
    AckRecord,
    AuditLog,
    AuditRecord,
    BulkPostReader,
    NotificationLog,
    PostStore,
    SortOrder,
    StateStore,
)
from core.settings import Settings, TicketsConfig, Watchlist
from core.vocab import TOPIC_LABELS_ZH, Grade, IncidentStatus, Sentiment, Topic
from dashboard.accounts import (
    StoredUserRecord,
    UserDirectory,
    check_password,
    check_role,
    check_username,
    merged_records,
    users_frame,
)
from dashboard.auth import AuthPolicy, hash_password
from dashboard.insights import (
    PeriodComparison,
    PeriodKeywords,
    authors_frame,
    compare_keywords,
    compare_topics,
    keyword_table,
    signals_frame,
    top_by_reach,
)
from dashboard.settings_view import AUDIENCE_LABELS_ZH, SettingsView, build_settings_view
from dashboard.source_health import (
    SOURCE_HEALTH_RUNS,
    collect_runs,
    configured_intervals,
    health_frame,
)
from dashboard.ticket_data import (
    INCIDENT_SCAN,
    PROBLEM_EVENTS_ZH,
    TICKET_COLUMNS,
    TICKET_SCAN,
    IncidentTickets,
    LinkedPost,
    ProblemLog,
    TicketDesk,
    TicketDetail,
    TicketList,
    filter_options,
    is_closed,
    split_reasons,
)
from nlp.normalize import normalize_for_analysis
from nlp.pii import mask_pii
from reports.model import DailyBrief, IncidentReport
from storage.silences import SILENCE_COLUMNS, silence_rows
from storage.state import PROBLEM_STATUS_ZH, Problem

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
SOURCES_TTL_SECONDS = 300
"""How long :meth:`DashboardData.sources` (the feed's source picker) reuses its list."""


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

    @property
    def risk_level(self) -> Grade | None:
        """The most severe grade among open incidents, or ``None`` when none is open."""
        open_grades = [g for g, n in self.open_by_grade.items() if n > 0]
        return max(open_grades, key=lambda g: g.severity) if open_grades else None


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
    """Columns local_time, event, grade, actor, detail: opening, alerts (grade rises as old →
    new), human actions (ack, escalate, resolve, notes), notifications; oldest first."""
    posts: list[FeedItem]
    posts_missing: int
    """Post ids of the incident that the post store no longer has."""
    posts_not_loaded: int
    """Post ids beyond ``max_posts`` that were not fetched."""
    acks: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Columns local_time, user, note; oldest first."""


@runtime_checkable
class AuditSink(Protocol):
    """Optional StateStore extension (``SqlStateStore`` has it): append to the audit log."""

    def audit(self, *, actor: str, action: str, target: str, detail: str = "") -> None: ...


AUDIT_ACTIONS_ZH: dict[str, str] = {
    "acknowledge": "确认",
    "resolve": "解决",
    "escalate": "升级",
    "note": "备注",
    "draft_saved": "保存报告草稿",
    "promote": "升级为问题单",
}


IncidentAction = Callable[[int, str, str, str], Incident]
"""``(incident_id, action, user, note) -> Incident`` for action ``acknowledge``, ``escalate``
or ``resolve``."""

DraftReporter = Callable[[int], str | None]
"""``incident_id -> draft report`` (Chinese plain text; ``None``: no such incident).
Bootstrap builds it over ``alerts.regulatory.draft_report``, which the dashboard cannot import."""

DRAFT_GRADES: frozenset[Grade] = frozenset({Grade.II, Grade.I})
"""Grades whose incident room shows the draft report for head office."""

KEYWORD_SAMPLE = 1000
"""Keywords of a period are computed over at most this many of its newest posts,
so the topics page stays fast on a million posts (the page says when it sampled)."""
_KEYWORDS_PER_PERIOD = 60
_KEYWORD_TEXT_CHARS = 5000

SIGNAL_LABELS_ZH: dict[str, str] = {
    "bank_run": "挤兑传闻",
    "collective_action": "集体维权",
    "data_leak": "信息泄露",
    "fraud_many": "群体性诈骗/盗刷",
    "regulator": "监管处罚",
    "media_expose": "媒体曝光",
    "violence": "极端/暴力言行",
}
"""Chinese names of the lexicon's risk signals (``nlp/data/lexicon.yaml``; unknown keys
are shown as they are)."""


class NoteRecord(Protocol):
    """One incident note as a state store returns it."""

    @property
    def kind(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def at(self) -> datetime: ...


@runtime_checkable
class NoteLog(Protocol):
    """Optional StateStore extension (``SqlStateStore`` has it): notes on incidents."""

    def add_note(
        self, incident_id: int, *, user: str, text: str, kind: str = "note"
    ) -> NoteRecord: ...

    def list_notes(
        self, incident_id: int, *, kind: str | None = None, limit: int = 200
    ) -> Sequence[NoteRecord]: ...


class EscalationRecord(Protocol):
    """One recorded escalation step as a state store returns it."""

    @property
    def level(self) -> int: ...
    @property
    def audience(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def note(self) -> str: ...


@runtime_checkable
class EscalationLog(Protocol):
    """Optional StateStore extension (``SqlStateStore`` has it): an incident's escalation steps."""

    def list_escalations(self, incident_id: int) -> Sequence[EscalationRecord]: ...


@dataclass(frozen=True)
class IncidentInsights:
    """Who drives an incident and what it is about, from its recorded posts.

    ``volume`` columns: ``start`` (UTC), ``local_time``, ``local_end``,
    ``count`` — every bucket from the first to the last post (zeros
    included). ``authors`` is :func:`dashboard.insights.authors_frame` (most
    posts first), ``authors_by_reach`` its top by reach, ``signals``
    :func:`dashboard.insights.signals_frame`. ``posts_used`` posts were read
    (the incident keeps at most 200 post ids); ``posts_missing`` were no longer
    in the post store.
    """

    posts_used: int
    posts_missing: int
    bucket_seconds: int
    volume: pd.DataFrame
    authors: pd.DataFrame
    authors_by_reach: pd.DataFrame
    signals: pd.DataFrame


@dataclass(frozen=True)
class EscalationOutcome:
    """The incident after an escalate click, and the level it is at now."""

    incident: Incident
    changed: bool
    """False when the incident already was at the top level (head office)."""
    audience_zh: str | None
    """The audience the incident now reaches (e.g. 总行), if the store records levels."""


@dataclass(frozen=True)
class SavedDraft:
    """The latest draft report head office saved (edited) for an incident."""

    text: str
    user: str
    local_time: datetime


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
        settings: Settings | None = None,
        draft_report: DraftReporter | None = None,
        tickets: TicketDesk | None = None,
    ) -> None:
        self._posts = post_store
        self._state = state_store
        # Ticket linking and problem promotion (alerts.tickets via bootstrap).
        self._tickets = tickets
        # The effective settings, for the read-only settings page and the
        # keyword exclusions (the bank's own names); None: the page says so.
        self.settings = settings
        # The draft report for head office (alerts.regulatory via bootstrap).
        self._draft_report = draft_report
        # sources(): size -> (monotonic time, names); see SOURCES_TTL_SECONDS.
        self._sources_cache: dict[int, tuple[float, list[str]]] = {}
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

    def _get_posts(self, ids: Sequence[str]) -> list[Post | None]:
        """The posts of ``ids`` in order, ``None`` where the store no longer has one.

        One bulk read when the store has ``get_many`` (both shipped stores do),
        else one ``get`` per id. Raises :class:`DataUnavailable`.
        """
        with _reading(POST_STORE):
            if isinstance(self._posts, BulkPostReader):
                found = self._posts.get_many(ids)
                return [found.get(i) for i in ids]
            return [self._posts.get(i) for i in ids]

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

    def volume_baseline(
        self, since: datetime, until: datetime, bucket_seconds: int, *, days: int = 7
    ) -> pd.DataFrame:
        """The normal band of post volume for each bucket of ``[since, until)``.

        For a bucket starting at ``t`` the band comes from the totals of the
        buckets at ``t - 1 day`` … ``t - days days`` (the same time of day on the
        previous days): ``median`` and ``low``/``high`` = median ∓ 3 × scaled MAD
        (low clipped at 0) — the robust band the volume rule also uses. Columns:
        ``start``, ``local_time``, ``local_end``, ``median``, ``low``, ``high``;
        one row per bucket. ``bucket_seconds`` must divide a day (the presets'
        1 h / 6 h / 1 day do). Raises :class:`DataUnavailable`.
        """
        day = 86400
        if day % bucket_seconds:
            raise ValueError(f"bucket_seconds={bucket_seconds} does not divide a day")
        columns = ["start", "local_time", "local_end", "median", "low", "high"]
        starts = self._bucket_starts(since, until, bucket_seconds)
        if not starts:
            return pd.DataFrame(columns=columns)
        # From the first whole past bucket, so no past bucket is counted in part.
        history_since = starts[0] - timedelta(days=days)
        offset = self._tz_offset_minutes(since)
        with _reading(POST_STORE):
            buckets = self._posts.histogram(
                PostQuery(since=history_since, until=until),
                bucket_seconds=bucket_seconds,
                tz_offset_minutes=offset,
            )
        totals = {b.start: b.count for b in buckets}
        step = timedelta(seconds=bucket_seconds)
        rows = []
        for start in starts:
            past = np.array(
                [totals.get(start - timedelta(days=k), 0) for k in range(1, days + 1)],
                dtype=float,
            )
            median = float(np.median(past))
            mad = float(np.median(np.abs(past - median))) * 1.4826
            rows.append(
                {
                    "start": start,
                    "local_time": self.to_local(start),
                    "local_end": self.to_local(start + step),
                    "median": median,
                    "low": max(0.0, median - 3 * mad),
                    "high": median + 3 * mad,
                }
            )
        return pd.DataFrame(rows, columns=columns)

    def kpis(self, since: datetime, until: datetime, *, volume: pd.DataFrame | None = None) -> Kpis:
        """Total, negative and critical posts in ``[since, until)`` and incidents open now.

        ``volume``: this same window's :meth:`volume_over_time` frame, if the
        caller has it; the total and negative counts are then its sums (equal
        by that method's contract) instead of two more counts over the store.
        Raises :class:`DataUnavailable` naming the store that is down.
        """
        window = PostQuery(since=since, until=until)
        with _reading(POST_STORE):
            if volume is None:
                total = self._posts.count(window)
                negative = self._posts.count(
                    window.model_copy(update={"sentiments": [Sentiment.NEGATIVE]})
                )
            else:
                total = int(volume["count"].sum())
                negative = int(volume.loc[volume["sentiment"] == Sentiment.NEGATIVE, "count"].sum())
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
        """Names of sources that have posts (for filter pickers), sorted by name.

        Kept for ``SOURCES_TTL_SECONDS``: counting every post by source is the
        slowest query of the feed on a big store, and a picker's list may lag a
        new source by a few minutes. Raises :class:`DataUnavailable` when the
        list is not cached and the post store is down.
        """
        cached = self._sources_cache.get(size)
        if cached is not None and monotonic() - cached[0] < SOURCES_TTL_SECONDS:
            return list(cached[1])
        with _reading(POST_STORE):
            terms = self._posts.terms(PostQuery(), "source", size=size)
        names = sorted(t.value for t in terms)
        self._sources_cache[size] = (monotonic(), names)
        return list(names)

    def source_health(
        self, *, now: datetime | None = None, runs: int = SOURCE_HEALTH_RUNS
    ) -> pd.DataFrame:
        """Health of every source (configured or recently crawled), worst first.

        Columns and statuses (ok / failing / stale): :mod:`dashboard.source_health`;
        schedule intervals come from ``settings.sources`` (without settings no
        source is judged stale). Raises :class:`DataUnavailable` when the state
        store is down.
        """
        intervals = configured_intervals(self.settings)
        with _reading(STATE_STORE):
            by_source, last_success = collect_runs(self._state, list(intervals), runs=runs)
        return health_frame(
            by_source,
            last_success,
            intervals,
            now=(now or datetime.now(UTC)).astimezone(UTC),
            to_local=self.to_local,
        )

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
        one, else its acknowledgements, escalation steps and the resolution
        time) and every outbox notification of the incident, oldest first.
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
            notifications = (
                list(self._state.list_notifications(incident_id=incident_id, limit=500))
                if isinstance(self._state, NotificationLog)
                else []
            )
            escalations = (
                list(self._state.list_escalations(incident_id))
                if audit is None and isinstance(self._state, EscalationLog)
                else []
            )
        posts: list[FeedItem] = []
        missing = 0
        wanted = incident.post_ids[:max_posts]
        for post in self._get_posts(wanted):
            if post is None:
                missing += 1
            else:
                posts.append(self._feed_item(post))
        posts.sort(key=lambda p: p.local_time, reverse=True)
        return IncidentDetail(
            incident=incident,
            timeline=self._timeline(
                incident, alerts, acks, audit, notifications=notifications, escalations=escalations
            ),
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
        *,
        notifications: Sequence[Notification] = (),
        escalations: Sequence[EscalationRecord] = (),
    ) -> pd.DataFrame:
        events: list[tuple[datetime, str, str, str, str]] = [
            (incident.opened_at, "事件开启", grade_label(incident.grade), "system", "")
        ]
        events += [(a.created_at, *_alert_event(a), a.rule, a.summary) for a in alerts]
        events += [_notification_event(n) for n in notifications]
        # Escalation steps are in the audit log when the store keeps one.
        events += [
            (
                e.at,
                "升级",
                AUDIENCE_LABELS_ZH.get(e.audience, e.audience),
                e.actor,
                f"第 {e.level} 级 {e.note}".strip(),
            )
            for e in escalations
        ]
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

    # ------------------------------------------------------------------ incident room extras

    @property
    def can_escalate(self) -> bool:
        """Whether escalation is wired (it needs the alerting engine's action from bootstrap)."""
        return self._act is not None

    def escalate(self, incident_id: int, user: str, note: str = "") -> EscalationOutcome:
        """Escalate the incident one level now as ``user`` (messages are queued by the engine).

        Raises ``ValueError`` for a blank user or when no incident action is
        wired (:attr:`can_escalate`), :class:`DataUnavailable` when the state
        store is down; the engine's errors (unknown id) propagate.
        """
        who = _require_user(user)
        if self._act is None:
            raise ValueError("升级需要告警引擎，本仪表盘未接入 (no incident action configured)")
        with _reading(STATE_STORE):
            before = self._escalation_steps(incident_id)
            incident = self._act(incident_id, "escalate", who, note.strip())
            after = self._escalation_steps(incident_id)
        if after is None:
            return EscalationOutcome(incident, True, None)
        top = after[-1] if after else None
        highest_before = before[-1].level if before else -1
        return EscalationOutcome(
            incident,
            changed=top is not None and top.level > highest_before,
            audience_zh=AUDIENCE_LABELS_ZH.get(top.audience, top.audience) if top else None,
        )

    def _escalation_steps(self, incident_id: int) -> list[EscalationRecord] | None:
        if not isinstance(self._state, EscalationLog):
            return None
        return list(self._state.list_escalations(incident_id))

    @property
    def notes_enabled(self) -> bool:
        """Whether the state store keeps incident notes (``SqlStateStore`` does)."""
        return isinstance(self._state, NoteLog)

    def notes(self, incident_id: int) -> pd.DataFrame:
        """The incident's notes, oldest first. Columns: local_time, user, text.

        Empty when there are none (or the store keeps no notes: see
        :attr:`notes_enabled`). Raises :class:`DataUnavailable`.
        """
        columns = ["local_time", "user", "text"]
        if not isinstance(self._state, NoteLog):
            return pd.DataFrame(columns=columns)
        with _reading(STATE_STORE):
            items = self._state.list_notes(incident_id, kind="note")
        return pd.DataFrame([(self.to_local(n.at), n.user, n.text) for n in items], columns=columns)

    def add_note(self, incident_id: int, user: str, text: str, *, kind: str = "note") -> None:
        """Store a note (``kind="draft"``: a saved draft report) as ``user``.

        The state store writes the note and its audit entry (who, when) together.
        Raises ``ValueError`` for a blank user or text or a store without notes,
        :class:`DataUnavailable` when the state store is down; the store's own
        errors (unknown incident, text too long) propagate.
        """
        who = _require_user(user)
        body = text.strip()
        if not body:
            raise ValueError("内容不能为空 (the note is empty)")
        if not isinstance(self._state, NoteLog):
            raise ValueError("此状态库不支持备注 (the state store keeps no notes)")
        with _reading(STATE_STORE):
            self._state.add_note(incident_id, user=who, text=body, kind=kind)

    @property
    def drafts_enabled(self) -> bool:
        """Whether a draft-report builder was injected (bootstrap does)."""
        return self._draft_report is not None

    def generate_draft(self, incident_id: int) -> str | None:
        """A freshly built draft report of the incident, or ``None`` (no builder, no incident).

        Raises :class:`DataUnavailable` when a store the builder reads is down.
        """
        if self._draft_report is None:
            return None
        with _reading(STATE_STORE):
            return self._draft_report(incident_id)

    def saved_draft(self, incident_id: int) -> SavedDraft | None:
        """The latest draft head office saved for the incident, or ``None``.

        Raises :class:`DataUnavailable`.
        """
        if not isinstance(self._state, NoteLog):
            return None
        with _reading(STATE_STORE):
            drafts = self._state.list_notes(incident_id, kind="draft", limit=1)
        if not drafts:
            return None
        last = drafts[-1]
        return SavedDraft(text=last.text, user=last.user, local_time=self.to_local(last.at))

    def incident_insights(self, incident_id: int) -> IncidentInsights | None:
        """Volume over time, key authors and signals of the incident's recorded posts.

        Reads every post id the incident keeps (at most 200). Returns ``None``
        for an unknown incident. Raises :class:`DataUnavailable`.
        """
        with _reading(STATE_STORE):
            incident = self._state.get_incident(incident_id)
        if incident is None:
            return None
        posts: list[Post] = []
        missing = 0
        for post in self._get_posts(incident.post_ids):
            if post is None:
                missing += 1
            else:
                posts.append(post)
        authors = authors_frame(posts)
        bucket, volume = self._post_volume([p.published_at for p in posts])
        return IncidentInsights(
            posts_used=len(posts),
            posts_missing=missing,
            bucket_seconds=bucket,
            volume=volume,
            authors=authors,
            authors_by_reach=top_by_reach(authors),
            signals=signals_frame(posts, SIGNAL_LABELS_ZH),
        )

    def _post_volume(self, times: Sequence[datetime]) -> tuple[int, pd.DataFrame]:
        """Posts per bucket between the first and last of ``times`` (hour, 6 h or day buckets)."""
        columns = ["start", "local_time", "local_end", "count"]
        if not times:
            return 3600, pd.DataFrame(columns=columns)
        first, last = min(times), max(times)
        span = last - first
        bucket = (
            3600 if span <= timedelta(days=2) else 6 * 3600 if span <= timedelta(days=14) else 86400
        )
        starts = self._bucket_starts(first, last + timedelta(seconds=1), bucket)
        counts = dict.fromkeys(starts, 0)
        offset = self._tz_offset_minutes(first) * 60
        for t in times:
            ts = int(t.timestamp())
            start = datetime.fromtimestamp((ts + offset) // bucket * bucket - offset, UTC)
            counts[start] = counts.get(start, 0) + 1
        step = timedelta(seconds=bucket)
        return bucket, pd.DataFrame(
            [
                (start, self.to_local(start), self.to_local(start + step), n)
                for start, n in sorted(counts.items())
            ],
            columns=columns,
        )

    # ------------------------------------------------------------------ topics & keywords

    def topic_trends(self, since: datetime, until: datetime, bucket_seconds: int) -> pd.DataFrame:
        """Analysed posts per time bucket and topic, every bucket present (zeros included).

        Columns: ``start`` (UTC), ``local_time``, ``local_end``, ``topic``,
        ``topic_zh``, ``count``; sorted by time, then taxonomy order. Only
        topics with a post in the window appear; empty when there is none.
        Raises :class:`DataUnavailable`.
        """
        columns = ["start", "local_time", "local_end", "topic", "topic_zh", "count"]
        query = PostQuery(since=since, until=until)
        with _reading(POST_STORE):
            buckets = self._posts.histogram(
                query,
                bucket_seconds=bucket_seconds,
                tz_offset_minutes=self._tz_offset_minutes(since),
                group_by="topic",
            )
        order = {t.value: i for i, t in enumerate(Topic)}
        topics = sorted({b.key for b in buckets if b.key}, key=lambda k: (order.get(k, 99), k))
        if not topics:
            return pd.DataFrame(columns=columns)
        counts: dict[tuple[datetime, str], int] = {
            (start, t): 0
            for start in self._bucket_starts(since, until, bucket_seconds)
            for t in topics
        }
        for b in buckets:
            if b.key:
                counts[(b.start, b.key)] = counts.get((b.start, b.key), 0) + b.count
        step = timedelta(seconds=bucket_seconds)
        rows = sorted(counts.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99)))
        return pd.DataFrame(
            [
                (start, self.to_local(start), self.to_local(start + step), t, _topic_zh(t), n)
                for (start, t), n in rows
            ],
            columns=columns,
        )

    def _keyword_texts(
        self, since: datetime, until: datetime, sample: int
    ) -> tuple[int, list[str]]:
        """(posts in the window, masked and normalised text of its newest ``sample`` posts)."""
        query = PostQuery(since=since, until=until)
        texts: list[str] = []
        with _reading(POST_STORE):
            total = self._posts.count(query)
            cursor: str | None = None
            while total and len(texts) < sample:
                page = self._posts.search(
                    query, sort="newest", limit=min(1000, sample - len(texts)), cursor=cursor
                )
                texts += [self._keyword_text(hit.post) for hit in page.hits]
                cursor = page.next_cursor
                if cursor is None or not page.hits:
                    break
        return total, texts

    @staticmethod
    def _keyword_text(post: Post) -> str:
        analysis = post.analysis
        body = analysis.masked_text if analysis and analysis.masked_text else post.text
        # Masked before anything else: a phone number must never become a "keyword".
        # A very long post is cut: it counts as one post, and 50 000 characters
        # of it would cost as much segmenting as a hundred ordinary ones.
        # (Cut after masking, so no number is left half-masked at the cut.)
        return normalize_for_analysis(mask_pii(f"{post.title}\n{body}")[:_KEYWORD_TEXT_CHARS])

    def _keyword_exclusions(self) -> list[str]:
        """The bank's own names: in every post, so never a keyword worth showing."""
        if self.settings is None:
            return []
        bank = self.settings.watchlist.bank
        return [bank.name, *bank.aliases]

    def period_keywords(
        self,
        since: datetime,
        until: datetime,
        *,
        k: int = _KEYWORDS_PER_PERIOD,
        sample: int = KEYWORD_SAMPLE,
    ) -> PeriodKeywords:
        """The ``k`` keywords of ``[since, until)`` over its newest ``sample`` posts.

        The bank's own names (from the settings) are left out. Raises
        :class:`DataUnavailable`.
        """
        total, texts = self._keyword_texts(since, until, sample)
        table = keyword_table(texts, k=k, exclude=self._keyword_exclusions())
        return PeriodKeywords(since, until, total, len(texts), table)

    def compare_periods(
        self,
        a: tuple[datetime, datetime],
        b: tuple[datetime, datetime],
        *,
        k: int = _KEYWORDS_PER_PERIOD,
        sample: int = KEYWORD_SAMPLE,
    ) -> PeriodComparison:
        """Keywords and topic shares of period ``a`` (earlier) beside period ``b`` (later).

        Each period is ``(since, until)``. Raises :class:`DataUnavailable`.
        """
        exclude = self._keyword_exclusions()
        total_a, texts_a = self._keyword_texts(*a, sample)
        total_b, texts_b = self._keyword_texts(*b, sample)
        kw_a = PeriodKeywords(
            *a, total_a, len(texts_a), keyword_table(texts_a, k=k, exclude=exclude)
        )
        kw_b = PeriodKeywords(
            *b, total_b, len(texts_b), keyword_table(texts_b, k=k, exclude=exclude)
        )
        return PeriodComparison(
            a=kw_a,
            b=kw_b,
            keywords=compare_keywords(kw_a, texts_a, kw_b, texts_b),
            topics=compare_topics(self.topic_mix(*a), self.topic_mix(*b)),
        )

    # ------------------------------------------------------------------ settings

    def settings_view(self) -> SettingsView | None:
        """The settings in force as display tables, secrets hidden; ``None`` without settings.

        Silences come from the config *and* the state database (``yuqing rules
        silence add``), those in force or still to come. Raises
        :class:`DataUnavailable` when the state store is down: an unreadable
        silence list is an error, never "no silences".
        """
        if self.settings is None:
            return None
        view = build_settings_view(self.settings)
        with _reading(STATE_STORE):
            rows = silence_rows(self._state, datetime.now(UTC), self.settings.escalation.silences)
        return replace(view, silences=pd.DataFrame(rows, columns=list(SILENCE_COLUMNS)))

    def audit(self, *, actor: str, action: str, target: str, detail: str = "") -> None:
        """Append an entry (login, logout, a denied action …) to the state store's audit log.

        Raises :class:`DataUnavailable` when the state store is down; a state
        store without an audit log (a test fake) records nothing.
        """
        if not isinstance(self._state, AuditSink):
            return
        with _reading(STATE_STORE):
            self._state.audit(actor=actor, action=action, target=target, detail=detail)

    # ------------------------------------------------------------------ users (admin)

    @property
    def manages_users(self) -> bool:
        """Whether users can be added in the dashboard (the state store has a ``users`` table)."""
        return isinstance(self._state, UserDirectory)

    def login_policy(self) -> AuthPolicy:
        """:attr:`auth` with the enabled users of the state database added (config users first).

        Raises :class:`DataUnavailable` when the state store is down.
        """
        if not isinstance(self._state, UserDirectory) or self.auth.mode == "none":
            return self.auth
        with _reading(STATE_STORE):
            stored = self._state.list_users()
        return replace(self.auth, users=merged_records(self.auth.users, stored))

    def users(self) -> pd.DataFrame:
        """Config users (read-only) and database users: :func:`dashboard.accounts.users_frame`.

        Never holds a password or a hash. Raises :class:`DataUnavailable`.
        """
        stored: Sequence[StoredUserRecord] = []
        if isinstance(self._state, UserDirectory):
            with _reading(STATE_STORE):
                stored = self._state.list_users()
        return users_frame(self.auth.users, stored, to_local=self.to_local)

    def _directory(self) -> UserDirectory:
        if not isinstance(self._state, UserDirectory):
            raise ValueError("此状态库不支持在界面中管理用户。")
        return self._state

    def _database_user(self, username: str) -> str:
        if username in {u.username for u in self.auth.users}:
            raise ValueError(f"用户 {username} 来自配置文件，只读，请在配置文件中修改。")
        return username

    def add_user(
        self, *, actor: str, username: str, display_name: str, role: str, password: str
    ) -> None:
        """Add an enabled database user; the password is stored only as a scrypt hash.

        Raises ``ValueError`` (Chinese, for the page) for a bad or taken name,
        an unknown role or a too-short password; ``QueryError`` when the name
        exists in the database; :class:`DataUnavailable` when the store is down.
        The store writes the audit entry (``user_add``, by ``actor``).
        """
        directory = self._directory()
        name = check_username(username, [u.username for u in self.auth.users])
        checked_role = check_role(role)
        password_hash = hash_password(check_password(password))
        with _reading(STATE_STORE):
            directory.add_user(
                username=name,
                display_name=display_name.strip()[:200],
                role=checked_role,
                password_hash=password_hash,
                actor=_require_user(actor),
            )

    def set_user_enabled(self, username: str, enabled: bool, *, actor: str) -> None:
        """Enable or disable a database user (audited). Config users: ``ValueError``.

        Disabling oneself is refused (``ValueError``): it would lock the admin out mid-task.
        """
        directory = self._directory()
        if not enabled and username == actor.strip():
            raise ValueError("不能停用自己的账号。")
        with _reading(STATE_STORE):
            directory.set_user_enabled(
                self._database_user(username), enabled, actor=_require_user(actor)
            )

    def reset_password(self, username: str, password: str, *, actor: str) -> None:
        """Give a database user a new password (hashed; audited). Config users: ``ValueError``."""
        directory = self._directory()
        name = self._database_user(username)
        password_hash = hash_password(check_password(password))
        with _reading(STATE_STORE):
            directory.set_user_password(name, password_hash, actor=_require_user(actor))

    def incident_url(self, incident_id: int) -> str:
        """The dashboard link of the incident room for ``incident_id`` (for notifications)."""
        return f"{self.public_url}/incidents?incident={incident_id}"

    def close(self) -> None:
        """Close both stores. Safe to call twice."""
        self._posts.close()
        self._state.close()

    # ------------------------------------------------------------------ tickets (issue 7)
    # Complaint tickets and problem records; linking and promotion come from the
    # injected ticket desk (dashboard/ticket_data.py says why), reads from the state
    # store's optional ProblemLog extension.

    def tickets_enabled(self) -> bool:
        """Whether the state store keeps tickets by id and problem records."""
        return isinstance(self._state, ProblemLog)

    def ticket_desk_enabled(self) -> bool:
        """Whether ticket linking and promotion are wired (bootstrap passes ``tickets=``)."""
        return self._tickets is not None

    def _closed_statuses(self) -> frozenset[str]:
        if self._tickets is not None:
            return frozenset(self._tickets.closed_statuses)
        settings = self.settings.tickets if self.settings is not None else TicketsConfig()
        return frozenset(settings.closed_statuses)

    def _problem_log(self) -> ProblemLog:
        if not isinstance(self._state, ProblemLog):
            raise ValueError("此状态库不保存问题单 (the state store keeps no problem records)")
        return self._state

    def ticket_list(
        self,
        since: datetime | None,
        until: datetime | None,
        *,
        branches: Sequence[str] = (),
        products: Sequence[str] = (),
        statuses: Sequence[str] = (),
        channels: Sequence[str] = (),
    ) -> TicketList:
        """Tickets created in ``[since, until)`` (``None``: open-ended) matching the filters.

        Empty filters mean "any". Reads at most :data:`TICKET_SCAN` tickets of
        the window (newest first; ``capped`` says when there were more).
        Summaries are masked. Raises :class:`DataUnavailable`.
        """
        with _reading(STATE_STORE):
            tickets = self._state.list_tickets(since=since, until=until, limit=TICKET_SCAN + 1)
        capped = len(tickets) > TICKET_SCAN
        tickets = tickets[:TICKET_SCAN]
        wanted = {"branch": branches, "product": products, "status": statuses, "channel": channels}
        kept = [
            t
            for t in tickets
            if all(not values or getattr(t, name) in values for name, values in wanted.items())
        ]
        closed = self._closed_statuses()
        rows = [
            {
                "ticket_id": t.ticket_id,
                "local_time": self.to_local(t.created_at),
                "channel": t.channel,
                "branch": t.branch,
                "product": t.product,
                "category": t.category,
                "priority": t.priority,
                "status": t.status,
                "closed": is_closed(t.status, closed),
                "summary": mask_pii(t.summary),
            }
            for t in kept
        ]
        return TicketList(
            frame=pd.DataFrame(rows, columns=TICKET_COLUMNS),
            in_window=len(tickets),
            capped=capped,
            options=filter_options(tickets),
        )

    def ticket_detail(self, ticket_id: str, *, max_posts: int = 10) -> TicketDetail | None:
        """One ticket, the incidents that link it, its problems and its likely public posts.

        Incidents are searched among the newest :data:`INCIDENT_SCAN`. Posts come
        from the ticket desk (``None`` when none is wired). Returns ``None`` for an
        unknown ticket. Raises :class:`DataUnavailable` naming the store that is down.
        """
        log = self._problem_log()
        with _reading(STATE_STORE):
            ticket = log.get_ticket(ticket_id)
            if ticket is None:
                return None
            incidents = self._state.list_incidents(limit=INCIDENT_SCAN)
            problems = [
                p for p in log.list_problems(limit=INCIDENT_SCAN) if ticket_id in p.ticket_ids
            ]
        rows = []
        for inc in incidents:
            link = next((x for x in inc.ticket_links if x.get("ticket_id") == ticket_id), None)
            if link is not None:
                rows.append(
                    {
                        "id": inc.id,
                        "grade": grade_label(inc.grade),
                        "status_zh": STATUS_LABELS_ZH[inc.status],
                        "title": inc.title,
                        "score": float(link.get("score", 0.0)),
                        "reasons": "；".join(link.get("reasons", [])),
                    }
                )
        posts: list[LinkedPost] | None = None
        gone = 0
        if self._tickets is not None:
            with _reading(POST_STORE):
                likely = self._tickets.ticket_posts(ticket_id, limit=max_posts)
                posts = []
                for found in likely:
                    post = self._posts.get(found.post_id)
                    if post is None:
                        gone += 1
                        continue
                    posts.append(
                        LinkedPost(self._feed_item(post), found.score, list(found.reasons))
                    )
        shown = ticket.model_copy(
            update={
                "summary": mask_pii(ticket.summary),
                "customer_ref": mask_pii(ticket.customer_ref),
            }
        )
        return TicketDetail(
            ticket=shown,
            local_time=self.to_local(ticket.created_at).strftime("%Y-%m-%d %H:%M"),
            incidents=pd.DataFrame(
                rows, columns=["id", "grade", "status_zh", "title", "score", "reasons"]
            ),
            problems=problems,
            posts=posts,
            posts_gone=gone,
        )

    def problem_list(
        self, statuses: Sequence[str] | None = None, *, limit: int = 200
    ) -> pd.DataFrame:
        """Problem records newest first, with their tickets' state and sync flags.

        Columns: id, incident_id, title, owner, status, status_zh, tickets,
        open_tickets, incident_resolved, all_closed, flags (Chinese),
        suggest_resolve, updated_local. Raises :class:`DataUnavailable`.
        """
        log = self._problem_log()
        with _reading(STATE_STORE):
            problems = log.list_problems(status=list(statuses) if statuses else None, limit=limit)
        closed = self._closed_statuses()
        rows = []
        for p in problems:
            all_closed = p.all_tickets_closed(closed)
            flags = [
                f
                for f, on in (("事件已解决", p.incident_resolved), ("工单已全部办结", all_closed))
                if on
            ]
            rows.append(
                {
                    "id": p.id,
                    "incident_id": p.incident_id,
                    "title": p.title,
                    "owner": f"{p.owner_team}/{p.owner_user}" if p.owner_user else p.owner_team,
                    "status": p.status,
                    "status_zh": PROBLEM_STATUS_ZH.get(p.status, p.status),
                    "tickets": len(p.ticket_ids),
                    "open_tickets": len(p.open_ticket_ids(closed)),
                    "incident_resolved": p.incident_resolved,
                    "all_closed": all_closed,
                    "flags": "；".join(flags),
                    "suggest_resolve": bool(flags) and p.status in ("open", "investigating"),
                    "updated_local": self.to_local(p.updated_at),
                }
            )
        columns = [
            "id", "incident_id", "title", "owner", "status", "status_zh", "tickets",
            "open_tickets", "incident_resolved", "all_closed", "flags", "suggest_resolve",
            "updated_local",
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=columns)

    def incident_tickets(self, incident_id: int, *, limit: int = 10) -> IncidentTickets | None:
        """The complaint tickets linked to an incident, best first, with why; ``None`` if unknown.

        The links stored on the incident (made when it opened); when it has none
        and a ticket desk is wired, the tickets ranked now. Each ticket's own
        fields are read from the store (masked). Raises :class:`DataUnavailable`.
        """
        with _reading(STATE_STORE):
            incident = self._state.get_incident(incident_id)
            if incident is None:
                return None
            log = self._state if isinstance(self._state, ProblemLog) else None
            problem = log.get_problem_for_incident(incident_id) if log is not None else None
        links: list[tuple[str, float, list[str]]] = [
            (str(x["ticket_id"]), float(x.get("score", 0.0)), list(x.get("reasons", [])))
            for x in incident.ticket_links[:limit]
            if x.get("ticket_id")
        ]
        source = "stored" if links else "none"
        if not links and self._tickets is not None:
            with _reading(POST_STORE):
                ranked = self._tickets.incident_links(incident_id, limit=limit)
            links = [(x.ticket_id, x.score, list(x.reasons)) for x in ranked]
            source = "live" if links else "none"
        rows = []
        for ticket_id, score, reasons in links:
            with _reading(STATE_STORE):
                ticket = log.get_ticket(ticket_id) if log is not None else None
            why = split_reasons(reasons)
            rows.append(
                {
                    "ticket_id": ticket_id,
                    "score": score,
                    "same": "；".join(x for x in (why["same"], why["other"]) if x),
                    "time_gap": why["time_gap"],
                    "words": why["words"],
                    "status": ticket.status if ticket else "",
                    "branch": ticket.branch if ticket else "",
                    "product": ticket.product if ticket else "",
                    "local_time": self.to_local(ticket.created_at) if ticket else None,
                    "summary": mask_pii(ticket.summary) if ticket else "（工单已不在库中）",
                }
            )
        columns = [
            "ticket_id", "score", "same", "time_gap", "words", "status", "branch", "product",
            "local_time", "summary",
        ]  # fmt: skip
        return IncidentTickets(
            frame=pd.DataFrame(rows, columns=columns),
            source=source,
            problem=problem,
            can_promote=self._tickets is not None,
        )

    def promote_problem(self, incident_id: int, user: str, *, owner: str = "") -> Problem:
        """Promote the incident and its linked tickets to a problem record as ``user``.

        Raises ``ValueError`` for a blank user or when no ticket desk is wired,
        the desk's ``QueryError`` (unknown incident, no linked tickets) and
        :class:`DataUnavailable`.
        """
        who = _require_user(user)
        if self._tickets is None:
            raise ValueError("未接入工单关联，无法升级为问题单 (no ticket desk is wired)")
        with _reading(STATE_STORE):
            return self._tickets.promote(incident_id, user=who, owner=owner.strip())

    def problem_history(self, problem_id: int, *, limit: int = 200) -> pd.DataFrame:
        """The problem's audit history, newest first: promotion, status changes, ticket updates.

        Columns: local_time, actor, event (Chinese), detail. Empty when the state
        store keeps no audit log. Raises :class:`DataUnavailable`.
        """
        columns = ["local_time", "actor", "event", "detail"]
        if not isinstance(self._state, AuditLog):
            return pd.DataFrame([], columns=columns)
        with _reading(STATE_STORE):
            entries = self._state.list_audit(limit, target=f"problem:{problem_id}")
        rows = [
            (self.to_local(e.at), e.actor, PROBLEM_EVENTS_ZH.get(e.action, e.action), e.detail)
            for e in entries
        ]
        return pd.DataFrame(rows, columns=columns)

    def set_problem_status(
        self, problem_id: int, status: str, user: str, note: str = ""
    ) -> Problem:
        """Change a problem's status as ``user`` (audited by the store).

        Raises ``ValueError`` for a blank user, the store's ``QueryError`` (unknown
        problem or status) and :class:`DataUnavailable`.
        """
        who = _require_user(user)
        log = self._problem_log()
        with _reading(STATE_STORE):
            return log.set_problem_status(problem_id, status, actor=who, note=note.strip())

    # ------------------------------------------------------------------ reports
    # The daily brief and incident reports of ``reports/``: the same documents the
    # CLI writes and the service e-mails, here for preview and download.

    def report_default_day(self, now: datetime | None = None) -> date_type:
        """Yesterday in the display time zone (the day the scheduled brief covers)."""
        from reports.brief import previous_day

        return previous_day(now or datetime.now(UTC), self.tz)

    def daily_brief(self, day: date_type, *, now: datetime | None = None) -> DailyBrief:
        """The daily brief (舆情日报) of local ``day``. Raises :class:`DataUnavailable`."""
        from reports.brief import gather_daily_brief

        bank = self.settings.watchlist.bank if self.settings else Watchlist().bank
        with _reading(f"{POST_STORE} / {STATE_STORE}"):
            return gather_daily_brief(
                self._posts,
                self._state,
                day,
                now=now or datetime.now(UTC),
                tz=str(self.tz.key),
                bank=bank.name,
                exclude_words=bank.all_names,
                link=f"{self.public_url}/reports?date={day.isoformat()}",
            )

    def incident_report(
        self, incident_id: int, *, now: datetime | None = None
    ) -> IncidentReport | None:
        """The report of one incident with head office's saved draft (else a fresh one,
        when bootstrap injected the builder); ``None`` for an unknown incident.
        Raises :class:`DataUnavailable`."""
        from reports.incident import IncidentNotFound, gather_incident_report

        saved = self.saved_draft(incident_id)
        draft = saved.text if saved is not None else self.generate_draft(incident_id)
        bank = self.settings.watchlist.bank if self.settings else Watchlist().bank
        try:
            with _reading(f"{POST_STORE} / {STATE_STORE}"):
                return gather_incident_report(
                    self._posts,
                    self._state,
                    incident_id,
                    now=now or datetime.now(UTC),
                    tz=str(self.tz.key),
                    bank=bank.name,
                    draft=draft,
                    link=self.incident_url(incident_id),
                )
        except IncidentNotFound:
            return None

    @staticmethod
    def render_report(
        report: DailyBrief | IncidentReport, fmt: str, *, now: datetime
    ) -> tuple[bytes, str, str]:
        """``(bytes, file name, MIME type)`` of ``report`` in ``fmt`` (md, docx, pdf).

        Raises ``ValueError`` for another format.
        """
        from reports.render import (
            CONTENT_TYPES,
            check_format,
            daily_brief_filename,
            incident_report_filename,
            render_daily_brief,
            render_incident_report,
        )

        checked = check_format(fmt)
        if isinstance(report, DailyBrief):
            data = render_daily_brief(report, checked, now=now)
            name = daily_brief_filename(report, checked)
        else:
            data = render_incident_report(report, checked, now=now)
            name = incident_report_filename(report, checked)
        return data, name, CONTENT_TYPES[checked]


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


def _alert_event(alert: Alert) -> tuple[str, str]:
    """(event, grade) of an alert for the timeline: a grade rise shows old → new."""
    event = alert.details.get("event") if isinstance(alert.details, dict) else None
    if event == "grade_raised":
        previous = alert.details.get("previous_grade")
        try:
            before = grade_label(Grade(str(previous))) + " → " if previous else ""
        except ValueError:
            before = ""
        return "等级上升", before + grade_label(alert.grade)
    if event == "new_peak":
        return "新峰值告警", grade_label(alert.grade)
    return "告警", grade_label(alert.grade)


def _notification_event(n: Notification) -> tuple[datetime, str, str, str, str]:
    """A timeline row for one outbox entry: sent, waiting (retrying) or given up."""
    if n.sent_at is not None:
        return (n.sent_at, "通知已发送", "", n.channel, n.subject)
    if n.next_attempt_at is None and n.attempts > 0:
        return (n.created_at, "通知发送失败", "", n.channel, f"{n.subject}（{n.last_error or ''}）")
    retry = f"（已尝试 {n.attempts} 次：{n.last_error or ''}）" if n.attempts else ""
    return (n.created_at, "通知待发送", "", n.channel, n.subject + retry)


def _require_user(user: str) -> str:
    who = (user or "").strip()
    if not who:
        raise ValueError("操作人不能为空 (a user name is required)")
    return who
