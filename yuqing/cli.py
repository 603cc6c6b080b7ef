"""The ``yuqing`` command.

Every command takes ``--config`` (default ``$YUQING_CONFIG``). Heavy imports
happen inside the commands so ``yuqing --help`` stays instant and a crawl
child process loads only what it needs.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from core.errors import ConfigError, YuqingError
from core.settings import Settings, load_settings
from yuqing import cli_backtest, cli_index, cli_nlp, cli_reports, cli_rules, cli_tickets, cli_users
from yuqing.cli_common import ConfigOpt
from yuqing.logging_setup import configure_logging

app = typer.Typer(
    name="yuqing",
    help="舆情监测 — reputational-risk monitoring for a bank.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
incidents_app = typer.Typer(help="List, acknowledge and resolve incidents.", no_args_is_help=True)
app.add_typer(incidents_app, name="incidents")
app.add_typer(cli_index.app, name="index")
app.add_typer(cli_nlp.app, name="nlp")
app.add_typer(cli_tickets.app, name="tickets")
app.add_typer(cli_rules.app, name="rules")
app.add_typer(cli_users.app, name="users")
app.add_typer(cli_reports.app, name="report")
app.command("backtest")(cli_backtest.backtest)
channels_app = typer.Typer(help="Check notification channels.", no_args_is_help=True)
app.add_typer(channels_app, name="channels")

console = Console()
err_console = Console(stderr=True)
log = logging.getLogger("yuqing.cli")


def _settings(config: Path | None) -> Settings:
    """Load settings or exit 2 with the message that names the bad key."""
    try:
        return load_settings(config)
    except ConfigError as exc:
        err_console.print(f"[bold red]configuration error[/]\n{exc}")
        raise typer.Exit(2) from exc


@app.callback()
def _main(
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="DEBUG, INFO, WARNING …")
    ] = None,
) -> None:
    configure_logging(log_level)


@app.command("check-config")
def check_config(config: ConfigOpt = None) -> None:
    """Validate the configuration and print what is in force (secrets hidden)."""
    settings = _settings(config)
    table = Table(title=f"yuqing config ({config or 'defaults'})")
    table.add_column("setting")
    table.add_column("value")
    table.add_row("env", settings.env)
    table.add_row(
        "bank", f"{settings.watchlist.bank.name} ({', '.join(settings.watchlist.bank.aliases)})"
    )
    table.add_row("sources", ", ".join(s.name for s in settings.sources) or "(none)")
    table.add_row("rules", ", ".join(r.name for r in settings.rules) or "(none)")
    table.add_row("channels", ", ".join(c.name for c in settings.channels) or "(none)")
    table.add_row("post store", f"{settings.storage.posts_backend}: {settings.storage.posts_path}")
    table.add_row("state db", _hide_password(settings.storage.state_url))
    console.print(table)


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as-is: it holds no parsable password
        return url


@app.command()
def crawl(
    source: Annotated[str, typer.Argument(help="Source name from the config.")],
    config: ConfigOpt = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--no-resume",
            help="Go on with an interrupted crawl of this source (default), or start afresh.",
        ),
    ] = True,
) -> None:
    """Crawl one source now (in this process): a live progress line, then a summary."""
    from alerts.service import CRAWL_EXIT_RECORDED_NOT_OK
    from yuqing.bootstrap import build_crawl_services, run_one_crawl
    from yuqing.crawl_view import live_progress, summary_table

    settings = _settings(config)
    try:
        settings.source(source)
    except ConfigError as exc:
        err_console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    services = build_crawl_services(settings)
    try:
        with live_progress(console, source) as (progress, last):
            run = run_one_crawl(settings, source, services, resume=resume, progress=progress)
    finally:
        services.close()
    console.print(summary_table(source, run, last[0] if last else None))
    if run.message:
        console.print(run.message)
    if not run.ok:
        # Tell the scheduler the run is already recorded with its statistics.
        raise typer.Exit(CRAWL_EXIT_RECORDED_NOT_OK)


@app.command()
def detect(config: ConfigOpt = None) -> None:
    """Run every detection rule once now and print the alerts raised."""
    from core.models import utcnow
    from yuqing.bootstrap import build_detector

    settings = _settings(config)
    detector, close = build_detector(settings)
    try:
        alerts = detector.run_once(utcnow())
    except YuqingError as exc:
        err_console.print(f"[bold red]detection failed:[/] {exc}")
        raise typer.Exit(1) from exc
    finally:
        close()
    if not alerts:
        console.print("no rule matched")
    for alert in alerts:
        console.print(
            f"[{alert.grade.color}]{alert.grade.value} {alert.grade.label_zh}[/] {alert.summary}"
        )


@app.command()
def run(config: ConfigOpt = None) -> None:
    """Run the service: scheduled crawls (child processes), detectors and notifications."""
    from yuqing.bootstrap import build_service

    settings = _settings(config)
    try:
        service = build_service(settings, config_path=config)
    except ConfigError as exc:  # e.g. a ticket push token that is too short
        err_console.print(f"[bold red]configuration error[/]\n{exc}")
        raise typer.Exit(2) from exc
    service.run_forever()


@app.command()
def dashboard(
    config: ConfigOpt = None,
    port: Annotated[int | None, typer.Option(help="Port (default: dashboard.port).")] = None,
) -> None:
    """Start the Streamlit dashboard."""
    settings = _settings(config)
    os.execv(sys.executable, dashboard_command(settings, config, port))


def dashboard_command(
    settings: Settings, config: Path | None, port: int | None = None
) -> list[str]:
    """The argv that starts the dashboard with ``settings`` (used by ``dashboard`` and ``demo``)."""
    if config is not None:
        os.environ["YUQING_CONFIG"] = str(Path(config).resolve())
    script = Path(__file__).with_name("dashboard_main.py")
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.address",
        settings.dashboard.host,
        "--server.port",
        str(port or settings.dashboard.port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "viewer",
    ]


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port of the local demo web.")] = 8765,
    dashboard_port: Annotated[int, typer.Option(help="Port of the dashboard.")] = 8501,
    links_port: Annotated[
        int, typer.Option(help="Port of the service's one-click action links.")
    ] = 8788,
    scenario: Annotated[
        Path | None, typer.Option(help="Scenario YAML (default: the shipped one).")
    ] = None,
    speed: Annotated[
        float, typer.Option(help="Scenario minutes per real minute (the crisis comes sooner).")
    ] = 2.0,
    keep: Annotated[bool, typer.Option(help="Keep data of the previous demo run.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Run everything locally: demo web → crawl → analyze → store → detect → alert → dashboard."""
    from yuqing.demo_runner import run_demo

    raise typer.Exit(
        run_demo(
            config=config,
            port=port,
            dashboard_port=dashboard_port,
            links_port=links_port,
            scenario=scenario,
            speed=speed,
            keep=keep,
        )
    )


