"""``yuqing nlp score`` / ``eval`` / ``train`` through Typer's CliRunner."""

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

from typer.testing import CliRunner

from yuqing.cli_nlp import app

runner = CliRunner()

WATCHLIST_CONFIG = """
watchlist:
  bank: {name: 澜海银行, aliases: [澜海]}
  branches: [{name: 澜海银行滨江支行, aliases: [滨江支行]}]
"""


def test_score_reads_stdin_and_reports_bad_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "a1", "text": "听说澜海银行要倒闭了，赶紧取钱，电话13812345678"}),
        "{not json",
        json.dumps({"text": "no id"}),
        "",
        json.dumps({"id": 7, "text": "滨江支行的客户经理很耐心", "title": "点赞"}),
        json.dumps({"id": "x", "text": 42}),
    ]
    result = runner.invoke(app, ["score", "-"], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [r["id"] for r in rows] == ["a1", 7]
    first = rows[0]
    for key in (
        "sentiment",
        "sentiment_score",
        "topic",
        "topic_confidence",
        "risk_score",
        "signals",
        "critical",
        "entities",
        "masked_text",
    ):
        assert key in first
    assert first["critical"] is True and "bank_run" in first["signals"]
    assert first["signal_sources"]["bank_run"] == "lexicon"  # 倒闭 is in the lexicon
    assert set(first["signal_sources"]) == set(first["signals"])
    assert first["sentiment"] == "negative"
    assert "13812345678" not in first["masked_text"]
    assert rows[1]["sentiment"] == "positive"
    assert "line 2" in result.stderr
    assert "line 3" in result.stderr and '"id"' in result.stderr
    assert "line 6" in result.stderr
    assert "skipped 3 bad lines" in result.stderr


def test_score_file_with_config_watchlist(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(WATCHLIST_CONFIG, encoding="utf-8")
    posts = tmp_path / "posts.jsonl"
    posts.write_text(json.dumps({"id": 1, "text": "滨江支行排队两小时"}) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["score", str(posts), "--config", str(config)])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout.splitlines()[0])
    assert row["entities"] == ["澜海银行", "澜海银行滨江支行"]


def test_score_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["score", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2


def test_eval_prints_scores_and_confusion_matrices(tmp_path: Path) -> None:
    labelled = tmp_path / "gold.jsonl"
    rows = [
        {
            "text": "客户经理很耐心，点赞",
            "sentiment": "positive",
            "topic": "service_quality",
            "critical": False,
        },
        {
            "text": "澜海银行要倒闭了，赶紧取钱",
            "sentiment": "negative",
            "topic": "liquidity_rumor",
            "critical": True,
        },
        {
            "text": "请问澜海银行周末营业吗",
            "sentiment": "neutral",
            "topic": "service_quality",
            "critical": False,
        },
    ]
    labelled.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8"
    )
    result = runner.invoke(app, ["eval", str(labelled)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "sentiment: accuracy" in out and "macro-F1" in out
    assert "confusion matrix" in out
    assert "topic: accuracy" in out and "critical: accuracy" in out
    for column in ("precision", "recall", "F1"):
        assert column in out
    # 倒闭 is a lexicon phrase: the lexicon alone finds the one critical post.
    assert "critical from the lexicon alone: recall 1.000" in out


def test_eval_bad_file_names_the_line(tmp_path: Path) -> None:
    labelled = tmp_path / "bad.jsonl"
    labelled.write_text('{"text": "x", "sentiment": "neutral"}\n{"text": "y"}\n', encoding="utf-8")
    result = runner.invoke(app, ["eval", str(labelled)])
    assert result.exit_code == 2
    assert "bad.jsonl:2" in result.stderr


def test_train_without_data_fails_clearly(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["train", "--data-dir", str(tmp_path / "missing"), "--out-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "not found" in result.stderr
    assert not list(tmp_path.glob("*.json"))


def _posts(n: int) -> list[str]:
    """``n`` fictional posts (shipped validation texts, repeated as needed)."""
    path = Path(__file__).parents[2] / "nlp" / "data" / "bank_validation.jsonl"
    texts = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]
    return [texts[i % len(texts)] for i in range(n)]


def test_score_keeps_order_and_line_numbers_across_chunks() -> None:
    """Over 256 good lines (the scoring chunk): order, records and line numbers as one by one."""
    from core.settings import Watchlist
    from nlp.analyzer import Analyzer
    from yuqing.cli_nlp import _record

    texts = _posts(600)
    lines: list[str] = []
    good: list[tuple[int, str, str]] = []
    bad_lines: list[int] = []
    for i, text in enumerate(texts):
        lineno = len(lines) + 1
        if i in (0, 255, 256, 257, 300, 599):  # first line, around the chunk boundary, near the end
            lines.append('{"id": "broken"')
            bad_lines.append(lineno)
            lineno += 1
        title = "标题" if i % 3 == 0 else ""
        lines.append(json.dumps({"id": i, "text": text, "title": title}, ensure_ascii=False))
        good.append((i, title, text))
    result = runner.invoke(app, ["score", "-"], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == list(range(600))
    analyzer = Analyzer(Watchlist())
    want = [_record(i, analyzer.analyze(text, title)) for i, title, text in good]
    assert rows == want
    assert [int(w) for w in re.findall(r"skipped line (\d+):", result.stderr)] == bad_lines
    assert "scored 600 posts, skipped 6 bad lines" in result.stderr


def test_score_lines_streams_its_input() -> None:
    """Output for the first chunk is written before the rest of the input is read."""
    from core.settings import Watchlist
    from nlp.analyzer import Analyzer
    from yuqing.cli_nlp import score_lines

    read = 0

    def lines() -> Iterator[str]:
        nonlocal read
        for i, text in enumerate(_posts(10)):
            read += 1
            yield json.dumps({"id": i, "text": text}) + "\n"

    written_after: list[int] = []

    class Out(io.StringIO):
        def write(self, s: str) -> int:
            written_after.append(read)
            return super().write(s)

    out = Out()
    scored, problems = score_lines(lines(), out, Analyzer(Watchlist()), chunk=3)
    assert (scored, problems) == (10, [])
    assert written_after == [3, 3, 3, 6, 6, 6, 9, 9, 9, 10]
    assert [json.loads(line)["id"] for line in out.getvalue().splitlines()] == list(range(10))
