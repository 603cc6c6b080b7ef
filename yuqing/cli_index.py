"""``yuqing index``: manage the Elasticsearch post index.

Registered in :mod:`yuqing.cli` as ``app.add_typer(cli_index.app, name="index")``.

* ``init`` installs the versioned index template and the first index behind
  the read and write aliases (idempotent; run it once per cluster and after
  upgrading yuqing).
* ``rebuild`` copies every post into a new index — re-analysed with the
  current models unless ``--no-reanalyze`` — and swaps the aliases atomically:
  the dashboard and the crawlers keep working throughout.
* ``status`` shows the aliases, the indices behind them and the post count.

Exit codes: 0 done, 1 the store failed (unreachable, refused credentials), 2
the configuration is wrong (bad key, or the post store is not Elasticsearch).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from core.errors import ConfigError, StoreError
from core.models import Post, PostQuery
from core.settings import Settings, load_settings
from yuqing.cli_common import ConfigOpt

if TYPE_CHECKING:
    from storage.elastic import ElasticPostStore

app = typer.Typer(
    help="Manage the Elasticsearch post index (template, aliases, rebuilds).",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)
log = logging.getLogger("yuqing.cli.index")


def _store(config: Path | None, **overrides: object) -> tuple[Settings, ElasticPostStore]:
    """Settings and the configured Elasticsearch store, or exit 2 saying what is wrong."""
    from nlp.segment import tokenize
    from storage.elastic import from_settings

    try:
        settings = load_settings(config)
        if settings.storage.posts_backend != "elasticsearch":
            raise ConfigError(
                f"storage.posts_backend is {settings.storage.posts_backend!r}: `yuqing index` "
                "manages Elasticsearch; set YUQING_STORAGE__POSTS_BACKEND=elasticsearch"
            )
        return settings, from_settings(settings, tokenize, **overrides)
    except ConfigError as exc:
        err_console.print(f"[bold red]configuration error[/]\n{exc}")
        raise typer.Exit(2) from exc


def _fail(exc: StoreError) -> typer.Exit:
    err_console.print(f"[bold red]Elasticsearch error[/] {exc}")
    return typer.Exit(1)


@app.command("init")
def init(
    config: ConfigOpt = None,
    shards: Annotated[
        int | None, typer.Option(help="Primary shards of new indices (see docs/scaling.md).")
    ] = None,
    replicas: Annotated[int | None, typer.Option(help="Replicas of new indices.")] = None,
) -> None:
    """Install the index template and create the first index behind its aliases."""
    _, store = _store(config, number_of_shards=shards, number_of_replicas=replicas)
    try:
        info = store.ensure_index()
    except StoreError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    verb = "created" if info.created else "already present:"
    console.print(
        f"template [bold]{info.template}[/] installed; {verb} index [bold]{info.write_index}[/]\n"
        f"  read alias  {info.read_alias} → {', '.join(info.indices)}\n"
        f"  write alias {info.write_alias} → {info.write_index}"
    )


@app.command("status")
def status(config: ConfigOpt = None) -> None:
    """Show the aliases, the indices behind them and how many posts they hold."""
    _, store = _store(config)
    try:
        count = store.count(PostQuery())  # raises "run `yuqing index init`" if missing
        console.print(
            f"{store.url}\n  read alias  {store.read_alias} → {', '.join(store.read_indices())}"
            f"\n  write alias {store.write_alias} → {', '.join(store.write_indices())}"
            f"\n  {count} posts"
        )
    except StoreError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()


@app.command("rebuild")
def rebuild(
    config: ConfigOpt = None,
    reanalyze: Annotated[
        bool,
        typer.Option(
            "--reanalyze/--no-reanalyze",
            help="Run the current nlp models over every post while copying.",
        ),
    ] = True,
    keep_old: Annotated[
        bool, typer.Option("--keep-old", help="Keep the old indices after the alias swap.")
    ] = False,
    batch_size: Annotated[int, typer.Option(min=10, max=5000)] = 500,
) -> None:
    """Copy every post into a new index (optionally re-analysed) and swap aliases, no downtime."""
    settings, store = _store(config, refresh=False)
    analyze = None
    if reanalyze:
        from yuqing.bootstrap import build_analyzer

        analyzer = build_analyzer(settings)

        def analyze(posts: list[Post]) -> list[Post]:
            analyses = analyzer.analyze_many([(p.title, p.text) for p in posts])
            return [
                p.model_copy(update={"analysis": a}) for p, a in zip(posts, analyses, strict=True)
            ]

    seen = 0

    def progress(n: int) -> None:
        nonlocal seen
        seen += n
        if seen // 10_000 != (seen - n) // 10_000:
            console.print(f"  … {seen} posts read")

    try:
        report = store.rebuild(
            analyze=analyze, batch_size=batch_size, delete_old=not keep_old, progress=progress
        )
    except StoreError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    console.print(
        f"rebuilt into [bold]{report.new_index}[/]: {report.copied} posts copied, "
        f"{report.failed} failed; old indices "
        f"{'deleted' if report.deleted_old else 'kept'}: {', '.join(report.old_indices)}"
    )
    if report.not_reanalysed:
        err_console.print(
            f"  {report.not_reanalysed} posts could not be re-analysed and were copied "
            "with the analysis they had"
        )
    if report.failed and not keep_old:
        err_console.print("  old indices kept: the posts that failed are still there")
    for line in report.errors[:10]:
        err_console.print(f"  {line}")
    if report.failed:
        raise typer.Exit(1)
