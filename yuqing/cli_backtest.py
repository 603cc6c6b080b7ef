"""``yuqing backtest SCENARIO``: replay a labelled scenario through the detectors.

Exposes ``app`` (a Typer app with the single command ``backtest``); the lead
registers it in :mod:`yuqing.cli` with ``app.command("backtest")(cli_backtest.backtest)``
or ``app.add_typer(cli_backtest.app)``. See :mod:`alerts.backtest` for the
scenario format and the scoring. Scenarios ship in ``bench/scenarios/``.

Exit codes: 0 done, 2 the config or the scenario is invalid.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from alerts.backtest import load_scenario, run_backtest
from core.errors import ConfigError
from core.settings import load_settings
from yuqing.cli_common import ConfigOpt

app = typer.Typer(help="Replay labelled scenarios through the detectors.")
console = Console()
err_console = Console(stderr=True)
log = logging.getLogger("yuqing.cli.backtest")


@app.command()
def backtest(
    scenario: Annotated[
        Path, typer.Argument(help="scenario YAML, e.g. bench/scenarios/sudden_rumor.yaml")
    ],
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Replay SCENARIO on a simulated clock; report found, missed, false alarms and delay."""
    try:
        settings = load_settings(config)
        loaded = load_scenario(scenario)
        # The replay logs every alert at WARNING; the table below is the output.
        logging.getLogger("alerts.detector").setLevel(logging.ERROR)
        report = run_backtest(loaded, settings)
    except ConfigError as exc:
        err_console.print(f"[bold red]configuration error[/]\n{exc}")
        raise typer.Exit(2) from exc
    if as_json:
        console.print_json(json.dumps(report.as_dict(), ensure_ascii=False))
        return
    table = Table(
        title=f"backtest {report.scenario}: {report.cycles} cycles, "
        f"{report.true_incidents} true incident(s), {report.weeks:.2f} simulated weeks"
    )
    columns = ("rule", "found", "missed", "false alarms", "median delay (cycles)", "(minutes)")
    for column in columns:
        table.add_column(column)
    rows = [*report.by_rule.items(), ("overall", report.overall)]
    for name, s in rows:
        delay = "-" if s.median_delay_cycles is None else f"{s.median_delay_cycles:g}"
        minutes = "-" if s.median_delay_minutes is None else f"{s.median_delay_minutes:.1f}"
        table.add_row(name, str(s.found), str(s.missed), str(s.false_alarms), delay, minutes)
    console.print(table)
    console.print(
        "delay in cycles: from the event's start; in minutes: from its first critical post "
        "(events with critical posts only). A rule joining another rule's incident counts "
        "for that rule, and once overall."
    )
    console.print(
        f"found ratio {report.found_ratio:.2f}, "
        f"false alarms per week {report.false_alarms_per_week:.2f}"
    )
