"""Markdown rendering of the reports (Chinese), safe for untrusted post text.

Everything that came from outside (post titles and text, sources, authors,
incident titles and reasons, ticket summaries, keywords) goes through
:func:`md_escape`: every ASCII punctuation character is backslash-escaped
(CommonMark allows escaping any of them, and renders the character itself)
and line breaks are collapsed, so a post cannot open a link
(``[x](javascript:…)``), raw HTML (``<script>``), a heading, a table,
Streamlit's ``:red[…]`` colour directive or ``$…$`` maths. Links are only
written for http(s) URLs, percent-encoded so they cannot break out of the
link syntax.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from reports.common import percent
from reports.model import DailyBrief, IncidentReport, PostItem, Share, Table

_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")


def md_escape(text: str) -> str:
    """``text`` as literal Markdown text on one line (every ASCII punctuation escaped)."""
    flat = " ".join(str(text).split())
    return _PUNCT.sub(r"\\\1", flat)


def md_link(label: str, url: str | None) -> str:
    """``[label](url)`` for an http(s) URL (already checked by ``safe_url``), else the label."""
    if not url:
        return md_escape(label)
    # Percent-encode everything that could end the destination or start markup.
    href = quote(url, safe=":/?#@!$&'*+,;=%~-._")
    href = href.replace("'", "%27").replace("*", "%2A")
    return f"[{md_escape(label)}]({href})"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _plain_table(table: Table) -> list[str]:
    """A report table with every cell escaped (cells are untrusted plain text)."""
    return _table(
        [md_escape(h) for h in table.header],
        ([md_escape(cell) for cell in row] for row in table.rows),
    )


def _mix(items: Sequence[Share], name: str) -> list[str]:
    if not items:
        return ["（无数据）"]
    return _table(
        [name, "数量", "占比"],
        ([md_escape(s.label), str(s.count), percent(s.share)] for s in items),
    )


def _posts(items: Sequence[PostItem]) -> list[str]:
    if not items:
        return ["（无）"]
    out: list[str] = []
    for i, p in enumerate(items, 1):
        risk = "—" if p.risk is None else f"{p.risk:.2f}"
        out.append(
            f"{i}. **{md_link(p.title, p.url)}** — {md_escape(p.source)} · {p.published} · "
            f"{p.sentiment} · {md_escape(p.topic)} · 风险 {risk} · 传播 {p.reach}"
        )
        if p.signals:
            out.append(f"   - 信号：{md_escape('、'.join(p.signals))}")
        out.append(f"   - {md_escape(p.excerpt)}")
    return out


def _change(now: float | None, before: float | None) -> str:
    if now is None or before is None:
        return "—"
    delta = (now - before) * 100
    return f"{delta:+.1f} 个百分点"


def daily_brief_markdown(brief: DailyBrief) -> str:
    """The daily brief as a Markdown document (GitHub/CommonMark flavour)."""
    out = [
        f"# {md_escape(brief.title)}",
        "",
        brief.period_line,
        "",
        "## 一、总体情况",
        "",
        *_table(
            ["指标", "当日", "前一日", "变化"],
            [
                [
                    "舆情总量",
                    str(brief.total_posts),
                    str(brief.previous_total),
                    f"{brief.total_posts - brief.previous_total:+d}",
                ],
                [
                    "负面帖子",
                    str(brief.negative_posts),
                    str(brief.previous_negative),
                    f"{brief.negative_posts - brief.previous_negative:+d}",
                ],
                [
                    "负面占比",
                    percent(brief.negative_share),
                    percent(brief.previous_negative_share),
                    _change(brief.negative_share, brief.previous_negative_share),
                ],
                ["高危信号帖", str(brief.critical_posts), "—", "—"],
                ["当日新增投诉工单", str(brief.tickets_created), "—", "—"],
            ],
        ),
        "",
        "## 二、情感分布",
        "",
        *_mix(brief.sentiment_mix, "情感"),
        "",
        "## 三、话题分布",
        "",
        *_mix(brief.topic_mix, "话题"),
        "",
        "## 四、主要来源",
        "",
        *_mix(brief.top_sources, "来源"),
        "",
        "## 五、当日关键词",
        "",
        ("、".join(md_escape(w) for w, _ in brief.keywords) or "（无）")
        + f"（基于 {brief.keywords_sample} 条帖子）",
        "",
        "## 六、事件情况",
        "",
    ]
    incidents = [*brief.incidents_opened, *brief.incidents_active]
    if incidents:
        out += _table(
            ["编号", "等级", "状态", "标题", "开启时间", "帖子", "关联工单", "类别"],
            (
                [
                    f"#{i.id}",
                    i.grade_label,
                    i.status,
                    md_escape(i.title),
                    i.opened,
                    str(i.post_count),
                    str(i.ticket_count),
                    "当日新开" if i.opened_today else "持续",
                ]
                for i in incidents
            ),
        )
        out += ["", f"关联投诉工单合计：{brief.tickets_linked} 件"]
    else:
        out.append("当日无新开或持续中的事件。")
    out += ["", "## 七、重点负面帖子（已脱敏）", "", *_posts(brief.top_negative)]
    out += ["", "## 八、传播最广的帖子（已脱敏）", "", *_posts(brief.top_influential)]
    out += ["", "## 九、分时走势", ""]
    out += _table(
        ["时段", "帖子", "负面", "负面占比"],
        ([p.label, str(p.total), str(p.negative), percent(p.negative_share)] for p in brief.hourly),
    )
    if brief.link:
        out += ["", md_link("在舆情监测平台中查看", brief.link)]
    out += ["", "——本报告由舆情监测系统自动生成，帖子内容已脱敏。"]
    return "\n".join(out) + "\n"


def daily_brief_summary(brief: DailyBrief) -> str:
    """A short Markdown summary for chat channels: headline numbers, incidents, a link."""
    out = [
        f"### {md_escape(brief.title)}",
        f"- 舆情总量：{brief.total_posts}（前一日 {brief.previous_total}）",
        f"- 负面占比：{percent(brief.negative_share)}"
        f"（前一日 {percent(brief.previous_negative_share)}，"
        f"{_change(brief.negative_share, brief.previous_negative_share)}）",
        f"- 高危信号帖：{brief.critical_posts}",
        f"- 新开事件：{len(brief.incidents_opened)}，持续事件：{len(brief.incidents_active)}",
    ]
    for inc in [*brief.incidents_opened, *brief.incidents_active][:5]:
        out.append(f"  - \\#{inc.id} {inc.grade_label} {inc.status} {md_escape(inc.title)}")
    if brief.keywords:
        out.append("- 关键词：" + "、".join(md_escape(w) for w, _ in brief.keywords[:8]))
    if brief.link:
        out.append("")
        out.append(md_link("查看完整日报", brief.link))
    return "\n".join(out)


def incident_report_markdown(report: IncidentReport) -> str:
    """The per-incident report as a Markdown document."""
    out = [
        f"# {md_escape(report.document_title)}",
        "",
        f"生成时间：{report.generated_at}（{report.timezone}）",
        "",
        "## 一、事件概况",
        "",
        *_plain_table(report.overview_table()),
        "",
        "## 二、定级依据",
        "",
        *([f"- {md_escape(r)}" for r in report.reasons] or ["（无记录）"]),
        "",
        "## 三、时间线",
        "",
        *_plain_table(report.timeline_table()),
        "",
        "## 四、影响范围",
        "",
        report.scope_line,
        "",
        *_mix(report.sources, "来源"),
        "",
        *_mix(report.sentiment_mix, "情感"),
        "",
        "### 风险信号及触发词",
        "",
    ]
    if report.signals:
        out += _plain_table(report.signals_table())
    else:
        out.append("（无）")
    out += ["", "## 五、代表帖子（已脱敏）", "", *_posts(report.top_posts)]
    out += ["", "## 六、关联投诉工单", ""]
    if report.tickets:
        out += _plain_table(report.tickets_table())
    else:
        out.append("（无关联工单）")
    if report.draft:
        out += ["", "## 七、报送草稿", ""]
        out += [
            f"> {md_escape(line)}" if line.strip() else ">" for line in report.draft.splitlines()
        ]
    if report.link:
        out += ["", md_link("进入事件室", report.link)]
    out += ["", "——本报告由舆情监测系统自动生成，帖子内容已脱敏。"]
    return "\n".join(out) + "\n"


def daily_brief_text(brief: DailyBrief) -> str:
    """A short plain-text summary (e-mail text part, log): same facts as the Markdown one.

    Plain text is never interpreted, so nothing is escaped; HTML views escape it.
    """
    out = [
        brief.title,
        brief.period_line,
        f"舆情总量：{brief.total_posts}（前一日 {brief.previous_total}）",
        f"负面占比：{percent(brief.negative_share)}"
        f"（前一日 {percent(brief.previous_negative_share)}，"
        f"{_change(brief.negative_share, brief.previous_negative_share)}）",
        f"高危信号帖：{brief.critical_posts}",
        f"新开事件：{len(brief.incidents_opened)}，持续事件：{len(brief.incidents_active)}",
    ]
    for inc in [*brief.incidents_opened, *brief.incidents_active][:5]:
        out.append(f"  #{inc.id} {inc.grade_label} {inc.status} {inc.title}")
    if brief.keywords:
        out.append("关键词：" + "、".join(w for w, _ in brief.keywords[:8]))
    if brief.link:
        out.append(f"完整日报：{brief.link}")
    return "\n".join(out)
