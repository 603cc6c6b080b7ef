"""Pure rules of problem records: flags, the suggested status, and stores without problems."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts.tickets.problems import (
    ProblemError,
    ProblemTicketSync,
    problem_store,
    suggestion,
    sync_flags,
)
from storage.state import Problem

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CLOSED = ("已办结", "closed")


def problem(
    status: str = "open", statuses: dict[str, str] | None = None, incident: str | None = "open"
) -> Problem:
    statuses = {"T1": "待处理", "T2": "处理中"} if statuses is None else statuses
    return Problem(
        id=1,
        incident_id=7,
        title="t",
        owner_team="投诉处理组",
        owner_user="",
        status=status,
        created_at=T0,
        updated_at=T0,
        created_by="a",
        ticket_ids=["T1", "T2"],
        ticket_statuses=statuses,
        incident_status=incident,
    )


def test_nothing_to_flag_while_the_incident_and_tickets_are_open() -> None:
    p = problem()
    assert sync_flags(p, CLOSED) == [] and suggestion(p, CLOSED) is None


def test_a_resolved_incident_is_flagged_and_resolving_suggested() -> None:
    p = problem(incident="resolved")
    assert sync_flags(p, CLOSED) == ["事件已解决"]
    assert suggestion(p, CLOSED) == "resolved"


def test_all_tickets_closed_is_flagged_case_insensitively() -> None:
    p = problem(status="investigating", statuses={"T1": "已办结", "T2": " CLOSED "})
    assert sync_flags(p, CLOSED) == ["工单已全部办结"]
    assert suggestion(p, CLOSED) == "resolved"


def test_a_missing_ticket_keeps_the_problem_open() -> None:
    p = problem(statuses={"T1": "已办结"})
    assert p.open_ticket_ids(CLOSED) == ["T2"] and sync_flags(p, CLOSED) == []


@pytest.mark.parametrize("status", ["resolved", "closed"])
def test_no_suggestion_once_the_team_resolved_or_closed_it(status: str) -> None:
    p = problem(status=status, incident="resolved", statuses={"T1": "已办结", "T2": "已办结"})
    assert sync_flags(p, CLOSED) == ["事件已解决", "工单已全部办结"]
    assert suggestion(p, CLOSED) is None


class NoProblems:
    """A state store that keeps tickets but no problem records (e.g. an older fake)."""

    def upsert_tickets(self, tickets: object) -> int:
        return 0


def test_a_store_without_problem_records() -> None:
    store = NoProblems()
    sync = ProblemTicketSync.before(store, ["T1"], CLOSED)  # type: ignore[arg-type]
    assert sync.record(actor="push") == 0
    with pytest.raises(ProblemError, match="does not keep problem records"):
        problem_store(store)  # type: ignore[arg-type]
