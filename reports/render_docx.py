"""DOCX rendering of the reports (python-docx), Chinese, with the charts as pictures.

Word picks the font for Chinese characters from the run's *East Asian* font
(``w:rFonts/@w:eastAsia``), not from ``font.name``, which only sets the Latin
slots; without it, Chinese shows in whatever fallback Word guesses (or as
boxes). Every style used here gets both, plus ``w:lang/@w:eastAsia=zh-CN``.
The East Asian font is :data:`EAST_ASIA_FONT` (微软雅黑, on every Windows
Word in a Chinese bank; LibreOffice maps it to an installed CJK font).

Deterministic: the core properties carry ``now`` and the ZIP entries a fixed
timestamp, so the same report gives the same bytes.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from datetime import datetime

from docx import Document
from docx.document import Document as DocumentObject
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt, RGBColor

from reports import charts
from reports.common import percent
from reports.model import DailyBrief, IncidentReport, PostItem, Share, Table

EAST_ASIA_FONT = "微软雅黑"
LATIN_FONT = "Arial"
_ZIP_TIME = (2000, 1, 1, 0, 0, 0)


def _east_asian(style_or_run: object) -> None:
    element = style_or_run.element  # type: ignore[attr-defined]
    rpr = element.get_or_add_rPr()
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        rpr.insert(0, fonts)
    # Theme fonts win over named ones: drop them, or Word uses the theme's (Latin) font.
    for theme in ("w:asciiTheme", "w:hAnsiTheme", "w:eastAsiaTheme", "w:cstheme"):
        fonts.attrib.pop(qn(theme), None)
    for slot in ("w:ascii", "w:hAnsi", "w:cs"):
        fonts.set(qn(slot), LATIN_FONT)
    fonts.set(qn("w:eastAsia"), EAST_ASIA_FONT)
    lang = rpr.find(qn("w:lang"))
    if lang is None:
        lang = OxmlElement("w:lang")
        rpr.append(lang)
    lang.set(qn("w:eastAsia"), "zh-CN")


def _new_document(title: str, now: datetime) -> DocumentObject:
    doc = Document()
    for name in ("Normal", "Title", "Heading 1", "Heading 2", "Table Grid"):
        style = doc.styles[name]
        _east_asian(style)
    doc.styles["Normal"].font.size = Pt(10.5)
    section = doc.sections[0]
    section.left_margin = section.right_margin = Cm(2)
    props = doc.core_properties
    props.title = title
    props.author = "舆情监测系统"
    props.created = props.modified = now.replace(tzinfo=None, microsecond=0)
    props.last_modified_by = "舆情监测系统"
    props.revision = 1
    return doc


def _table(doc: DocumentObject, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    table = doc.add_table(rows=1, cols=len(header))
    table.style = doc.styles["Table Grid"]
    for cell, text in zip(table.rows[0].cells, header, strict=True):
        cell.text = ""
        run = cell.paragraphs[0].add_run(text)
        run.bold = True
    for row in rows:
        cells = table.add_row().cells
        for cell, text in zip(cells, row, strict=True):
            cell.text = text


def _cells(table: Table) -> tuple[list[str], list[list[str]]]:
    return table.header, table.rows


def _mix(doc: DocumentObject, items: Sequence[Share], name: str) -> None:
    if not items:
        doc.add_paragraph("（无数据）")
        return
    _table(doc, [name, "数量", "占比"], [[s.label, str(s.count), percent(s.share)] for s in items])


def _posts(doc: DocumentObject, items: Sequence[PostItem]) -> None:
    if not items:
        doc.add_paragraph("（无）")
        return
    for i, p in enumerate(items, 1):
        head = doc.add_paragraph()
        head.add_run(f"{i}. {p.title}").bold = True
        meta = head.add_run(f"\n{p.meta_line}")
        meta.font.size = Pt(9)
        meta.font.color.rgb = RGBColor(0x55, 0x55, 0x55)
        doc.add_paragraph(p.excerpt)
        if p.url:
            link = doc.add_paragraph(f"原文：{p.url}")
            link.runs[0].font.size = Pt(8)


def _picture(doc: DocumentObject, png: bytes) -> None:
    doc.add_picture(io.BytesIO(png), width=Cm(16))


def _save(doc: DocumentObject) -> bytes:
    raw = io.BytesIO()
    doc.save(raw)
    # Rewrite the ZIP with fixed entry times: python-docx stamps the wall clock.
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(raw.getvalue())) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


def daily_brief_docx(brief: DailyBrief, *, now: datetime) -> bytes:
    """The daily brief as a .docx file (bytes)."""
    doc = _new_document(brief.title, now)
    doc.add_heading(brief.title, level=0)
    doc.add_paragraph(brief.period_line)
    doc.add_heading("一、总体情况", level=1)
    _table(
        doc,
        ["指标", "当日", "前一日"],
        [
            ["舆情总量", str(brief.total_posts), str(brief.previous_total)],
            ["负面帖子", str(brief.negative_posts), str(brief.previous_negative)],
            ["负面占比", percent(brief.negative_share), percent(brief.previous_negative_share)],
            ["高危信号帖", str(brief.critical_posts), "—"],
            ["当日新增投诉工单", str(brief.tickets_created), "—"],
        ],
    )
    _picture(doc, charts.volume_chart(brief.hourly, title="分时舆情量与负面占比"))
    doc.add_heading("二、情感与话题分布", level=1)
    _picture(
        doc, charts.mix_chart(brief.sentiment_mix, brief.topic_mix, titles=("情感分布", "话题分布"))
    )
    _mix(doc, brief.sentiment_mix, "情感")
    doc.add_paragraph()
    _mix(doc, brief.topic_mix, "话题")
    doc.add_heading("三、主要来源", level=1)
    _mix(doc, brief.top_sources, "来源")
    doc.add_heading("四、当日关键词", level=1)
    doc.add_paragraph(
        ("、".join(w for w, _ in brief.keywords) or "（无）")
        + f"（基于 {brief.keywords_sample} 条帖子）"
    )
    doc.add_heading("五、事件情况", level=1)
    incidents = [*brief.incidents_opened, *brief.incidents_active]
    if incidents:
        _table(
            doc,
            ["编号", "等级", "状态", "标题", "开启时间", "帖子", "关联工单", "类别"],
            [
                [
                    f"#{i.id}",
                    i.grade_label,
                    i.status,
                    i.title,
                    i.opened,
                    str(i.post_count),
                    str(i.ticket_count),
                    "当日新开" if i.opened_today else "持续",
                ]
                for i in incidents
            ],
        )
        doc.add_paragraph(f"关联投诉工单合计：{brief.tickets_linked} 件")
    else:
        doc.add_paragraph("当日无新开或持续中的事件。")
    doc.add_heading("六、重点负面帖子（已脱敏）", level=1)
    _posts(doc, brief.top_negative)
    doc.add_heading("七、传播最广的帖子（已脱敏）", level=1)
    _posts(doc, brief.top_influential)
    if brief.link:
        doc.add_paragraph(f"在舆情监测平台中查看：{brief.link}")
    doc.add_paragraph("——本报告由舆情监测系统自动生成，帖子内容已脱敏。")
    return _save(doc)


def incident_report_docx(report: IncidentReport, *, now: datetime) -> bytes:
    """The per-incident report as a .docx file (bytes)."""
    doc = _new_document(report.document_title, now)
    doc.add_heading(report.document_title, level=0)
    doc.add_paragraph(f"生成时间：{report.generated_at}（{report.timezone}）")
    doc.add_heading("一、事件概况", level=1)
    _table(doc, *_cells(report.overview_table()))
    doc.add_heading("二、定级依据", level=1)
    for reason in report.reasons or ["（无记录）"]:
        doc.add_paragraph(reason)
    doc.add_heading("三、时间线", level=1)
    _table(doc, *_cells(report.timeline_table()))
    doc.add_heading("四、影响范围", level=1)
    doc.add_paragraph(report.scope_line)
    if report.hourly:
        _picture(doc, charts.volume_chart(report.hourly, title="事件帖子分时走势"))
    _mix(doc, report.sources, "来源")
    doc.add_paragraph()
    _mix(doc, report.sentiment_mix, "情感")
    doc.add_heading("风险信号及触发词", level=2)
    if report.signals:
        _table(doc, *_cells(report.signals_table()))
    else:
        doc.add_paragraph("（无）")
    doc.add_heading("五、代表帖子（已脱敏）", level=1)
    _posts(doc, report.top_posts)
    doc.add_heading("六、关联投诉工单", level=1)
    if report.tickets:
        _table(doc, *_cells(report.tickets_table()))
    else:
        doc.add_paragraph("（无关联工单）")
    if report.draft:
        doc.add_heading("七、报送草稿", level=1)
        for line in report.draft.splitlines():
            doc.add_paragraph(line)
    if report.link:
        doc.add_paragraph(f"事件室：{report.link}")
    doc.add_paragraph("——本报告由舆情监测系统自动生成，帖子内容已脱敏。")
    return _save(doc)
