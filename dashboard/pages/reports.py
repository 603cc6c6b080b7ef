"""报告 — the daily brief (舆情日报) and per-incident reports: preview and download.

Head office and admins only (permission ``reports``); an analyst sees a clear
"no permission" message and no report data. The preview is the report's own
Markdown, in which every piece of post text is escaped (``reports.render_md``),
so a post cannot inject links, HTML or Streamlit directives. PDF and DOCX are
rendered only when their download button is clicked (a callable ``data``),
so opening the page stays quick. A ``?date=YYYY-MM-DD`` query parameter (the
link in the scheduled brief) preselects the day; ``?incident=ID`` the incident.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import streamlit as st

from dashboard.auth import can
from dashboard.components import current_user, get_data, guard
from dashboard.data import DashboardData
from reports.charts import volume_chart
from reports.model import DailyBrief, IncidentReport
from reports.render import (
    CONTENT_TYPES,
    check_format,
    daily_brief_filename,
    incident_report_filename,
)
from reports.render_md import daily_brief_markdown, incident_report_markdown

DAY_KEY = "reports_day"
INCIDENT_KEY = "reports_incident"
_FORMATS = (("pdf", "下载 PDF"), ("docx", "下载 Word (DOCX)"), ("md", "下载 Markdown"))


def _query_day(default: date) -> date:
    raw = st.query_params.get("date")
    if not raw:
        return default
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        st.warning(f"链接中的日期无效（{str(raw)[:20]}），已显示默认日期。")
        return default


def _downloads(data: DashboardData, report: DailyBrief | IncidentReport, key: str) -> None:
    now = datetime.now(UTC)
    columns = st.columns(len(_FORMATS))
    for column, (fmt, label) in zip(columns, _FORMATS, strict=True):
        checked = check_format(fmt)
        name = (
            daily_brief_filename(report, checked)
            if isinstance(report, DailyBrief)
            else incident_report_filename(report, checked)
        )

        def build(fmt: str = fmt) -> bytes:
            # Rendered on click only: PDF/DOCX take a second or two each.
            return data.render_report(report, fmt, now=now)[0]

        column.download_button(
            label,
            data=build,
            file_name=name,
            mime=CONTENT_TYPES[checked],
            key=f"{key}_{fmt}",
            on_click="ignore",
            icon=":material/download:",
        )


def _daily(data: DashboardData) -> None:
    default = _query_day(data.report_default_day())
    day = st.date_input("日期", value=default, key=DAY_KEY, format="YYYY-MM-DD")
    if not isinstance(day, date):
        st.info("请选择一个日期。")
        return
    with guard():
        brief = data.daily_brief(day)
    cols = st.columns(4)
    cols[0].metric("舆情总量", brief.total_posts, brief.total_posts - brief.previous_total)
    share = brief.negative_share
    cols[1].metric("负面占比", "—" if share is None else f"{share * 100:.1f}%")
    cols[2].metric("高危信号帖", brief.critical_posts)
    cols[3].metric("新开事件", len(brief.incidents_opened))
    _downloads(data, brief, "brief")
    st.image(volume_chart(brief.hourly, title="分时舆情量与负面占比"))
    with st.container(border=True):
        st.markdown(daily_brief_markdown(brief))


def _incident(data: DashboardData) -> None:
    with guard():
        frame = data.incidents(limit=200)
    if frame.empty:
        st.info("暂无事件。")
        return
    ids = [int(i) for i in frame["id"]]
    titles = {int(r.id): f"#{r.id} {r.grade_label} {r.title}" for r in frame.itertuples()}
    wanted = st.query_params.get("incident")
    index = ids.index(int(wanted)) if wanted and str(wanted).isdigit() and int(wanted) in ids else 0
    chosen = st.selectbox(
        "事件", ids, index=index, format_func=lambda i: titles.get(i, f"#{i}"), key=INCIDENT_KEY
    )
    if chosen is None:
        return
    with guard():
        report = data.incident_report(int(chosen))
    if report is None:
        st.warning(f"事件 #{chosen} 不存在。")
        return
    _downloads(data, report, f"incident_{report.id}")
    with st.container(border=True):
        st.markdown(incident_report_markdown(report))


def render() -> None:
    """Render the reports page (head office and admins)."""
    data = get_data()
    st.title("报告")
    user = current_user()
    if not can(user, "reports"):
        st.error(
            f"无权限：报告仅限总行和管理员查看（当前角色：{user.role_zh}）。",
            icon=":material/lock:",
        )
        return
    daily_tab, incident_tab = st.tabs(["舆情日报", "事件报告"])
    with daily_tab:
        _daily(data)
    with incident_tab:
        _incident(data)
