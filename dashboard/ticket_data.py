"""Types and pure helpers behind the dashboard's complaint-ticket views (issue 7). No Streamlit.

:class:`dashboard.data.DashboardData` reads the stores (its ``# tickets``
block) and builds these; :mod:`dashboard.ticket_views` and
:mod:`dashboard.pages.tickets` show them.

The dashboard may not import ``alerts``, where ticket linking and problem
promotion live; ``yuqing.bootstrap`` hands :class:`DashboardData` an object
with the :class:`TicketDesk` shape (``alerts.tickets.problems.TicketDesk``).
The state store's problem records are read through :class:`ProblemLog`
(``SqlStateStore`` has it), a Protocol local to the dashboard so the big
``StateStore`` port stays as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import pandas as pd

from core.models import Ticket
from storage.state import Problem

if TYPE_CHECKING:
    from dashboard.data import FeedItem

TICKET_SCAN = 5000
"""Tickets read for one view of the tickets page; at the cap the page says it is capped."""

INCIDENT_SCAN = 500
"""Newest incidents searched for the links of one ticket."""

PROBLEM_EVENTS_ZH = {
    "problem_promote": "升级为问题单",
    "problem_status": "状态变更",
    "problem_tickets": "增加工单",
    "problem_ticket_status": "工单状态同步",
}
"""Audit actions on ``problem:<id>`` as the problem's history shows them."""

TICKET_COLUMNS = [
    "ticket_id",
    "local_time",
    "channel",
    "branch",
    "product",
    "category",
    "priority",
    "status",
    "closed",
    "summary",
]


class TicketLinkLike(Protocol):
    """A ticket ranked for an incident (``alerts.tickets.linking.TicketLink``)."""

    @property
    def ticket_id(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def reasons(self) -> list[str]: ...


class PostLinkLike(Protocol):
    """A post ranked for a ticket (``alerts.tickets.linking.PostLink``)."""

    @property
    def post_id(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def reasons(self) -> list[str]: ...


class TicketDesk(Protocol):
    """Ticket linking and problem promotion, injected by ``yuqing.bootstrap``.

    Every method lets store errors through (``StoreUnavailable`` when down).
    """

    @property
    def closed_statuses(self) -> frozenset[str]: ...

    def incident_links(self, incident_id: int, *, limit: int = 10) -> Sequence[TicketLinkLike]:
        """Tickets ranked live for the incident; ``KeyError`` for an unknown incident."""
        ...

    def ticket_posts(self, ticket_id: str, *, limit: int = 10) -> Sequence[PostLinkLike]:
        """Posts most likely about the ticket's case; ``KeyError`` for an unknown ticket."""
        ...

    def promote(self, incident_id: int, *, user: str, team: str = ..., owner: str = "") -> Problem:
        """Promote the incident and its tickets; ``QueryError`` (with the reason) if it cannot."""
        ...


@runtime_checkable
class ProblemLog(Protocol):
    """Optional StateStore extension (``SqlStateStore`` has it): tickets by id and problems."""

    def get_ticket(self, ticket_id: str) -> Ticket | None: ...

    def list_problems(
        self, *, status: Sequence[str] | None = None, limit: int = 200
    ) -> list[Problem]: ...

    def get_problem_for_incident(self, incident_id: int) -> Problem | None: ...

    def set_problem_status(
        self, problem_id: int, status: str, *, actor: str, note: str = ""
    ) -> Problem: ...


@dataclass(frozen=True)
class TicketList:
    """Tickets of a time window after the filters, and what the filters can choose from."""

    frame: pd.DataFrame
    """Columns :data:`TICKET_COLUMNS`, newest first; ``summary`` masked."""
    in_window: int
    """Tickets in the window before the filters (at most :data:`TICKET_SCAN`)."""
    capped: bool
    """The window holds more than :data:`TICKET_SCAN` tickets: only the newest were read."""
    options: dict[str, list[str]] = field(default_factory=dict)
    """Distinct values per filter (branch, product, status, channel) in the window."""


@dataclass(frozen=True)
class LinkedPost:
    """A public post likely about a ticket's case, ready to show, with its score and why."""

    item: FeedItem
    score: float
    reasons: list[str]


@dataclass(frozen=True)
class TicketDetail:
    """One ticket with where it leads: incidents that link it, its problems, likely posts."""

    ticket: Ticket
    """Summary and customer reference masked."""
    local_time: str
    incidents: pd.DataFrame
    """Columns id, grade, status_zh, title, score, reasons — incidents that link the ticket."""
    problems: list[Problem]
    posts: list[LinkedPost] | None
    """``None`` when no ticket desk is wired (the page says so), else best first."""
    posts_gone: int = 0
    """Linked posts the post store no longer has."""


@dataclass(frozen=True)
class IncidentTickets:
    """The complaint tickets linked to one incident, for the incident room."""

    frame: pd.DataFrame
    """Columns ticket_id, score, same (product/branch/topic), time_gap, words, status,
    branch, product, local_time, summary — best first."""
    source: str
    """``stored`` (linked when the incident opened), ``live`` (ranked now) or ``none``."""
    problem: Problem | None
    can_promote: bool
    """A ticket desk is wired, so the promote button can work."""


def split_reasons(reasons: Iterable[str]) -> dict[str, str]:
    """Group linking reasons for display: same product/branch/topic, time gap, shared words.

    The linking engine writes them as ``同一产品：…``, ``同一网点：…``,
    ``同一主题：…``, ``时间相差 …`` and ``共同词：…``; anything else goes to
    ``other``.
    """
    parts: dict[str, list[str]] = {"same": [], "time_gap": [], "words": [], "other": []}
    for reason in reasons:
        if reason.startswith("同一"):
            parts["same"].append(reason)
        elif reason.startswith("时间相差"):
            parts["time_gap"].append(reason.removeprefix("时间相差").strip())
        elif reason.startswith("共同词："):
            parts["words"].append(reason.removeprefix("共同词："))
        else:
            parts["other"].append(reason)
    return {k: "；".join(v) for k, v in parts.items()}


def filter_options(tickets: Sequence[Ticket]) -> dict[str, list[str]]:
    """Distinct non-empty branch, product, status and channel values, sorted."""
    return {
        name: sorted({getattr(t, name) for t in tickets if getattr(t, name)})
        for name in ("branch", "product", "status", "channel")
    }


def is_closed(status: str, closed_statuses: Iterable[str]) -> bool:
    """Whether a ticket status means closed (case and surrounding spaces ignored)."""
    return status.strip().lower() in {s.strip().lower() for s in closed_statuses}
