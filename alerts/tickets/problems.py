"""Problem records: an incident and its complaint tickets, promoted to one problem.

The complaint team owns a problem (``owner_team``, optionally ``owner_user``)
and moves it through ``open → investigating → resolved → closed``
(:data:`storage.state.PROBLEM_STATUSES`). The record lives in the state
database (``problems`` table, one per incident); this module holds the rules
around it.

How the problem is kept in sync (decisions, see ``docs/tickets.md``):

* **Ticket statuses** are never copied into the problem: the store reads them
  from the tickets table with the problem, so a ticket pushed to the endpoint
  or re-imported with a new status shows on the problem at once. Each such
  status change of a problem's ticket is also written to the problem's audit
  history (``problem_ticket_status`` on ``problem:<id>``) by
  :class:`ProblemTicketSync`, used by the push endpoint and the importer.
* **The incident resolves → the problem is flagged, not changed.** The
  problem shows "事件已解决" and a suggestion to resolve it. Public attention
  fading is not the same as the customers' complaints being handled, and the
  problem belongs to the complaint team: only a person changes its status.
* **All tickets closed → flagged the same way** ("工单已全部办结"). Which
  statuses mean closed is ``tickets.closed_statuses``.
* **Every status change is audited** (``problem_status`` with actor, old → new
  and the note) by :meth:`storage.state.SqlStateStore.set_problem_status`.

Promotion takes the tickets stored on the incident (``Incident.ticket_links``,
set by the detector); an incident without stored links is linked live
(:func:`alerts.tickets.linking.link_incident`, keeping links scoring at least
:data:`LIVE_LINK_MIN_SCORE` and :data:`LIVE_LINK_RELATIVE` of the best).
Promoting an incident that already is a problem adds its newly linked tickets
to that problem.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from alerts.tickets.linking import PostLink, TicketLink, link_incident, posts_for_ticket
from core.errors import QueryError
from core.models import Incident, Ticket
from core.ports import PostStore, StateStore
from core.settings import Watchlist
from storage.state import Problem

logger = logging.getLogger(__name__)

DEFAULT_TEAM = "投诉处理组"
"""The owner team of a promoted problem when none is given."""

LIVE_LINK_MIN_SCORE = 0.4
"""Live links (for an incident with none stored) must score at least this: the same
floor the detector uses when it links tickets to a new incident."""


LIVE_LINK_RELATIVE = 0.8
"""…and at least this share of the best live score. Unrelated tickets (same branch,
another product; same product, another week) start below a clear gap under the
true ones: on the shipped labelled set the best wrong ticket of each incident
scores at most 0.79 of the best, the true ones at least 0.87 (chosen on that
set: see ``docs/tickets.md``)."""

_PROBLEM_SCAN = 5000


class ProblemError(QueryError):
    """A problem cannot be promoted or changed as asked (the message says why)."""


@runtime_checkable
class ProblemStore(Protocol):
    """The part of the state store problem records need (``SqlStateStore`` has it)."""

    def get_incident(self, incident_id: int) -> Incident | None: ...

    def get_ticket(self, ticket_id: str) -> Ticket | None: ...

    def create_problem(
        self,
        incident_id: int,
        *,
        title: str,
        owner_team: str,
        ticket_ids: Sequence[str],
        actor: str,
        owner_user: str = "",
    ) -> Problem: ...

    def get_problem(self, problem_id: int) -> Problem | None: ...

    def get_problem_for_incident(self, incident_id: int) -> Problem | None: ...

    def list_problems(
        self, *, status: Sequence[str] | None = None, limit: int = 200
    ) -> list[Problem]: ...

    def set_problem_status(
        self, problem_id: int, status: str, *, actor: str, note: str = ""
    ) -> Problem: ...

    def add_problem_tickets(
        self, problem_id: int, ticket_ids: Sequence[str], *, actor: str
    ) -> Problem: ...

    def audit(self, *, actor: str, action: str, target: str, detail: str = "") -> None: ...


def problem_store(state: StateStore) -> ProblemStore:
    """``state`` as a :class:`ProblemStore`; ``ProblemError`` if it keeps no problems."""
    if not isinstance(state, ProblemStore):
        raise ProblemError(f"the state store {state!r} does not keep problem records")
    return state


@dataclass(frozen=True)
class Promotion:
    """What :func:`promote_incident` did: the problem, whether it is new, and the tickets."""

    problem: Problem
    created: bool
    added: list[str] = field(default_factory=list)
    """Ticket ids added to an existing problem (empty when created or nothing new)."""
    source: Literal["stored", "live"] = "stored"
    """Where the ticket ids came from: the incident's stored links or live linking."""


