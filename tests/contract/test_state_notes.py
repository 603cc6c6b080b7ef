"""Incident notes and saved draft reports (issue 8) in the state store, on SQLite and PostgreSQL.

PostgreSQL runs when YUQING_TEST_PG_URL is set (see ``conftest.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from core.errors import QueryError
from core.models import Incident
from core.vocab import Grade
from storage.state import SqlStateStore

T0 = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)  # the contract FakeClock's start


@pytest.fixture
def store(state_store: Any) -> SqlStateStore:
    assert isinstance(state_store, SqlStateStore)
    return state_store


def _incident(store: SqlStateStore) -> int:
    saved = store.save_incident(
        Incident(rule="volume_spike", key="all", title="测试事件", grade=Grade.II)
    )
    assert saved.id is not None
    return saved.id


def test_notes_round_trip_oldest_first_with_audit(store: SqlStateStore, clock: Any) -> None:
    incident_id = _incident(store)
    first = store.add_note(incident_id, user="ana", text="已联系滨江支行")
    clock.advance(minutes=5)
    store.add_note(incident_id, user="ho", text="草稿正文", kind="draft")
    clock.advance(minutes=5)
    store.add_note(incident_id, user="ana", text="客户已安抚")

    assert first.at == T0
    notes = store.list_notes(incident_id, kind="note")
    assert [(n.user, n.text) for n in notes] == [("ana", "已联系滨江支行"), ("ana", "客户已安抚")]
    assert [n.kind for n in store.list_notes(incident_id)] == ["note", "draft", "note"]
    drafts = store.list_notes(incident_id, kind="draft", limit=1)
    assert [(d.user, d.text) for d in drafts] == [("ho", "草稿正文")]
    assert [n.text for n in store.list_notes(incident_id, limit=2)] == ["草稿正文", "客户已安抚"]

    audit = store.list_audit(target=f"incident:{incident_id}")
    assert [(e.actor, e.action, e.detail) for e in audit] == [
        ("ana", "note", "客户已安抚"),
        ("ho", "draft_saved", "4 字"),
        ("ana", "note", "已联系滨江支行"),
    ]
    assert audit[-1].at == first.at
    assert store.list_notes(incident_id + 999) == []


def test_bad_notes_are_refused_and_nothing_is_written(store: SqlStateStore) -> None:
    incident_id = _incident(store)
    with pytest.raises(QueryError, match="unknown incident"):
        store.add_note(incident_id + 999, user="ana", text="x")
    with pytest.raises(QueryError, match="user"):
        store.add_note(incident_id, user=" ", text="x")
    with pytest.raises(QueryError, match="empty"):
        store.add_note(incident_id, user="ana", text="  ")
    with pytest.raises(QueryError, match="unknown kind"):
        store.add_note(incident_id, user="ana", text="x", kind="memo")
    with pytest.raises(QueryError, match="at most"):
        store.add_note(incident_id, user="ana", text="长" * 20_001)
    assert store.list_notes(incident_id) == []
    assert store.list_audit(target=f"incident:{incident_id}") == []


def test_a_long_note_is_clipped_in_the_audit_log_only(store: SqlStateStore) -> None:
    incident_id = _incident(store)
    text = "研判" * 400
    store.add_note(incident_id, user="ana", text=text)
    assert store.list_notes(incident_id)[0].text == text
    detail = store.list_audit(target=f"incident:{incident_id}")[0].detail
    assert len(detail) == 500 and detail.endswith("…") and text.startswith(detail[:-1])
