"""The StateStore contract, on SQLite and (with YUQING_TEST_PG_URL) on PostgreSQL.

Every datetime that comes back must be timezone-aware UTC, whatever the database.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from core.errors import QueryError, StoreUnavailable
from core.models import Alert, CrawlRun, Incident, Notification, Ticket
from core.ports import StateStore
from core.vocab import Grade, IncidentStatus, Topic
from storage.state import SqlStateStore

SH = timezone(timedelta(hours=8))
T0 = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)


def assert_utc(*values: datetime | None) -> None:
    for value in values:
        if value is not None:
            assert value.tzinfo is not None and value.utcoffset() == timedelta(0), value


def incident(key: str = "all", *, rule: str = "volume_spike", opened: datetime = T0) -> Incident:
    return Incident(
        rule=rule,
        key=key,
        title=f"澜海银行舆情量突增（{key}）",
        grade=Grade.III,
        opened_at=opened,
        updated_at=opened,
        first_seen=opened - timedelta(minutes=30),
        post_count=12,
        peak_count=9,
        post_ids=["post-000001", "post-000002"],
        reasons=["30分钟内帖子数为基线的4.2倍"],
        topic=Topic.WEALTH_MANAGEMENT,
        entity="东湖支行",
        sources=["lanhai_forum", "tousu_platform"],
    )


# ---------------------------------------------------------------------- incidents


def test_save_and_get_incident_round_trip(state_store: StateStore) -> None:
    saved = state_store.save_incident(incident())
    assert saved.id is not None
    got = state_store.get_incident(saved.id)
    assert got == saved
    assert got is not None
    assert got.model_dump(exclude={"id"}) == incident().model_dump(exclude={"id"})
    assert_utc(got.opened_at, got.updated_at, got.first_seen)
    assert state_store.get_incident(saved.id + 1000) is None


def test_times_in_another_zone_come_back_as_utc(state_store: StateStore) -> None:
    local_time = datetime(2025, 3, 10, 10, 0, tzinfo=SH)
    saved = state_store.save_incident(incident(opened=local_time))
    got = state_store.get_incident(saved.id)  # type: ignore[arg-type]
    assert got is not None
    assert got.opened_at == datetime(2025, 3, 10, 2, 0, tzinfo=UTC)
    assert_utc(got.opened_at)


def test_save_incident_updates_by_id(state_store: StateStore) -> None:
    saved = state_store.save_incident(incident())
    bigger = saved.model_copy(update={"post_count": 40, "grade": Grade.II, "reasons": ["升级"]})
    again = state_store.save_incident(bigger)
    assert again.id == saved.id
    got = state_store.get_incident(saved.id)  # type: ignore[arg-type]
    assert got is not None
    assert (got.post_count, got.grade, got.reasons) == (40, Grade.II, ["升级"])
    assert len(state_store.list_incidents()) == 1


def test_save_incident_with_unknown_id_is_a_query_error(state_store: StateStore) -> None:
    with pytest.raises(QueryError):
        state_store.save_incident(incident().model_copy(update={"id": 4242}))


def test_list_incidents_newest_first_with_filters(state_store: StateStore) -> None:
    a = state_store.save_incident(incident("topic:loans", opened=T0))
    b = state_store.save_incident(incident("topic:credit_card", opened=T0 + timedelta(hours=1)))
    c = state_store.save_incident(incident("all", opened=T0 + timedelta(hours=2)))
    state_store.resolve(b.id, user="analyst")  # type: ignore[arg-type]
    assert [i.id for i in state_store.list_incidents()] == [c.id, b.id, a.id]
    assert [i.id for i in state_store.list_incidents(limit=2)] == [c.id, b.id]
    open_only = state_store.list_incidents(status=[IncidentStatus.OPEN])
    assert [i.id for i in open_only] == [c.id, a.id]
    since = state_store.list_incidents(since=T0 + timedelta(minutes=30))
    assert [i.id for i in since] == [c.id, b.id]
    for inc in state_store.list_incidents():
        assert_utc(inc.opened_at, inc.updated_at, inc.resolved_at, inc.first_seen)


def test_list_incidents_refuses_a_naive_since(state_store: StateStore) -> None:
    with pytest.raises(QueryError):
        state_store.list_incidents(since=datetime(2025, 3, 10))


def test_find_active_incident(state_store: StateStore) -> None:
    assert state_store.find_active_incident("volume_spike", "all") is None
    old = state_store.save_incident(incident("all", opened=T0))
    state_store.resolve(old.id, user="analyst")  # type: ignore[arg-type]
    assert state_store.find_active_incident("volume_spike", "all") is None
    first = state_store.save_incident(incident("all", opened=T0 + timedelta(hours=1)))
    newer = state_store.save_incident(incident("all", opened=T0 + timedelta(hours=2)))
    state_store.save_incident(incident("topic:loans", opened=T0 + timedelta(hours=3)))
    state_store.save_incident(
        incident("all", rule="negative_share", opened=T0 + timedelta(hours=4))
    )
    found = state_store.find_active_incident("volume_spike", "all")
    assert found is not None and found.id == newer.id
    state_store.acknowledge(newer.id, user="analyst")  # type: ignore[arg-type]
    found = state_store.find_active_incident("volume_spike", "all")
    assert found is not None and found.id == newer.id  # acknowledged is still active
    state_store.resolve(newer.id, user="analyst")  # type: ignore[arg-type]
    found = state_store.find_active_incident("volume_spike", "all")
    assert found is not None and found.id == first.id


def test_acknowledge_writes_an_ack_and_an_audit_entry(state_store: StateStore, clock: Any) -> None:
    saved = state_store.save_incident(incident())
    when = clock.advance(minutes=7)
    acked = state_store.acknowledge(saved.id, user="王分析师", note="已通知东湖支行")  # type: ignore[arg-type]
    assert acked.status is IncidentStatus.ACKNOWLEDGED
    assert acked.updated_at == when
    assert_utc(acked.updated_at)
    store: Any = state_store
    acks = store.list_acks(saved.id)
    assert [(a.user, a.note, a.at) for a in acks] == [("王分析师", "已通知东湖支行", when)]
    assert_utc(acks[0].at)
    audit = store.list_audit(10)
    assert [(e.actor, e.action, e.target, e.detail) for e in audit] == [
        ("王分析师", "acknowledge", f"incident:{saved.id}", "已通知东湖支行")
    ]
    assert_utc(audit[0].at)


def test_resolve_sets_resolved_at_and_audits(state_store: StateStore, clock: Any) -> None:
    saved = state_store.save_incident(incident())
    state_store.acknowledge(saved.id, user="王分析师")  # type: ignore[arg-type]
    when = clock.advance(hours=3)
    resolved = state_store.resolve(saved.id, user="李主管", note="已统一口径回应")  # type: ignore[arg-type]
    assert resolved.status is IncidentStatus.RESOLVED
    assert resolved.resolved_at == when
    assert_utc(resolved.resolved_at)
    got = state_store.get_incident(saved.id)  # type: ignore[arg-type]
    assert got is not None and got.resolved_at == when
    store: Any = state_store
    actions = [(e.actor, e.action) for e in store.list_audit(10)]
    assert actions == [("李主管", "resolve"), ("王分析师", "acknowledge")]
    # acknowledging a resolved incident records the ack but does not reopen it
    later = state_store.acknowledge(saved.id, user="张总")  # type: ignore[arg-type]
    assert later.status is IncidentStatus.RESOLVED
    assert [a.user for a in store.list_acks(saved.id)] == ["王分析师", "张总"]


def test_ack_and_resolve_of_unknown_incident_are_query_errors(state_store: StateStore) -> None:
    with pytest.raises(QueryError):
        state_store.acknowledge(999, user="王分析师")
    with pytest.raises(QueryError):
        state_store.resolve(999, user="王分析师")
    store: Any = state_store
    assert store.list_audit(10) == []


def test_audit_log_newest_first(state_store: StateStore, clock: Any) -> None:
    state_store.audit(actor="system", action="crawl", target="source:lanhai_forum", detail="ok")
    clock.advance(seconds=1)
    state_store.audit(actor="王分析师", action="login", target="dashboard")
    store: Any = state_store
    entries = store.list_audit(10)
    assert [e.action for e in entries] == ["login", "crawl"]
    assert entries[1].detail == "ok"
    assert [e.action for e in store.list_audit(1)] == ["login"]


# ---------------------------------------------------------------------- alerts


def test_alerts(state_store: StateStore) -> None:
    inc = state_store.save_incident(incident())
    a1 = state_store.add_alert(
        Alert(
            incident_id=inc.id,
            rule="volume_spike",
            grade=Grade.III,
            created_at=T0,
            summary="澜海银行东湖支行相关帖子30分钟内激增",
            details={"current": 21, "baseline": 4.5, "window": "30m", "at": T0},
        )
    )
    a2 = state_store.add_alert(
        Alert(
            rule="volume_spike", grade=Grade.IV, created_at=T0 + timedelta(minutes=5), summary="x"
        )
    )
    assert a1.id is not None and a2.id is not None
    assert [a.id for a in state_store.list_alerts()] == [a2.id, a1.id]
    only = state_store.list_alerts(incident_id=inc.id)
    assert [a.id for a in only] == [a1.id]
    assert only[0].details["current"] == 21
    assert only[0].details["baseline"] == 4.5
    assert only[0].details["at"] == T0.isoformat().replace("+00:00", "Z")
    assert_utc(*(a.created_at for a in state_store.list_alerts()))


# ---------------------------------------------------------------------- outbox


def note(key: str, *, channel: str = "wecom_hq", at: datetime = T0) -> Notification:
    return Notification(
        channel=channel,
        dedup_key=key,
        subject="【III级】澜海银行舆情预警",
        body="东湖支行理财产品投诉激增，请关注。",
        incident_id=1,
        created_at=at,
    )


def test_enqueue_dedups_by_channel_and_key(state_store: StateStore) -> None:
    assert state_store.enqueue(note("incident:1:III")) is True
    assert state_store.enqueue(note("incident:1:III")) is False
    assert state_store.enqueue(note("incident:1:III", channel="email_hq")) is True
    assert state_store.enqueue(note("incident:1:II")) is True
    assert len(state_store.due_notifications(T0)) == 3


def test_due_notifications_oldest_first_and_only_when_due(state_store: StateStore) -> None:
    state_store.enqueue(note("b", at=T0 + timedelta(minutes=1)))
    state_store.enqueue(note("a", at=T0))
    later = note("c", at=T0).model_copy(update={"next_attempt_at": T0 + timedelta(hours=1)})
    state_store.enqueue(later)
    due = state_store.due_notifications(T0 + timedelta(minutes=1))
    assert [n.dedup_key for n in due] == ["a", "b"]
    for n in due:
        assert_utc(n.created_at, n.next_attempt_at)
        assert n.id is not None and n.attempts == 0 and n.sent_at is None
    assert len(state_store.due_notifications(T0 + timedelta(hours=1))) == 3
    assert len(state_store.due_notifications(T0 + timedelta(hours=1), limit=1)) == 1
    assert state_store.due_notifications(T0 - timedelta(seconds=1)) == []


def test_mark_sent_and_mark_failed(state_store: StateStore) -> None:
    state_store.enqueue(note("sent"))
    state_store.enqueue(note("retry"))
    state_store.enqueue(note("give-up"))
    ids = {n.dedup_key: n.id for n in state_store.due_notifications(T0)}

    state_store.mark_sent(ids["sent"], T0 + timedelta(seconds=2))  # type: ignore[arg-type]
    retry_at = T0 + timedelta(minutes=5)
    state_store.mark_failed(ids["retry"], "HTTP 503 from robot", retry_at)  # type: ignore[arg-type]
    state_store.mark_failed(ids["give-up"], "HTTP 400: bad token", None)  # type: ignore[arg-type]

    assert state_store.due_notifications(T0 + timedelta(minutes=4)) == []
    due = state_store.due_notifications(retry_at)
    assert [n.dedup_key for n in due] == ["retry"]
    assert due[0].attempts == 1
    assert due[0].last_error == "HTTP 503 from robot"
    assert due[0].next_attempt_at == retry_at
    assert_utc(due[0].next_attempt_at)
    # given up and sent ones are never due again
    assert [n.dedup_key for n in state_store.due_notifications(T0 + timedelta(days=30))] == [
        "retry"
    ]
    # and a sent or given-up message still blocks a duplicate
    assert state_store.enqueue(note("sent")) is False
    assert state_store.enqueue(note("give-up")) is False

    store: Any = state_store
    by_key = {n.dedup_key: n for n in store.list_notifications()}
    assert by_key["sent"].sent_at == T0 + timedelta(seconds=2)
    assert_utc(by_key["sent"].sent_at)
    assert by_key["sent"].attempts == 1
    assert by_key["give-up"].next_attempt_at is None


def test_mark_unknown_notification_is_a_query_error(state_store: StateStore) -> None:
    with pytest.raises(QueryError):
        state_store.mark_sent(12345, T0)
    with pytest.raises(QueryError):
        state_store.mark_failed(12345, "boom", None)


# ---------------------------------------------------------------------- tickets


def ticket(tid: str, created: datetime, **kw: Any) -> Ticket:
    fields: dict[str, Any] = {
        "channel": "95xxx热线",
        "branch": "东湖支行",
        "product": "澜海稳盈1号理财",
        "category": "理财亏损",
        "priority": "高",
        "status": "处理中",
        "summary": "客户称理财经理承诺保本，到期亏损8%",
        "customer_ref": "C-0001",
    }
    fields.update(kw)
    return Ticket(ticket_id=tid, created_at=created, **fields)


def test_upsert_tickets_is_idempotent(state_store: StateStore) -> None:
    tickets = [ticket(f"TS-2025-{i:04d}", T0 + timedelta(hours=i)) for i in range(5)]
    assert state_store.upsert_tickets(tickets) == 5
    assert state_store.upsert_tickets(tickets) == 5
    assert len(state_store.list_tickets()) == 5
    changed = ticket("TS-2025-0002", T0 + timedelta(hours=2), status="已办结")
    assert state_store.upsert_tickets([changed, changed]) == 1
    got = {t.ticket_id: t for t in state_store.list_tickets()}
    assert len(got) == 5
    assert got["TS-2025-0002"].status == "已办结"
    assert got["TS-2025-0001"] == tickets[1]
    for t in got.values():
        assert_utc(t.created_at, t.updated_at)


def test_list_tickets_by_time(state_store: StateStore) -> None:
    tickets = [ticket(f"TS-{i}", T0 + timedelta(hours=i)) for i in range(5)]
    state_store.upsert_tickets(tickets)
    window = state_store.list_tickets(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=3))
    assert [t.ticket_id for t in window] == ["TS-2", "TS-1"]  # newest first, until exclusive
    assert [t.ticket_id for t in state_store.list_tickets(limit=2)] == ["TS-4", "TS-3"]


# ---------------------------------------------------------------------- crawl runs


def test_crawl_runs(state_store: StateStore) -> None:
    started = state_store.record_crawl_run(CrawlRun(source="lanhai_forum", started_at=T0))
    assert started.id is not None
    done = started.model_copy(
        update={
            "finished_at": T0 + timedelta(seconds=42),
            "fetched": 30,
            "kept": 12,
            "dropped": {"no watched entity": 15, "duplicate": 3},
        }
    )
    assert state_store.record_crawl_run(done).id == started.id
    state_store.record_crawl_run(
        CrawlRun(
            source="tousu_platform",
            started_at=T0 + timedelta(minutes=1),
            ok=False,
            errors=3,
            message="HTTP 503",
        )
    )
    runs = state_store.list_crawl_runs()
    assert [r.source for r in runs] == ["tousu_platform", "lanhai_forum"]
    forum = state_store.list_crawl_runs(source="lanhai_forum")
    assert len(forum) == 1
    assert forum[0].dropped == {"no watched entity": 15, "duplicate": 3}
    assert forum[0].finished_at == T0 + timedelta(seconds=42)
    assert_utc(*(r.started_at for r in runs), *(r.finished_at for r in runs))
    with pytest.raises(QueryError):
        state_store.record_crawl_run(done.model_copy(update={"id": 9999}))


def test_dashboard_users_table(state_store: StateStore, clock: Any) -> None:
    # The 用户管理 screen's table (an addition of SqlStateStore, not in the port).
    store: Any = state_store
    hash_1, hash_2 = "scrypt$1024$8$1$c2FsdHNhbHQ$aGFzaDE", "scrypt$1024$8$1$c2FsdHNhbHQ$aGFzaDI"
    assert store.list_users() == [] and store.get_user("wang") is None
    added = store.add_user(
        username="wang", display_name="王五", role="analyst", password_hash=hash_1, actor="root"
    )
    assert (added.username, added.role, added.enabled, added.created_by) == (
        "wang", "analyst", True, "root"
    )  # fmt: skip
    assert hash_1 not in repr(added)
    store.add_user(
        username="li", display_name="", role="head_office", password_hash=hash_1, actor="root"
    )
    assert [u.username for u in store.list_users()] == ["li", "wang"]
    with pytest.raises(QueryError, match="already exists"):
        store.add_user(
            username="wang", display_name="", role="admin", password_hash=hash_1, actor="root"
        )
    with pytest.raises(QueryError, match="clear password"):
        store.set_user_password("wang", "hunter2-clear", actor="root")
    assert store.set_user_enabled("wang", False, actor="admin2").enabled is False
    assert store.set_user_password("wang", hash_2, actor="admin2").password_hash == hash_2
    got = store.get_user("wang")
    assert got is not None and not got.enabled and got.updated_by == "admin2"
    assert_utc(got.created_at, got.updated_at)
    with pytest.raises(QueryError):
        store.set_user_enabled("nobody", True, actor="root")
    audit = store.list_audit(target="user:wang")
    assert [(e.actor, e.action) for e in audit] == [
        ("admin2", "user_password_reset"),
        ("admin2", "user_disable"),
        ("root", "user_add"),
    ]
    assert all(hash_1 not in e.detail and hash_2 not in e.detail for e in audit)


def test_close_twice_is_safe(state_store: StateStore) -> None:
    state_store.close()
    state_store.close()


# ---------------------------------------------------------------------- construction


def test_sqlite_url_creates_its_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/deep/er/state.db"
    store = SqlStateStore(url)
    store.save_incident(incident())
    store.close()
    assert (tmp_path / "deep" / "er" / "state.db").exists()
    reopened = SqlStateStore(url)
    assert len(reopened.list_incidents()) == 1  # tables are not re-created
    reopened.close()


def test_in_memory_sqlite_works(tmp_path: Path) -> None:
    store = SqlStateStore("sqlite://")
    assert store.save_incident(incident()).id == 1
    assert len(store.list_incidents()) == 1
    store.close()


def test_unreachable_database_is_unavailable_with_password_hidden() -> None:
    url = "postgresql+psycopg://yuqing:s3cr3t-pw@127.0.0.1:1/yuqing?connect_timeout=2"
    with pytest.raises(StoreUnavailable) as info:
        SqlStateStore(url)
    message = str(info.value)
    assert "127.0.0.1:1" in message
    assert "s3cr3t-pw" not in message


def test_sqlite_directory_that_cannot_exist_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "var"
    blocker.write_text("a file where the directory belongs")
    with pytest.raises(StoreUnavailable) as info:
        SqlStateStore(f"sqlite:///{blocker}/state.db")
    assert str(blocker) in str(info.value)


@pytest.mark.postgres
def test_postgres_schema_isolation() -> None:
    url = os.environ.get("YUQING_TEST_PG_URL")
    if not url:
        pytest.skip("needs YUQING_TEST_PG_URL (a PostgreSQL server)")
    import uuid

    import sqlalchemy as sa
    from sqlalchemy.schema import DropSchema

    schemas = [f"yuqing_test_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    stores = [SqlStateStore(url, schema=s) for s in schemas]  # creates the schemas
    try:
        stores[0].save_incident(incident())
        assert len(stores[0].list_incidents()) == 1
        assert stores[1].list_incidents() == []
    finally:
        for store in stores:
            store.close()
        admin = sa.create_engine(url)
        with admin.begin() as conn:
            for s in schemas:
                conn.execute(DropSchema(s, cascade=True, if_exists=True))
        admin.dispose()


# ---------------------------------------------------------------------- escalations (issue 6)


def test_record_escalation_is_idempotent_per_level_and_audited(
    state_store: StateStore, clock: Any
) -> None:
    store: Any = state_store
    inc = state_store.save_incident(incident())
    assert store.escalation_level(inc.id) is None
    assert store.list_escalations(inc.id) == []
    assert store.record_escalation(inc.id, 0, "branch", actor="escalation-policy") is True
    when = clock.advance(minutes=30)
    assert store.record_escalation(inc.id, 1, "regional", actor="王主管", note="未确认") is True
    assert store.record_escalation(inc.id, 1, "regional", actor="another") is False
    steps = store.list_escalations(inc.id)
    assert [(s.level, s.audience, s.actor) for s in steps] == [
        (0, "branch", "escalation-policy"),
        (1, "regional", "王主管"),
    ]
    assert steps[1].at == when
    assert_utc(*(s.at for s in steps))
    assert store.escalation_level(inc.id) == 1
    audit = store.list_audit(10, target=f"incident:{inc.id}")
    assert [(e.actor, e.action) for e in audit] == [
        ("王主管", "escalate"),
        ("escalation-policy", "escalate"),
    ]
    with pytest.raises(QueryError):
        store.record_escalation(9999, 0, "branch", actor="x")
    with pytest.raises(QueryError):
        store.record_escalation(inc.id, 2, "head_office", actor=" ")


def test_notification_payload_round_trips(state_store: StateStore) -> None:
    payload = {"kind": "alert", "grade": "II", "facts": [["累计帖子", "42 条"]], "posts": []}
    state_store.enqueue(note("with-payload").model_copy(update={"payload": payload}))
    state_store.enqueue(note("plain"))
    got = {n.dedup_key: n for n in state_store.due_notifications(T0)}
    assert got["with-payload"].payload == payload
    assert got["plain"].payload == {}


def test_an_older_database_gets_the_payload_column(tmp_path: Path) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path}/old.db"
    SqlStateStore(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # what a database created before issue 6 looks like
        conn.execute(sa.text("ALTER TABLE outbox DROP COLUMN payload"))
    engine.dispose()
    store = SqlStateStore(url)
    try:
        assert store.enqueue(note("k").model_copy(update={"payload": {"kind": "alert"}}))
        assert store.due_notifications(T0)[0].payload == {"kind": "alert"}
    finally:
        store.close()


def test_incident_ticket_links_round_trip(state_store: StateStore) -> None:
    links = [
        {
            "ticket_id": "TS-0001",
            "score": 1.0,
            "reasons": ["同一产品：澜海稳盈3号", "2小时内工单激增"],
        },
        {"ticket_id": "TS-0002", "score": 0.42, "reasons": ["时间相差 12 分钟"]},
    ]
    saved = state_store.save_incident(incident("tickets:product:澜海稳盈3号", rule="tickets"))
    assert saved.ticket_links == []
    assert saved.id is not None
    assert state_store.get_incident(saved.id) == saved
    linked = state_store.save_incident(saved.model_copy(update={"ticket_links": links}))
    got = state_store.get_incident(saved.id)
    assert got is not None and got.ticket_links == links == linked.ticket_links
    active = state_store.find_active_incident("tickets", "tickets:product:澜海稳盈3号")
    assert active is not None and active.ticket_links == links


def test_an_older_database_gets_the_ticket_links_column(tmp_path: Path) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path}/old.db"
    SqlStateStore(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a database created before incidents had ticket links
        conn.execute(sa.text("ALTER TABLE incidents DROP COLUMN ticket_links"))
        conn.execute(
            sa.text(
                "INSERT INTO incidents (rule, key, title, grade, status, opened_at, updated_at,"
                " post_count, peak_count, post_ids, reasons, sources) VALUES ('r', 'all', 't',"
                " 'IV', 'open', '2025-03-10 02:00:00.000000', '2025-03-10 02:00:00.000000',"
                " 0, 0, '[]', '[]', '[]')"
            )
        )
    engine.dispose()
    store = SqlStateStore(url)
    try:
        old = store.get_incident(1)
        assert old is not None and old.ticket_links == []  # NULL in the old row reads as []
        links = [{"ticket_id": "T1", "score": 1.0, "reasons": ["同一网点：滨江支行"]}]
        store.save_incident(old.model_copy(update={"ticket_links": links}))
        got = store.get_incident(1)
        assert got is not None and got.ticket_links == links
    finally:
        store.close()
