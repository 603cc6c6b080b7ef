"""Escalation policy: who hears about an incident, when it climbs a level, and the resolved notice.

The ladder is :data:`core.settings.AUDIENCE_ORDER` — ``branch`` (支行/网点 PR)
→ ``regional`` (分行) → ``head_office`` (总行), levels 0, 1, 2. A channel
with ``audience: regional`` is told about an incident once the incident's
level is ≥ 1; a channel without an audience hears at every level. Each
channel's ``min_grade`` still applies.

* **Start level by grade** (``escalation.start``): by default IV → branch,
  III → regional, II and I → head office at once. A grade rise moves the
  incident up to its grade's start level immediately.
* **Time-based escalation**: an incident still *open* (nobody acknowledged
  or resolved it) ``escalate_after_minutes`` after it reached its current
  level goes one level up, until head office. A person can also escalate
  at once (CLI, dashboard, signed link): :meth:`EscalationPolicy.escalate_now`.
* **Resolved notice**: when an incident is resolved, every channel that was
  told about it gets a "事件解除" message.
* **Silences** (:mod:`storage.silences`: stored ones from ``yuqing rules
  silence add``, and ``escalation.silences`` in config): no message for a
  silenced incident until the silence ends; incidents are still recorded.
  If the incident is still active when the silence ends, its messages go
  out then. Grade I is never held unless the silence includes it.
* **Realert window** (``escalation.realert_minutes``): an incident of the same
  rule and key opened within that time after an equal-or-higher-graded one
  was resolved is recorded but not announced again at the same grade (a
  flapping spike does not wake head office twice).

Crash and restart safety (STYLE.md #8): every step is written to the state
database *before* anything is sent — the level in ``escalations`` (unique
per incident and level), each message in the outbox under a dedup key:

=============================== ==================================
``incident:<id>:grade:<G>``     first message of grade G to a channel
                                (at whatever level reached it)
``incident:<id>:resolved``      the resolved notice
=============================== ==================================

:meth:`EscalationPolicy.sync` re-derives what every reached channel should
have been sent and enqueues what is missing; the outbox refuses the rest.
It runs after every detection match and every ``escalate`` job, so a crash
between "record the level" and "queue the messages" is repaired by the next
run, and a second run (or a second service after a restart) adds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Protocol

from alerts.incidents import dedup_key
from alerts.links import LinkSigner
from alerts.messages import AUDIENCE_ZH, Message, MessageKind, build_message
from alerts.regulatory import reporting_deadline
from core.models import Incident, Notification, Post
from core.ports import PostStore, StateStore
from core.settings import (
    AUDIENCE_ORDER,
    ChannelConfig,
    EscalationConfig,
    ReportingConfig,
)
from core.vocab import Grade, IncidentStatus
from storage.silences import SilenceRule, first_match, stored_silences

logger = logging.getLogger(__name__)

TOP_LEVEL = len(AUDIENCE_ORDER) - 1
RESOLVED_LOOKBACK = timedelta(days=2)
"""How far back the escalate job looks for resolved incidents that still owe a notice."""
POLICY_ACTOR = "escalation-policy"


class EscalationRecord(Protocol):
    level: int
    audience: str
    at: datetime
    actor: str


class EscalationStore(StateStore, Protocol):
    """A StateStore with the escalation methods and outbox reads of ``SqlStateStore``."""

    def record_escalation(
        self, incident_id: int, level: int, audience: str, *, actor: str, note: str = ""
    ) -> bool: ...

    def list_escalations(self, incident_id: int) -> Sequence[EscalationRecord]: ...

    def list_notifications(
        self, *, incident_id: int | None = None, limit: int = 100
    ) -> list[Notification]: ...


def grade_key(incident: Incident) -> str:
    """The dedup key of the first message of the incident's current grade to a channel."""
    return dedup_key(incident)


def resolved_key(incident: Incident) -> str:
    return f"incident:{incident.id}:resolved"


@dataclass(frozen=True)
class Evidence:
    """What a message shows beyond the incident itself (from the current match, if any)."""

    top_posts: Sequence[Post] = ()
    reason: str | None = None
    window: tuple[datetime | None, datetime | None] = (None, None)


