"""``yuqing rules``: check the configured detection rules and try them without side effects.

Registered by :mod:`yuqing.cli` as ``app.add_typer(cli_rules.app, name="rules")``.

* ``check`` loads the config, validates every rule (options, known ``type``)
  and prints one row per rule. Nothing is opened but the config file.
* ``dry-run`` evaluates every enabled rule once, now, against the configured
  post store (reading the state database only for past incident windows, as
  the detector does) and prints what would match. Nothing is written: no
  incident, alert or notification.
* ``silence add|list|remove`` stores, lists and ends silences in the state
  database (:mod:`storage.silences`): matching incidents are still recorded
  but not notified; grade I only when ``--include-grade-i`` is given. Adding
  and removing are written to the audit log with ``--by``.

Exit codes: 0 done, 1 a rule could not be evaluated (a store is down: the
alarm state is unknown, not quiet), 2 the configuration is wrong.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, tzinfo
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from alerts.detector import past_incident_windows
from alerts.grading import Thresholds
from alerts.health import SourceHealth, source_health
from alerts.incidents import display_timezone
from alerts.rules import Match, Rule, build_rules, evaluate_rule
from alerts.rules.base import CopyCounter
from core.errors import ConfigError, QueryError, StoreError
from core.models import utcnow
from core.settings import Settings, load_settings
from core.vocab import Topic
from storage.silences import MAX_SILENCE, SilenceRule, silence_rows
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
        thresholds = Thresholds.from_config(settings.grading)
        return settings, build_rules(settings.rules, thresholds=thresholds)
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
    rules: list[Rule[Any]],
    posts: Any,
    state: Any,
    now: datetime,
    *,
    copies: CopyCounter | None = None,
) -> tuple[list[Match], dict[str, Exception]]:
    """Every match of every enabled rule as of ``now``, and the rules that failed.

    Reads only: ``posts`` (the rules' queries), ``state`` (past incident
    windows and source outages for the baselines) and ``copies`` (reposts grouped
    by the crawl), as the detector does. A failed rule does not stop the others.
    """
    matches: list[Match] = []
    failures: dict[str, Exception] = {}
    health: SourceHealth | None = None
    for rule in rules:
        if not rule.enabled:
            continue
        try:
            health = health or source_health(state, now)
            exclude = [*past_incident_windows(state, rule.name, now), *health.gaps]
            # Ticket rules read the state store's tickets, the others the posts.
            matches.extend(
                evaluate_rule(
                    rule,
                    posts,
                    now,
                    exclude=exclude,
                    tickets=state,
                    down_sources=health.down,
                    copies=copies,
                )
            )
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
    from yuqing.bootstrap import build_copy_counter, build_post_store, build_state_store

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
    copies = build_copy_counter(settings)
    try:
        matches, failures = evaluate_without_writing(rules, posts, state, now, copies=copies)
    finally:
        posts.close()
        state.close()
        copies.close()
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


# -- silences ---------------------------------------------------------------------------------

silence_app = typer.Typer(
    help="Hold the notifications of matching incidents for a while (recorded, audited).",
    no_args_is_help=True,
)
app.add_typer(silence_app, name="silence")


def parse_time(value: str, tz: tzinfo, what: str) -> datetime:
    """An ISO time (``2026-11-24T08:00``, ``2026-11-24 08:00+08:00``); without a zone it is
    read in ``tz`` (the configured ``timezone``). Raises ``typer.BadParameter`` naming ``what``."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{what}: {value!r} is not an ISO time such as 2026-11-24T08:00+08:00"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment


def _state(settings: Settings) -> Any:
    from yuqing.bootstrap import build_state_store

    try:
        return build_state_store(settings)
    except StoreError as exc:
        err_console.print(f"[bold red]state store unavailable:[/] {exc}")
        raise typer.Exit(EXIT_FAILED) from exc


