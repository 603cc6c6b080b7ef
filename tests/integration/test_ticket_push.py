"""The ticket push endpoint over a real socket and a real SQLite state store."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerts.tickets.push import TicketPushServer
from core.settings import TicketsConfig
from storage.state import SqlStateStore

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStateStore]:
    s = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


@pytest.fixture
def server(store: SqlStateStore) -> Iterator[TicketPushServer]:
    srv = TicketPushServer(
        store, TicketsConfig(push_max_bytes=4096), token=TOKEN, timezone="Asia/Shanghai", port=0
    )
    srv.start()
    yield srv
    srv.stop()


def post(
    server: TicketPushServer, body: Any, *, token: str | None = TOKEN, query: str = ""
) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    req = urllib.request.Request(f"{server.url}/tickets{query}", data=data, method="POST")
    req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


TICKET = {
    "工单号": "P1",
    "创建时间": "2026-11-23 10:00",
    "产品": "澜海稳盈3号",
    "状态": "待处理",
    "摘要": "客户手机13812345678",
}


def test_push_is_idempotent_and_updates_status(
    server: TicketPushServer, store: SqlStateStore
) -> None:
    assert post(server, TICKET) == (200, {"received": 1, "imported": 1, "rejected": []})
    assert post(server, [TICKET])[0] == 200
    status, answer = post(server, {"tickets": [{**TICKET, "状态": "已办结"}]})
    assert status == 200 and answer["imported"] == 1
    tickets = store.list_tickets()
    assert len(tickets) == 1 and tickets[0].status == "已办结"
    assert "13812345678" not in tickets[0].summary


def test_wrong_or_missing_token_is_401(server: TicketPushServer, store: SqlStateStore) -> None:
    assert post(server, TICKET, token="x" * 26)[0] == 401
    assert post(server, TICKET, token=None)[0] == 401
    assert store.list_tickets() == []


def test_rejected_records_write_nothing_unless_partial(
    server: TicketPushServer, store: SqlStateStore
) -> None:
    bad = [TICKET, {"工单号": "P2", "创建时间": "坏时间"}, {"摘要": "无编号"}, TICKET]
    status, answer = post(server, bad)
    assert status == 422 and answer["imported"] == 0
    assert [(r["record"], r["reason"]) for r in answer["rejected"]] == [
        (2, "bad_date"),
        (3, "missing_field"),
        (4, "duplicate_id"),
    ]
    assert store.list_tickets() == []
    status, answer = post(server, bad, query="?partial=1")
    assert status == 200 and answer["imported"] == 1 and len(answer["rejected"]) == 3
    assert [t.ticket_id for t in store.list_tickets()] == ["P1"]


def test_bad_json_and_oversized_bodies(server: TicketPushServer) -> None:
    assert post(server, b"{not json")[0] == 400
    assert post(server, b"[" + b" " * 5000 + b"]")[0] == 413


def test_health_and_short_tokens(server: TicketPushServer, store: SqlStateStore) -> None:
    with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as resp:
        assert resp.read() == b"ok"
    with pytest.raises(ValueError):
        TicketPushServer(store, TicketsConfig(), token="short", timezone="UTC", port=0)
