"""The incident room's extras (issue 8): escalate, volume, authors, signals, notes, draft report.

Called from :mod:`dashboard.pages.incidents` (one button call and one section
call), kept here so the room's other sections can grow without colliding.

Roles (:func:`dashboard.auth.can`): everyone logged in reads; analysts may add
notes; head office (and admin) may also escalate and edit/save the draft
report. A click a role may not make is refused and written to the audit log.

The draft report (grade II and I) is shown in an editable text area, built by
the injected ``draft_report`` (``alerts.regulatory`` via bootstrap). "保存草稿"
stores the edited text as an incident note of kind ``draft`` (table
``incident_notes``; audit action ``draft_saved``); the room then shows the
latest saved draft instead of a freshly built one, until "重新生成" replaces
the text in the box with a new draft (saved only when saved again).
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from core.errors import YuqingError
from core.models import Incident
from core.vocab import IncidentStatus
from dashboard.auth import Action, User, can
from dashboard.components import current_user, fmt_time, get_data, guard
from dashboard.data import DRAFT_GRADES, DashboardData, DataUnavailable, IncidentInsights

FLASH = "incident_flash"
"""Session key of the one-line result message the incidents page shows after a click."""
NOTE_INPUT = "incident_note"
"""The incidents page's 备注 field: its text goes with an escalation, as with ack/resolve."""
NEW_NOTE = "incident_new_note"
NOTE_MAX_CHARS = 2000
_TOP_AUTHORS = 10


def draft_key(incident_id: int) -> str:
    """Session key of the draft report text area of one incident."""
    return f"incident_draft_{incident_id}"


def _refuse(data: DashboardData, user: User, permission: Action, incident_id: int) -> None:
    data.audit(
        actor=user.username,
        action=f"denied_{permission}",
        target=f"incident:{incident_id}",
        detail=f"role={user.role}",
    )
    st.session_state[FLASH] = ("error", f"操作未完成：{user.role_zh}无权执行此操作。")


def _failed(exc: Exception) -> None:
    if isinstance(exc, DataUnavailable):
        st.session_state[FLASH] = ("error", f"操作未完成：{exc.store} 无法访问（{exc.detail}）。")
    else:
        st.session_state[FLASH] = ("error", f"操作未完成：{exc}")


# ---------------------------------------------------------------------- callbacks


def _escalate(incident_id: int) -> None:
    """Button callback: escalate one level now (head office), with the 备注 as the note."""
    data, user = get_data(), current_user()
    note = str(st.session_state.get(NOTE_INPUT, ""))
    try:
        if not can(user, "escalate"):
            _refuse(data, user, "escalate", incident_id)
            return
        outcome = data.escalate(incident_id, user.username, note)
    except (DataUnavailable, ValueError, YuqingError) as exc:
        _failed(exc)
        return
    if not outcome.changed:
        message = f"事件 #{incident_id} 已在总行层级，无需再升级。"
    elif outcome.audience_zh:
        message = f"事件 #{incident_id} 已升级至：{outcome.audience_zh}。"
    else:
        message = f"事件 #{incident_id} 已升级。"
    st.session_state[FLASH] = ("success", message)
    st.session_state[NOTE_INPUT] = ""


def _add_note(incident_id: int) -> None:
    """Button callback: store the new note (analysts and up); audited by the state store."""
    data, user = get_data(), current_user()
    text = str(st.session_state.get(NEW_NOTE, ""))
    try:
        if not can(user, "note"):
            _refuse(data, user, "note", incident_id)
            return
        data.add_note(incident_id, user.username, text)
    except (DataUnavailable, ValueError, YuqingError) as exc:
        _failed(exc)
        return
    st.session_state[FLASH] = ("success", f"已为事件 #{incident_id} 添加备注。")
    st.session_state[NEW_NOTE] = ""


