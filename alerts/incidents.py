"""Incident grouping: pure functions, no store, no clock.

(Who is told, and the messages, live in :mod:`alerts.escalation` and
:mod:`alerts.messages`.)

Grouping policy (issue 6: by rule and key, then by topic/entity and time):

* One active incident per ``(rule, key)``. A match joins the newest incident of
  that rule and key that is not resolved (open *or* acknowledged), or the
  active incident it joined before (``Incident.members`` holds
  ``<rule>:<key>`` of every match that joined).
* Otherwise, **across rules**: a match about the same subject joins an active
  incident updated within ``grouping.join_minutes``. The subject of a match
  (:func:`subject_of`) is its majority topic (a topic of at least
  ``topic_share`` of its evidence posts) and its watched branches/products
  (each named by at least ``entity_share`` of the posts; the bank itself
  when none is). An incident about entity ``E`` and topic ``T`` absorbs a
  match that names ``E`` and whose topic is ``T`` or unknown (or the
  incident's topic is unknown) — :func:`can_join`. An incident about the
  bank as a whole (no branch/product stands out, e.g. a volume spike over
  all posts) absorbs any match about the bank with a compatible topic: in a
  crisis head office wants one incident room, not one per rule. Two known,
  different topics never join (a card-fee storm and a bank-run rumour stay
  apart). The join adds the rule to ``Incident.rules``, merges posts,
  sources and tickets, and regrades (``joined`` event, or ``grade_raised``
  when the grade rose). Notification is unchanged: one message per channel
  per (incident, grade), so a join that does not raise the grade sends
  nothing new. ``grouping.enabled: false`` keeps one incident per rule and key.
* Otherwise the match opens a new incident.
* Incidents are **never closed automatically**: a quiet window does not
  resolve anything. A person acknowledges and resolves them (CLI, dashboard).
  An automatic "no match for N windows → resolved" policy, with the resolved
  notice, comes with issue 6's escalation policy.
* Grades only go up: an incident takes the highest grade any of its matches
  justified. Grades come from :mod:`alerts.grading` (volume, velocity,
  negativity, reach, critical signals, media/regulator involvement): each
  rule grades its own numbers, and the detector regrades with the evidence
  of the window and the incident's total posts. A rise is the
  ``grade_raised`` event, announced through the escalation policy.

What counts as news (an :class:`IncidentChange` event) — and so is recorded as
an ``Alert`` and logged at WARNING — is: the incident opened, its grade rose,
another rule joined it, or the current window reached a new peak. A match
that merely repeats the previous cycle refreshes the incident's numbers
without a new alert, so a 30-minute spike does not produce 30 identical alerts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.rules.base import Match
from core.errors import ConfigError
from core.models import Incident, Post
from core.settings import ChannelConfig, Watchlist
from core.vocab import Grade, IncidentStatus, Topic

MAX_POST_IDS = 200
"""Cap on ``Incident.post_ids`` (newest first); the dashboard pages the rest by time range."""
MAX_REASONS = 50
"""Cap on ``Incident.reasons``; the full trail is in the alerts of the incident."""
MAX_TICKET_LINKS = 200
"""Cap on ``Incident.ticket_links`` (first linked kept first)."""


def display_timezone(name: str = "Asia/Shanghai") -> tzinfo:
    """The zone messages show times in (DESIGN: stored as UTC, shown in Asia/Shanghai).

    Falls back to a fixed UTC+8 for Asia/Shanghai (China has no DST) when the
    system has no time-zone database; raises ``ConfigError`` naming the
    ``timezone`` setting for any other unknown name.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        if name == "Asia/Shanghai":
            return timezone(timedelta(hours=8), "CST")
        raise ConfigError(f"timezone: unknown time zone {name!r}") from exc


@dataclass(frozen=True)
class IncidentChange:
    """The incident after applying one match, and what about it is news."""

    incident: Incident
    opened: bool
    grade_raised: bool
    new_peak: bool
    previous_grade: Grade | None
    joined: bool = False
    """A rule that had not matched into this incident before joined it (grouping)."""

    @property
    def event(self) -> str | None:
        """``opened``, ``grade_raised``, ``joined``, ``new_peak`` or ``None`` (nothing new)."""
        if self.opened:
            return "opened"
        if self.grade_raised:
            return "grade_raised"
        if self.joined:
            return "joined"
        if self.new_peak:
            return "new_peak"
        return None


