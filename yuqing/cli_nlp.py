"""``yuqing nlp``: score posts, train the shipped models, evaluate on labelled data.

Registered in ``yuqing/cli.py`` as the ``nlp`` sub-command. Heavy imports
(jieba, the models) happen inside the commands so ``--help`` stays instant.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.table import Table

from core.errors import ConfigError
from core.models import Analysis
from yuqing.cli_common import ConfigOpt

app = typer.Typer(
    help="Chinese NLP: score posts (sentiment, topic, risk), train and evaluate the models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

log = logging.getLogger("yuqing.cli.nlp")


def _err() -> Console:
    # Created per call so CliRunner's captured stderr is the one written to.
    return Console(stderr=True, soft_wrap=True, highlight=False)


def _analyzer(config: Path | None) -> Any:
    """The analyzer of ``config`` (watchlist, ``nlp`` settings); exit 2 on a bad config."""
    from core.settings import load_settings
    from yuqing.bootstrap import build_analyzer

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        _err().print(f"[bold red]configuration error[/]\n{exc}")
        raise typer.Exit(2) from exc
    return build_analyzer(settings)


def score_lines(
    lines: Iterable[str], out: TextIO, analyzer: Any, *, chunk: int = 256
) -> tuple[int, list[str]]:
    """Score JSON lines ``{"id", "text"[, "title"]}`` from ``lines`` into ``out``.

    One output line per good input line, in input order. Returns ``(scored,
    problems)``; each problem names its 1-based line number. Blank lines are
    skipped silently; a bad line never stops the run. Input is read as it
    streams: good lines are scored ``chunk`` at a time (``analyzer.analyze_many``),
    so at most ``chunk`` posts are held in memory.
    """
    scored = 0
    problems: list[str] = []
    ids: list[Any] = []
    pairs: list[tuple[str, str]] = []

    def flush() -> None:
        for row_id, a in zip(ids, analyzer.analyze_many(pairs), strict=True):
            out.write(json.dumps(_record(row_id, a), ensure_ascii=False) + "\n")
        ids.clear()
        pairs.clear()

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
            if "id" not in row:
                raise ValueError('missing "id"')
            text = row.get("text")
            if not isinstance(text, str):
                raise ValueError('"text" missing or not a string')
            title = row.get("title") or ""
            if not isinstance(title, str):
                raise ValueError('"title" is not a string')
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            problems.append(f"line {lineno}: {exc}")
            continue
        ids.append(row["id"])
        pairs.append((title, text))
        scored += 1
        if len(pairs) >= chunk:
            flush()
    flush()
    return scored, problems


def _record(row_id: Any, a: Analysis) -> dict[str, Any]:
    """The output line of one scored post. ``signal_sources`` says, per signal, whether
    the lexicon or the trained crisis model raised it."""
    return {
        "id": row_id,
        "sentiment": a.sentiment.value,
        "sentiment_score": a.sentiment_score,
        "topic": a.topic.value,
        "topic_confidence": a.topic_confidence,
        "risk_score": a.risk_score,
        "signals": a.signal_names,
        "triggers": {s.name: s.triggers for s in a.signals},
        "signal_sources": {s.name: s.source for s in a.signals},
        "critical": a.critical,
        "entities": a.entities,
        "keywords": a.keywords,
        "masked_text": a.masked_text,
        "model_version": a.model_version,
    }


@app.command("score")
def score(
    file: Annotated[
        str, typer.Argument(help='JSON lines {"id": …, "text": …}; "-" reads stdin.')
    ] = "-",
    config: ConfigOpt = None,
) -> None:
    """Score posts: one JSON line out per good input line (bad lines reported on stderr)."""
    analyzer = _analyzer(config)
    err = _err()
    if file == "-":
        scored, problems = score_lines(sys.stdin, sys.stdout, analyzer)
    else:
        path = Path(file)
        if not path.is_file():
            err.print(f"[bold red]no such file[/] {path}")
            raise typer.Exit(2)
        with path.open(encoding="utf-8") as fh:
            scored, problems = score_lines(fh, sys.stdout, analyzer)
    for problem in problems:
        err.print(f"skipped {problem}")
    err.print(f"scored {scored} posts, skipped {len(problems)} bad lines")
    if problems and not scored:
        raise typer.Exit(1)


@app.command("train")
def train(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Public labelled CSVs (default: ../shared/data next to the project)."),
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option(help="Where to write the models (default: the shipped ones).")
    ] = None,
) -> None:
    """Train the sentiment and topic models from the shipped bank set and the public data."""
    from nlp.model import model_dir
    from nlp.train import DEFAULT_DATA_DIR, train_all

    try:
        paths = train_all(data_dir or DEFAULT_DATA_DIR, out_dir or model_dir())
    except FileNotFoundError as exc:
        _err().print(f"[bold red]cannot train[/]: {exc}")
        raise typer.Exit(2) from exc
    for path in paths:
        typer.echo(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB)")


def _report_tables(title: str, report: Any) -> list[Table]:
    """A per-class scores table and a confusion matrix (classes absent everywhere are left out)."""
    used = [
        i
        for i, label in enumerate(report.labels)
        if report.per_class[label].support or any(row[i] for row in report.matrix)
    ]
    scores = Table(title=f"{title}: accuracy {report.accuracy:.3f}, macro-F1 {report.macro_f1:.3f}")
    for col in ("#", "class", "precision", "recall", "F1", "support"):
        scores.add_column(col, justify="left" if col == "class" else "right")
    for n, i in enumerate(used, 1):
        label = report.labels[i]
        s = report.per_class[label]
        scores.add_row(
            str(n), label, f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}", str(s.support)
        )
    # Columns are numbered (# of the table above) so 12 topics fit a terminal.
    matrix = Table(title=f"{title}: confusion matrix (rows = gold, columns = predicted #)")
    matrix.add_column("gold")
    for n in range(1, len(used) + 1):
        matrix.add_column(str(n), justify="right")
    for n, i in enumerate(used, 1):
        matrix.add_row(f"{n} {report.labels[i]}", *(str(report.matrix[i][j]) for j in used))
    return [scores, matrix]


@app.command("eval")
def evaluate_file(
    file: Annotated[Path, typer.Argument(help="Labelled JSONL: text, sentiment, topic, critical.")],
    config: ConfigOpt = None,
    show_errors: Annotated[bool, typer.Option(help="List the misclassified posts.")] = False,
) -> None:
    """Print per-class precision/recall/F1 and confusion matrices for a labelled file."""
    from nlp.evaluate import evaluate, load_jsonl

    if not file.is_file():
        _err().print(f"[bold red]no such file[/] {file}")
        raise typer.Exit(2)
    try:
        examples = load_jsonl(file)
    except ValueError as exc:
        _err().print(f"[bold red]bad file[/] {exc}")
        raise typer.Exit(2) from exc
    analyzer = _analyzer(config)
    result = evaluate(analyzer, examples)
    console = Console(soft_wrap=True)
    console.print(f"{result.n} posts from {file} — model {analyzer.model_version}")
    tables = _report_tables("sentiment", result.sentiment)
    if result.topic:
        tables += _report_tables("topic", result.topic)
    if result.critical:
        tables += _report_tables("critical", result.critical)
    for table in tables:
        console.print(table)
    if result.critical_lexicon:
        lex = result.critical_lexicon.per_class["critical"]
        console.print(
            f"critical from the lexicon alone: recall {lex.recall:.3f}, "
            f"precision {lex.precision:.3f} (with the crisis model: recall "
            f"{result.critical_recall:.3f}, precision {result.critical_precision:.3f})"
        )
    if show_errors:
        for kind, what, text in result.errors:
            console.print(f"{kind} {what}: {text}", markup=False)
