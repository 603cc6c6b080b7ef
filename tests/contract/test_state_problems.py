"""The StateStore's problem records (issue 7) and get_ticket, on SQLite and PostgreSQL.

PostgreSQL runs when YUQING_TEST_PG_URL is set (see ``conftest.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.errors import QueryError
from core.models import Incident, Ticket
from core.vocab import Grade
from storage.state import PROBLEM_STATUSES, SqlStateStore

T0 = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)
CLOSED = ("已办结", "closed")


def _incident(store: SqlStateStore, key: str = "product:澜海稳盈3号") -> int:
    saved = store.save_incident(
        Incident(rule="tickets", key=key, title=f"投诉工单激增（{key}）", grade=Grade.III)
    )
    assert saved.id is not None
    return saved.id


def _tickets(store: SqlStateStore, *ids: str, status: str = "待处理") -> None:
    store.upsert_tickets(
        [
            Ticket(ticket_id=t, created_at=T0 + timedelta(minutes=i), status=status)
            for i, t in enumerate(ids)
        ]
    )


@pytest.fixture
def store(state_store: Any) -> SqlStateStore:
    assert isinstance(state_store, SqlStateStore)
    return state_store


def test_get_ticket(store: SqlStateStore) -> None:
    _tickets(store, "TS-1")
    got = store.get_ticket("TS-1")
    assert got is not None and got.ticket_id == "TS-1" and got.status == "待处理"
    assert got.created_at == T0 and got.created_at.tzinfo is not None
    assert store.get_ticket("TS-404") is None


def test_create_problem_round_trip_and_audit(store: SqlStateStore, clock: Any) -> None:
    incident_id = _incident(store)
    _tickets(store, "TS-1", "TS-2")
    problem = store.create_problem(
        incident_id,
        title="投诉工单激增（澜海稳盈3号）",
        owner_team="投诉处理组",
        owner_user="li",
        ticket_ids=["TS-1", "TS-2", "TS-1", " "],
        actor="ana",
    )
    assert problem.id > 0 and problem.incident_id == incident_id
    assert (problem.status, problem.owner_team, problem.owner_user) == ("open", "投诉处理组", "li")
    assert problem.ticket_ids == ["TS-1", "TS-2"]  # de-duplicated, order kept, blanks dropped
    assert problem.ticket_statuses == {"TS-1": "待处理", "TS-2": "待处理"}
    assert problem.incident_status == "open" and not problem.incident_resolved
    assert problem.created_at == clock.now == problem.updated_at
    assert store.get_problem(problem.id) == problem
    assert store.get_problem_for_incident(incident_id) == problem
    assert store.get_problem(problem.id + 100) is None
    assert store.get_problem_for_incident(incident_id + 100) is None
    [entry] = store.list_audit(target=f"problem:{problem.id}")
    assert (entry.action, entry.actor) == ("problem_promote", "ana")
    assert "TS-1, TS-2" in entry.detail and "投诉处理组/li" in entry.detail
    [on_incident] = store.list_audit(target=f"incident:{incident_id}")
    assert on_incident.action == "promote" and f"problem {problem.id}" in on_incident.detail


def test_one_problem_per_incident(store: SqlStateStore) -> None:
    incident_id = _incident(store)
    first = store.create_problem(
        incident_id, title="t", owner_team="投诉处理组", ticket_ids=["TS-1"], actor="ana"
    )
    with pytest.raises(QueryError, match=f"already problem {first.id}"):
        store.create_problem(
            incident_id, title="t", owner_team="投诉处理组", ticket_ids=["TS-2"], actor="ana"
        )
    assert [p.id for p in store.list_problems()] == [first.id]


def test_create_problem_refuses_bad_input(store: SqlStateStore) -> None:
    incident_id = _incident(store)
    with pytest.raises(QueryError, match="unknown incident"):
        store.create_problem(
            incident_id + 9, title="t", owner_team="投诉处理组", ticket_ids=["TS-1"], actor="a"
        )
    with pytest.raises(QueryError, match="no linked complaint tickets"):
        store.create_problem(
            incident_id, title="t", owner_team="投诉处理组", ticket_ids=[" "], actor="a"
        )
    with pytest.raises(QueryError, match="actor"):
        store.create_problem(
            incident_id, title="t", owner_team="投诉处理组", ticket_ids=["TS-1"], actor=" "
        )
    with pytest.raises(QueryError, match="owner_team"):
        store.create_problem(incident_id, title="t", owner_team="", ticket_ids=["T"], actor="a")
    assert store.list_problems() == []
    assert store.list_audit() == []  # nothing half-written


def test_set_problem_status_audits_each_change(store: SqlStateStore, clock: Any) -> None:
    incident_id = _incident(store)
    problem = store.create_problem(
        incident_id, title="t", owner_team="投诉处理组", ticket_ids=["TS-1"], actor="ana"
    )
    clock.advance(minutes=5)
    moved = store.set_problem_status(problem.id, "investigating", actor="li", note="联系客户")
    assert moved.status == "investigating" and moved.updated_at == clock.now
    same = store.set_problem_status(problem.id, "investigating", actor="li")
    assert same.status == "investigating" and same.updated_at == moved.updated_at
    store.set_problem_status(problem.id, "resolved", actor="li")
    history = store.list_audit(target=f"problem:{problem.id}")
    assert [e.action for e in history] == ["problem_status", "problem_status", "problem_promote"]
    assert history[1].detail == "open → investigating: 联系客户"
    assert history[0].detail == "investigating → resolved"
    with pytest.raises(QueryError, match="unknown problem status 'done'"):
        store.set_problem_status(problem.id, "done", actor="li")
    with pytest.raises(QueryError, match="unknown problem"):
        store.set_problem_status(problem.id + 5, "closed", actor="li")
    with pytest.raises(QueryError, match="actor"):
        store.set_problem_status(problem.id, "closed", actor="")
    assert store.get_problem(problem.id).status == "resolved"  # type: ignore[union-attr]


def test_list_problems_newest_first_by_status(store: SqlStateStore, clock: Any) -> None:
    ids = []
    for key in ("a", "b", "c"):
        incident_id = _incident(store, key)
        ids.append(
            store.create_problem(
                incident_id, title=key, owner_team="投诉处理组", ticket_ids=[f"T-{key}"], actor="a"
            ).id
        )
        clock.advance(minutes=1)
    store.set_problem_status(ids[1], "closed", actor="a")
    assert [p.id for p in store.list_problems()] == ids[::-1]
    assert [p.id for p in store.list_problems(limit=2)] == ids[:0:-1]
    assert [p.id for p in store.list_problems(status=["closed"])] == [ids[1]]
    assert [p.id for p in store.list_problems(status=["open", "investigating"])] == [
        ids[2],
        ids[0],
    ]


def test_ticket_and_incident_statuses_are_read_live(store: SqlStateStore) -> None:
    incident_id = _incident(store)
    _tickets(store, "TS-1", "TS-2")
    problem = store.create_problem(
        incident_id, title="t", owner_team="投诉处理组", ticket_ids=["TS-1", "TS-2"], actor="a"
    )
    assert problem.open_ticket_ids(CLOSED) == ["TS-1", "TS-2"]
    assert not problem.all_tickets_closed(CLOSED)
    _tickets(store, "TS-1", status="已办结")  # e.g. a push from the complaint system
    half = store.get_problem(problem.id)
    assert half is not None and half.ticket_statuses["TS-1"] == "已办结"
    assert half.open_ticket_ids(CLOSED) == ["TS-2"]
    store.upsert_tickets(
        [Ticket(ticket_id="TS-2", created_at=T0 + timedelta(minutes=1), status=" Closed ")]
    )
    done = store.get_problem(problem.id)
    assert done is not None and done.all_tickets_closed(CLOSED)  # case and spaces ignored
    assert not done.incident_resolved
    store.resolve(incident_id, user="ho")
    resolved = store.get_problem(problem.id)
    assert resolved is not None and resolved.incident_resolved
    assert resolved.status == "open"  # flagged, never changed by itself


def test_a_ticket_the_store_does_not_have_counts_as_open(store: SqlStateStore) -> None:
    incident_id = _incident(store)
    _tickets(store, "TS-1", status="已办结")
    problem = store.create_problem(
        incident_id, title="t", owner_team="投诉处理组", ticket_ids=["TS-1", "TS-9"], actor="a"
    )
    assert problem.ticket_statuses == {"TS-1": "已办结"}
    assert problem.open_ticket_ids(CLOSED) == ["TS-9"]


def test_add_problem_tickets(store: SqlStateStore) -> None:
    incident_id = _incident(store)
    problem = store.create_problem(
        incident_id, title="t", owner_team="投诉处理组", ticket_ids=["TS-1"], actor="a"
    )
    grown = store.add_problem_tickets(problem.id, ["TS-1", "TS-3", "TS-3"], actor="b")
    assert grown.ticket_ids == ["TS-1", "TS-3"]
    assert store.get_problem(problem.id) == grown
    unchanged = store.add_problem_tickets(problem.id, ["TS-3"], actor="b")
    assert unchanged.ticket_ids == ["TS-1", "TS-3"]
    actions = [e.action for e in store.list_audit(target=f"problem:{problem.id}")]
    assert actions == ["problem_tickets", "problem_promote"]
    with pytest.raises(QueryError, match="unknown problem"):
        store.add_problem_tickets(problem.id + 1, ["TS-4"], actor="b")


def test_problem_statuses_vocabulary() -> None:
    assert PROBLEM_STATUSES == ("open", "investigating", "resolved", "closed")
