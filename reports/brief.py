"""Gather the daily brief (舆情日报) of one local day from the two stores.

:func:`gather_daily_brief` reads only through the ports (``PostStore`` counts,
terms, histograms and searches; ``StateStore`` incidents and tickets), so it
works on the local SQLite store and on Elasticsearch alike. A store outage
propagates as ``StoreUnavailable``: a brief that says "0 posts" because the
store was down would be worse than no brief.

Numbers and their definitions:

* the day is ``[local midnight, next local midnight)`` in ``tz``; the
  previous day is the day before (for "negative share vs the previous day");
* sentiment mix: the store's counts per sentiment, plus 未分析 for posts
  without analysis, so the slices add up to the day's total;
* keywords: :func:`nlp.keywords.top_keywords` over the masked text of up to
  ``keyword_sample`` of the day's posts (the highest-risk ones first), the
  bank's own names excluded; the sample size is in the brief;
* most influential posts: the largest ``Post.reach`` among that same sample;
* incidents: opened during the day, and active during the day (opened
  before its end, not resolved before its start) — status as of ``now``;
  resolved incidents are looked up ``RESOLVED_LOOKBACK`` back;
* hourly series: posts and negative posts per local hour, every hour present.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.models import Incident, Post, PostQuery
from core.ports import PostStore, StateStore
from core.vocab import IncidentStatus, Sentiment, Topic
from nlp.keywords import top_keywords
from reports.common import (
    SENTIMENT_ZH,
    STATUS_ZH,
    clean,
    grade_label,
    local,
    masked_text,
    post_item,
    shares,
    topic_zh,
)
from reports.model import DailyBrief, HourPoint, IncidentLine

RESOLVED_LOOKBACK = timedelta(days=31)
INCIDENT_LIMIT = 1000
TICKET_LIMIT = 100_000
_PAGE = 500
KEYWORD_TEXT_CHARS = 5000
"""Keywords read at most this much of each post: a 50 000-character post must not
make the brief slow, and its first pages say what it is about."""


def day_window(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """``[local midnight of day, local midnight of the next day)`` as aware datetimes."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start, end


def previous_day(now: datetime, tz: ZoneInfo) -> date:
    """The local date before ``now``'s local date ("yesterday")."""
    return now.astimezone(tz).date() - timedelta(days=1)


def gather_daily_brief(
    posts: PostStore,
    state: StateStore,
    day: date,
    *,
    now: datetime,
    tz: str = "Asia/Shanghai",
    bank: str = "澜海银行",
    exclude_words: Sequence[str] = (),
    link: str | None = None,
    top_n: int = 5,
    keyword_sample: int = 2000,
) -> DailyBrief:
    """The daily brief of local ``day`` in ``tz`` as of ``now``.

    ``exclude_words`` are left out of the keywords (the bank's names and
    aliases). Deterministic for the same store contents and ``now``. Store
    errors propagate (``StoreUnavailable`` …).
    """
    zone = ZoneInfo(tz)
    start, end = day_window(day, zone)
    prev_start, _ = day_window(day - timedelta(days=1), zone)
    window = PostQuery(since=start, until=end)
    previous = PostQuery(since=prev_start, until=start)
    negative = [Sentiment.NEGATIVE]

    total = posts.count(window)
    negative_posts = posts.count(window.model_copy(update={"sentiments": negative}))
    critical_posts = posts.count(window.model_copy(update={"critical": True}))
    previous_total = posts.count(previous)
    previous_negative = posts.count(previous.model_copy(update={"sentiments": negative}))

    by_sentiment = {t.value: t.count for t in posts.terms(window, "sentiment", size=8)}
    sentiment_rows = [
        (s.value, SENTIMENT_ZH[s.value], by_sentiment.get(s.value, 0)) for s in Sentiment
    ]
    unanalysed = total - sum(n for _, _, n in sentiment_rows)
    if unanalysed > 0:
        sentiment_rows.append(("unanalysed", SENTIMENT_ZH["unanalysed"], unanalysed))
    topics = posts.terms(window, "topic", size=len(Topic) + 1)
    sources = posts.terms(window, "source", size=10)

    sample = _sample(posts, window, keyword_sample)
    zone_items = [post_item(p, zone) for p in sample]
    keywords = top_keywords(
        [f"{clean(p.title)} {masked_text(p)[:KEYWORD_TEXT_CHARS]}" for p in sample],
        k=20,
        exclude=exclude_words,
    )
    by_reach = sorted(
        (item for item in zone_items if item.reach > 0), key=lambda i: (-i.reach, i.id)
    )
    top_negative = posts.search(
        window.model_copy(update={"sentiments": negative}), sort="risk", limit=top_n
    )

    opened, active = _incidents(state, start, end)
    linked = {
        str(link.get("ticket_id"))
        for inc in [*opened, *active]
        for link in inc.ticket_links
        if link.get("ticket_id")
    }
    tickets_created = len(state.list_tickets(since=start, until=end, limit=TICKET_LIMIT))

    return DailyBrief(
        day=day,
        timezone=tz,
        bank=bank,
        generated_at=local(now, zone),
        total_posts=total,
        negative_posts=negative_posts,
        critical_posts=critical_posts,
        previous_total=previous_total,
        previous_negative=previous_negative,
        sentiment_mix=shares(sentiment_rows, total),
        topic_mix=shares([(t.value, topic_zh(t.value), t.count) for t in topics], total),
        top_sources=shares([(t.value, clean(t.value), t.count) for t in sources], total),
        keywords=keywords,
        keywords_sample=len(sample),
        incidents_opened=[_line(i, zone, True) for i in opened],
        incidents_active=[_line(i, zone, False) for i in active],
        tickets_linked=len(linked),
        tickets_created=tickets_created,
        top_negative=[post_item(h.post, zone) for h in top_negative.hits],
        top_influential=by_reach[:top_n],
        hourly=_hourly(posts, window, start, zone),
        link=link,
    )


