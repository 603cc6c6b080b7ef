"""``yuqing tickets``: import complaint-ticket exports and list stored tickets.

Registered in :mod:`yuqing.cli` as ``app.add_typer(cli_tickets.app, name="tickets")``.

* ``import FILE`` validates every row of a CSV / XLSX / JSON export, then
  upserts the tickets by id (see :mod:`alerts.tickets.importer`). All or
  nothing per file unless ``--partial``.
* ``list`` shows the newest stored tickets.

Exit codes: 0 imported, 1 rows were rejected (with ``--partial``: the valid
ones were still written) or the store failed, 2 the file or the configuration
cannot be used at all (missing columns, unknown encoding, bad config).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.errors import ConfigError, StoreError
from core.settings import Settings, load_settings
from yuqing.cli_common import ConfigOpt

app = typer.Typer(
    help="Complaint tickets: import exports (CSV, XLSX, JSON) and list them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
log = logging.getLogger("yuqing.cli.tickets")

_REASONS_ZH = {
    "empty_id": "工单号为空",
    "bad_date": "时间无法解析",
    "duplicate_id": "文件内工单号重复",
    "invalid": "字段不合法",
    "missing_field": "缺少必填字段",
}
_SHOWN_REJECTS = 20


def _out() -> Console:
    # Created per call so CliRunner's captured streams are the ones written to.
    return Console(soft_wrap=True, highlight=False)


def _err() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        _err().print(f"[bold red]configuration error[/]\n{exc}")
        raise typer.Exit(2) from exc


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="The export to import (CSV, XLSX or JSON).")],
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", help="auto (from the extension), csv, xlsx or json."),
    ] = "auto",
    partial: Annotated[
        bool,
        typer.Option(
            "--partial", help="Write the valid rows even when some are rejected (reported)."
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Validate every row of FILE, then upsert its tickets by ticket id."""
    from alerts.tickets.importer import TicketImportError, import_tickets
    from yuqing.bootstrap import build_state_store

    if fmt not in ("auto", "csv", "xlsx", "json"):
        _err().print(f"[bold red]unknown format {fmt!r}[/]: use auto, csv, xlsx or json")
        raise typer.Exit(2)
    file_format: Literal["auto", "csv", "xlsx", "json"] = fmt  # type: ignore[assignment]
    settings = _settings(config)
    out = _out()
    try:
        state = build_state_store(settings)
    except StoreError as exc:
        _err().print(f"[bold red]state store unavailable[/]: {exc}")
        raise typer.Exit(1) from exc
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=out,
            transient=False,
        ) as bar:
            tasks = {
                "validate": bar.add_task("检查 validate", total=None),
                "write": bar.add_task("写入 write", total=None, visible=False),
            }

            def progress(phase: str, done: int, total: int | None) -> None:
                bar.update(tasks[phase], completed=done, total=total, visible=True)

            report = import_tickets(
                file,
                state,
                settings.tickets,
                timezone=settings.timezone,
                fmt=file_format,
                partial=partial,
                progress=progress,
            )
    except TicketImportError as exc:
        _err().print(f"[bold red]cannot import {file}[/]\n{exc}\nnothing was imported")
        raise typer.Exit(2) from exc
    except StoreError as exc:
        _err().print(
            f"[bold red]the state store failed during the import[/]: {exc}\n"
            "some batches may be written; re-run the import (it is idempotent)"
        )
        raise typer.Exit(1) from exc
    finally:
        state.close()

    summary = Table(title=f"工单导入 {file.name}", show_header=False)
    summary.add_column("", style="bold")
    summary.add_column("", justify="right")
    summary.add_row("格式 format", f"{report.format} ({report.encoding or 'binary'})")
    summary.add_row("读取 read", str(report.read))
    summary.add_row("导入 imported", str(report.imported))
    summary.add_row("拒绝 rejected", str(len(report.rejected)))
    for reason, count in sorted(report.rejected_by_reason().items()):
        summary.add_row(f"  {_REASONS_ZH.get(reason, reason)} ({reason})", str(count))
    out.print(summary)

    if report.rejected:
        rows = Table(title="被拒绝的行 rejected rows")
        rows.add_column("行 row", justify="right")
        rows.add_column("工单号 id")
        rows.add_column("原因 reason")
        for r in report.rejected[:_SHOWN_REJECTS]:
            rows.add_row(str(r.row), r.ticket_id, f"{r.reason}: {r.detail}")
        out.print(rows)
        more = len(report.rejected) - _SHOWN_REJECTS
        if more > 0:
            out.print(f"… and {more} more rejected rows")
        if partial:
            out.print(
                f"[yellow]partial import: {report.imported} tickets written, "
                f"{len(report.rejected)} rows NOT imported[/]"
            )
        else:
            out.print(
                "[bold red]nothing was imported[/] (all-or-nothing): fix the rows above, "
                "or re-run with --partial to import the valid ones"
            )
        raise typer.Exit(1)
    out.print(f"[green]{report.imported} tickets imported[/]")


