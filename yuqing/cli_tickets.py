"""``yuqing tickets``: import complaint-ticket exports and list stored tickets.

Registered in :mod:`yuqing.cli` as ``app.add_typer(cli_tickets.app, name="tickets")``.

* ``import FILE`` validates every row of a CSV / XLSX / JSON export, then
  upserts the tickets by id (see :mod:`alerts.tickets.importer`). All or
  nothing per file unless ``--partial``.
* ``list`` shows the newest stored tickets.
* ``serve`` runs the push endpoint alone (``yuqing run`` also serves it when
  the push token is set).
* ``link INCIDENT_ID`` / ``posts TICKET_ID``: incident → tickets and
  ticket → public posts, each with the reasons.
* ``problem promote|list|set-status``: problem records (an incident and its
  tickets, owned by the complaint team; see :mod:`alerts.tickets.problems`).

Exit codes: 0 imported, 1 rows were rejected (with ``--partial``: the valid
ones were still written) or the store failed, 2 the file or the configuration
cannot be used at all (missing columns, unknown encoding, bad config).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from alerts.tickets.problems import ProblemStore

from core.errors import ConfigError, StoreError
from core.models import Ticket
from core.ports import PostStore, StateStore
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


@contextmanager
def _post_and_state(settings: Settings) -> Iterator[tuple[PostStore, StateStore]]:
    """Both stores, closed afterwards; a store that is down ends the command (exit 1).

    Other errors raised in the ``with`` body pass through to the caller.
    """
    from yuqing.bootstrap import build_post_store, build_state_store

    try:
        posts = build_post_store(settings)
        try:
            state = build_state_store(settings)
            try:
                yield posts, state
            finally:
                state.close()
        finally:
            posts.close()
    except StoreError as exc:
        _err().print(f"[bold red]store unavailable[/]: {exc}")
        raise typer.Exit(1) from exc


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

    settings = _settings(config)
    try:
        with _post_and_state(settings) as (posts, state):
            links = link_incident(incident_id, posts, state, settings.watchlist, limit=limit)
    except KeyError as exc:
        _err().print(f"[bold red]no incident {incident_id}[/]")
        raise typer.Exit(1) from exc
    table = Table(title=f"事件 #{incident_id} 关联工单 ({len(links)})")
    table.add_column("工单号")
    table.add_column("得分 score", justify="right")
    table.add_column("关联依据 reasons", overflow="fold")
    for link in links:
        table.add_row(link.ticket_id, f"{link.score:.2f}", "；".join(link.reasons))
    _out().print(table)


@app.command("posts")
def posts_command(
    ticket_id: Annotated[str, typer.Argument(help="The complaint ticket to trace.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 10,
    config: ConfigOpt = None,
) -> None:
    """The public posts most likely about the same case as a ticket, with the reasons."""
    from alerts.tickets.linking import posts_for_ticket
    from nlp.pii import mask_pii

    settings = _settings(config)
    zone = ZoneInfo(settings.timezone)
    with _post_and_state(settings) as (posts, state):
        ticket = _get_ticket(state, ticket_id)
        links = posts_for_ticket(ticket, posts, settings.watchlist, limit=limit)
        found = {link.post_id: posts.get(link.post_id) for link in links}
    out = _out()
    out.print(
        f"工单 {ticket.ticket_id} · {ticket.branch or '-'} · {ticket.product or '-'} · "
        f"{ticket.created_at.astimezone(zone):%Y-%m-%d %H:%M} · {ticket.status or '-'}"
    )
    if not links:
        out.print(
            "no public post found for this ticket (none within 3 days naming its product or "
            "branch scores high enough)"
        )
        return
    # One block per post, not a table: reasons and titles stay readable at any width.
    out.print(f"工单 {ticket.ticket_id} 相关帖子 ({len(links)})")
    for rank, link in enumerate(links, 1):
        post = found.get(link.post_id)
        when = f"{post.published_at.astimezone(zone):%Y-%m-%d %H:%M}" if post else ""
        source = post.source if post else "(no longer stored)"
        out.print(f"{rank}. {link.post_id}  得分 {link.score:.2f}  {when}  {source}")
        if post is not None:
            out.print(f"   {mask_pii(post.title)[:80]}", markup=False)
        out.print(f"   依据：{'；'.join(link.reasons)}", markup=False)


def _get_ticket(state: StateStore, ticket_id: str) -> Ticket:
    """The stored ticket, or exit 1 naming it (and exit 1 if the store keeps no tickets by id)."""
    from alerts.tickets.problems import ProblemError, problem_store

    try:
        ticket = problem_store(state).get_ticket(ticket_id)
    except ProblemError as exc:
        _err().print(f"[bold red]{exc}[/]")
        raise typer.Exit(1) from exc
    if ticket is None:
        _err().print(f"[bold red]no ticket {ticket_id!r}[/] (see `yuqing tickets list`)")
        raise typer.Exit(1)
    return ticket


# ---------------------------------------------------------------------- problem records

problem_app = typer.Typer(
    help="Problem records: an incident and its tickets, owned by the complaint team.",
    no_args_is_help=True,
)
app.add_typer(problem_app, name="problem")

UserOpt = Annotated[
    str, typer.Option("--user", help="Who acts (written to the audit log).", show_default=True)
]


@problem_app.command("promote")
def problem_promote(
    incident_id: Annotated[int, typer.Argument(help="The incident to promote.")],
    user: UserOpt,
    owner: Annotated[
        str, typer.Option("--owner", help="The person in the complaint team who owns it.")
    ] = "",
    team: Annotated[str, typer.Option("--team", help="The owning team.")] = "投诉处理组",
    config: ConfigOpt = None,
) -> None:
    """Promote an incident and its linked complaint tickets to one problem record.

    Uses the tickets stored on the incident, else links them now. Promoting an
    incident that already is a problem adds its newly linked tickets.
    """
    from alerts.tickets.problems import ProblemError, promote_incident

    settings = _settings(config)
    try:
        with _post_and_state(settings) as (posts, state):
            done = promote_incident(
                incident_id,
                state=state,
                posts=posts,
                watchlist=settings.watchlist,
                user=user,
                team=team,
                owner=owner,
            )
    except ProblemError as exc:
        _err().print(f"[bold red]cannot promote incident {incident_id}[/]: {exc}")
        raise typer.Exit(1) from exc
    p = done.problem
    owner_text = f"{p.owner_team}/{p.owner_user}" if p.owner_user else p.owner_team
    if done.created:
        how = "stored links" if done.source == "stored" else "linked now"
        _out().print(
            f"[green]problem {p.id} created[/] from incident {incident_id} ({how}): "
            f"{len(p.ticket_ids)} tickets ({', '.join(p.ticket_ids)}), owner {owner_text}"
        )
    elif done.added:
        _out().print(
            f"incident {incident_id} already is problem {p.id}; added tickets "
            f"{', '.join(done.added)} (now {len(p.ticket_ids)})"
        )
    else:
        _out().print(f"incident {incident_id} already is problem {p.id}; no new tickets")


@problem_app.command("list")
def problem_list(
    status: Annotated[
        list[str] | None, typer.Option("--status", help="Only these statuses (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 50,
    config: ConfigOpt = None,
) -> None:
    """Problem records, newest first, with their tickets' state and what to look at."""
    from alerts.tickets.problems import suggestion, sync_flags
    from storage.state import PROBLEM_STATUS_ZH, PROBLEM_STATUSES
    from yuqing.bootstrap import build_state_store

    bad = [s for s in status or [] if s not in PROBLEM_STATUSES]
    if bad:
        _err().print(f"[bold red]unknown status {bad[0]!r}[/]: use {', '.join(PROBLEM_STATUSES)}")
        raise typer.Exit(2)
    settings = _settings(config)
    closed = settings.tickets.closed_statuses
    zone = ZoneInfo(settings.timezone)
    try:
        state = build_state_store(settings)
        try:
            problems = _problems(state).list_problems(status=status or None, limit=limit)
        finally:
            state.close()
    except StoreError as exc:
        _err().print(f"[bold red]state store unavailable[/]: {exc}")
        raise typer.Exit(1) from exc
    table = Table(title=f"问题单 problems ({len(problems)})")
    for name in ("编号", "事件", "状态", "负责", "工单 (未办结)", "提示", "更新时间", "标题"):
        table.add_column(name, overflow="fold")
    for p in problems:
        hints = sync_flags(p, closed)
        if suggestion(p, closed):
            hints.append("建议置为已解决")
        table.add_row(
            str(p.id),
            f"#{p.incident_id}",
            f"{p.status} {PROBLEM_STATUS_ZH.get(p.status, '')}",
            f"{p.owner_team}/{p.owner_user}" if p.owner_user else p.owner_team,
            f"{len(p.ticket_ids)} ({len(p.open_ticket_ids(closed))})",
            "；".join(hints),
            p.updated_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            p.title,
        )
    _out().print(table)


