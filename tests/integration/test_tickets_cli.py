"""``yuqing tickets`` over real stores, and linking that loads from real stores."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from alerts.tickets.linking import LinkParams, link_incident, posts_for_ticket
from bench.bench_tickets import load_set
from core.models import Incident
from core.vocab import Topic
from nlp.segment import tokenize
from storage.local import LocalPostStore
from storage.state import SqlStateStore
from yuqing.cli_tickets import app

runner = CliRunner()

HEADER = "工单号,创建时间,渠道,网点,产品,类别,优先级,状态,摘要,客户号"
GOOD = [
    "TK001,2026-11-23 10:00,热线,滨江支行,澜海稳盈3号,理财亏损,高,待处理,净值跌破1元,C100234567",
    "TK002,2026-11-23 10:05,网点,滨江支行,澜海稳盈3号,销售误导,高,待处理,要求赎回,C100234999",
]


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in ("YUQING_CONFIG", "YUQING_ENV", "YUQING_SECRET_KEY"):
        monkeypatch.delenv(key, raising=False)
    data = {
        "storage": {
            "posts_path": str(tmp_path / "posts.db"),
            "state_url": f"sqlite:///{tmp_path / 'state.db'}",
            "spool_dir": str(tmp_path / "spool"),
        },
    }
    path = tmp_path / "yuqing.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def stored(tmp_path: Path) -> dict[str, str]:
    state = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        return {t.ticket_id: t.status for t in state.list_tickets()}
    finally:
        state.close()


def csv_file(tmp_path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path = tmp_path / "export.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def test_import_gbk_csv_then_list(tmp_path: Path, config: Path) -> None:
    path = csv_file(tmp_path, [HEADER, *GOOD], encoding="gbk")
    result = runner.invoke(app, ["import", str(path), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "gb18030" in result.output and "2 tickets imported" in result.output
    assert stored(tmp_path) == {"TK001": "待处理", "TK002": "待处理"}

    listed = runner.invoke(app, ["list", "--config", str(config)])
    assert listed.exit_code == 0, listed.output
    assert "TK001" in listed.output and "TK002" in listed.output


def test_rejected_rows_without_partial_import_nothing(tmp_path: Path, config: Path) -> None:
    path = csv_file(tmp_path, [HEADER, *GOOD, "TK003,明天,,,,,,,,", GOOD[0]])
    result = runner.invoke(app, ["import", str(path), "--config", str(config)])
    assert result.exit_code == 1
    assert "nothing was imported" in result.output
    assert "bad_date" in result.output and "duplicate_id" in result.output
    assert "same id as row 2" in result.output
    assert stored(tmp_path) == {}


def test_partial_import_says_how_many_were_not_imported(tmp_path: Path, config: Path) -> None:
    path = csv_file(tmp_path, [HEADER, *GOOD, "TK003,明天,,,,,,,,"])
    result = runner.invoke(app, ["import", str(path), "--partial", "--config", str(config)])
    assert result.exit_code == 1
    assert "2 tickets written, 1 rows NOT imported" in result.output
    assert set(stored(tmp_path)) == {"TK001", "TK002"}


def test_missing_columns_exit_2(tmp_path: Path, config: Path) -> None:
    path = csv_file(tmp_path, ["渠道,摘要", "热线,x"])
    result = runner.invoke(app, ["import", str(path), "--config", str(config)])
    assert result.exit_code == 2
    assert "missing required column" in result.output and "工单号" in result.output


def test_bad_format_and_missing_file_exit_2(tmp_path: Path, config: Path) -> None:
    path = csv_file(tmp_path, [HEADER, *GOOD])
    bad = runner.invoke(app, ["import", str(path), "--format", "xls", "--config", str(config)])
    assert bad.exit_code == 2
    gone = runner.invoke(app, ["import", str(tmp_path / "nope.csv"), "--config", str(config)])
    assert gone.exit_code == 2 and "no such file" in gone.output


def test_serve_refuses_to_start_without_a_token(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YUQING_TICKETS_PUSH_TOKEN", "short")
    result = runner.invoke(app, ["serve", "--config", str(config)])
    assert result.exit_code == 2 and "YUQING_TICKETS_PUSH_TOKEN" in result.output


def test_reimport_updates_status(tmp_path: Path, config: Path) -> None:
    path = csv_file(tmp_path, [HEADER, *GOOD])
    assert runner.invoke(app, ["import", str(path), "--config", str(config)]).exit_code == 0
    path = csv_file(tmp_path, [HEADER, GOOD[0].replace("待处理", "已办结")])
    assert runner.invoke(app, ["import", str(path), "--config", str(config)]).exit_code == 0
    assert stored(tmp_path) == {"TK001": "已办结", "TK002": "待处理"}


def test_link_incident_and_posts_for_ticket_over_real_stores(tmp_path: Path) -> None:
    DATA = load_set()
    WEALTH_POSTS = DATA.incidents[1][1]
    posts = LocalPostStore(tmp_path / "posts.db", tokenizer=tokenize)
    state = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        every_post = [p for _topic, ps in DATA.incidents.values() for p in ps]
        posts.upsert(every_post)
        state.upsert_tickets(DATA.tickets)
        incident = state.save_incident(
            Incident(
                rule="volume_spike",
                key="entity:澜海稳盈3号",
                title="稳盈3号舆情",
                topic=Topic.WEALTH_MANAGEMENT,
                entity="澜海稳盈3号",
                post_ids=[p.id for p in WEALTH_POSTS],
            )
        )
        assert incident.id is not None
        links = link_incident(incident.id, posts, state, DATA.watchlist, limit=5)
        assert {link.ticket_id for link in links} <= DATA.links[1] and len(links) == 5
        with pytest.raises(KeyError):
            link_incident(incident.id + 100, posts, state, DATA.watchlist)

        ticket = next(t for t in DATA.tickets if t.ticket_id in DATA.links[1])
        found = posts_for_ticket(ticket, posts, DATA.watchlist, params=LinkParams(), limit=5)
        wealth_ids = {p.id for p in WEALTH_POSTS}
        assert found and all(link.post_id in wealth_ids for link in found)
        assert any(r.startswith("同一产品") for r in found[0].reasons)
    finally:
        posts.close()
        state.close()


def test_link_command_shows_reasons(tmp_path: Path, config: Path) -> None:
    data = load_set()
    wealth = data.incidents[1][1]
    posts = LocalPostStore(tmp_path / "posts.db", tokenizer=tokenize)
    state = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        posts.upsert(wealth)
        state.upsert_tickets(data.tickets)
        incident = state.save_incident(
            Incident(rule="volume_spike", key="all", title="t", post_ids=[p.id for p in wealth])
        )
    finally:
        posts.close()
        state.close()
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    settings["watchlist"] = data.watchlist.model_dump()
    config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    result = runner.invoke(app, ["link", str(incident.id), "-n", "3", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "同一产品：澜海稳盈3号" in result.output and "同一网点：滨江支行" in result.output
    missing = runner.invoke(app, ["link", "999", "--config", str(config)])
    assert missing.exit_code == 1 and "no incident 999" in missing.output