def _sample(posts: PostStore, window: PostQuery, limit: int) -> list[Post]:
    """Up to ``limit`` posts of the window, riskiest first (keyset paging)."""
    out: list[Post] = []
    cursor: str | None = None
    while len(out) < limit:
        page = posts.search(window, sort="risk", limit=min(_PAGE, limit - len(out)), cursor=cursor)
        out.extend(h.post for h in page.hits)
        cursor = page.next_cursor
        if not cursor or not page.hits:
            break
    return out


def _incidents(
    state: StateStore, start: datetime, end: datetime
) -> tuple[list[Incident], list[Incident]]:
    """(opened during the day, active during the day but opened before it), newest first."""
    candidates = {
        i.id: i
        for i in state.list_incidents(
            status=[IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED], limit=INCIDENT_LIMIT
        )
    }
    for i in state.list_incidents(
        status=[IncidentStatus.RESOLVED], since=start - RESOLVED_LOOKBACK, limit=INCIDENT_LIMIT
    ):
        candidates[i.id] = i
    opened: list[Incident] = []
    active: list[Incident] = []
    for inc in candidates.values():
        if inc.opened_at >= end:
            continue
        if inc.resolved_at is not None and inc.resolved_at < start:
            continue
        (opened if inc.opened_at >= start else active).append(inc)
    key = lambda i: (-i.grade.severity, -i.opened_at.timestamp(), i.id or 0)  # noqa: E731
    return sorted(opened, key=key), sorted(active, key=key)


def _line(inc: Incident, zone: ZoneInfo, opened_today: bool) -> IncidentLine:
    assert inc.id is not None
    return IncidentLine(
        id=inc.id,
        title=clean(inc.title),
        grade=inc.grade.value,
        grade_label=grade_label(inc.grade),
        status=STATUS_ZH[inc.status],
        opened=local(inc.opened_at, zone),
        opened_today=opened_today,
        post_count=inc.post_count,
        ticket_count=len({str(t.get("ticket_id")) for t in inc.ticket_links if t.get("ticket_id")}),
    )


def _hourly(
    posts: PostStore, window: PostQuery, start: datetime, zone: ZoneInfo
) -> list[HourPoint]:
    offset = int((start.utcoffset() or timedelta(0)).total_seconds() // 60)
    totals = {
        b.start: b.count
        for b in posts.histogram(window, bucket_seconds=3600, tz_offset_minutes=offset)
    }
    negatives = {
        b.start: b.count
        for b in posts.histogram(
            window.model_copy(update={"sentiments": [Sentiment.NEGATIVE]}),
            bucket_seconds=3600,
            tz_offset_minutes=offset,
        )
    }
    assert window.until is not None
    points: list[HourPoint] = []
    at = start.astimezone(window.until.tzinfo)
    while at < window.until:
        key = at.astimezone(ZoneInfo("UTC"))
        points.append(
            HourPoint(
                label=at.astimezone(zone).strftime("%H:00"),
                total=totals.get(key, 0),
                negative=negatives.get(key, 0),
            )
        )
        at += timedelta(hours=1)
    return points
