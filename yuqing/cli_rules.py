"""``yuqing rules``: check the configured detection rules and try them without side effects.

Registered by :mod:`yuqing.cli` as ``app.add_typer(cli_rules.app, name="rules")``.

* ``check`` loads the config, validates every rule (options, known ``type``)
  and prints one row per rule. Nothing is opened but the config file.
* ``dry-run`` evaluates every enabled rule once, now, against the configured
  post store (reading the state database only for past incident windows, as
  the detector does) and prints what would match. Nothing is written: no
  incident, alert or notification.

Exit codes: 0 done, 1 a rule could not be evaluated (a store is down: the
alarm state is unknown, not quiet), 2 the configuration is wrong.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from alerts.detector import past_incident_windows
from alerts.rules import Match, Rule, build_rules, evaluate_rule
from core.errors import ConfigError, StoreError
from core.models import utcnow
from core.settings import Settings, load_settings
from yuqing.cli_common import ConfigOpt

app = typer.Typer(
    help="Check the detection rules of a config and try them without writing anything.",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)
log = logging.getLogger("yuqing.cli.rules")

EXIT_FAILED = 1
EXIT_CONFIG = 2

_COMMON = frozenset({"name", "type", "enabled", "dry_run"})


def _load(config: Any) -> tuple[Settings, list[Rule[Any]]]:
    """Settings and built rules, or exit 2 with the configuration error printed."""
    try:
        settings = load_settings(config)
        return settings, build_rules(settings.rules)
    except ConfigError as exc:
        err_console.print(f"[bold red]configuration error[/]\n{exc}")
        raise typer.Exit(EXIT_CONFIG) from exc


def options_summary(options: BaseModel) -> str:
    """``key=value`` of the options set in the config (not defaults), except the common ones."""
    values = options.model_dump(exclude_defaults=True, exclude=set(_COMMON))
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items())) or "(defaults)"


@app.command()
def check(config: ConfigOpt = None) -> None:
    """Validate the rules of the config and list them (name, type, mode, options)."""
    _settings, rules = _load(config)
    table = Table(title=f"rules ({config or 'defaults'})")
    for column in ("#", "name", "type", "mode", "options"):
        table.add_column(column)
    for index, rule in enumerate(rules):
        mode = "off" if not rule.enabled else ("dry-run" if rule.dry_run else "on")
        table.add_row(str(index), rule.name, rule.type, mode, options_summary(rule.config))
    console.print(table)
    console.print(f"{len(rules)} rule(s) valid")


def evaluate_without_writing(
    rules: list[Rule[Any]], posts: Any, state: Any, now: datetime
) -> tuple[list[Match], dict[str, Exception]]:
    """Every match of every enabled rule as of ``now``, and the rules that failed.

    Reads only: ``posts`` (the rules' queries) and ``state`` (past incident
    windows for the baselines). A failed rule does not stop the others.
    """
    matches: list[Match] = []
    failures: dict[str, Exception] = {}
    for rule in rules:
        if not rule.enabled:
            continue
        try:
            exclude = past_incident_windows(state, rule.name, now)
            # Ticket rules read the state store's tickets, the others the posts.
            matches.extend(evaluate_rule(rule, posts, now, exclude=exclude, tickets=state))
        except StoreError as exc:
            log.error("rule=%s could not be evaluated: %s", rule.name, exc)
            failures[rule.name] = exc
        except Exception as exc:
            log.exception("rule=%s raised unexpectedly", rule.name)
            failures[rule.name] = exc
    return matches, failures


@app.command("dry-run")
def dry_run(config: ConfigOpt = None) -> None:
    """Evaluate every enabled rule now against the configured stores; print, write nothing."""
    from yuqing.bootstrap import build_post_store, build_state_store

    settings, rules = _load(config)
    now = utcnow()
    try:
        posts = build_post_store(settings)
    except StoreError as exc:
        err_console.print(f"[bold red]post store unavailable:[/] {exc}")
        raise typer.Exit(EXIT_FAILED) from exc
    try:
        state = build_state_store(settings)
    except StoreError as exc:
        posts.close()
        err_console.print(f"[bold red]state store unavailable:[/] {exc}")
        raise typer.Exit(EXIT_FAILED) from exc
    try:
        matches, failures = evaluate_without_writing(rules, posts, state, now)
    finally:
        posts.close()
        state.close()
    table = Table(title=f"dry run at {now.isoformat(timespec='seconds')} (nothing recorded)")
    for column in ("rule", "type", "key", "grade", "posts", "reason"):
        table.add_column(column)
    for m in matches:
        table.add_row(
            m.rule,
            m.rule_type,
            m.key,
            f"[{m.grade.color}]{m.grade.value} {m.grade.label_zh}[/]",
            str(m.count),
            m.reason,
        )
    if matches:
        console.print(table)
    else:
        console.print("no rule matched")
    if failures:
        for name, error in failures.items():
            err_console.print(f"[bold red]rule {name} failed:[/] {type(error).__name__}: {error}")
        err_console.print("alarm state unknown for the failed rules (not quiet)")
        raise typer.Exit(EXIT_FAILED)