@app.command("list")
def list_command(
    days: Annotated[
        float, typer.Option("--days", help="Only tickets created in the last N days (0: all).")
    ] = 0,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 50,
    config: ConfigOpt = None,
) -> None:
    """The newest stored tickets (times in the configured time zone)."""
    from core.models import utcnow
    from yuqing.bootstrap import build_state_store

    settings = _settings(config)
    zone = ZoneInfo(settings.timezone)
    since: datetime | None = utcnow() - timedelta(days=days) if days > 0 else None
    try:
        state = build_state_store(settings)
        try:
            tickets = state.list_tickets(since=since, limit=limit)
        finally:
            state.close()
    except StoreError as exc:
        _err().print(f"[bold red]state store unavailable[/]: {exc}")
        raise typer.Exit(1) from exc
    table = Table(title=f"工单 tickets ({len(tickets)})")
    for name in ("工单号", "创建时间", "渠道", "网点", "产品", "类别", "优先级", "状态", "摘要"):
        table.add_column(name, overflow="fold")
    for t in tickets:
        table.add_row(
            t.ticket_id,
            t.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            t.channel,
            t.branch,
            t.product,
            t.category,
            t.priority,
            t.status,
            t.summary[:60],
        )
    _out().print(table)


@app.command("serve")
def serve_command(
    host: Annotated[
        str | None, typer.Option(help="Bind address (default: tickets.push_host).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: tickets.push_port).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Accept tickets pushed by the complaint system: POST /tickets with a bearer token.

    The token is read from the environment variable named by
    ``tickets.push_token_env`` (default ``YUQING_TICKETS_PUSH_TOKEN``).
    """
    import os

    from alerts.tickets.push import MIN_TOKEN_LENGTH, TicketPushServer
    from yuqing.bootstrap import build_state_store

    settings = _settings(config)
    env = settings.tickets.push_token_env
    token = os.environ.get(env, "")
    if len(token) < MIN_TOKEN_LENGTH:
        _err().print(
            f"[bold red]set {env}[/] to a random token of at least {MIN_TOKEN_LENGTH} "
            "characters; the complaint system sends it as 'Authorization: Bearer <token>'"
        )
        raise typer.Exit(2)
    try:
        state = build_state_store(settings)
    except StoreError as exc:
        _err().print(f"[bold red]state store unavailable[/]: {exc}")
        raise typer.Exit(1) from exc
    try:
        server = TicketPushServer(
            state,
            settings.tickets,
            token=token,
            timezone=settings.timezone,
            host=host,
            port=port,
        )
    except OSError as exc:
        state.close()
        _err().print(f"[bold red]cannot listen[/]: {exc}")
        raise typer.Exit(1) from exc
    _out().print(f"accepting tickets at {server.url}/tickets (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        state.close()


@app.command("link")
def link_command(
    incident_id: Annotated[int, typer.Argument(help="The incident to explain.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 10,
    config: ConfigOpt = None,
) -> None:
    """The complaint tickets most likely behind an incident, with the reasons."""
    from alerts.tickets.linking import link_incident
    from yuqing.bootstrap import build_post_store, build_state_store

    settings = _settings(config)
    try:
        posts, state = build_post_store(settings), build_state_store(settings)
        try:
            links = link_incident(incident_id, posts, state, settings.watchlist, limit=limit)
        finally:
            posts.close()
            state.close()
    except KeyError as exc:
        _err().print(f"[bold red]no incident {incident_id}[/]")
        raise typer.Exit(1) from exc
    except StoreError as exc:
        _err().print(f"[bold red]store unavailable[/]: {exc}")
        raise typer.Exit(1) from exc
    table = Table(title=f"事件 #{incident_id} 关联工单 ({len(links)})")
    table.add_column("工单号")
    table.add_column("得分 score", justify="right")
    table.add_column("关联依据 reasons", overflow="fold")
    for link in links:
        table.add_row(link.ticket_id, f"{link.score:.2f}", "；".join(link.reasons))
    _out().print(table)
