"""A complaint-ticket surge over the real stores: imported tickets surge, the detector opens
an incident that starts with its tickets linked, and the links survive a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alerts.detector import Detector
from alerts.rules import TicketSurge
from core.models import Ticket
from core.settings import ChannelConfig, TicketSurgeRule
from nlp.segment import tokenize
from storage.local import LocalPostStore
from storage.state import SqlStateStore

NOW = datetime(2025, 3, 10, 6, 0, tzinfo=UTC)
PRODUCT = "澜海稳盈3号"


def tickets() -> list[Ticket]:
    surge = [
        Ticket(
            ticket_id=f"TS-2025-{i:04d}",
            created_at=NOW - timedelta(minutes=3 + 7 * i),
            channel="hotline",
            branch="澜海银行滨江支行",
            product=PRODUCT,
            category="理财",
            summary="理财产品净值下跌，要求赎回",
        )
        for i in range(14)
    ]
    baseline = [
        Ticket(
            ticket_id=f"TS-2024-{i:04d}",
            created_at=NOW - timedelta(hours=2, minutes=30) - timedelta(hours=4 * i),
            channel="app",
            product=PRODUCT if i % 2 else "信用卡",
            summary="咨询",
        )
        for i in range(6)
    ]
    return surge + baseline


def test_imported_tickets_surge_and_the_incident_starts_linked(tmp_path: Path) -> None:
    state = SqlStateStore(f"sqlite:///{tmp_path}/state.db")
    posts = LocalPostStore(tmp_path / "posts.db", tokenize)
    try:
        assert state.upsert_tickets(tickets()) == 20
        rule = TicketSurge(TicketSurgeRule(name="tickets", group_by="product"))
        detector = Detector(
            [rule], posts, state, [ChannelConfig(name="log", type="log")], clock=lambda: NOW
        )
        (alert,) = detector.run_once(NOW)
        assert alert.details["event"] == "opened"
        (incident,) = state.list_incidents()
        assert incident.key == f"tickets:product:{PRODUCT}"
        assert incident.post_ids == []  # a ticket signal: no posts needed
        assert incident.reasons[0].startswith(
            f"2小时内 {PRODUCT} 工单 14 张，基线 0.2 张 (14.0×)"
        )  # 3 / 12 windows
        linked = [link["ticket_id"] for link in incident.ticket_links]
        assert sorted(linked) == [f"TS-2025-{i:04d}" for i in range(14)]
        assert incident.ticket_links[0]["reasons"][0] == f"同一产品：{PRODUCT}"
        assert state.list_notifications(incident_id=incident.id)  # queued for the log channel
    finally:
        state.close()
        posts.close()

    reopened = SqlStateStore(f"sqlite:///{tmp_path}/state.db")
    try:
        assert incident.id is not None
        again = reopened.get_incident(incident.id)
        assert again is not None and again.ticket_links == incident.ticket_links
    finally:
        reopened.close()
