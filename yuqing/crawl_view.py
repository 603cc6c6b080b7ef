"""What ``yuqing crawl SOURCE`` shows: a live progress line and a summary table.

The progress line is a ``rich`` status redrawn in place while Scrapy runs
(fetched pages, kept posts, dropped posts, errors, spooled posts). On a
console that is not a terminal (a pipe, a log file) rich does not redraw;
then one plain line is printed every ``plain_every`` seconds instead, so a
long crawl under the scheduler still shows it is alive.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from core.models import CrawlRun
from crawler.progress import CrawlProgress


def progress_text(source: str, p: CrawlProgress) -> Text:
    """One line: ``crawl SOURCE  fetched 12 · kept 8 · dropped 3 · errors 0 · spooled 0``."""
    parts = [
        f"fetched {p.fetched}",
        f"kept {p.kept}",
        f"dropped {p.dropped_total}",
        f"errors {p.errors}",
    ]
    if p.spooled:
        parts.append(f"spooled {p.spooled}")
    if p.skipped_known:
        parts.append(f"not refetched {p.skipped_known}")
    state = "done" if p.done else "…"
    return Text(f"crawl {source} {state}  " + " · ".join(parts))


@contextmanager
def live_progress(
    console: Console, source: str, *, plain_every: float = 5.0
) -> Iterator[tuple[Callable[[CrawlProgress], None], list[CrawlProgress]]]:
    """A progress callback for ``run_crawl`` and the list its last report is kept in."""
    last: list[CrawlProgress] = []
    if console.is_terminal:
        with Live(progress_text(source, CrawlProgress()), console=console, transient=False) as live:

            def update(p: CrawlProgress) -> None:
                last[:] = [p]
                live.update(progress_text(source, p))

            yield update, last
        return

    printed = [0.0]

    def plain(p: CrawlProgress) -> None:
        last[:] = [p]
        now = time.monotonic()
        if p.done or now - printed[0] >= plain_every:
            printed[0] = now
            console.print(progress_text(source, p), soft_wrap=True)

    yield plain, last


def summary_table(source: str, run: CrawlRun, final: CrawlProgress | None) -> Table:
    """The end-of-crawl table: fetched, kept, dropped by reason, errors, spooled, ok."""
    table = Table(title=f"crawl {source}", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("fetched pages", str(run.fetched))
    table.add_row("kept posts", str(run.kept))
    for reason, count in sorted(run.dropped.items()):
        table.add_row(f"dropped: {reason.replace('_', ' ')}", str(count))
    if not run.dropped:
        table.add_row("dropped", "0")
    table.add_row("errors", str(run.errors))
    table.add_row("spooled (store down)", str(final.spooled if final else 0))
    if final is not None and final.replayed:
        table.add_row("replayed from the spool", str(final.replayed))
    if final is not None and final.skipped_known:
        table.add_row("item pages not refetched (stored)", str(final.skipped_known))
    table.add_row("ok", "yes" if run.ok else "NO")
    return table