@problem_app.command("set-status")
def problem_set_status(
    problem_id: Annotated[int, typer.Argument(help="The problem to change.")],
    status: Annotated[str, typer.Argument(help="open, investigating, resolved or closed.")],
    user: UserOpt,
    note: Annotated[str, typer.Option("--note", help="Why (written to the audit log).")] = "",
    config: ConfigOpt = None,
) -> None:
    """Change a problem's status (audited with the user and the note)."""
    from storage.state import PROBLEM_STATUSES
    from yuqing.bootstrap import build_state_store

    if status not in PROBLEM_STATUSES:
        _err().print(f"[bold red]unknown status {status!r}[/]: use {', '.join(PROBLEM_STATUSES)}")
        raise typer.Exit(2)
    settings = _settings(config)
    try:
        state = build_state_store(settings)
        try:
            store = _problems(state)
            before = store.get_problem(problem_id)
            if before is None:
                _err().print(
                    f"[bold red]no problem {problem_id}[/] (see `yuqing tickets problem list`)"
                )
                raise typer.Exit(1)
            after = store.set_problem_status(problem_id, status, actor=user, note=note)
        finally:
            state.close()
    except StoreError as exc:
        _err().print(f"[bold red]cannot change problem {problem_id}[/]: {exc}")
        raise typer.Exit(1) from exc
    if before.status == after.status:
        _out().print(f"problem {problem_id} already is {status}; nothing changed")
    else:
        _out().print(f"problem {problem_id}: {before.status} → {after.status}")


def _problems(state: StateStore) -> ProblemStore:
    from alerts.tickets.problems import ProblemError, problem_store

    try:
        return problem_store(state)
    except ProblemError as exc:
        _err().print(f"[bold red]{exc}[/]")
        raise typer.Exit(1) from exc