def _save_draft(incident_id: int) -> None:
    """Button callback: save the edited draft report as a ``draft`` note (head office)."""
    data, user = get_data(), current_user()
    text = str(st.session_state.get(draft_key(incident_id), ""))
    try:
        if not can(user, "reports"):
            _refuse(data, user, "reports", incident_id)
            return
        data.add_note(incident_id, user.username, text, kind="draft")
    except (DataUnavailable, ValueError, YuqingError) as exc:
        _failed(exc)
        return
    st.session_state[FLASH] = ("success", f"事件 #{incident_id} 的报告草稿已保存。")


def _regenerate_draft(incident_id: int) -> None:
    """Button callback: replace the text in the box by a freshly built draft (not saved)."""
    data = get_data()
    try:
        text = data.generate_draft(incident_id)
    except (DataUnavailable, YuqingError) as exc:
        _failed(exc)
        return
    if text is not None:
        st.session_state[draft_key(incident_id)] = text


# ---------------------------------------------------------------------- sections


def escalate_button(data: DashboardData, incident: Incident, user: User) -> None:
    """The 升级事件 button (enabled for head office and admin on an active incident)."""
    allowed = can(user, "escalate")
    if not data.can_escalate:
        help_text = "未接入告警引擎，无法升级"
    elif not allowed:
        help_text = "仅总行或管理员可以升级事件"
    else:
        help_text = "立即升级一级，并通知新层级的渠道"
    st.button(
        "升级事件",
        key="incident_escalate",
        on_click=_escalate,
        args=(incident.id,),
        disabled=not allowed or not data.can_escalate or incident.status is IncidentStatus.RESOLVED,
        help=help_text,
        icon=":material/keyboard_double_arrow_up:",
    )


def render_room_extras(data: DashboardData, incident: Incident, user: User) -> None:
    """Volume, key authors, signals, notes and (grade II/I) the draft report of ``incident``."""
    assert incident.id is not None
    with guard():
        insights = data.incident_insights(incident.id)
        notes = data.notes(incident.id)
    if insights is not None:
        _volume_section(insights)
        _authors_section(insights)
        _signals_section(insights)
    _notes_section(data, incident.id, notes, user)
    if incident.grade in DRAFT_GRADES:
        _draft_section(data, incident.id, user)


def _volume_chart(frame: pd.DataFrame, bucket_seconds: int) -> alt.Chart:
    plot = frame.copy()
    plot["time"] = pd.to_datetime(plot["local_time"]).dt.tz_localize(None)
    plot["time_end"] = pd.to_datetime(plot["local_end"]).dt.tz_localize(None)
    axis_format = "%m-%d" if bucket_seconds >= 86400 else "%m-%d %H:%M"
    chart: alt.Chart = (
        alt.Chart(plot)
        .mark_rect(color="#d62728", stroke="white", strokeWidth=1)
        .encode(
            x=alt.X("time:T", title="时间（北京时间）", axis=alt.Axis(format=axis_format)),
            x2="time_end:T",
            y=alt.Y("count:Q", title="帖子数", axis=alt.Axis(tickMinStep=1, format="d")),
            y2=alt.datum(0),
            tooltip=[
                alt.Tooltip("time:T", title="开始（北京时间）", format="%Y-%m-%d %H:%M"),
                alt.Tooltip("count:Q", title="帖子数"),
            ],
        )
        .properties(height=220)
    )
    return chart


def _volume_section(insights: IncidentInsights) -> None:
    st.subheader("事件帖子量走势")
    if insights.posts_used == 0:
        st.info("事件记录的帖子均已不在舆情库中，无法统计走势、作者与信号。")
        return
    st.altair_chart(_volume_chart(insights.volume, insights.bucket_seconds), width="stretch")
    missing = f"，另有 {insights.posts_missing} 条已不在舆情库" if insights.posts_missing else ""
    st.caption(f"基于事件记录的 {insights.posts_used} 条帖子{missing}。")


def _author_table(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "作者": frame["author"],
            "来源": frame["sources"],
            "帖子数": frame["posts"],
            "粉丝数": frame["followers"],
            "转发": frame["reposts"],
            "互动（转评赞）": frame["engagement"],
            "影响力": frame["reach"],
        }
    )