def linked_ticket_ids(
    incident: Incident,
    posts: PostStore | None,
    state: StateStore,
    watchlist: Watchlist | None,
    *,
    min_score: float = LIVE_LINK_MIN_SCORE,
) -> tuple[list[str], Literal["stored", "live"]]:
    """The tickets linked to ``incident``, best first, and where they came from.

    The incident's stored ``ticket_links`` when it has any; else the live
    ranking (when ``posts`` and ``watchlist`` are given) keeping the links
    scoring at least ``min_score`` and :data:`LIVE_LINK_RELATIVE` of the best
    (at most 10). Store errors propagate.
    """
    stored = [str(link["ticket_id"]) for link in incident.ticket_links if link.get("ticket_id")]
    if stored or posts is None or watchlist is None or incident.id is None:
        return list(dict.fromkeys(stored)), "stored"
    links = live_links(incident.id, posts, state, watchlist, min_score=min_score)
    return [link.ticket_id for link in links], "live"


def live_links(
    incident_id: int,
    posts: PostStore,
    state: StateStore,
    watchlist: Watchlist,
    *,
    min_score: float = LIVE_LINK_MIN_SCORE,
    limit: int = 10,
) -> list[TicketLink]:
    """Tickets ranked now for the incident, kept as promotion keeps them, best first.

    Links scoring at least ``min_score`` and :data:`LIVE_LINK_RELATIVE` of the
    best. ``KeyError`` for an unknown incident; store errors propagate.
    """
    links = link_incident(incident_id, posts, state, watchlist, limit=limit)
    floor = max(min_score, LIVE_LINK_RELATIVE * links[0].score) if links else min_score
    return [link for link in links if link.score >= floor]


def promote_incident(
    incident_id: int,
    *,
    state: StateStore,
    posts: PostStore | None,
    watchlist: Watchlist | None,
    user: str,
    team: str = DEFAULT_TEAM,
    owner: str = "",
) -> Promotion:
    """Promote incident ``incident_id`` and its linked tickets to a problem (see the module doc).

    Idempotent per incident: a second promotion returns the existing problem
    with any newly linked tickets added. Raises ``ProblemError`` for an
    unknown incident, an incident without linked tickets, a blank ``user``, or
    a state store without problem records; store errors propagate.
    """
    store = problem_store(state)
    if not user.strip():
        raise ProblemError("a user is required to promote an incident (written to the audit log)")
    incident = store.get_incident(incident_id)
    if incident is None:
        raise ProblemError(f"no incident {incident_id}")
    ids, source = linked_ticket_ids(incident, posts, state, watchlist)
    existing = store.get_problem_for_incident(incident_id)
    if existing is not None:
        new = [t for t in ids if t not in existing.ticket_ids]
        problem = store.add_problem_tickets(existing.id, new, actor=user) if new else existing
        return Promotion(problem, created=False, added=new, source=source)
    if not ids:
        raise ProblemError(
            f"incident {incident_id} has no linked complaint tickets "
            "(none stored, none scoring high enough when linked now): nothing to promote"
        )
    problem = store.create_problem(
        incident_id,
        title=incident.title,
        owner_team=team.strip() or DEFAULT_TEAM,
        owner_user=owner,
        ticket_ids=ids,
        actor=user,
    )
    logger.info("incident %s promoted to problem %s by %s", incident_id, problem.id, user)
    return Promotion(problem, created=True, source=source)


def sync_flags(problem: Problem, closed_statuses: Iterable[str]) -> list[str]:
    """The Chinese flags a problem shows: what changed around it that its owner should see."""
    flags = []
    if problem.incident_resolved:
        flags.append("事件已解决")
    if problem.all_tickets_closed(closed_statuses):
        flags.append("工单已全部办结")
    return flags


def suggestion(problem: Problem, closed_statuses: Iterable[str]) -> str | None:
    """A suggested next status for a still-active problem whose incident and tickets say so.

    ``"resolved"`` when the problem is open or investigating and its incident is
    resolved or all its tickets are closed; else ``None``. Never applied
    automatically (see the module doc).
    """
    if problem.status not in ("open", "investigating"):
        return None
    if problem.incident_resolved or problem.all_tickets_closed(closed_statuses):
        return "resolved"
    return None