@incidents_app.command("list")
def incidents_list(
    config: ConfigOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="Include resolved incidents.")] = False,
) -> None:
    """List open (or all) incidents, newest first."""
    from core.vocab import IncidentStatus
    from yuqing.bootstrap import build_state_store

    settings = _settings(config)
    state = build_state_store(settings)
    try:
        status = None if all_ else [IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED]
        rows = state.list_incidents(status=status)
    finally:
        state.close()
    table = Table(title="incidents")
    for col in ("id", "grade", "status", "opened (Asia/Shanghai)", "posts", "title"):
        table.add_column(col)
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(settings.timezone)
    for inc in rows:
        table.add_row(
            str(inc.id),
            f"{inc.grade.value} {inc.grade.label_zh}",
            inc.status.value,
            inc.opened_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            str(inc.post_count),
            inc.title,
        )
    console.print(table)


def _act(action: str, incident_id: int, user: str, note: str, config: Path | None) -> None:
    """Perform ``action`` through the alerting engine (same audit and messages as the links)."""
    from yuqing.bootstrap import build_state_store, incident_action

    settings = _settings(config)
    state = build_state_store(settings)
    try:
        inc = incident_action(settings, state)(incident_id, action, user, note)
    except YuqingError as exc:
        err_console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    finally:
        state.close()
    console.print(f"incident {inc.id}: {inc.status.value}, grade {inc.grade.value}")


