"""Complaint-ticket surge: tickets for one product or branch rise together.

Counts the complaint tickets (by ``created_at``) of each group — the
ticket's ``product`` and/or ``branch`` as written by the complaint system,
per ``group_by`` — in the current window of ``window_minutes`` and compares
them with the mean per window of a baseline: the ``baseline_windows``
same-length windows just before it, or, with ``baseline_days`` > 0, the same
clock window on each of the past N days. Baseline windows that overlap a
past incident of this rule are left out. A group matches when it has at
least ``min_count`` tickets and ``count / max(baseline, 1) >= ratio`` (the
floor at one ticket per window keeps "0 → 2" from being infinite; the
``min_count`` floor still has to be met).

Matches are keyed ``tickets:product:<name>`` / ``tickets:branch:<name>`` (one
incident per group) and carry the ids of the window's tickets: the incident
starts with them linked (``Incident.ticket_links``).

Grading (:mod:`alerts.grading`): the tickets count as volume (``count``) and
``ratio / threshold`` as velocity, like a post spike; a ticket forwarded by
a regulator (channel ``regulator…``/``监管…``) counts as regulator involvement.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from alerts.grading import GradeFactors, grade
from alerts.rules.base import Match, TicketRule, TicketSource, Window, overlaps, register_rule
from alerts.rules.volume_spike import floor_time
from core.models import Ticket
from core.settings import TicketSurgeRule

logger = logging.getLogger(__name__)

BASELINE_FLOOR = 1.0
"""The baseline mean is taken as at least one ticket per window."""
GROUP_LABELS_ZH = {"product": "产品", "branch": "网点"}


def window_text(minutes: int) -> str:
    """``2小时`` for whole hours, else ``90分钟``."""
    return f"{minutes // 60}小时" if minutes % 60 == 0 else f"{minutes}分钟"


def is_regulator_channel(channel: str) -> bool:
    """True for tickets forwarded by a regulator (``regulator``, ``regulator-forwarded``, 监管…)."""
    return "regulator" in channel.lower() or "监管" in channel


def ticket_groups(ticket: Ticket, group_by: str) -> list[str]:
    """The group keys (``product:<name>``, ``branch:<name>``) of ``ticket``; blanks are skipped."""
    fields = ("product", "branch") if group_by == "both" else (group_by,)
    keys = []
    for name in fields:
        value = str(getattr(ticket, name)).strip()
        if value:
            keys.append(f"{name}:{value}")
    return keys


@register_rule
class TicketSurge(TicketRule[TicketSurgeRule]):
    """Tickets per product/branch in the window vs their baseline (see module docstring)."""

    type = "ticket_surge"
    options = TicketSurgeRule

    def decide(
        self,
        current: Mapping[str, Sequence[str]],
        baseline: Mapping[str, float],
        *,
        regulator: Mapping[str, bool] | None = None,
    ) -> list[Match]:
        """``current``: group key → ticket ids of the window; ``baseline``: group key → mean
        tickets per baseline window; ``regulator``: groups with a regulator-forwarded ticket.
        One match per surging group, largest ratio first (ties by key). Pure."""
        cfg = self.config
        matches: list[Match] = []
        for group, ids in current.items():
            count = len(ids)
            if count < cfg.min_count:
                continue
            base = baseline.get(group, 0.0)
            observed = count / max(base, BASELINE_FLOOR)
            if observed < cfg.ratio:
                continue
            kind, _, name = group.partition(":")
            graded = grade(
                GradeFactors(
                    count=count,
                    velocity=observed / cfg.ratio,
                    regulator=bool(regulator and regulator.get(group)),
                ),
                self.thresholds,
            )
            span = window_text(cfg.window_minutes)
            label = GROUP_LABELS_ZH.get(kind, kind)
            reason = (
                f"{span}内 {name} 工单 {count} 张，基线 {base:.1f} 张 ({observed:.1f}×) / "
                f"{count} tickets for {kind} {name} in {cfg.window_minutes} min vs baseline "
                f"{base:.1f} ({observed:.1f}×)"
            )
            if graded.reasons:
                reason += f"；定级依据：{graded.reason_text}"
            matches.append(
                Match(
                    rule=cfg.name,
                    rule_type=self.type,
                    grade=graded.grade,
                    title=f"投诉工单激增：{name}",
                    reason=reason,
                    key=f"tickets:{group}",
                    count=count,
                    entities=(name,),
                    metrics={
                        "group_by": kind,
                        "group": name,
                        "tickets": count,
                        "baseline": round(base, 3),
                        "ratio": round(observed, 3),
                        "threshold_ratio": cfg.ratio,
                        "window_minutes": cfg.window_minutes,
                        "grade_score": graded.score,
                    },
                    ticket_ids=tuple(sorted(ids)),
                    ticket_reasons=(
                        f"同一{label}：{name}",
                        f"{span}内工单激增（{count} 张，{observed:.1f}×基线）",
                    ),
                )
            )
        matches.sort(key=lambda m: (-float(m.metrics["ratio"]), m.key))
        return matches

    def baseline_windows(
        self, start: datetime, end: datetime, exclude: Sequence[Window]
    ) -> list[Window]:
        """The baseline windows of the window ``[start, end)``, without past incidents'."""
        cfg = self.config
        if cfg.baseline_days > 0:
            steps = [timedelta(days=d) for d in range(1, cfg.baseline_days + 1)]
        else:
            width = end - start
            steps = [width * i for i in range(1, cfg.baseline_windows + 1)]
        windows = [(start - step, end - step) for step in steps]
        return [(s, e) for s, e in windows if not overlaps(s, e, exclude)]

    def evaluate_tickets(
        self, tickets: TicketSource, now: datetime, *, exclude: Sequence[Window] = ()
    ) -> list[Match]:
        """Read the window's tickets, then (only if a group meets the floor) the baseline's;
        then :meth:`decide`. Store errors propagate."""
        cfg = self.config
        end = floor_time(now, 60)
        start = end - timedelta(minutes=cfg.window_minutes)
        window = tickets.list_tickets(since=start, until=end, limit=cfg.max_tickets)
        if len(window) >= cfg.max_tickets:
            logger.warning(
                "rule=%s: %d tickets in the window, only the newest are counted",
                cfg.name,
                cfg.max_tickets,
            )
        current: dict[str, list[str]] = defaultdict(list)
        regulator: dict[str, bool] = defaultdict(bool)
        for ticket in window:
            for group in ticket_groups(ticket, cfg.group_by):
                current[group].append(ticket.ticket_id)
                regulator[group] |= is_regulator_channel(ticket.channel)
        if not any(len(ids) >= cfg.min_count for ids in current.values()):
            return []  # the floor cannot be met: spare the store the baseline query
        windows = self.baseline_windows(start, end, exclude)
        baseline: dict[str, float] = {}
        if windows:
            past = tickets.list_tickets(
                since=min(s for s, _ in windows),
                until=max(e for _, e in windows),
                limit=cfg.max_tickets,
            )
            totals: dict[str, int] = defaultdict(int)
            for ticket in past:
                if not any(s <= ticket.created_at < e for s, e in windows):
                    continue
                for group in ticket_groups(ticket, cfg.group_by):
                    totals[group] += 1
            baseline = {g: n / len(windows) for g, n in totals.items()}
        return [
            replace(m, window_start=start, window_end=end)
            for m in self.decide(current, baseline, regulator=regulator)
        ]
