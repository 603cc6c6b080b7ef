"""事件 — the incident list and the incident room: grade, reasons, timeline, posts, ack/resolve.

Actions run in button callbacks, before the rerun that draws the page, so
the page a user sees after clicking already shows the new status.
"""

from __future__ import annotations

import streamlit as st

from core.errors import YuqingError
from core.vocab import Grade, IncidentStatus
from dashboard.auth import Action, can
from dashboard.components import (
    STATUS_BADGE,
    current_user,
    fmt_time,
    get_data,
    grade_badge,
    grade_text,
    guard,
    incidents_table,
    post_card,
    show_flash,
)
from dashboard.data import ACTIVE_STATUSES, STATUS_LABELS_ZH, DataUnavailable
from dashboard.pages.incident_room import escalate_button, render_room_extras
from dashboard.ticket_views import render_linked_tickets

_FLASH = "incident_flash"
_NOTE = "incident_note"
_SELECTED = "incident_selected"


def _act(action: str, incident_id: int) -> None:
    """Button callback: acknowledge or resolve, and leave a message for the next run."""
    data = get_data()
    user = current_user()
    note = str(st.session_state.get(_NOTE, ""))
    permission: Action = "acknowledge" if action == "ack" else "resolve"
    try:
        if not can(user, permission):
            # The button is disabled for this role; a forged click is refused and recorded.
            data.audit(
                actor=user.username,
                action=f"denied_{permission}",
                target=f"incident:{incident_id}",
                detail=f"role={user.role}",
            )
            st.session_state[_FLASH] = ("error", f"操作未完成：{user.role_zh}无权执行此操作。")
            return
        if action == "ack":
            data.acknowledge(incident_id, user.username, note)
            message = f"事件 #{incident_id} 已确认。"
        else:
            data.resolve(incident_id, user.username, note)
            message = f"事件 #{incident_id} 已解决。"
    except DataUnavailable as exc:
        st.session_state[_FLASH] = ("error", f"操作未完成：{exc.store} 无法访问（{exc.detail}）。")
    except (ValueError, YuqingError) as exc:
        st.session_state[_FLASH] = ("error", f"操作未完成：{exc}")
    else:
        st.session_state[_FLASH] = ("success", message)
        st.session_state[_NOTE] = ""


def render() -> None:
    """Render the incidents page."""
    data = get_data()
    st.title("事件")
    show_flash(_FLASH)

    statuses = st.multiselect(
        "状态",
        list(IncidentStatus),
        default=list(ACTIVE_STATUSES),
        format_func=STATUS_LABELS_ZH.__getitem__,
        key="incident_status_filter",
        placeholder="全部状态",
    )
    with guard():
        frame = data.incidents(statuses or None)
    incidents_table(frame)
    if frame.empty:
        return

    labels = {
        int(row.id): f"#{row.id} {grade_text(Grade(row.grade))} · {row.status_zh} · {row.title}"
        for row in frame.itertuples()
    }
    ids = list(labels)
    if st.session_state.get(_SELECTED) not in labels:
        # The selected incident left the list (resolved, filtered out): forget it.
        st.session_state.pop(_SELECTED, None)
        # A link from a notification (…/incidents?incident=7) opens that incident.
        wanted = st.query_params.get("incident")
        if wanted and wanted.isdigit() and int(wanted) in labels:
            st.session_state[_SELECTED] = int(wanted)
    incident_id = st.selectbox("选择事件", ids, format_func=labels.__getitem__, key=_SELECTED)
    if incident_id is None:
        return

    with guard():
        detail = data.incident_detail(int(incident_id))
    if detail is None:
        st.warning(f"事件 #{incident_id} 已不存在。")
        return
    inc = detail.incident

    st.divider()
    st.subheader(f"事件 #{inc.id}")
    st.text(inc.title)
    with st.container(horizontal=True):
        grade_badge(inc.grade)
        st.badge(STATUS_LABELS_ZH[inc.status], color=STATUS_BADGE[inc.status])
        st.badge(f"规则 {inc.rule}", color="gray")
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("帖子数", f"{inc.post_count:,}")
    m2.metric("峰值", f"{inc.peak_count:,}")
    m3.metric("开启时间", data.to_local(inc.opened_at).strftime("%m-%d %H:%M"))
    m4.metric("来源数", f"{len(inc.sources):,}")
    if inc.reasons:
        st.markdown("**判定依据**")
        for reason in inc.reasons:
            st.text(f"• {reason}")
    st.caption(f"事件链接：{data.incident_url(inc.id or int(incident_id))}")

    st.markdown("**处置**")
    user = current_user()
    may_ack, may_resolve = can(user, "acknowledge"), can(user, "resolve")
    a1, a2 = st.columns([1, 2])
    a1.text(f"操作人：{user.display_name}（{user.username} · {user.role_zh}）")
    a2.text_input("备注", key=_NOTE, max_chars=500, disabled=not can(user, "note"))
    with st.container(horizontal=True):
        st.button(
            "确认事件",
            key="incident_ack",
            type="primary",
            on_click=_act,
            args=("ack", inc.id),
            disabled=not may_ack or inc.status is not IncidentStatus.OPEN,
            icon=":material/done:",
        )
        st.button(
            "解决事件",
            key="incident_resolve",
            on_click=_act,
            args=("resolve", inc.id),
            disabled=not may_resolve or inc.status is IncidentStatus.RESOLVED,
            help=None if may_resolve else "仅总行或管理员可以解决事件",
            icon=":material/task_alt:",
        )
        escalate_button(data, inc, user)
    if not may_resolve:
        st.caption("解决事件需要总行或管理员权限。")

    st.subheader("时间线")
    timeline = detail.timeline.assign(local_time=detail.timeline["local_time"].map(fmt_time))
    st.dataframe(
        timeline.rename(
            columns={
                "local_time": "时间",
                "event": "事件",
                "grade": "等级",
                "actor": "执行者",
                "detail": "说明",
            }
        ),
        hide_index=True,
        width="stretch",
    )
    render_room_extras(data, inc, user)
    render_linked_tickets(data, inc, user)

    st.subheader(f"相关帖子（{len(detail.posts)}）")
    if detail.posts_missing:
        st.caption(f"另有 {detail.posts_missing} 条帖子已不在舆情库中。")
    if detail.posts_not_loaded:
        st.caption(f"仅显示前 {len(detail.posts)} 条，另有 {detail.posts_not_loaded} 条未加载。")
    for item in detail.posts:
        post_card(item)