UserOpt = Annotated[str, typer.Option(help="Who acts (written to the audit log).")]
NoteOpt = Annotated[str, typer.Option(help="Optional note.")]


@incidents_app.command("ack")
def incidents_ack(
    incident_id: int, user: UserOpt, note: NoteOpt = "", config: ConfigOpt = None
) -> None:
    """Acknowledge an incident (stops its time-based escalation)."""
    _act("acknowledge", incident_id, user, note, config)


@incidents_app.command("escalate")
def incidents_escalate(
    incident_id: int, user: UserOpt, note: NoteOpt = "", config: ConfigOpt = None
) -> None:
    """Escalate an incident one level now; the running service delivers the messages."""
    _act("escalate", incident_id, user, note, config)


@incidents_app.command("resolve")
def incidents_resolve(
    incident_id: int, user: UserOpt, note: NoteOpt = "", config: ConfigOpt = None
) -> None:
    """Resolve an incident (a resolved notice goes to everybody who was told)."""
    _act("resolve", incident_id, user, note, config)


@incidents_app.command("report")
def incidents_report(incident_id: int, config: ConfigOpt = None) -> None:
    """Print the draft report of an incident for head office (plain text, Chinese)."""
    from zoneinfo import ZoneInfo

    from alerts.regulatory import draft_report
    from core.models import utcnow
    from yuqing.bootstrap import build_post_store, build_state_store

    settings = _settings(config)
    state, posts = build_state_store(settings), build_post_store(settings)
    try:
        inc = state.get_incident(incident_id)
        if inc is None:
            err_console.print(f"[red]unknown incident {incident_id}[/]")
            raise typer.Exit(1)
        found = [posts.get(pid) for pid in inc.post_ids[:5]]
        text = draft_report(
            inc,
            bank=settings.watchlist.bank.name,
            alerts=state.list_alerts(incident_id=incident_id),
            posts=[p for p in found if p is not None],
            actions=[
                (e.at, e.actor, e.action, e.detail)
                for e in state.list_audit(100, target=f"incident:{incident_id}")  # type: ignore[attr-defined]
            ],
            config=settings.reporting,
            tz=ZoneInfo(settings.timezone),
            now=utcnow(),
        )
    except YuqingError as exc:
        err_console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    finally:
        state.close()
        posts.close()
    sys.stdout.write(text + "\n")


@channels_app.command("test")
def channels_test(
    name: Annotated[str, typer.Argument(help="Channel name from the config.")],
    config: ConfigOpt = None,
) -> None:
    """Send a clearly labelled test message through one channel, now (not via the outbox)."""
    from zoneinfo import ZoneInfo

    from alerts.messages import sample_message
    from alerts.notifiers import build_notifiers
    from core.errors import NotifierError
    from core.models import utcnow

    settings = _settings(config)
    chosen = [c for c in settings.channels if c.name == name]
    if not chosen:
        known = ", ".join(c.name for c in settings.channels) or "(none)"
        err_console.print(f"[red]unknown channel {name!r}; configured: {known}[/]")
        raise typer.Exit(2)
    try:
        notifier = build_notifiers(chosen)[name]
    except (ConfigError, KeyError) as exc:
        err_console.print(f"[red]channel {name!r} cannot be built: {exc}[/]")
        raise typer.Exit(2) from exc
    now = utcnow()
    message = sample_message(
        now=now, tz=ZoneInfo(settings.timezone), public_url=settings.dashboard.public_url
    )
    try:
        notifier.send(message.notification(name, f"test:{now.isoformat()}", now=now))
    except NotifierError as exc:
        kind = "temporary" if exc.temporary else "permanent"
        err_console.print(f"[red]{name}: {kind} failure: {exc}[/]")
        raise typer.Exit(1) from exc
    console.print(f"{name}: test message delivered")


if __name__ == "__main__":  # pragma: no cover
    app()
