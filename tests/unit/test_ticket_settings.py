"""The ``tickets:`` settings section."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import load_settings


def test_defaults_accept_chinese_and_english_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YUQING_CONFIG", raising=False)
    tickets = load_settings().tickets
    assert "工单号" in tickets.columns.ticket_id and "ticket_id" in tickets.columns.ticket_id
    assert "创建时间" in tickets.columns.created_at
    assert tickets.required == ["ticket_id", "created_at"] and tickets.batch_size == 1000


def test_column_mapping_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "tickets:\n  columns:\n    ticket_id: [CaseNo]\n"
        "  required: [ticket_id, created_at, branch]\n",
        encoding="utf-8",
    )
    tickets = load_settings(path).tickets
    assert tickets.columns.ticket_id == ["CaseNo"] and "branch" in tickets.required


def test_unknown_fields_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("tickets:\n  required: [ticket_no]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tickets\.required"):
        load_settings(path)
    path.write_text("tickets:\n  columns:\n    ticketid: [x]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tickets\.columns\.ticketid"):
        load_settings(path)