def member_key(rule: str, key: str) -> str:
    """``<rule>:<key>``, one entry of ``Incident.members`` (rule names have no ``:``)."""
    return f"{rule}:{key}"


@dataclass(frozen=True)
class Subject:
    """What a match is about: its majority topic and watched entities (see module docstring).

    ``entities`` are branches/products, most named first; ``bank`` is the bank's
    name when the posts are about the bank (always, for posts that name it).
    """

    topic: str | None = None
    entities: tuple[str, ...] = ()
    bank: str | None = None

    @property
    def entity(self) -> str | None:
        """The primary entity: the most named branch/product, else the bank."""
        return self.entities[0] if self.entities else self.bank


def subject_of(
    posts: Sequence[Post],
    watchlist: Watchlist | None,
    *,
    topic_share: float = 0.5,
    entity_share: float = 0.3,
    topic: str | None = None,
    entities: Sequence[str] = (),
) -> Subject:
    """The subject of a match from its evidence ``posts`` (pure).

    ``topic``/``entities`` given by the rule win (``topic_burst``, ``ticket_surge``).
    Otherwise the topic is the most frequent analysed topic when it covers at
    least ``topic_share`` of the analysed posts (``other`` counts as unknown);
    the entities are the watchlist's branches/products named by at least
    ``entity_share`` of the posts (``Analysis.entities``). Without a watchlist
    every non-first name of ``Analysis.entities`` counts as specific.
    """
    analysed = [p.analysis for p in posts if p.analysis is not None]
    if topic is None and analysed:
        counts = Counter(str(a.topic) for a in analysed)
        best, n = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
        if best != Topic.OTHER.value and n >= topic_share * len(analysed):
            topic = best
    bank_name = watchlist.bank.name if watchlist is not None else None
    specific: Counter[str] = Counter()
    bank: str | None = bank_name if entities else None
    for a in analysed:
        # The mention matcher lists the bank first, then branches and products.
        names = list(dict.fromkeys(a.entities))
        if not names:
            continue
        this_bank = bank_name or names[0]
        bank = bank or this_bank
        specific.update(name for name in names if name != this_bank)
    if not entities and analysed:
        floor = entity_share * len(analysed)
        entities = [name for name, n in specific.most_common() if n >= floor]
    return Subject(topic=topic, entities=tuple(entities), bank=bank)


def _topic(value: str | None) -> Topic | None:
    # Incident.topic is the closed Topic vocabulary; anything else stays unknown.
    try:
        return None if value is None else Topic(value)
    except ValueError:
        return None


def can_join(
    incident: Incident, subject: Subject, *, now: datetime, join_window: timedelta
) -> bool:
    """True when the active ``incident`` may absorb a match about ``subject`` (pure).

    The incident must be active and updated within ``join_window`` before
    ``now`` and share the match's subject: its entity is one of the match's
    branches/products or the bank the match's posts name, and the topics are
    compatible (equal, or either unknown).
    """
    if incident.status is IncidentStatus.RESOLVED or incident.entity is None:
        return False
    if incident.updated_at < now - join_window:
        return False
    if incident.entity not in subject.entities and incident.entity != subject.bank:
        return False
    return incident.topic is None or subject.topic is None or incident.topic == subject.topic


def find_group(
    candidates: Sequence[Incident], subject: Subject, *, now: datetime, join_window: timedelta
) -> Incident | None:
    """The most recently updated of ``candidates`` that :func:`can_join` ``subject``."""
    fits = [c for c in candidates if can_join(c, subject, now=now, join_window=join_window)]
    return max(fits, key=lambda c: (c.updated_at, c.id or 0), default=None)


def _merge_unique(first: Sequence[str], then: Sequence[str], cap: int) -> list[str]:
    seen: set[str] = set()
    merged: list[str] = []
    for item in (*first, *then):
        if item not in seen:
            seen.add(item)
            merged.append(item)
    return merged[:cap]


def ticket_links_of(match: Match) -> list[dict[str, Any]]:
    """The ticket links a match brings (ticket rules): every ticket behind it, score 1.0
    (being one of the surge's tickets *is* the link), with the match's reasons."""
    return [
        {"ticket_id": tid, "score": 1.0, "reasons": list(match.ticket_reasons)}
        for tid in match.ticket_ids
    ]