class ProblemTicketSync:
    """Audits status changes of problems' tickets around a ticket write (push, import).

    Build it with the ids about to be written (:meth:`before`), write the
    tickets, then call :meth:`record`: each problem holding a ticket whose
    status changed gets one ``problem_ticket_status`` audit entry naming the
    changes, and saying so when that closed the problem's last open ticket.
    A state store without problem records makes both steps no-ops.
    """

    def __init__(
        self,
        store: ProblemStore | None,
        snapshot: dict[int, dict[str, str]],
        closed_statuses: Collection[str],
    ) -> None:
        self._store = store
        self._snapshot = snapshot
        self._closed = closed_statuses

    @classmethod
    def before(
        cls, state: StateStore, ticket_ids: Iterable[str], closed_statuses: Collection[str]
    ) -> ProblemTicketSync:
        """Snapshot the statuses of the problems' tickets among ``ticket_ids``."""
        if not isinstance(state, ProblemStore):
            return cls(None, {}, closed_statuses)
        wanted = set(ticket_ids)
        snapshot = {
            p.id: dict(p.ticket_statuses)
            for p in state.list_problems(limit=_PROBLEM_SCAN)
            if wanted.intersection(p.ticket_ids)
        }
        return cls(state, snapshot, closed_statuses)

    def record(self, *, actor: str) -> int:
        """Audit the changes since :meth:`before`; returns how many problems had changes."""
        if self._store is None:
            return 0
        changed = 0
        for problem_id, old in self._snapshot.items():
            problem = self._store.get_problem(problem_id)
            if problem is None:
                continue
            moves = [
                f"{t}: {old.get(t) or '（无）'} → {problem.ticket_statuses[t] or '（空）'}"
                for t in problem.ticket_ids
                if t in problem.ticket_statuses and problem.ticket_statuses[t] != old.get(t)
            ]
            if not moves:
                continue
            detail = "; ".join(moves)
            closed = {c.strip().lower() for c in self._closed}
            was_closed = all(
                t in old and old[t].strip().lower() in closed for t in problem.ticket_ids
            )
            if problem.all_tickets_closed(self._closed) and not was_closed:
                detail += "；工单已全部办结，建议更新问题单状态"
            self._store.audit(
                actor=actor,
                action="problem_ticket_status",
                target=f"problem:{problem_id}",
                detail=detail,
            )
            changed += 1
        return changed


class TicketDesk:
    """Ticket linking and problem promotion for the dashboard (injected by ``yuqing.bootstrap``).

    The dashboard may not import ``alerts``; it receives this object and
    uses it through a Protocol of its own (``dashboard.data.TicketDesk``).
    """

    def __init__(
        self,
        posts: PostStore,
        state: StateStore,
        watchlist: Watchlist,
        closed_statuses: Iterable[str],
    ) -> None:
        self._posts = posts
        self._state = state
        self._watchlist = watchlist
        self.closed_statuses = frozenset(closed_statuses)

    def incident_links(self, incident_id: int, *, limit: int = 10) -> list[TicketLink]:
        """Tickets ranked live for the incident (:func:`live_links`: the ones a promotion
        would take), best first. ``KeyError`` if it is unknown."""
        return live_links(incident_id, self._posts, self._state, self._watchlist, limit=limit)

    def ticket_posts(self, ticket_id: str, *, limit: int = 10) -> list[PostLink]:
        """Posts most likely about the ticket's case, best first. ``KeyError`` if it is unknown."""
        ticket = problem_store(self._state).get_ticket(ticket_id)
        if ticket is None:
            raise KeyError(f"no ticket {ticket_id}")
        return posts_for_ticket(ticket, self._posts, self._watchlist, limit=limit)

    def promote(
        self, incident_id: int, *, user: str, team: str = DEFAULT_TEAM, owner: str = ""
    ) -> Problem:
        """:func:`promote_incident` for the dashboard; returns the (new or existing) problem."""
        return promote_incident(
            incident_id,
            state=self._state,
            posts=self._posts,
            watchlist=self._watchlist,
            user=user,
            team=team,
            owner=owner,
        ).problem
