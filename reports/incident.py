"""Gather the per-incident report: what happened, grade, timeline, scope, posts, tickets.

The timeline uses what the state store keeps. ``SqlStateStore`` has an audit
log (acknowledge, escalate, resolve, notes), escalation steps and the outbox;
those are optional extensions here (small runtime-checked protocols), so a
store without them still gets a report built from the incident and its
alerts. The regulatory draft is built by ``alerts.regulatory`` (a layer
above); the caller passes its text in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.errors import YuqingError
from core.models import Incident, Post
from core.ports import AckLog, AuditLog, NotificationLog, PostStore, StateStore
from core.vocab import Sentiment
from reports.common import (
    SENTIMENT_ZH,
    STATUS_ZH,
    clean,
    grade_label,
    local,
    one_line,
    post_item,
    shares,
    topic_zh,
)
from reports.model import HourPoint, IncidentReport, SignalLine, TicketLine, TimelineEvent

MAX_POSTS = 200
TOP_POSTS = 10
SIGNAL_TRIGGERS = 8  # trigger words per signal in the report
TICKET_LOOKBACK = timedelta(days=30)
TICKET_LIMIT = 100_000

AUDIT_ZH: dict[str, str] = {
    "acknowledge": "确认",
    "resolve": "解决",
    "escalate": "升级",
    "note": "备注",
}


class IncidentNotFound(YuqingError, LookupError):
    """No incident with the requested id."""


def gather_incident_report(
    posts: PostStore,
    state: StateStore,
    incident_id: int,
    *,
    now: datetime,
    tz: str = "Asia/Shanghai",
    bank: str = "澜海银行",
    draft: str | None = None,
    link: str | None = None,
    max_posts: int = MAX_POSTS,
) -> IncidentReport:
    """The report of incident ``incident_id`` as of ``now``.

    Loads up to ``max_posts`` of the incident's posts (ids the post store no
    longer has are counted, not guessed). ``draft`` is the regulatory draft
    text (``alerts.regulatory.draft_report``), shown as its own section.
    Raises :class:`IncidentNotFound`; store errors propagate.
    """
    zone = ZoneInfo(tz)
    incident = state.get_incident(incident_id)
    if incident is None:
        raise IncidentNotFound(f"no incident #{incident_id}")
    wanted = incident.post_ids[:max_posts]
    found: list[Post] = []
    for post_id in wanted:
        post = posts.get(post_id)
        if post is not None:
            found.append(post)
    ranked = sorted(
        found,
        key=lambda p: (-(p.analysis.risk_score if p.analysis else 0.0), -p.reach, p.id),
    )
    by_source = Counter(p.source for p in found)
    by_sentiment = Counter(
        p.analysis.sentiment.value if p.analysis else "unanalysed" for p in found
    )
    sentiment_rows = [
        (key, SENTIMENT_ZH[key], by_sentiment[key])
        for key in [*(s.value for s in Sentiment), "unanalysed"]
        if by_sentiment[key]
    ]
    return IncidentReport(
        id=incident_id,
        title=clean(incident.title),
        bank=bank,
        timezone=tz,
        generated_at=local(now, zone),
        grade=incident.grade.value,
        grade_label=grade_label(incident.grade),
        status=STATUS_ZH[incident.status],
        rule=incident.rule,
        key=clean(incident.key),
        opened=local(incident.opened_at, zone),
        first_seen=local(incident.first_seen or incident.opened_at, zone),
        resolved=local(incident.resolved_at, zone) if incident.resolved_at else None,
        reasons=[clean(r) for r in incident.reasons],
        timeline=_timeline(state, incident, zone),
        post_count=incident.post_count,
        peak_count=incident.peak_count,
        posts_found=len(found),
        posts_missing=len(wanted) - len(found),
        posts_not_loaded=max(0, len(incident.post_ids) - len(wanted)),
        reach_total=sum(p.reach for p in found),
        sources=shares(
            [
                (s, clean(s), n)
                for s, n in sorted(by_source.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            len(found),
        ),
        sentiment_mix=shares(sentiment_rows, len(found)),
        signals=[
            replace(line, triggers=line.triggers[:SIGNAL_TRIGGERS]) for line in signal_lines(found)
        ],
        top_posts=[post_item(p, zone) for p in ranked[:TOP_POSTS]],
        tickets=_tickets(state, incident, zone),
        hourly=_hourly(found, zone),
        topic=topic_zh(incident.topic.value) if incident.topic else None,
        entity=clean(incident.entity) if incident.entity else None,
        draft=clean(draft) if draft else None,
        link=link,
    )


def _timeline(state: StateStore, incident: Incident, zone: ZoneInfo) -> list[TimelineEvent]:
    assert incident.id is not None
    events: list[tuple[datetime, int, str, str, str]] = [
        (incident.opened_at, 0, "事件开启", "system", grade_label(incident.grade))
    ]
    for alert in state.list_alerts(incident_id=incident.id, limit=500):
        events.append(
            (
                alert.created_at,
                1,
                "告警",
                alert.rule,
                f"{grade_label(alert.grade)}：{alert.summary}",
            )
        )
    if isinstance(state, AuditLog):
        for entry in state.list_audit(500, target=f"incident:{incident.id}"):
            events.append(
                (entry.at, 2, AUDIT_ZH.get(entry.action, entry.action), entry.actor, entry.detail)
            )
    else:
        if isinstance(state, AckLog):
            events += [(a.at, 2, "确认", a.user, a.note) for a in state.list_acks(incident.id)]
        if incident.resolved_at is not None:
            events.append((incident.resolved_at, 2, "解决", "", ""))
    if isinstance(state, NotificationLog):
        for n in state.list_notifications(incident_id=incident.id, limit=500):
            if n.sent_at is not None:
                events.append((n.sent_at, 3, "通知已发送", n.channel, one_line(n.subject, 80)))
            elif n.next_attempt_at is None:
                events.append(
                    (n.created_at, 3, "通知发送失败", n.channel, one_line(n.last_error or "", 80))
                )
    events.sort(key=lambda e: (e[0], e[1]))
    return [
        TimelineEvent(
            at=local(at, zone), event=event, actor=clean(actor), detail=one_line(clean(detail), 200)
        )
        for at, _, event, actor, detail in events
    ]


def signal_lines(posts: Sequence[Post]) -> list[SignalLine]:
    """Every signal among ``posts``, most posts first (then by name).

    Per signal: the distinct posts carrying it, how many of those had it raised
    by the trained crisis model (``source="model"``), whether it was critical
    on any of them, and every trigger word (control characters removed, PII
    masked), most frequent first, ties by code point. The incident report and
    the dashboard's incident room both show this tally.
    """
    carrying: dict[str, set[str]] = {}
    by_model: dict[str, set[str]] = {}
    triggers: dict[str, Counter[str]] = {}
    critical: dict[str, bool] = {}
    for post in posts:
        if post.analysis is None:
            continue
        for signal in post.analysis.signals:
            carrying.setdefault(signal.name, set()).add(post.id)
            if signal.source == "model":
                by_model.setdefault(signal.name, set()).add(post.id)
            triggers.setdefault(signal.name, Counter()).update(signal.triggers)
            critical[signal.name] = critical.get(signal.name, False) or signal.critical
    return [
        SignalLine(
            name=name,
            posts=len(ids),
            triggers=[
                clean(w) for w, _ in sorted(triggers[name].items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            critical=critical[name],
            model_posts=len(by_model.get(name, ())),
        )
        for name, ids in sorted(carrying.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]


def _tickets(state: StateStore, incident: Incident, zone: ZoneInfo) -> list[TicketLine]:
    links: list[dict[str, Any]] = [t for t in incident.ticket_links if t.get("ticket_id")]
    if not links:
        return []
    since = (incident.first_seen or incident.opened_at) - TICKET_LOOKBACK
    known = {t.ticket_id: t for t in state.list_tickets(since=since, limit=TICKET_LIMIT)}
    out: list[TicketLine] = []
    for link in links:
        ticket_id = str(link["ticket_id"])
        score = link.get("score")
        reasons = [clean(str(r)) for r in link.get("reasons") or []]
        ticket = known.get(ticket_id)
        if ticket is None:
            out.append(TicketLine(clean(ticket_id), _score(score), reasons, found=False))
            continue
        out.append(
            TicketLine(
                ticket_id=clean(ticket_id),
                score=_score(score),
                reasons=reasons,
                branch=clean(ticket.branch),
                product=clean(ticket.product),
                status=clean(ticket.status),
                created=local(ticket.created_at, zone),
                summary=one_line(clean(ticket.summary), 120),
            )
        )
    return out


def _score(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _hourly(found: Sequence[Post], zone: ZoneInfo) -> list[HourPoint]:
    if not found:
        return []
    hours: Counter[datetime] = Counter()
    negative: Counter[datetime] = Counter()
    for post in found:
        hour = post.published_at.astimezone(zone).replace(minute=0, second=0, microsecond=0)
        hours[hour] += 1
        if post.analysis and post.analysis.sentiment is Sentiment.NEGATIVE:
            negative[hour] += 1
    first, last = min(hours), max(hours)
    if last - first > timedelta(days=7):  # a long tail: chart the last week only
        first = last - timedelta(days=7)
    points: list[HourPoint] = []
    at = first
    while at <= last:
        points.append(HourPoint(at.strftime("%m-%d %H:00"), hours[at], negative[at]))
        at += timedelta(hours=1)
    return points
