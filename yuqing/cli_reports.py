"""``yuqing report``: the daily brief (舆情日报) and per-incident reports as Markdown, DOCX or PDF.

Registered in :mod:`yuqing.cli` as ``app.add_typer(cli_reports.app, name="report")``.

* ``daily [--date YYYY-MM-DD]`` — the brief of one local day (default: yesterday
  in the configured time zone);
* ``incident ID`` — the report of one incident, with the regulatory draft
  (``alerts.regulatory.draft_report``).

``--format`` is ``md`` (default), ``docx`` or ``pdf``; ``-o FILE`` writes the
file (``-`` or no ``-o`` with ``md``: standard output; no ``-o`` with docx/pdf:
``daily-brief-<date>.<fmt>`` / ``incident-<id>-report.<fmt>`` in the current
directory). Exit codes: 0 written, 1 a store failed or the incident does not
exist, 2 bad arguments or configuration.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from core.errors import ConfigError, StoreError
from core.ports import PostStore, StateStore
from core.settings import Settings, load_settings
from yuqing.cli_common import ConfigOpt

app = typer.Typer(
    help="Reports for head office: the daily brief (舆情日报) and incident reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

FormatOpt = Annotated[
    str, typer.Option("--format", "-f", help="md (Markdown), docx or pdf.", show_default=True)
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="File to write ('-': standard output, md only).", show_default=False
    ),
]


def _err() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def _fail(code: int, message: str) -> typer.Exit:
    _err().print(message)
    return typer.Exit(code)


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise _fail(2, f"[bold red]configuration error[/]\n{exc}") from exc


def _format(value: str) -> str:
    from reports.render import check_format

    try:
        return check_format(value)
    except ValueError as exc:
        raise _fail(2, f"[bold red]{exc}[/]") from exc


@contextmanager
def _stores(settings: Settings) -> Iterator[tuple[PostStore, StateStore]]:
    from yuqing.bootstrap import build_post_store, build_state_store

    try:
        posts = build_post_store(settings)
    except StoreError as exc:
        raise _fail(1, f"[bold red]post store unavailable[/]: {exc}") from exc
    try:
        state = build_state_store(settings)
    except StoreError as exc:
        posts.close()
        raise _fail(1, f"[bold red]state store unavailable[/]: {exc}") from exc
    try:
        yield posts, state
    except StoreError as exc:
        raise _fail(
            1, f"[bold red]store failed while building the report[/]: {exc}\nnothing was written"
        ) from exc
    finally:
        posts.close()
        state.close()


def _write(data: bytes, fmt: str, output: Path | None, default_name: str) -> None:
    if (output is None and fmt == "md") or str(output) == "-":
        if fmt != "md":
            raise _fail(2, f"[bold red]{fmt} is binary[/]: give a file with -o")
        sys.stdout.write(data.decode("utf-8"))
        sys.stdout.flush()
        return
    target = output or Path(default_name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)  # never a half-written report under the real name
    except OSError as exc:
        raise _fail(1, f"[bold red]cannot write {target}[/]: {exc}") from exc
    _err().print(f"written {target} ({len(data)} bytes)")


def _parse_day(value: str | None, settings: Settings, now: datetime) -> date:
    from reports.brief import previous_day

    if value is None:
        return previous_day(now, ZoneInfo(settings.timezone))
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise _fail(2, f"[bold red]--date {value!r}[/]: expected YYYY-MM-DD") from exc


@app.command("daily")
def daily_command(
    day: Annotated[
        str | None,
        typer.Option(
            "--date", "-d", help="Local day YYYY-MM-DD (default: yesterday).", show_default=False
        ),
    ] = None,
    fmt: FormatOpt = "md",
    output: OutputOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The daily brief (舆情日报) of one day in the configured time zone."""
    from core.models import utcnow
    from reports.brief import gather_daily_brief
    from reports.render import check_format, daily_brief_filename, render_daily_brief

    fmt = _format(fmt)
    settings = _settings(config)
    now = utcnow()
    chosen = _parse_day(day, settings, now)
    bank = settings.watchlist.bank
    with _stores(settings) as (posts, state):
        brief = gather_daily_brief(
            posts,
            state,
            chosen,
            now=now,
            tz=settings.timezone,
            bank=bank.name,
            exclude_words=bank.all_names,
            link=f"{settings.dashboard.public_url.rstrip('/')}/reports?date={chosen.isoformat()}",
        )
    checked = check_format(fmt)
    _write(
        render_daily_brief(brief, checked, now=now),
        fmt,
        output,
        daily_brief_filename(brief, checked),
    )


def _draft(settings: Settings, posts: PostStore, state: StateStore, incident_id: int) -> str | None:
    """The draft head office saved (edited) in the incident room, else a fresh
    ``alerts.regulatory`` draft; ``None`` if the incident does not exist."""
    from yuqing.bootstrap import draft_reporter

    list_notes = getattr(state, "list_notes", None)  # SqlStateStore keeps saved drafts
    if callable(list_notes):
        saved = list_notes(incident_id, kind="draft", limit=1)
        if saved:
            return str(saved[-1].text)
    return draft_reporter(settings, state, posts)(incident_id)


@app.command("incident")
def incident_command(
    incident_id: Annotated[
        int, typer.Argument(help="The incident id (see `yuqing incidents list`).")
    ],
    fmt: FormatOpt = "md",
    output: OutputOpt = None,
    no_draft: Annotated[
        bool, typer.Option("--no-draft", help="Leave out the regulatory draft section.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """The report of one incident: grade, timeline, scope, posts, tickets and the draft."""
    from core.models import utcnow
    from reports.incident import IncidentNotFound, gather_incident_report
    from reports.render import check_format, incident_report_filename, render_incident_report

    fmt = _format(fmt)
    settings = _settings(config)
    now = utcnow()
    with _stores(settings) as (posts, state):
        draft = None if no_draft else _draft(settings, posts, state, incident_id)
        try:
            report = gather_incident_report(
                posts,
                state,
                incident_id,
                now=now,
                tz=settings.timezone,
                bank=settings.watchlist.bank.name,
                draft=draft,
                link=f"{settings.dashboard.public_url.rstrip('/')}/incidents?incident={incident_id}",
            )
        except IncidentNotFound as exc:
            raise _fail(
                1, f"[bold red]no incident {incident_id}[/] (see `yuqing incidents list`)"
            ) from exc
    checked = check_format(fmt)
    _write(
        render_incident_report(report, checked, now=now),
        fmt,
        output,
        incident_report_filename(report, checked),
    )