class EscalationPolicy:
    """Decides and records escalation steps and queues the messages they imply.

    ``public_url`` is the dashboard's (incident-room links); ``links`` signs
    the one-click action links (``None``: messages carry no action links).
    ``reporting`` adds the reporting deadline to messages of grades that have one.
    """

    def __init__(
        self,
        config: EscalationConfig,
        channels: Sequence[ChannelConfig],
        *,
        public_url: str,
        tz: tzinfo,
        links: LinkSigner | None = None,
        reporting: ReportingConfig | None = None,
    ) -> None:
        self.config = config
        self.reporting = reporting
        self.channels = list(channels)
        self.public_url = public_url
        self.tz = tz
        self.links = links

    # -- pure decisions -----------------------------------------------------------------

    def start_level(self, grade: Grade) -> int:
        """The level the first message of ``grade`` reaches (0 = branch … 2 = head office)."""
        return AUDIENCE_ORDER.index(self.config.start[grade.value])

    def channels_for(self, grade: Grade, level: int) -> list[ChannelConfig]:
        """Enabled channels that accept ``grade`` and whose audience is reached at ``level``."""
        return [
            c
            for c in self.channels
            if c.enabled
            and grade.severity >= Grade(c.min_grade).severity
            and (c.audience is None or AUDIENCE_ORDER.index(c.audience) <= level)
        ]

    def silence_for(
        self, incident: Incident, now: datetime, store: object | None = None
    ) -> SilenceRule | None:
        """The silence holding ``incident`` at ``now``: a stored one of ``store`` (when it
        has a silences table) first, then the configured ones (:mod:`storage.silences`)."""
        silences = stored_silences(store, now) if store is not None else []
        silences += [SilenceRule.from_config(s) for s in self.config.silences]
        return first_match(silences, incident, now)

    def due_to_escalate(
        self, incident: Incident, level: int, since: datetime, now: datetime
    ) -> bool:
        """True when an *open* incident has waited ``escalate_after_minutes`` at ``level``."""
        return (
            self.config.enabled
            and incident.status is IncidentStatus.OPEN
            and level < TOP_LEVEL
            and now - since >= timedelta(minutes=self.config.escalate_after_minutes)
        )

    # -- recording ----------------------------------------------------------------------

    def current_level(
        self, store: EscalationStore, incident: Incident, now: datetime
    ) -> tuple[int, datetime]:
        """The incident's level and since when, recording the grade's start level if the
        incident has not reached it yet (first message, grade rise, or a crash before)."""
        assert incident.id is not None
        steps = store.list_escalations(incident.id)
        level, since = (steps[-1].level, steps[-1].at) if steps else (-1, now)
        start = self.start_level(incident.grade)
        if level < start:
            note = f"{incident.grade.value}级起始通报"
            if store.record_escalation(
                incident.id, start, AUDIENCE_ORDER[start], actor=POLICY_ACTOR, note=note
            ):
                logger.info(
                    "incident #%s: level %s (%s) for grade %s",
                    incident.id,
                    start,
                    AUDIENCE_ORDER[start],
                    incident.grade.value,
                )
            level, since = start, now
        return level, since

    def escalate_now(
        self,
        store: EscalationStore,
        incident: Incident,
        *,
        actor: str,
        now: datetime,
        note: str = "",
        posts: PostStore | None = None,
    ) -> int | None:
        """Move the incident one level up at once (a person asked); returns the new level,
        or ``None`` when it is already at head office. Queues the messages the step implies."""
        assert incident.id is not None
        level, _ = self.current_level(store, incident, now)
        if level >= TOP_LEVEL:
            return None
        new = level + 1
        store.record_escalation(incident.id, new, AUDIENCE_ORDER[new], actor=actor, note=note)
        self.sync(store, incident, now, evidence=self._stored_evidence(incident, posts))
        return new

    # -- messages -----------------------------------------------------------------------

    def sync(
        self,
        store: EscalationStore,
        incident: Incident,
        now: datetime,
        *,
        evidence: Evidence | None = None,
    ) -> int:
        """Queue whatever the incident's state implies and is not queued yet; return how many.

        Active incident: the current grade's message to every channel reached
        at its level. Resolved incident: the resolved notice to every channel
        that was told about it. Idempotent.
        """
        assert incident.id is not None
        silence = self.silence_for(incident, now, store)
        if silence is not None:
            logger.info(
                "incident #%s: messages held by silence #%s (%s) until %s: %s",
                incident.id,
                silence.id,
                silence.describe(),
                silence.ends_at.isoformat(),
                silence.reason,
            )
            return 0
        existing = store.list_notifications(incident_id=incident.id, limit=1000)
        have = {(n.channel, n.dedup_key) for n in existing}
        if incident.status is IncidentStatus.RESOLVED:
            if not self.config.resolved_notice:
                return 0
            told = sorted({n.channel for n in existing if n.dedup_key != resolved_key(incident)})
            wanted = [(name, resolved_key(incident)) for name in told]
            kind: MessageKind = "resolved"
            note = "事件已解除，停止升级。"
        else:
            if self._realert_suppressed(store, incident):
                return 0
            level, _ = self.current_level(store, incident, now)
            wanted = [
                (c.name, grade_key(incident)) for c in self.channels_for(incident.grade, level)
            ]
            escalated = level > self.start_level(incident.grade)
            kind = "escalation" if escalated else "alert"
            note = (
                f"事件超过 {self.config.escalate_after_minutes:g} 分钟未确认，"
                f"已升级至：{AUDIENCE_ZH[AUDIENCE_ORDER[level]]}"
                if escalated
                else ""
            )
        missing = [(channel, key) for channel, key in wanted if (channel, key) not in have]
        if not missing:
            return 0
        evidence = evidence or Evidence()
        extra: list[tuple[str, str]] = []
        if self.reporting is not None and kind != "resolved":
            alerts = store.list_alerts(incident_id=incident.id, limit=1000)
            deadline = reporting_deadline(incident, alerts, self.reporting)
            if deadline is not None:
                due = deadline.due_at.astimezone(self.tz)
                extra.append(("报告时限", f"{due:%m-%d %H:%M} 前报{self.reporting.report_to}"))
        message = build_message(
            incident,
            kind=kind,
            now=now,
            tz=self.tz,
            public_url=self.public_url,
            top_posts=evidence.top_posts,
            reason=evidence.reason,
            window=evidence.window,
            note=note,
            extra_facts=extra,
        )
        queued = 0
        for channel, key in missing:
            if store.enqueue(
                self._for_channel(message, channel, now).notification(channel, key, now=now)
            ):
                queued += 1
        if queued:
            logger.info(
                "incident #%s: queued %d %s message(s) for %s",
                incident.id,
                queued,
                kind,
                ", ".join(c for c, _ in missing),
            )
        return queued

    def _for_channel(self, message: Message, channel: str, now: datetime) -> Message:
        if self.links is None or message.kind == "resolved":
            return message
        return message.with_actions(
            self.links.action_urls(message.incident_id, who=f"channel:{channel}", now=now)
        )

    def _realert_suppressed(self, store: StateStore, incident: Incident) -> bool:
        window = timedelta(minutes=self.config.realert_minutes)
        if not window:
            return False
        for previous in store.list_incidents(status=[IncidentStatus.RESOLVED], limit=50):
            if (
                previous.id != incident.id
                and previous.rule == incident.rule
                and previous.key == incident.key
                and previous.resolved_at is not None
                and previous.resolved_at <= incident.opened_at < previous.resolved_at + window
                and previous.grade.severity >= incident.grade.severity
            ):
                logger.info(
                    "incident #%s: not announced, #%s (same rule and key, grade %s) was resolved "
                    "%s ago (realert window %s min)",
                    incident.id,
                    previous.id,
                    previous.grade.value,
                    incident.opened_at - previous.resolved_at,
                    self.config.realert_minutes,
                )
                return True
        return False

    def _stored_evidence(self, incident: Incident, posts: PostStore | None) -> Evidence:
        if posts is None:
            return Evidence()
        found: list[Post] = []
        for post_id in incident.post_ids[:5]:
            post = posts.get(post_id)
            if post is not None:
                found.append(post)
        return Evidence(top_posts=found)

    # -- the job ------------------------------------------------------------------------

    def run_due(
        self, store: EscalationStore, now: datetime, *, posts: PostStore | None = None
    ) -> list[tuple[int, int]]:
        """One pass of the ``escalate`` job: escalate every open incident that waited long
        enough, and repair missing messages of active and recently resolved incidents.

        Returns ``(incident_id, new_level)`` for each escalation recorded. Store
        errors propagate (the job fails loudly; nothing is half-done that the
        next pass would not repair).
        """
        stepped: list[tuple[int, int]] = []
        active = store.list_incidents(
            status=[IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED], limit=500
        )
        for incident in active:
            assert incident.id is not None
            silence = self.silence_for(incident, now, store)
            held_by = None if silence is None else silence.id
            mark = getattr(store, "mark_silenced", None)
            if incident.silenced_by != held_by and mark is not None:
                # Keep "silenced by" current as silences start and end; one column only,
                # so a concurrent detection cycle's update of the incident is not undone.
                mark(incident.id, held_by)
            if silence is not None:
                continue
            level, since = self.current_level(store, incident, now)
            if self.due_to_escalate(incident, level, since, now):
                new = level + 1
                waited = self.config.escalate_after_minutes
                if store.record_escalation(
                    incident.id,
                    new,
                    AUDIENCE_ORDER[new],
                    actor=POLICY_ACTOR,
                    note=f"未确认超过 {waited:g} 分钟",
                ):
                    logger.warning(
                        "ESCALATED incident #%s to level %s (%s): unacknowledged for %s min",
                        incident.id,
                        new,
                        AUDIENCE_ORDER[new],
                        waited,
                        extra={"incident_id": incident.id, "escalation_level": new},
                    )
                    stepped.append((incident.id, new))
            self.sync(store, incident, now, evidence=self._lazy_evidence(store, incident, posts))
        resolved = store.list_incidents(status=[IncidentStatus.RESOLVED], limit=200)
        for incident in resolved:
            if incident.resolved_at is not None and now - incident.resolved_at <= RESOLVED_LOOKBACK:
                self.sync(store, incident, now)
        return stepped

    def _lazy_evidence(
        self, store: EscalationStore, incident: Incident, posts: PostStore | None
    ) -> Evidence | None:
        # Fetching posts costs reads every minute per incident; only do it when a
        # message is actually missing (cheap check against the outbox first).
        assert incident.id is not None
        level = max((s.level for s in store.list_escalations(incident.id)), default=-1)
        have = {
            (n.channel, n.dedup_key)
            for n in store.list_notifications(incident_id=incident.id, limit=1000)
        }
        wanted = {(c.name, grade_key(incident)) for c in self.channels_for(incident.grade, level)}
        if wanted <= have:
            return None
        return self._stored_evidence(incident, posts)