def merge_ticket_links(
    old: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]], cap: int = MAX_TICKET_LINKS
) -> list[dict[str, Any]]:
    """``old`` then the links of ``new`` whose ticket is not linked yet, at most ``cap``."""
    seen = {str(link.get("ticket_id")) for link in old}
    merged = list(old)
    for link in new:
        tid = str(link.get("ticket_id"))
        if tid not in seen:
            seen.add(tid)
            merged.append(dict(link))
    return merged[:cap]


def apply_match(
    active: Incident | None,
    match: Match,
    *,
    now: datetime,
    window_count: int,
    post_count: int | None,
    post_ids: Sequence[str],
    sources: Sequence[str],
    ticket_links: Sequence[dict[str, Any]] = (),
    subject: Subject | None = None,
) -> IncidentChange:
    """Open a new incident for ``match`` or fold it into ``active``; returns the result.

    ``window_count`` is the number of posts in the match's current window
    (it drives ``peak_count``); ``post_count`` the number of posts since the
    incident's first window, when the caller could count it (``None`` keeps
    the higher of the old value and ``window_count``). ``post_ids`` are the
    newest posts of the current window; ``ticket_links`` the complaint tickets
    to link (``{"ticket_id", "score", "reasons"}``; tickets already linked keep
    their first link). ``subject`` fills ``topic``/``entity`` (of a new incident, or
    of an old one that had none). The match's rule and ``<rule>:<key>`` are added
    to ``rules``/``members``; a rule new to the incident is the ``joined`` event.
    The input incident is not mutated.
    """
    subject = subject or Subject()
    member = member_key(match.rule, match.key)
    if active is None:
        incident = Incident(
            rule=match.rule,
            key=match.key,
            title=match.title,
            grade=match.grade,
            opened_at=now,
            updated_at=now,
            first_seen=match.window_start or now,
            post_count=max(post_count or 0, window_count),
            peak_count=window_count,
            post_ids=list(post_ids)[:MAX_POST_IDS],
            reasons=[match.reason],
            sources=sorted(set(sources)),
            ticket_links=merge_ticket_links([], ticket_links),
            topic=_topic(subject.topic),
            entity=subject.entity,
            rules=[match.rule],
            members=[member],
        )
        return IncidentChange(incident, True, False, True, None)

    rules = list(active.rules) or [active.rule]
    joined = match.rule not in rules
    if joined:
        rules.append(match.rule)
    members = list(active.members) or [member_key(active.rule, active.key)]
    if member not in members:
        members.append(member)

    grade = match.grade if match.grade.severity > active.grade.severity else active.grade
    grade_raised = grade != active.grade
    new_peak = window_count > active.peak_count
    reasons = list(active.reasons)
    if (grade_raised or new_peak or joined) and (not reasons or reasons[-1] != match.reason):
        reasons = [*reasons, match.reason][-MAX_REASONS:]
    incident = active.model_copy(
        update={
            "grade": grade,
            "updated_at": now,
            "post_count": max(
                active.post_count, post_count if post_count is not None else window_count
            ),
            "peak_count": max(active.peak_count, window_count),
            "post_ids": _merge_unique(post_ids, active.post_ids, MAX_POST_IDS),
            "reasons": reasons,
            "sources": sorted({*active.sources, *sources}),
            "ticket_links": merge_ticket_links(active.ticket_links, ticket_links),
            "rules": rules,
            "members": members,
            "topic": active.topic if active.topic is not None else _topic(subject.topic),
            "entity": active.entity if active.entity is not None else subject.entity,
        }
    )
    return IncidentChange(incident, False, grade_raised, new_peak, active.grade, joined)


def channel_accepts(channel: ChannelConfig, grade: Grade) -> bool:
    """True when ``channel`` is enabled and ``grade`` is at least its ``min_grade``."""
    return channel.enabled and grade.severity >= Grade(channel.min_grade).severity


def dedup_key(incident: Incident) -> str:
    """The outbox dedup key: one notification per channel per (incident, grade).

    Re-running detection, or restarting after a crash between saving the
    incident and queueing its messages, re-enqueues under the same key and is
    refused by the outbox, so head office hears about each grade exactly once.
    The escalation policy (:mod:`alerts.escalation`) sends every grade message
    under this key and the resolved notice under ``incident:<id>:resolved``.
    """
    return f"incident:{incident.id}:grade:{incident.grade.value}"
