"""The ``yuqing`` command over real stores in a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from core.models import Incident, utcnow
from core.vocab import Grade, IncidentStatus
from storage.state import SqlStateStore
from yuqing.cli import app

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in ("YUQING_CONFIG", "YUQING_ENV", "YUQING_SECRET_KEY"):
        monkeypatch.delenv(key, raising=False)
    data = {
        "watchlist": {"bank": {"name": "澜海银行", "aliases": ["澜海"]}},
        "sources": [{"name": "news", "kind": "rss", "start_urls": ["http://127.0.0.1:9/rss.xml"]}],
        "channels": [{"name": "log", "type": "log"}],
        "storage": {
            "posts_path": str(tmp_path / "posts.db"),
            "state_url": f"sqlite:///{tmp_path / 'state.db'}",
            "spool_dir": str(tmp_path / "spool"),
        },
    }
    path = tmp_path / "yuqing.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def incident_id(config: Path, tmp_path: Path) -> int:
    state = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        saved = state.save_incident(
            Incident(
                rule="volume_spike",
                key="all",
                title="舆情声量激增：30分钟内 24 条",
                grade=Grade.III,
                first_seen=utcnow(),
                post_count=24,
                reasons=["30分钟内 24 条，基线均值 2.0 条 (12.0×)"],
            )
        )
    finally:
        state.close()
    assert saved.id is not None
    return saved.id


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_check_config_shows_what_is_in_force(config: Path) -> None:
    code, out = invoke("check-config", "--config", str(config))
    assert code == 0, out
    assert "澜海银行" in out and "news" in out


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("scheduler:\n  detect_interval_seconds: 5*60\n", encoding="utf-8")
    code, out = invoke("check-config", "--config", str(bad))
    assert code == 2
    assert "scheduler.detect_interval_seconds" in out and "5*60" in out


def test_unknown_source_lists_the_known_ones(config: Path) -> None:
    code, out = invoke("crawl", "forum", "--config", str(config))
    assert code == 2 and "news" in out


def test_incident_lifecycle_from_the_cli(config: Path, incident_id: int, tmp_path: Path) -> None:
    code, out = invoke("incidents", "list", "--config", str(config))
    assert code == 0 and "III" in out and str(incident_id) in out

    code, out = invoke(
        "incidents", "ack", str(incident_id), "--user", "王分析", "--config", str(config)
    )
    assert code == 0, out
    code, out = invoke(
        "incidents", "escalate", str(incident_id), "--user", "李总", "--config", str(config)
    )
    assert code == 0, out
    code, out = invoke("incidents", "report", str(incident_id), "--config", str(config))
    assert code == 0, out
    assert "澜海银行" in out
    code, out = invoke(
        "incidents", "resolve", str(incident_id), "--user", "李总", "--config", str(config)
    )
    assert code == 0, out

    state = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        inc = state.get_incident(incident_id)
        audit = state.list_audit(50, target=f"incident:{incident_id}")
    finally:
        state.close()
    assert inc is not None and inc.status is IncidentStatus.RESOLVED
    actors = {entry.actor for entry in audit}
    assert {"王分析", "李总"} <= actors


def test_acting_on_an_unknown_incident_fails_clearly(config: Path) -> None:
    code, out = invoke("incidents", "ack", "999", "--user", "王分析", "--config", str(config))
    assert code == 1 and "999" in out


def test_channels_test(config: Path) -> None:
    code, out = invoke("channels", "test", "log", "--config", str(config))
    assert code == 0 and "delivered" in out
    code, out = invoke("channels", "test", "wecom_hq", "--config", str(config))
    assert code == 2 and "log" in out
