"""Reports: the gathered numbers against a seeded real SQLite store, and the three renderers.

The seed is the dashboard tests' (``tests/dashboard/seed.py``): fictional posts
of 澜海银行, one hostile post (Markdown/HTML injection and a raw phone number),
an incident of grade II and an old resolved one. Expected numbers are asked
of the store itself, not written down.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from docx import Document
from pypdf import PdfReader

from core.models import Incident, PostQuery, Ticket
from core.vocab import Grade, Sentiment
from nlp.segment import tokenize
from reports.brief import day_window, gather_daily_brief
from reports.fonts import cjk_face
from reports.incident import IncidentNotFound, gather_incident_report
from reports.model import DailyBrief, IncidentReport
from reports.render import render_daily_brief, render_incident_report
from reports.render_md import daily_brief_markdown, md_escape
from storage.local import LocalPostStore
from storage.state import SqlStateStore
from tests.dashboard.seed import HOSTILE_TEXT, RAW_PHONE, Seed, seed_stores

TZ = ZoneInfo("Asia/Shanghai")
# 12:00 local: every seeded post of "the last 6 hours" falls on the same local day.
NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
DAY = date(2026, 11, 23)


@pytest.fixture
def seed(tmp_path: Path) -> Iterator[Seed]:
    posts = LocalPostStore(tmp_path / "posts.db", tokenize)
    state = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    seeded = seed_stores(posts, state, NOW)
    state.upsert_tickets(
        [
            Ticket(
                ticket_id="T-1001",
                created_at=NOW - timedelta(hours=2),
                branch="澜海银行滨江支行",
                product="理财",
                status="处理中",
                summary="客户来电 13912345678 投诉理财亏损",
            )
        ]
    )
    incident = seeded.incident.model_copy(
        update={
            "ticket_links": [
                {"ticket_id": "T-1001", "score": 0.82, "reasons": ["同一产品：理财"]},
                {"ticket_id": "T-GONE", "score": 0.4, "reasons": ["时间重叠"]},
            ]
        }
    )
    seeded.incident = state.save_incident(incident)
    yield seeded
    posts.close()
    state.close()


def _brief(seed: Seed) -> DailyBrief:
    return gather_daily_brief(
        seed.post_store, seed.state_store, DAY, now=NOW, exclude_words=["澜海银行", "澜海"]
    )


def _report(seed: Seed, draft: str | None = "关于澜海银行的报告（草稿）") -> IncidentReport:
    assert seed.incident.id is not None
    return gather_incident_report(
        seed.post_store, seed.state_store, seed.incident.id, now=NOW, draft=draft
    )


# ---------------------------------------------------------------------- numbers


def test_daily_brief_numbers_match_the_store(seed: Seed) -> None:
    brief = _brief(seed)
    start, end = day_window(DAY, TZ)
    day = PostQuery(since=start, until=end)
    store = seed.post_store
    assert brief.total_posts == store.count(day) > 0
    negative = day.model_copy(update={"sentiments": [Sentiment.NEGATIVE]})
    assert brief.negative_posts == store.count(negative) > 0
    assert brief.critical_posts == store.count(day.model_copy(update={"critical": True}))
    previous = PostQuery(since=start - timedelta(days=1), until=start)
    assert brief.previous_total == store.count(previous)
    # The mixes add up to the day's total (unanalysed posts get their own slice).
    assert sum(s.count for s in brief.sentiment_mix) == brief.total_posts
    assert {s.key: s.count for s in brief.topic_mix} == {
        t.value: t.count for t in store.terms(day, "topic", size=20)
    }
    assert [s.key for s in brief.top_sources] == [t.value for t in store.terms(day, "source")]
    # Hourly series: 24 local hours, adding up to the totals.
    assert len(brief.hourly) == 24 and brief.hourly[0].label == "00:00"
    assert sum(p.total for p in brief.hourly) == brief.total_posts
    assert sum(p.negative for p in brief.hourly) == brief.negative_posts
    # Keywords skip the bank's own names.
    assert brief.keywords and not {w for w, _ in brief.keywords} & {"澜海银行", "澜海"}
    assert brief.keywords_sample == brief.total_posts


def test_daily_brief_incidents_and_tickets(seed: Seed) -> None:
    brief = _brief(seed)
    assert [i.id for i in brief.incidents_opened] == [seed.incident.id]
    line = brief.incidents_opened[0]
    assert line.grade_label == "II 重大" and line.status == "待处理" and line.ticket_count == 2
    # The old incident was resolved days before: neither opened nor active on DAY.
    assert seed.resolved.id not in {i.id for i in brief.incidents_active}
    assert brief.tickets_linked == 2
    start, end = day_window(DAY, TZ)
    assert brief.tickets_created == len(seed.state_store.list_tickets(since=start, until=end))


def test_an_incident_opened_before_the_day_and_still_open_is_active(seed: Seed) -> None:
    older = seed.state_store.save_incident(
        Incident(rule="critical_signal", key="bank_run_rumor", title="挤兑传闻", grade=Grade.I,
                 opened_at=NOW - timedelta(days=3), updated_at=NOW - timedelta(days=3))
    )  # fmt: skip
    brief = _brief(seed)
    assert [i.id for i in brief.incidents_active] == [older.id]
    assert brief.incidents_active[0].opened_today is False


def test_top_posts_are_masked_and_links_are_safe(seed: Seed) -> None:
    brief = _brief(seed)
    shown = [*brief.top_negative, *brief.top_influential]
    assert brief.top_negative, "the seed has negative posts on the day"
    hostile = next(p for p in brief.top_negative if p.id == seed.hostile_post.id)
    assert RAW_PHONE not in hostile.excerpt and "138****5678" in hostile.excerpt
    assert hostile.url is None  # javascript: is never a link
    assert all(RAW_PHONE not in p.excerpt + p.title for p in shown)
    risks = [p.risk or 0.0 for p in brief.top_negative]
    assert risks == sorted(risks, reverse=True)


def test_incident_report_gathers_scope_timeline_and_tickets(seed: Seed) -> None:
    report = _report(seed)
    incident = seed.incident
    assert report.grade_label == "II 重大"
    assert report.posts_found + report.posts_missing == len(incident.post_ids)
    assert report.posts_missing == 1  # the seed names one post id the store never had
    found = [p for p in (seed.post_store.get(i) for i in incident.post_ids) if p is not None]
    assert report.reach_total == sum(p.reach for p in found)
    assert sum(s.count for s in report.sources) == report.posts_found
    events = [e.event for e in report.timeline]
    assert events[0] == "事件开启" and "告警" in events
    tickets = {t.ticket_id: t for t in report.tickets}
    assert tickets["T-1001"].found and RAW_PHONE[:3] + "9" not in tickets["T-1001"].summary
    assert "139****5678" in tickets["T-1001"].summary
    assert tickets["T-GONE"].found is False
    assert report.draft and "草稿" in report.draft


def test_incident_report_timeline_has_acks_from_the_audit_log(seed: Seed) -> None:
    assert seed.incident.id is not None
    seed.state_store.acknowledge(seed.incident.id, user="ho", note="已联系支行")
    report = _report(seed)
    ack = next(e for e in report.timeline if e.event == "确认")
    assert ack.actor == "ho" and "已联系支行" in ack.detail


def test_unknown_incident_is_an_error(seed: Seed) -> None:
    with pytest.raises(IncidentNotFound):
        gather_incident_report(seed.post_store, seed.state_store, 999, now=NOW)


# ---------------------------------------------------------------------- markdown


def test_markdown_escapes_untrusted_post_text() -> None:
    hostile = "[x](javascript:alert(1)) <script>alert(1)</script> :red[红] $x$ # 标题"
    escaped = md_escape(hostile)
    assert "](" not in escaped.replace("\\](", "")
    assert "<script>" not in escaped and "\\<script\\>" in escaped
    assert ":red[" not in escaped and "$x$" not in escaped
    # Unescaping gives the text back: shown as text, nothing lost.
    assert re.sub(r"\\(.)", r"\1", escaped) == hostile


def test_markdown_brief_shows_the_hostile_post_as_text(seed: Seed) -> None:
    markdown = daily_brief_markdown(_brief(seed))
    assert "# 澜海银行舆情日报（2026年11月23日）" in markdown
    assert "javascript:" not in markdown.replace("javascript\\:", "")
    assert not re.search(r"(?<!\\)[<>]", markdown)  # every < and > is escaped
    assert "\\<img src\\=x" in markdown
    assert "\\[点我\\]\\(javascript\\:alert\\(1\\)\\)" in markdown
    assert RAW_PHONE not in markdown
    assert HOSTILE_TEXT not in markdown  # never verbatim


def test_markdown_links_only_http_urls(seed: Seed) -> None:
    markdown = daily_brief_markdown(_brief(seed))
    links = re.findall(r"\]\(([^)]*)\)", markdown)
    assert links and all(link.startswith(("https://", "http://")) for link in links)


# ---------------------------------------------------------------------- docx / pdf


def test_docx_has_chinese_headings_east_asian_font_and_masked_pii(seed: Seed) -> None:
    data = render_daily_brief(_brief(seed), "docx", now=NOW)
    doc = Document(io.BytesIO(data))
    text = "\n".join(p.text for p in doc.paragraphs)
    text += "\n".join(c.text for t in doc.tables for row in t.rows for c in row.cells)
    assert "澜海银行舆情日报（2026年11月23日）" in text
    assert "一、总体情况" in text and "六、重点负面帖子（已脱敏）" in text
    assert RAW_PHONE not in text and "138****5678" in text
    fonts = doc.styles["Normal"].element.rPr.rFonts
    assert fonts.get("{http://schemas.openxmlformats.org/wordprocessingml/2006/main}eastAsia")
    assert len(doc.inline_shapes) == 2  # the two charts


def _pdf_text(data: bytes, tmp_path: Path) -> str:
    if shutil.which("pdftotext"):
        path = tmp_path / "r.pdf"
        path.write_bytes(data)
        out = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, check=True)
        text = out.stdout.decode("utf-8")
    else:
        text = "".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)
    # pypdf separates the CJK glyphs of fpdf2's 2-byte encoding with NULs/spaces.
    return re.sub(r"[\s\x00]+", "", text)


def test_pdf_is_valid_embeds_the_cjk_font_and_has_the_text(seed: Seed, tmp_path: Path) -> None:
    data = render_daily_brief(_brief(seed), "pdf", now=NOW)
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) >= 1
    fonts = {}
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            fonts[str(font["/BaseFont"])] = font
    face = cjk_face().family.replace(" ", "")
    assert any(face in name for name in fonts), fonts.keys()
    descendant = next(iter(fonts.values()))["/DescendantFonts"][0].get_object()
    descriptor = descendant["/FontDescriptor"].get_object()
    assert "/FontFile3" in descriptor or "/FontFile2" in descriptor  # embedded, not referenced
    text = _pdf_text(data, tmp_path)
    assert "舆情日报" in text and "重点负面帖子" in text
    assert RAW_PHONE not in text


def test_incident_report_renders_in_every_format(seed: Seed, tmp_path: Path) -> None:
    report = _report(seed, draft="关于澜海银行“理财亏损”声誉事件的报告（草稿）\n一、事件概况")
    md = render_incident_report(report, "md", now=NOW).decode("utf-8")
    assert "## 三、时间线" in md and "报送草稿" in md and RAW_PHONE not in md
    doc = Document(io.BytesIO(render_incident_report(report, "docx", now=NOW)))
    assert any(p.text == "七、报送草稿" for p in doc.paragraphs)
    text = _pdf_text(render_incident_report(report, "pdf", now=NOW), tmp_path)
    assert "声誉事件报告" in text and "关联投诉工单" in text and "T-1001" in text


@pytest.mark.parametrize("fmt", ["md", "docx", "pdf"])
def test_rendering_is_deterministic(seed: Seed, fmt: str) -> None:
    brief = _brief(seed)
    assert render_daily_brief(brief, fmt, now=NOW) == render_daily_brief(brief, fmt, now=NOW)  # type: ignore[arg-type]


def test_the_sc_face_of_the_collection_is_used() -> None:
    face = cjk_face()
    assert face.family.endswith("SC") and "Mono" not in face.family


def test_hostile_posts_are_cut_cleaned_and_still_render(seed: Seed, tmp_path: Path) -> None:
    from core.models import Analysis, Post

    filler = "理财产品亏损严重，到期不兑付。" * 700  # ~10 000 characters
    long_text = f"澜海银行😀\x07\u202e反转 {filler} 电话 {RAW_PHONE}"
    post = Post(
        id="hostile-long-0001",
        url="https://bbs.lanhai.example/t/" + "b" * 3000,
        source="forum",
        title="标题\x00😀" * 50,
        text=long_text,
        published_at=NOW - timedelta(hours=1),
        analysis=Analysis(sentiment=Sentiment.NEGATIVE, sentiment_score=0.0, risk_score=1.0),
    )
    assert seed.post_store.upsert([post]).failed == 0
    brief = _brief(seed)
    item = next(p for p in brief.top_negative if p.id == post.id)
    assert len(item.excerpt) <= 160 and len(item.title) <= 60
    assert "\x07" not in item.excerpt and "\u202e" not in item.excerpt and "\x00" not in item.title
    for fmt in ("md", "docx", "pdf"):
        data = render_daily_brief(brief, fmt, now=NOW)  # type: ignore[arg-type]
        assert RAW_PHONE.encode() not in data and len(data) > 1000


def test_incident_report_counts_the_signals_the_crisis_model_raised(seed: Seed) -> None:
    from core.models import Analysis, Post, Signal
    from reports.incident import signal_lines

    def post(n: int, signal: Signal) -> Post:
        return Post(
            id=f"signal-post-{n:04d}",
            url=f"https://bbs.lanhai.example/t/{n}",
            source="forum",
            text="澜海银行",
            published_at=NOW,
            analysis=Analysis(
                sentiment=Sentiment.NEGATIVE, sentiment_score=0.1, risk_score=0.8, signals=[signal]
            ),
        )

    lexicon = Signal(name="bank_run", triggers=["挤兑"], critical=True)
    model = Signal(name="bank_run", triggers=["取款机", "空了"], critical=True, source="model")
    lines = signal_lines([post(1, lexicon), post(2, model), post(3, model)])
    assert [(s.name, s.posts, s.model_posts) for s in lines] == [("bank_run", 3, 2)]
    assert lines[0].triggers == ["取款机", "空了", "挤兑"]  # by count, then code point
    table = _report(seed).signals_table()
    assert table.header[2] == "其中模型判断" and all(row[2] == "0" for row in table.rows)
