"""``yuqing report daily|incident`` over real seeded stores (typer CliRunner)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from docx import Document
from pypdf import PdfReader
from typer.testing import CliRunner

from core.models import PostQuery
from nlp.segment import tokenize
from reports.brief import day_window
from storage.local import LocalPostStore
from storage.state import SqlStateStore
from tests.dashboard.seed import RAW_PHONE, Seed, seed_stores
from yuqing.cli import app

runner = CliRunner()
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Seed]]:
    for key in list(os.environ):
        if key.startswith("YUQING_"):
            monkeypatch.delenv(key)
    data = {
        "storage": {
            "posts_path": str(tmp_path / "posts.db"),
            "state_url": f"sqlite:///{tmp_path / 'state.db'}",
            "spool_dir": str(tmp_path / "spool"),
        },
    }
    config = tmp_path / "yuqing.yaml"
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    posts = LocalPostStore(tmp_path / "posts.db", tokenize)
    state = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    seed = seed_stores(posts, state, datetime.now(UTC).replace(second=0, microsecond=0))
    yield config, seed
    posts.close()
    state.close()


def test_daily_brief_as_markdown_on_stdout(seeded: tuple[Path, Seed]) -> None:
    config, seed = seeded
    day = seed.hostile_post.published_at.astimezone(TZ).date()
    result = runner.invoke(app, ["report", "daily", "--date", day.isoformat(), "-c", str(config)])
    assert result.exit_code == 0, result.output
    start, end = day_window(day, TZ)
    total = seed.post_store.count(PostQuery(since=start, until=end))
    assert f"| 舆情总量 | {total} |" in result.stdout
    assert RAW_PHONE not in result.stdout
    assert "/reports?date=" + day.isoformat() in result.stdout


def test_daily_brief_pdf_and_docx_files(seeded: tuple[Path, Seed], tmp_path: Path) -> None:
    config, seed = seeded
    day = seed.loss_post.published_at.astimezone(TZ).date().isoformat()
    pdf = tmp_path / "out" / "brief.pdf"
    result = runner.invoke(
        app, ["report", "daily", "-d", day, "--format", "pdf", "-o", str(pdf), "-c", str(config)]
    )
    assert result.exit_code == 0, result.output
    text = "".join(p.extract_text() or "" for p in PdfReader(pdf).pages)
    assert "舆情日报" in "".join(text.replace("\x00", "").split())
    docx = tmp_path / "brief.docx"
    result = runner.invoke(
        app, ["report", "daily", "-d", day, "-f", "docx", "-o", str(docx), "-c", str(config)]
    )
    assert result.exit_code == 0, result.output
    doc = Document(io.BytesIO(docx.read_bytes()))
    assert any("舆情日报" in p.text for p in doc.paragraphs)


def test_incident_report_carries_the_regulatory_draft(seeded: tuple[Path, Seed]) -> None:
    config, seed = seeded
    result = runner.invoke(app, ["report", "incident", str(seed.incident.id), "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "## 七、报送草稿" in result.stdout
    assert "声誉事件的报告（草稿）" in result.stdout.replace("\\", "")
    assert RAW_PHONE not in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["report", "daily", "--date", "2026-13-40"], 2, "YYYY-MM-DD"),
        (["report", "daily", "--format", "html"], 2, "unknown report format"),
        (["report", "daily", "--format", "pdf", "-o", "-"], 2, "binary"),
        (["report", "incident", "9999"], 1, "no incident 9999"),
    ],
)
def test_bad_input_gets_a_clear_error_and_exit_code(
    seeded: tuple[Path, Seed], args: list[str], code: int, message: str
) -> None:
    config, _ = seeded
    result = runner.invoke(app, [*args, "-c", str(config)])
    assert result.exit_code == code, result.output
    assert message in result.output


def test_incident_report_prefers_the_draft_head_office_saved(seeded: tuple[Path, Seed]) -> None:
    config, seed = seeded
    assert seed.incident.id is not None
    seed.state_store.add_note(seed.incident.id, user="ho", text="总行修改后的报送稿", kind="draft")
    result = runner.invoke(app, ["report", "incident", str(seed.incident.id), "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "总行修改后的报送稿" in result.stdout
    no_draft = runner.invoke(
        app, ["report", "incident", str(seed.incident.id), "--no-draft", "-c", str(config)]
    )
    assert no_draft.exit_code == 0 and "报送草稿" not in no_draft.stdout