@silence_app.command("add")
def silence_add(
    by: Annotated[str, typer.Option("--by", help="who sets the silence (audited)")],
    reason: Annotated[str, typer.Option("--reason", help="why (shown on the incident)")],
    rule: Annotated[str | None, typer.Option(help="a configured rule name")] = None,
    key: Annotated[str | None, typer.Option(help="an incident key, e.g. signal:bank_run")] = None,
    entity: Annotated[str | None, typer.Option(help="a branch, product or the bank")] = None,
    topic: Annotated[str | None, typer.Option(help="a topic, e.g. credit_card")] = None,
    source: Annotated[str | None, typer.Option(help="a configured source name")] = None,
    start: Annotated[
        str | None, typer.Option(help="ISO start (default: now); no zone = config timezone")
    ] = None,
    until: Annotated[str | None, typer.Option(help="ISO end; or give --hours")] = None,
    hours: Annotated[float | None, typer.Option(help="length from the start")] = None,
    include_grade_i: Annotated[
        bool,
        typer.Option(
            "--include-grade-i", help="also hold grade I (特别重大) incidents (never by default)"
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Store a silence: matching incidents are recorded but not notified until it ends."""
    settings, _rules = _load(config)
    tz = display_timezone(settings.timezone)
    if rule is not None and rule not in {r.name for r in settings.rules}:
        known = ", ".join(r.name for r in settings.rules)
        raise typer.BadParameter(f"--rule: no rule named {rule!r} (configured: {known})")
    if topic is not None and topic not in {t.value for t in Topic}:
        known = ", ".join(t.value for t in Topic)
        raise typer.BadParameter(f"--topic: unknown topic {topic!r} (known: {known})")
    if source is not None and settings.sources and source not in {s.name for s in settings.sources}:
        raise typer.BadParameter(f"--source: no source named {source!r} in the config")
    if not any((rule, key, entity, topic, source)):
        raise typer.BadParameter("give at least one of --rule, --key, --entity, --topic, --source")
    begin = parse_time(start, tz, "--start") if start else utcnow()
    if (until is None) == (hours is None):
        raise typer.BadParameter("give exactly one of --until and --hours")
    end = parse_time(until, tz, "--until") if until else begin + timedelta(hours=hours or 0)
    if end <= begin:
        raise typer.BadParameter("the silence must end after it starts")
    if end - begin > MAX_SILENCE:
        raise typer.BadParameter(f"a silence lasts at most {MAX_SILENCE.days} days")
    state = _state(settings)
    try:
        entry = state.add_silence(
            starts_at=begin,
            ends_at=end,
            created_by=by,
            reason=reason,
            rule=rule,
            key=key,
            entity=entity,
            topic=topic,
            source=source,
            include_grade_i=include_grade_i,
        )
    except QueryError as exc:
        err_console.print(f"[bold red]silence refused:[/] {exc}")
        raise typer.Exit(EXIT_CONFIG) from exc
    finally:
        state.close()
    silence = SilenceRule.from_stored(entry)
    console.print(
        f"silence #{entry.id} stored: {silence.describe()} from "
        f"{entry.starts_at.astimezone(tz):%Y-%m-%d %H:%M} to "
        f"{entry.ends_at.astimezone(tz):%Y-%m-%d %H:%M} ({settings.timezone})"
        + ("" if include_grade_i else "; grade I is still notified")
    )


@silence_app.command("list")
def silence_list(config: ConfigOpt = None) -> None:
    """List the silences in force or still to come (stored ones and the config's)."""
    settings, _rules = _load(config)
    state = _state(settings)
    try:
        rows = silence_rows(state, utcnow(), settings.escalation.silences)
    finally:
        state.close()
    if not rows:
        console.print("no silence in force")
        return
    # One line per silence (not a table): the matchers stay whole in narrow terminals.
    console.print("silences in force or to come (#0 = from the config file):")
    for row in rows:
        console.print(
            f"#{row['编号']} {row['状态']} {row['匹配']} {row['开始']} → {row['结束']} "
            f"含特别重大:{row['含特别重大']} by {row['设置人']}: {row['原因']}",
            markup=False,
            soft_wrap=True,
        )


@silence_app.command("remove")
def silence_remove(
    silence_id: Annotated[int, typer.Argument(help="the silence's number (silence list)")],
    by: Annotated[str, typer.Option("--by", help="who removes it (audited)")],
    note: Annotated[str, typer.Option(help="why")] = "",
    config: ConfigOpt = None,
) -> None:
    """End a stored silence now; held messages of still-active incidents go out next pass."""
    settings, _rules = _load(config)
    state = _state(settings)
    try:
        entry = state.remove_silence(silence_id, user=by, note=note)
    except QueryError as exc:
        err_console.print(f"[bold red]cannot remove silence #{silence_id}:[/] {exc}")
        raise typer.Exit(EXIT_CONFIG) from exc
    finally:
        state.close()
    console.print(f"silence #{entry.id} removed by {entry.removed_by}")
