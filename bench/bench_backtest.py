"""Backtest of the detectors on the shipped labelled scenarios (``bench/scenarios/*.yaml``).

Each scenario is replayed by :func:`alerts.backtest.run_backtest` with the
rules of ``config/yuqing.example.yaml``. Figures (issue 6 goals):
``backtest_incidents_found_ratio`` (all true incidents found, goal 1.0),
``backtest_false_alarms_per_week`` (goal ≤ 1),
``backtest_median_delay_cycles`` (goal ≤ 2 cycles after the spike starts) and
``backtest_median_delay_minutes`` (goal ≤ 10 simulated minutes after the first
critical post, over the events that have critical posts), over all scenarios
pooled.
``quick`` replays only ``sudden_rumor``.
"""

from __future__ import annotations

import logging
import statistics
from pathlib import Path

from alerts.backtest import BacktestReport, load_scenario, run_backtest
from bench.results import Result
from core.settings import Settings, read_config_file

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "bench" / "scenarios"
EXAMPLE = ROOT / "config" / "yuqing.example.yaml"


def run(quick: bool) -> list[Result]:
    """Replay the scenarios; return the four pooled figures."""
    logging.getLogger("alerts.detector").setLevel(logging.ERROR)
    example = read_config_file(EXAMPLE)
    settings = Settings(
        rules=example["rules"],
        watchlist=example.get("watchlist", {}),
        grading=example.get("grading", {}),
        grouping=example.get("grouping", {}),
    )
    paths = [SCENARIOS / "sudden_rumor.yaml"] if quick else sorted(SCENARIOS.glob("*.yaml"))
    reports: list[BacktestReport] = [run_backtest(load_scenario(p), settings) for p in paths]
    true = sum(r.true_incidents for r in reports)
    found = sum(r.overall.found for r in reports)
    weeks = sum(r.weeks for r in reports)
    false_alarms = sum(r.overall.false_alarms for r in reports)
    delays = [d for r in reports for d in r.overall.delays_cycles]
    delays_min = [d for r in reports for d in r.overall.delays_minutes]
    per = "; ".join(
        f"{r.scenario}: found {r.overall.found}/{r.true_incidents}, "
        f"{r.overall.false_alarms} false alarm(s) in {r.weeks:.2f} wk, "
        f"delays {r.overall.delays_cycles} cycles / {r.overall.delays_minutes} min"
        for r in reports
    )
    detail = f"{len(reports)} scenario(s), rules of config/yuqing.example.yaml; {per}"
    return [
        Result(
            "backtest_incidents_found_ratio",
            round(found / true, 3) if true else 1.0,
            "",
            1.0,
            "higher",
            detail,
        ),
        Result(
            "backtest_false_alarms_per_week",
            round(false_alarms / weeks, 3),
            "/week",
            1.0,
            "lower",
            detail,
        ),
        Result(
            "backtest_median_delay_cycles",
            float(statistics.median(delays)) if delays else 0.0,
            "cycles",
            2.0,
            "lower",
            detail,
        ),
        Result(
            "backtest_median_delay_minutes",
            round(float(statistics.median(delays_min)), 2) if delays_min else 0.0,
            "min",
            10.0,
            "lower",
            detail,
        ),
    ]
