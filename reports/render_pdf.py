"""PDF rendering of the reports (fpdf2) with the CJK font embedded.

fpdf2 reads the bundled Noto Sans CJK collection directly
(``collection_font_number`` = the Simplified Chinese face from
:func:`reports.fonts.cjk_face`) and embeds only the glyphs used (a subset),
so a brief is a few hundred KB and opens on a machine without any Chinese
font. Text is written as plain text (no fpdf2 markdown), wrapped by
character (Chinese has no spaces). Deterministic: the creation date is
``now`` and the producer is fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from fpdf import FPDF
from fpdf.enums import WrapMode, XPos, YPos
from fpdf.fonts import FontFace

from reports import charts
from reports.common import percent
from reports.fonts import cjk_face
from reports.model import DailyBrief, IncidentReport, PostItem, Share, Table

FONT = "cjk"
PRODUCER = "yuqing 舆情监测系统"
_GREY = (90, 90, 90)


class _Pdf(FPDF):
    """A4 portrait with the CJK font and a page footer."""

    def __init__(self, title: str, now: datetime) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        face = cjk_face()
        self.add_font(FONT, fname=str(face.path), collection_font_number=face.index)
        self.set_title(title)
        self.set_author("舆情监测系统")
        self.set_creator("yuqing")
        self.set_producer(PRODUCER)
        self.set_creation_date(now)
        self.set_auto_page_break(auto=True, margin=15)
        self.set_margins(18, 16, 18)
        self._footer_title = title
        self.add_page()

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, size=8)
        self.set_text_color(*_GREY)
        self.cell(0, 6, f"{self._footer_title}　第 {self.page_no()} 页", align="C")
        self.set_text_color(0, 0, 0)

    # -- blocks -----------------------------------------------------------------------

    def heading(self, text: str, size: float = 14) -> None:
        self.ln(2)
        self.set_font(FONT, size=size)
        self.multi_cell(
            0, size * 0.55, text, wrapmode=WrapMode.CHAR, new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        self.ln(1)
        self.set_font(FONT, size=10)

    def para(self, text: str, *, size: float = 10, grey: bool = False) -> None:
        self.set_font(FONT, size=size)
        if grey:
            self.set_text_color(*_GREY)
        self.multi_cell(
            0, size * 0.5, text, wrapmode=WrapMode.CHAR, new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        self.set_text_color(0, 0, 0)

    def grid(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[str]],
        widths: Sequence[float] | None = None,
    ) -> None:
        self.set_font(FONT, size=8.5)
        with self.table(
            col_widths=tuple(widths) if widths else None,
            wrapmode=WrapMode.CHAR,
            line_height=4.6,
            text_align="LEFT",
            # The CJK font has no bold face: headings are shaded, not emphasised.
            headings_style=FontFace(emphasis=None, fill_color=(235, 238, 242)),
        ) as table:
            head = table.row()
            for text in header:
                head.cell(text)
            for values in rows:
                row = table.row()
                for text in values:
                    row.cell(text)
        self.ln(2)
        self.set_font(FONT, size=10)

    def grid_of(self, table: Table, widths: Sequence[float] | None = None) -> None:
        """:meth:`grid` of a report :class:`Table`."""
        self.grid(table.header, table.rows, widths)

    def picture(self, png: bytes) -> None:
        import io

        self.image(io.BytesIO(png), w=self.epw)
        self.ln(2)


def _mix(pdf: _Pdf, items: Sequence[Share], name: str) -> None:
    if not items:
        pdf.para("（无数据）")
        return
    pdf.grid(
        [name, "数量", "占比"],
        [[s.label, str(s.count), percent(s.share)] for s in items],
        (3, 1, 1),
    )


def _posts(pdf: _Pdf, items: Sequence[PostItem]) -> None:
    if not items:
        pdf.para("（无）")
        return
    for i, p in enumerate(items, 1):
        pdf.para(f"{i}. {p.title}", size=10.5)
        pdf.para(p.meta_line, size=8, grey=True)
        pdf.para(p.excerpt, size=9)
        if p.url:
            pdf.para(f"原文：{p.url}", size=7.5, grey=True)
        pdf.ln(1.5)


def _output(pdf: _Pdf) -> bytes:
    return bytes(pdf.output())


def daily_brief_pdf(brief: DailyBrief, *, now: datetime) -> bytes:
    """The daily brief as a PDF file (bytes)."""
    pdf = _Pdf(brief.title, now)
    pdf.heading(brief.title, 18)
    pdf.para(brief.period_line, size=9, grey=True)
    pdf.heading("一、总体情况")
    pdf.grid(
        ["指标", "当日", "前一日"],
        [
            ["舆情总量", str(brief.total_posts), str(brief.previous_total)],
            ["负面帖子", str(brief.negative_posts), str(brief.previous_negative)],
            ["负面占比", percent(brief.negative_share), percent(brief.previous_negative_share)],
            ["高危信号帖", str(brief.critical_posts), "—"],
            ["当日新增投诉工单", str(brief.tickets_created), "—"],
        ],
        (2, 1, 1),
    )
    pdf.picture(charts.volume_chart(brief.hourly, title="分时舆情量与负面占比"))
    pdf.heading("二、情感与话题分布")
    pdf.picture(
        charts.mix_chart(brief.sentiment_mix, brief.topic_mix, titles=("情感分布", "话题分布"))
    )
    _mix(pdf, brief.topic_mix, "话题")
    pdf.heading("三、主要来源")
    _mix(pdf, brief.top_sources, "来源")
    pdf.heading("四、当日关键词")
    pdf.para(
        ("、".join(w for w, _ in brief.keywords) or "（无）")
        + f"（基于 {brief.keywords_sample} 条帖子）"
    )
    pdf.heading("五、事件情况")
    incidents = [*brief.incidents_opened, *brief.incidents_active]
    if incidents:
        pdf.grid(
            ["编号", "等级", "状态", "标题", "开启时间", "帖子", "工单", "类别"],
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
            (1, 1.6, 1.3, 4, 2.4, 1, 1, 1.4),
        )
        pdf.para(f"关联投诉工单合计：{brief.tickets_linked} 件")
    else:
        pdf.para("当日无新开或持续中的事件。")
    pdf.heading("六、重点负面帖子（已脱敏）")
    _posts(pdf, brief.top_negative)
    pdf.heading("七、传播最广的帖子（已脱敏）")
    _posts(pdf, brief.top_influential)
    if brief.link:
        pdf.para(f"在舆情监测平台中查看：{brief.link}", size=8, grey=True)
    pdf.para("——本报告由舆情监测系统自动生成，帖子内容已脱敏。", size=8, grey=True)
    return _output(pdf)


def incident_report_pdf(report: IncidentReport, *, now: datetime) -> bytes:
    """The per-incident report as a PDF file (bytes)."""
    pdf = _Pdf(report.document_title, now)
    pdf.heading(report.document_title, 16)
    pdf.para(f"生成时间：{report.generated_at}（{report.timezone}）", size=9, grey=True)
    pdf.heading("一、事件概况")
    pdf.grid_of(report.overview_table(), (1, 3))
    pdf.heading("二、定级依据")
    for reason in report.reasons or ["（无记录）"]:
        pdf.para(f"· {reason}")
    pdf.heading("三、时间线")
    pdf.grid_of(report.timeline_table(), (2.2, 1.4, 1.8, 4.6))
    pdf.heading("四、影响范围")
    pdf.para(report.scope_line)
    if report.hourly:
        pdf.picture(charts.volume_chart(report.hourly, title="事件帖子分时走势"))
    _mix(pdf, report.sources, "来源")
    _mix(pdf, report.sentiment_mix, "情感")
    pdf.heading("风险信号及触发词", 12)
    if report.signals:
        pdf.grid_of(report.signals_table(), (2, 1, 1, 1, 4))
    else:
        pdf.para("（无）")
    pdf.heading("五、代表帖子（已脱敏）")
    _posts(pdf, report.top_posts)
    pdf.heading("六、关联投诉工单")
    if report.tickets:
        pdf.grid_of(report.tickets_table(), (1.6, 1, 1.6, 1.4, 1, 1.8, 3, 3))
    else:
        pdf.para("（无关联工单）")
    if report.draft:
        pdf.heading("七、报送草稿")
        pdf.para(report.draft, size=9.5)
    if report.link:
        pdf.para(f"事件室：{report.link}", size=8, grey=True)
    pdf.para("——本报告由舆情监测系统自动生成，帖子内容已脱敏。", size=8, grey=True)
    return _output(pdf)
