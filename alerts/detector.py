"""The detector: run every enabled rule once, turn matches into incidents, alerts and messages.

One :meth:`Detector.run_once` per detection cycle (the service calls it every
``scheduler.detect_interval_seconds``). For each enabled rule it

1. asks the rule to :meth:`~alerts.rules.base.Rule.evaluate` the PostStore (a
   :class:`~alerts.rules.base.TicketRule` reads the StateStore's complaint
   tickets instead: :func:`~alerts.rules.base.evaluate_rule`);
2. on a match, gathers evidence (newest posts and sources of the current
   window, posts since the incident began) and the match's subject (topic,
   entity), then opens or updates the active incident of ``(rule, key)`` or
   joins an active incident about the same subject (grouping policy:
   :mod:`alerts.incidents`); the silence holding it, if any, is noted on it;
3. when that is news (opened, grade raised, joined, new peak), records an
   :class:`~core.models.Alert` and logs it at WARNING;
4. asks the :class:`~alerts.escalation.EscalationPolicy` to queue what the
   incident now implies: one message per channel reached at the incident's
   escalation level whose ``min_grade`` the grade meets (unless silenced).
   This happens on every matching cycle on purpose: the outbox refuses a
   duplicate ``(channel, dedup_key)``, so a crash between steps 2 and 4 is
   repaired by the next cycle instead of losing the message.

A new incident starts with its complaint tickets linked (``Incident.ticket_links``):
a ticket rule's own tickets, or, for a post rule, the best-ranked related
tickets (:meth:`Detector._related_tickets`, when the detector has a watchlist).

``dry_run`` rules are evaluated and logged, and nothing is written.

Source health (:mod:`alerts.health`) is read once per cycle: past outages
are left out of the baselines and sources down now out of the volume counts.

Failure contract: a rule that cannot be evaluated (the PostStore or
StateStore is down, or a bug) is logged at ERROR, written to the audit log
when possible, the other rules still run, and then :class:`DetectionFailed`
is raised. ``run_once`` never returns normally after a failed read, so "the
store is down" can never look like "no spike".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, tzinfo
from typing import Any

from alerts.escalation import EscalationPolicy, EscalationStore, Evidence
from alerts.grading import THRESHOLDS, Thresholds, factors_from_posts, grade
from alerts.health import SourceHealth, source_health
from alerts.incidents import (
    IncidentChange,
    Subject,
    apply_match,
    display_timezone,
    find_group,
    member_key,
    subject_of,
    ticket_links_of,
)
from alerts.links import LinkSigner
from alerts.rules.base import CopyCounter, Match, Rule, Window, build_rules, evaluate_rule
from alerts.tickets.linking import LinkParams, profile_posts, rank_tickets
from core.errors import StoreError, YuqingError
from core.models import Alert, Incident, Post, utcnow
from core.ports import PostStore, StateStore
from core.settings import (
    ChannelConfig,
    DashboardConfig,
    EscalationConfig,
    GroupingConfig,
    Settings,
    Watchlist,
)
from core.vocab import IncidentStatus

logger = logging.getLogger(__name__)

EVIDENCE_LIMIT = 50
"""How many of the newest posts of the current window are attached to the incident."""
EXCLUDE_LOOKBACK = timedelta(days=29)
"""Incidents opened this far back are left out of rule baselines (covers ``seasonal_days`` ≤ 28)."""
EXCLUDE_LIMIT = 200
LINK_TICKETS = 5
"""At most this many related complaint tickets are linked to a new incident of a post rule."""
LINK_MIN_SCORE = 0.4
"""…each scoring at least this (:mod:`alerts.tickets.linking`; e.g. same product + same time)."""
LINK_SCAN = 5000
"""Tickets read around a new incident to rank."""
GROUP_SCAN = 500
"""Active incidents examined when a match looks for an incident to join."""


def policy_from_settings(settings: Settings, tz: tzinfo | None = None) -> EscalationPolicy:
    """The escalation policy of ``settings``, signing action links when they are enabled."""
    links = None
    if settings.ack_links.enabled:
        links = LinkSigner(
            settings.secret_key.get_secret_value(),
            settings.ack_links.public_url,
            ttl=timedelta(hours=settings.ack_links.ttl_hours),
        )
    return EscalationPolicy(
        settings.escalation,
        settings.channels,
        public_url=settings.dashboard.public_url,
        tz=tz or display_timezone(settings.timezone),
        links=links,
        reporting=settings.reporting,
    )


def past_incident_windows(state: StateStore, rule: str, now: datetime) -> list[Window]:
    """``[first_seen, resolved_at or now)`` of the incidents of ``rule`` of the last days.

    The detector passes them to the rule as ``exclude`` so its baseline leaves
    them out (one crisis must not blind the next). Read-only; store errors
    propagate (the rule is then reported as failed, never as quiet).
    """
    windows: list[Window] = []
    for incident in state.list_incidents(since=now - EXCLUDE_LOOKBACK, limit=EXCLUDE_LIMIT):
        # A grouped incident counts for every rule that joined it.
        if incident.rule == rule or rule in incident.rules:
            start = incident.first_seen or incident.opened_at
            windows.append((start, incident.resolved_at or now))
    return windows


class DetectionFailed(YuqingError):
    """At least one rule could not be evaluated; the alarm state is unknown, not quiet.

    ``failures`` maps rule name → the exception; ``alerts`` holds what the
    rules that did run produced (already recorded).
    """

    def __init__(self, failures: dict[str, BaseException], alerts: list[Alert]) -> None:
        names = ", ".join(f"{name}: {exc}" for name, exc in failures.items())
        super().__init__(f"detection failed for {len(failures)} rule(s): {names}")
        self.failures = failures
        self.alerts = alerts


class Detector:
    """Runs rules against a PostStore and records the outcome in a StateStore.

    ``channels`` are the configured notification channels (their ``name``,
    ``enabled`` and ``min_grade`` decide who is queued a message; delivery
    is the outbox's job). ``clock`` supplies ``now`` when ``run_once`` is
    called without one. ``display_tz`` is the zone of times in messages
    (default Asia/Shanghai). ``policy`` decides who is told (default: the
    default escalation policy over ``channels``, without action links).
    ``state_store`` must also have the escalation methods of
    :class:`~alerts.escalation.EscalationStore` (``SqlStateStore`` does).
    ``copies`` (the crawl's repost groups, ``storage.dedup_index.DedupIndex``)
    makes the volume rule count reposts grouped under stored posts
    (docs/alerting.md); ``None`` counts stored posts only.
    """

    def __init__(
        self,
        rules: Sequence[Rule[Any]],
        post_store: PostStore,
        state_store: StateStore,
        channels: Sequence[ChannelConfig],
        *,
        clock: Callable[[], datetime] = utcnow,
        evidence_limit: int = EVIDENCE_LIMIT,
        display_tz: tzinfo | None = None,
        policy: EscalationPolicy | None = None,
        watchlist: Watchlist | None = None,
        link_min_score: float = LINK_MIN_SCORE,
        grouping: GroupingConfig | None = None,
        thresholds: Thresholds = THRESHOLDS,
        copies: CopyCounter | None = None,
    ) -> None:
        self.rules = list(rules)
        self.copies = copies
        self.grouping = grouping or GroupingConfig()
        self.thresholds = thresholds
        self.watchlist = watchlist
        self.link_min_score = link_min_score
        self.posts = post_store
        self.state = state_store
        self.channels = list(channels)
        self.clock = clock
        self.evidence_limit = evidence_limit
        self.display_tz = display_tz or display_timezone()
        self.policy = policy or EscalationPolicy(
            EscalationConfig(),
            self.channels,
            public_url=DashboardConfig().public_url,
            tz=self.display_tz,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        post_store: PostStore,
        state_store: StateStore,
        *,
        clock: Callable[[], datetime] = utcnow,
        copies: CopyCounter | None = None,
    ) -> Detector:
        """A detector for ``settings.rules`` and ``settings.channels`` (``copies``: see the class).

        Raises ``ConfigError`` for a rule type with no implementation.
        """
        tz = display_timezone(settings.timezone)
        thresholds = Thresholds.from_config(settings.grading)
        return cls(
            build_rules(settings.rules, thresholds=thresholds),
            post_store,
            state_store,
            settings.channels,
            clock=clock,
            display_tz=tz,
            policy=policy_from_settings(settings, tz),
            watchlist=settings.watchlist,
            grouping=settings.grouping,
            thresholds=thresholds,
            copies=copies,
        )

    def run_once(self, now: datetime | None = None) -> list[Alert]:
        """Evaluate every enabled rule once as of ``now`` (default: the clock).

        Returns the alerts recorded in this cycle (plus unsaved alerts with
        ``details["dry_run"] = True`` for dry-run rules). Raises
        :class:`DetectionFailed` after all rules ran if any of them failed.
        """
        now = now or self.clock()
        alerts: list[Alert] = []
        failures: dict[str, BaseException] = {}
        health: SourceHealth | None = None
        for rule in self.rules:
            if not rule.enabled:
                continue
            try:
                if health is None:
                    # Read once per cycle; a failed read fails this rule (retried by the next).
                    health = source_health(self.state, now)
                    if health.down:
                        logger.info("sources without a successful crawl: %s", sorted(health.down))
                rule_alerts = self._run_rule(rule, now, health)
            except StoreError as exc:
                # Expected kind of failure: no traceback noise, but loud.
                logger.error(
                    "detection failed: rule=%s could not be evaluated (%s: %s); "
                    "alarm state unknown, NOT quiet",
                    rule.name,
                    type(exc).__name__,
                    exc,
                    extra={"rule": rule.name, "detection_failed": True},
                )
                failures[rule.name] = exc
                continue
            except Exception as exc:
                # A bug in one rule must not blind the others; it is still reported.
                logger.exception(
                    "detection failed: rule=%s raised unexpectedly",
                    rule.name,
                    extra={"rule": rule.name, "detection_failed": True},
                )
                failures[rule.name] = exc
                continue
            alerts.extend(rule_alerts)
        if failures:
            self._audit_failures(failures)
            raise DetectionFailed(failures, alerts)
        return alerts

    # -- one rule ---------------------------------------------------------------------

    def _run_rule(
        self, rule: Rule[Any], now: datetime, health: SourceHealth | None = None
    ) -> list[Alert]:
        """All matches of ``rule`` now (one per key) → the alerts that were news.

        ``health`` (:mod:`alerts.health`): past outage windows are left out of the
        baselines like past incidents, and sources down now out of the counts.
        """
        health = health or SourceHealth()
        matches = evaluate_rule(
            rule,
            self.posts,
            now,
            exclude=[*past_incident_windows(self.state, rule.name, now), *health.gaps],
            tickets=self.state,
            down_sources=health.down,
            copies=self.copies,
        )
        if not matches:
            logger.debug("rule=%s quiet", rule.name)
            return []
        if rule.dry_run:
            return [self._dry_run_alert(match, now) for match in matches]
        alerts: list[Alert] = []
        for match in matches:
            alert = self._apply(match, now)
            if alert is not None:
                alerts.append(alert)
        return alerts

    def _apply(self, match: Match, now: datetime) -> Alert | None:
        """Open, update or join the incident of ``match``, record news, queue messages."""
        top_posts: list[Post] = []
        sources: list[str] = []
        post_count: int | None = None
        if match.query is not None:
            page = self.posts.search(match.query, sort="newest", limit=self.evidence_limit)
            top_posts = [hit.post for hit in page.hits]
            sources = [t.value for t in self.posts.terms(match.query, "source", size=50)]
        elif match.evidence_ids:
            # No query selects exactly these posts (e.g. one author's): fetch them.
            found = (self.posts.get(pid) for pid in match.evidence_ids[: self.evidence_limit])
            top_posts = [p for p in found if p is not None]
            sources = sorted({p.source for p in top_posts})
        subject = subject_of(
            top_posts,
            self.watchlist,
            topic_share=self.grouping.topic_share,
            entity_share=self.grouping.entity_share,
            topic=match.topic,
            entities=match.entities,
        )
        active = self._find_incident(match, subject, now)
        if match.query is not None:
            first_seen = (active.first_seen if active else None) or match.window_start
            post_count = self.posts.count(match.query.model_copy(update={"since": first_seen}))
        if top_posts:
            match = self._regrade(match, top_posts, post_count)
        ticket_links = ticket_links_of(match)
        if not ticket_links and active is None and top_posts:
            ticket_links = self._related_tickets(top_posts)

        change = apply_match(
            active,
            match,
            now=now,
            window_count=match.count,
            post_count=post_count,
            post_ids=[p.id for p in top_posts],
            sources=sources,
            ticket_links=ticket_links,
            subject=subject,
        )
        # Shown on the incident (dashboard, CLI); the policy below holds the messages.
        silence = self.policy.silence_for(change.incident, now, self.state)
        held = change.incident.model_copy(
            update={"silenced_by": None if silence is None else silence.id}
        )
        incident = self.state.save_incident(held)
        alert = self._record(replace(change, incident=incident), match, now)

        store: EscalationStore = self.state  # type: ignore[assignment]
        queued = self.policy.sync(
            store,
            incident,
            now,
            evidence=Evidence(
                top_posts=top_posts,
                reason=match.reason,
                window=(match.window_start, match.window_end),
            ),
        )
        if queued:
            logger.info(
                "queued %d notification(s) for incident #%s grade %s",
                queued,
                incident.id,
                incident.grade.value,
            )
        return alert

    def _find_incident(self, match: Match, subject: Subject, now: datetime) -> Incident | None:
        """The active incident ``match`` belongs to (:mod:`alerts.incidents` grouping policy).

        Its own ``(rule, key)`` incident, else the active incident it joined
        before, else (grouping enabled) an active incident about the same
        subject updated within ``grouping.join_minutes``; ``None`` opens a new one.
        """
        own = self.state.find_active_incident(match.rule, match.key)
        if own is not None:
            return own
        active = self.state.list_incidents(
            status=[IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED], limit=GROUP_SCAN
        )
        member = member_key(match.rule, match.key)
        for incident in active:
            if member in incident.members:
                return incident
        if not self.grouping.enabled:
            return None
        found = find_group(
            active,
            subject,
            now=now,
            join_window=timedelta(minutes=self.grouping.join_minutes),
        )
        if found is not None:
            logger.info(
                "rule=%s key=%s joins incident #%s (entity=%s topic=%s)",
                match.rule,
                match.key,
                found.id,
                found.entity,
                found.topic,
            )
        return found

    def _related_tickets(self, top_posts: Sequence[Post]) -> list[dict[str, Any]]:
        """The complaint tickets most likely behind a new incident of a post rule.

        Ranked by :func:`alerts.tickets.linking.rank_tickets` against the window's
        posts; the best :data:`LINK_TICKETS` scoring at least ``link_min_score``.
        Needs the watchlist (without it nothing is linked). Best effort: a failed
        ticket read is logged and the incident opens without links.
        """
        if self.watchlist is None:
            return []
        case = profile_posts(top_posts, self.watchlist)
        params = LinkParams(min_score=self.link_min_score)
        try:
            tickets = self.state.list_tickets(
                since=case.start - params.lookback,
                until=case.end + params.lookahead,
                limit=LINK_SCAN,
            )
        except StoreError as exc:
            logger.warning("could not read tickets to link to a new incident: %s", exc)
            return []
        links = rank_tickets(case, tickets, self.watchlist, params=params, limit=LINK_TICKETS)
        return [
            {"ticket_id": link.ticket_id, "score": link.score, "reasons": list(link.reasons)}
            for link in links
        ]

    def _regrade(self, match: Match, top_posts: Sequence[Post], post_count: int | None) -> Match:
        """Raise ``match.grade`` by what the evidence shows (reach, media, signals, volume).

        The rule graded its own numbers; the incident's total posts and the
        posts of the window may justify more (never less). When they do, the
        grader's Chinese reasons are appended to the match's reason.
        """
        window_minutes = None
        if match.window_start is not None and match.window_end is not None:
            window_minutes = int((match.window_end - match.window_start).total_seconds() // 60)
        graded = grade(
            factors_from_posts(
                top_posts,
                count=max(post_count or 0, match.count),
                window_minutes=window_minutes,
                window_count=match.count,
            ),
            self.thresholds,
        )
        if graded.grade.severity <= match.grade.severity:
            return match
        return replace(
            match,
            grade=graded.grade,
            reason=f"{match.reason}；定级依据：{graded.reason_text}",
            metrics={**match.metrics, "evidence_grade": graded.grade.value},
        )

    def _record(self, change: IncidentChange, match: Match, now: datetime) -> Alert | None:
        incident = change.incident
        event = change.event
        if event is None:
            logger.info(
                "rule=%s still matching incident=#%s (%s)", match.rule, incident.id, match.reason
            )
            return None
        details: dict[str, Any] = {
            "event": event,
            "key": match.key,
            "metrics": dict(match.metrics),
            "window_start": match.window_start.isoformat() if match.window_start else None,
            "window_end": match.window_end.isoformat() if match.window_end else None,
            "post_ids": incident.post_ids[:10],
        }
        if match.ticket_ids:
            details["ticket_ids"] = list(match.ticket_ids[:50])
        if len(incident.rules) > 1:
            details["rules"] = list(incident.rules)
        if change.previous_grade is not None:
            details["previous_grade"] = change.previous_grade.value
        alert = self.state.add_alert(
            Alert(
                incident_id=incident.id,
                rule=match.rule,
                grade=incident.grade,
                created_at=now,
                summary=match.reason,
                details=details,
            )
        )
        logger.warning(
            "ALERT %s incident=#%s rule=%s key=%s grade=%s(%s) %s",
            event,
            incident.id,
            match.rule,
            match.key,
            incident.grade.value,
            incident.grade.label_zh,
            match.reason,
            extra={
                "alert_event": event,
                "incident_id": incident.id,
                "rule": match.rule,
                "grade": incident.grade.value,
                "metrics": dict(match.metrics),
            },
        )
        return alert

    def _dry_run_alert(self, match: Match, now: datetime) -> Alert:
        logger.warning(
            "ALERT [dry-run, nothing recorded] rule=%s key=%s grade=%s %s",
            match.rule,
            match.key,
            match.grade.value,
            match.reason,
            extra={"alert_event": "dry_run", "rule": match.rule, "grade": match.grade.value},
        )
        return Alert(
            rule=match.rule,
            grade=match.grade,
            created_at=now,
            summary=match.reason,
            details={"dry_run": True, "key": match.key, "metrics": dict(match.metrics)},
        )

    def _audit_failures(self, failures: dict[str, BaseException]) -> None:
        for name, exc in failures.items():
            try:
                self.state.audit(
                    actor="detector",
                    action="detection_failed",
                    target=f"rule:{name}",
                    detail=f"{type(exc).__name__}: {exc}",
                )
            except Exception:
                # The state store may be the thing that is down; the ERROR log
                # line above and the raised DetectionFailed still report it.
                logger.exception(
                    "could not write detection failure of rule=%s to the audit log", name
                )
