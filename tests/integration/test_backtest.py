"""The backtest: a labelled scenario replayed through real local stores on a simulated clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from alerts.backtest import (
    Event,
    Opening,
    Scenario,
    crawl_runs,
    generate_posts,
    run_backtest,
    score,
    with_calendar,
)
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


def test_delay_in_minutes_from_the_first_critical_post_and_joins() -> None:
    sc = scenario(step_minutes=5, grace_minutes=0)
    start = sc.events[0].start
    first_critical = {"rumour": start + timedelta(minutes=4)}
    openings = [
        Opening("spike", "all", start + timedelta(minutes=10)),
        # The critical-signal rule joined the spike's incident: found for the rule and
        # no second alarm overall.
        Opening("crit", "signal:bank_run", start + timedelta(minutes=10), "joined"),
        Opening("crit", "signal:bank_run", start - timedelta(hours=3), "joined"),
    ]
    by_rule, overall = score(sc, openings, ["crit", "spike"], first_critical)
    assert overall.delays_minutes == [6.0]
    assert overall.median_delay_minutes == 6.0
    assert overall.delays_cycles == [2]
    assert overall.false_alarms == 0  # a join is no new incident
    assert (by_rule["crit"].found, by_rule["crit"].false_alarms) == (1, 1)
    # Without critical posts there is no delay in minutes, only in cycles.
    _, plain = score(sc, openings[:1], ["spike"])
    assert (plain.delays_minutes, plain.delays_cycles) == ([], [2])


def test_levels_outages_crawl_runs_and_the_calendar() -> None:
    day = START + timedelta(hours=2)
    sc = scenario(
        days=0.5,
        warmup_days=0,
        background={"posts_per_hour": 60, "sources": ["forum", "news"]},
        events=[
            {"name": "holiday", "kind": "level", "start": day, "minutes": 120, "factor": 0.1},
            {"name": "down", "kind": "outage", "source": "news", "start": START, "minutes": 60},
        ],
        calendar=[{"name": "假期", "start": day, "end": day + timedelta(hours=2), "factor": 0.1}],
    )
    posts = generate_posts(sc)
    in_level = [p for p in posts if day <= p.published_at < day + timedelta(hours=2)]
    before = [p for p in posts if START + timedelta(hours=1) <= p.published_at < day]
    assert len(in_level) < len(before) / 3  # 0.1× for two hours vs 1× for one hour
    assert not any(
        p.source == "news" and p.published_at < START + timedelta(hours=1) for p in posts
    )
    runs = crawl_runs(sc)
    assert {
        r.ok for r in runs if r.source == "news" and r.started_at < START + timedelta(hours=1)
    } == {False}
    assert all(r.ok for r in runs if r.source == "forum")
    rules = with_calendar(
        [VolumeSpikeRule(name="spike"), CriticalSignalRule(name="crit")], sc.calendar
    )
    assert isinstance(rules[0], VolumeSpikeRule) and rules[0].calendar == sc.calendar


@pytest.mark.slow
def test_source_health_finds_a_storm_during_an_outage(tmp_path: Path) -> None:
    storm = START + timedelta(hours=6)
    sc = scenario(
        days=0.5,
        step_minutes=5,
        warmup_days=0.5,
        background={"posts_per_hour": 20, "sources": ["forum", "forum", "forum", "weibo"]},
        events=[
            {
                "name": "forum_down",
                "kind": "outage",
                "source": "forum",
                "start": storm - timedelta(hours=1),
                "minutes": 180,
                "incident": False,
            },
            {
                "name": "storm",
                "start": storm,
                "minutes": 30,
                "posts": 20,
                "source": "weibo",
                "platform": "weibo",
            },
        ],
    )
    settings = Settings(rules=[VolumeSpikeRule(name="spike", min_count=8)])
    blind = run_backtest(sc, settings, workdir=tmp_path / "blind", record_crawls=False)
    seeing = run_backtest(sc, settings, workdir=tmp_path / "seeing")
    assert blind.by_rule["spike"].found == 0  # the missing forum posts mask the storm
    assert seeing.by_rule["spike"].found == 1
    assert seeing.overall.false_alarms == 0
