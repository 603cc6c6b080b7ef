"""Incident grouping: pure functions, no store, no clock.

(Who is told, and the messages, live in :mod:`alerts.escalation` and
:mod:`alerts.messages`.)

Grouping policy (spine issue; issue 6 groups by topic/entity and time):

* One active incident per ``(rule, key)``. A match joins the newest incident of
  that rule and key that is not resolved (open *or* acknowledged); otherwise
  it opens a new one.
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
or the current window reached a new peak. A match that merely repeats the
previous cycle refreshes the incident's numbers without a new alert, so a
30-minute spike does not produce 30 identical alerts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.rules.base import Match
from core.errors import ConfigError
from core.models import Incident
from core.settings import ChannelConfig
from core.vocab import Grade

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

    @property
    def event(self) -> str | None:
        """``opened``, ``grade_raised``, ``new_peak`` or ``None`` (nothing new to announce)."""
        if self.opened:
            return "opened"
        if self.grade_raised:
            return "grade_raised"
        if self.new_peak:
            return "new_peak"
        return None


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
) -> IncidentChange:
    """Open a new incident for ``match`` or fold it into ``active``; returns the result.

    ``window_count`` is the number of posts in the match's current window
    (it drives ``peak_count``); ``post_count`` the number of posts since the
    incident's first window, when the caller could count it (``None`` keeps
    the higher of the old value and ``window_count``). ``post_ids`` are the
    newest posts of the current window; ``ticket_links`` the complaint tickets
    to link (``{"ticket_id", "score", "reasons"}``; tickets already linked keep
    their first link). The input incident is not mutated.
    """
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
        )
        return IncidentChange(incident, True, False, True, None)

    grade = match.grade if match.grade.severity > active.grade.severity else active.grade
    grade_raised = grade != active.grade
    new_peak = window_count > active.peak_count
    reasons = list(active.reasons)
    if (grade_raised or new_peak) and (not reasons or reasons[-1] != match.reason):
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
        }
    )
    return IncidentChange(incident, False, grade_raised, new_peak, active.grade)


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
