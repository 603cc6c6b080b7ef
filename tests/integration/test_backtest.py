"""The backtest: a labelled scenario replayed through real local stores on a simulated clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from alerts.backtest import Event, Opening, Scenario, generate_posts, run_backtest, score
from core.settings import CriticalSignalRule, Settings, VolumeSpikeRule
from yuqing.cli_backtest import app

START = datetime(2026, 11, 2, tzinfo=UTC)


def scenario(**kw: object) -> Scenario:
    data: dict[str, object] = {
        "name": "t",
        "start": START,
        "days": 0.5,
        "step_minutes": 10,
        "warmup_days": 0.25,
        "background": {"posts_per_hour": 2},
        "events": [
            {
                "name": "rumour",
                "start": START + timedelta(hours=6),
                "minutes": 30,
                "posts": 30,
                "signal": "bank_run",
                "critical_share": 0.5,
            }
        ],
    }
    data.update(kw)
    return Scenario.model_validate(data)


def test_generation_is_deterministic() -> None:
    a, b = generate_posts(scenario()), generate_posts(scenario())
    assert [p.id for p in a] == [p.id for p in b]
    assert sum(1 for p in a if p.analysis and p.analysis.critical) > 5


def test_scoring_found_missed_false_alarms_and_delay() -> None:
    sc = scenario(step_minutes=5, grace_minutes=0)
    start = sc.events[0].start
    openings = [
        Opening("crit", "signal:bank_run", start + timedelta(minutes=10)),
        Opening("spike", "all", start - timedelta(hours=2)),
    ]
    by_rule, overall = score(sc, openings, ["crit", "spike"])
    assert (by_rule["crit"].found, by_rule["crit"].delays_cycles) == (1, [2])
    assert (by_rule["spike"].missed, by_rule["spike"].false_alarms) == (1, 1)
    assert (overall.found, overall.false_alarms) == (1, 1)


@pytest.mark.slow
def test_a_rumour_is_found_within_two_cycles_without_false_alarms(tmp_path: Path) -> None:
    settings = Settings(
        rules=[CriticalSignalRule(name="crit"), VolumeSpikeRule(name="spike", min_count=12)]
    )
    report = run_backtest(scenario(), settings, workdir=tmp_path)
    assert report.found_ratio == 1.0
    assert report.overall.false_alarms == 0
    assert report.overall.median_delay_cycles is not None
    assert report.overall.median_delay_cycles <= 2
    assert report.as_dict()["backtest_incidents_found_ratio"] == 1.0


@pytest.mark.slow
def test_the_cli_prints_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("YUQING_CONFIG", "YUQING_ENV", "YUQING_SECRET_KEY"):
        monkeypatch.delenv(key, raising=False)
    path = tmp_path / "s.yaml"
    data = scenario().model_dump(mode="json", exclude={"rules"})
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    result = CliRunner().invoke(app, [str(path)])
    assert result.exit_code == 0, result.output
    assert "overall" in result.output and "false alarms per week" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n", encoding="utf-8")
    result = CliRunner().invoke(app, [str(bad)])
    assert result.exit_code == 2
    assert "start" in result.output


def test_an_event_needs_a_name() -> None:
    with pytest.raises(ValueError):
        Event.model_validate({"start": START, "minutes": 5})
