"""Complaint-ticket widgets (issue 7): the incident room's linked tickets, shared ticket tables.

:func:`render_linked_tickets` is called with one line from
:mod:`dashboard.pages.incidents`; the tickets page
(:mod:`dashboard.pages.tickets`) uses the tables. Everything that comes from
outside (ticket summaries, owners, post text) is shown as data (dataframes,
``st.text``), never as Markdown.

Roles: promoting an incident to a problem record, and moving a problem's
status, need the ``promote`` permission (:func:`dashboard.auth.can`), which
analysts have — the complaint team works with that role. A click a role may
not make is refused and written to the audit log.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit.elements.lib.column_types import ColumnConfig

from core.errors import YuqingError
from core.models import Incident
from dashboard.auth import User, can
from dashboard.components import current_user, fmt_time, get_data, guard
from dashboard.data import DashboardData, DataUnavailable
from storage.state import PROBLEM_STATUS_ZH, Problem

FLASH = "incident_flash"
"""The incidents page's one-line result message (shown at the top after a click)."""
PROMOTE_OWNER = "incident_problem_owner"
PROMOTE_BUTTON = "incident_promote"

LINKED_TICKET_LABELS = {
    "ticket_id": "工单号",
    "score": "关联度",
    "same": "相同产品/网点/主题",
    "time_gap": "时间差",
    "words": "共同词",
    "status": "工单状态",
    "branch": "网点",
    "product": "产品",
    "local_time": "创建时间",
    "summary": "摘要",
}


def score_column(label: str = "关联度") -> ColumnConfig:
    """A 0–1 score shown as a bar with two decimals."""
    return st.column_config.ProgressColumn(label, min_value=0.0, max_value=1.0, format="%.2f")


def linked_tickets_table(frame: pd.DataFrame) -> None:
    """The tickets linked to an incident: who, how strongly, and why."""
    shown = frame.assign(local_time=frame["local_time"].map(fmt_time))
    st.dataframe(
        shown.rename(columns=LINKED_TICKET_LABELS),
        hide_index=True,
        width="stretch",
        column_config={"关联度": score_column()},
    )


def problem_owner(problem: Problem) -> str:
    """``team/user`` (or just the team) of a problem."""
    return (
        f"{problem.owner_team}/{problem.owner_user}" if problem.owner_user else problem.owner_team
    )


def _promote(incident_id: int) -> None:
    """Button callback: promote the incident, leave the result for the next run."""
    data = get_data()
    user = current_user()
    try:
        if not can(user, "promote"):
            data.audit(
                actor=user.username,
                action="denied_promote",
                target=f"incident:{incident_id}",
                detail=f"role={user.role}",
            )
            st.session_state[FLASH] = ("error", f"操作未完成：{user.role_zh}无权执行此操作。")
            return
        owner = str(st.session_state.get(PROMOTE_OWNER, ""))
        problem = data.promote_problem(incident_id, user.username, owner=owner)
    except DataUnavailable as exc:
        st.session_state[FLASH] = ("error", f"操作未完成：{exc.store} 无法访问（{exc.detail}）。")
    except (ValueError, YuqingError) as exc:
        st.session_state[FLASH] = ("error", f"未能升级为问题单：{exc}")
    else:
        st.session_state[FLASH] = (
            "success",
            f"事件 #{incident_id} 已升级为问题单 #{problem.id}"
            f"（{len(problem.ticket_ids)} 张工单）。",
        )
        st.session_state[PROMOTE_OWNER] = ""


def render_linked_tickets(data: DashboardData, incident: Incident, user: User) -> None:
    """The incident room's 关联投诉工单 section and its 升级为问题单 button."""
    if incident.id is None or not data.tickets_enabled():
        return
    st.subheader("关联投诉工单")
    with guard():
        linked = data.incident_tickets(incident.id)
    if linked is None:
        return
    if linked.frame.empty:
        st.caption("暂无关联的投诉工单：事件开启时没有得分足够的工单。")
    else:
        if linked.source == "live":
            st.caption("事件开启时未保存关联工单；以下为按当前工单实时计算的结果。")
        linked_tickets_table(linked.frame)
    if linked.problem is not None:
        p = linked.problem
        status = PROBLEM_STATUS_ZH.get(p.status, p.status)
        st.text(
            f"已升级为问题单 #{p.id}（{status}，负责：{problem_owner(p)}，"
            f"{len(p.ticket_ids)} 张工单）——见“投诉工单”页。"
        )
        return
    may = can(user, "promote")
    reason = None
    if not may:
        reason = f"{user.role_zh}无权升级为问题单"
    elif not linked.can_promote:
        reason = "未接入工单关联，无法升级"
    elif linked.frame.empty:
        reason = "没有关联工单，无法升级"
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.text_input(
            "问题单负责人（可选）", key=PROMOTE_OWNER, max_chars=100, disabled=reason is not None
        )
        st.button(
            "升级为问题单",
            key=PROMOTE_BUTTON,
            on_click=_promote,
            args=(incident.id,),
            disabled=reason is not None,
            help=reason or "把事件及其关联工单升级为一张由投诉处理组负责的问题单",
            icon=":material/assignment_add:",
        )
    if reason is not None:
        st.caption(reason + "。")
