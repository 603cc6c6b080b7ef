"""``yuqing rules check`` and ``yuqing rules dry-run`` against real local stores."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from core.models import Analysis, Post, Signal, utcnow
from core.vocab import Sentiment
from nlp.segment import tokenize
from storage.local import LocalPostStore
from storage.state import SqlStateStore
from yuqing.cli_rules import app

runner = CliRunner()

RULES: list[dict[str, Any]] = [
    {"name": "spike", "type": "volume_spike", "min_count": 5, "seasonal_days": 0},
    {"name": "crit", "type": "critical_signal"},
    {"name": "topics", "type": "topic_burst", "enabled": False},
]


def write_config(tmp_path: Path, rules: list[dict[str, Any]]) -> Path:
    data = {
        "sources": [{"name": "news", "kind": "rss", "start_urls": ["http://127.0.0.1:9/rss.xml"]}],
        "channels": [{"name": "log", "type": "log"}],
        "rules": rules,
        "storage": {
            "posts_path": str(tmp_path / "posts.db"),
            "state_url": f"sqlite:///{tmp_path / 'state.db'}",
            "spool_dir": str(tmp_path / "spool"),
        },
    }
    path = tmp_path / "yuqing.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("YUQING_CONFIG", "YUQING_ENV", "YUQING_SECRET_KEY"):
        monkeypatch.delenv(key, raising=False)


def test_check_lists_every_rule_with_its_mode(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "--config", str(write_config(tmp_path, RULES))])
    assert result.exit_code == 0, result.output
    assert "3 rule(s) valid" in result.output
    for text in ("spike", "critical_signal", "topic_burst", "off", "min_count=5"):
        assert text in result.output


def test_check_names_a_bad_rule_and_exits_2(tmp_path: Path) -> None:
    bad = write_config(tmp_path, [{"name": "x", "type": "sentiment_vibes"}])
    result = runner.invoke(app, ["check", "--config", str(bad)])
    assert result.exit_code == 2
    assert "rules.0 ('x'): unknown type 'sentiment_vibes'" in result.output


def test_dry_run_prints_matches_and_writes_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path, RULES)
    now = utcnow()
    posts = LocalPostStore(tmp_path / "posts.db", tokenizer=tokenize)
    rumour = Analysis(
        sentiment=Sentiment.NEGATIVE,
        sentiment_score=0.05,
        critical=True,
        signals=[Signal(name="bank_run", triggers=["挤兑"], critical=True)],
    )
    posts.upsert(
        [
            Post(
                id=f"rumour{i:04d}",
                url=f"https://forum.example/r/{i}",
                source="news",
                text="澜海银行 挤兑 排队取钱",
                published_at=now - timedelta(minutes=3 + i),
                analysis=rumour,
            )
            for i in range(6)
        ]
    )
    posts.close()

    result = runner.invoke(app, ["dry-run", "--config", str(config)])

    assert result.exit_code == 0, result.output
    assert "signal:bank_run" in result.output
    assert "spike" in result.output
    state = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert state.list_incidents() == []
        assert state.list_alerts() == []
    finally:
        state.close()


def test_dry_run_with_a_quiet_store(tmp_path: Path) -> None:
    result = runner.invoke(app, ["dry-run", "--config", str(write_config(tmp_path, RULES))])
    assert result.exit_code == 0, result.output
    assert "no rule matched" in result.output