def _authors_section(insights: IncidentInsights) -> None:
    if insights.posts_used == 0:
        return
    st.subheader("关键作者与传播")
    left, right = st.columns(2)
    with left:
        st.markdown("**发帖最多**")
        st.dataframe(
            _author_table(insights.authors.head(_TOP_AUTHORS)), hide_index=True, width="stretch"
        )
    with right:
        st.markdown("**影响力最大**（粉丝 + 转评赞）")
        st.dataframe(_author_table(insights.authors_by_reach), hide_index=True, width="stretch")


def _signals_section(insights: IncidentInsights) -> None:
    if insights.posts_used == 0:
        return
    st.subheader("风险信号与触发词")
    if insights.signals.empty:
        st.caption("事件帖子中未检出风险信号。")
        return
    st.dataframe(
        pd.DataFrame(
            {
                "信号": insights.signals["signal"],
                "高危": insights.signals["critical"].map({True: "是", False: "否"}),
                "帖子数": insights.signals["posts"],
                "其中模型判断": insights.signals["model_posts"],
                "触发词": insights.signals["triggers"],
            }
        ),
        hide_index=True,
        width="stretch",
    )


def _notes_section(data: DashboardData, incident_id: int, notes: pd.DataFrame, user: User) -> None:
    st.subheader(f"备注（{len(notes)}）")
    if not data.notes_enabled:
        st.caption("当前状态库不支持备注。")
        return
    if notes.empty:
        st.caption("暂无备注。")
    for row in notes.itertuples():
        with st.container(border=True):
            st.text(f"{fmt_time(row.local_time)} · {row.user}")
            st.text(str(row.text))  # an analyst's words: shown literally, never as Markdown
    may_note = can(user, "note")
    st.text_area(
        "新备注",
        key=NEW_NOTE,
        max_chars=NOTE_MAX_CHARS,
        disabled=not may_note,
        placeholder="记录研判、处置进展等（保存后写入审计日志）",
    )
    st.button(
        "添加备注",
        key="incident_add_note",
        on_click=_add_note,
        args=(incident_id,),
        disabled=not may_note,
        icon=":material/note_add:",
    )


def _draft_section(data: DashboardData, incident_id: int, user: User) -> None:
    st.subheader("报告草稿（总行）")
    if not data.drafts_enabled:
        st.caption("未接入报告草稿生成（请通过 yuqing 启动仪表盘）。")
        return
    key = draft_key(incident_id)
    with guard():
        saved = data.saved_draft(incident_id)
        text = saved.text if saved else None
        if key not in st.session_state and text is None:
            text = data.generate_draft(incident_id)
    if key not in st.session_state:
        if text is None:
            st.warning(f"无法生成事件 #{incident_id} 的草稿。")
            return
        st.session_state[key] = text
    if saved is not None:
        st.caption(f"最近保存：{fmt_time(saved.local_time)} · {saved.user}")
    else:
        st.caption("系统生成的草稿，尚未保存。")
    may_edit = can(user, "reports")
    st.text_area("草稿内容", key=key, height=480, disabled=not may_edit)
    with st.container(horizontal=True):
        st.button(
            "保存草稿",
            key="incident_save_draft",
            type="primary",
            on_click=_save_draft,
            args=(incident_id,),
            disabled=not may_edit,
            icon=":material/save:",
        )
        st.button(
            "重新生成",
            key="incident_regenerate_draft",
            on_click=_regenerate_draft,
            args=(incident_id,),
            disabled=not may_edit,
            icon=":material/refresh:",
        )
        st.download_button(
            "下载草稿（.txt）",
            data=str(st.session_state.get(key, "")),
            file_name=f"incident-{incident_id}-draft.txt",
            mime="text/plain",
            key="incident_download_draft",
            icon=":material/download:",
        )
    if not may_edit:
        st.caption("编辑与保存草稿需要总行或管理员权限。")
