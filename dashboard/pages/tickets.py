"""投诉工单 — imported complaint tickets, where each one leads, and the problem records.

* Tickets of a time range, filtered by branch, product, status and channel.
* One ticket: its fields (masked), the incidents that link it (with the
  score and the reasons), its problem records, and the public posts most
  likely about the same case, with why.
* Problem records with their sync flags (incident resolved, all tickets
  closed) and a status change (``promote`` permission: analysts and up).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from core.errors import YuqingError
from dashboard.auth import can
from dashboard.components import (
    current_user,
    fmt_time,
    get_data,
    guard,
    post_card,
    range_picker,
    show_flash,
)
from dashboard.data import DataUnavailable, TimeWindow
from dashboard.ticket_views import problem_owner, score_column
from storage.state import PROBLEM_STATUS_ZH, PROBLEM_STATUSES

_FLASH = "tickets_flash"
_SELECTED = "tickets_selected"
_PROBLEM = "tickets_problem"
_NEW_STATUS = "tickets_problem_status"
_NOTE = "tickets_problem_note"
_FILTERS = {
    "branch": ("网点", "tickets_branch"),
    "product": ("产品", "tickets_product"),
    "status": ("状态", "tickets_status"),
    "channel": ("渠道", "tickets_channel"),
}
_TICKET_LABELS = {
    "ticket_id": "工单号",
    "local_time": "创建时间",
    "channel": "渠道",
    "branch": "网点",
    "product": "产品",
    "category": "类别",
    "priority": "优先级",
    "status": "状态",
    "closed": "已办结",
    "summary": "摘要",
}
_PROBLEM_LABELS = {
    "id": "问题单",
    "incident_id": "事件",
    "title": "标题",
    "owner": "负责",
    "status_zh": "状态",
    "tickets": "工单数",
    "open_tickets": "未办结",
    "flags": "同步提示",
    "suggest_resolve": "建议解决",
    "updated_local": "更新时间",
}


def _set_status() -> None:
    """Button callback: change the chosen problem's status; leave the result for the next run."""
    data = get_data()
    user = current_user()
    problem_id = st.session_state.get(_PROBLEM)
    status = str(st.session_state.get(_NEW_STATUS, ""))
    if problem_id is None:
        return
    try:
        if not can(user, "promote"):
            data.audit(
                actor=user.username,
                action="denied_problem_status",
                target=f"problem:{problem_id}",
                detail=f"role={user.role}",
            )
            st.session_state[_FLASH] = ("error", f"操作未完成：{user.role_zh}无权执行此操作。")
            return
        note = str(st.session_state.get(_NOTE, ""))
        problem = data.set_problem_status(int(problem_id), status, user.username, note)
    except DataUnavailable as exc:
        st.session_state[_FLASH] = ("error", f"操作未完成：{exc.store} 无法访问（{exc.detail}）。")
    except (ValueError, YuqingError) as exc:
        st.session_state[_FLASH] = ("error", f"操作未完成：{exc}")
    else:
        label = PROBLEM_STATUS_ZH.get(problem.status, problem.status)
        st.session_state[_FLASH] = ("success", f"问题单 #{problem.id} 状态：{label}。")
        st.session_state[_NOTE] = ""


def render() -> None:
    """Render the tickets page."""
    data = get_data()
    st.title("投诉工单")
    show_flash(_FLASH)
    if not data.tickets_enabled():
        st.warning("当前状态库不保存工单与问题单，本页无法显示。")
        return

    choice = range_picker("tickets_range", default="7d", allow_all=True)
    since: datetime | None = None
    until: datetime | None = None
    if choice != "all":
        window = TimeWindow.last(choice)
        since, until = window.since, window.until
    with guard():
        options = data.ticket_list(since, until).options
    chosen: dict[str, list[str]] = {}
    columns = st.columns(len(_FILTERS))
    for column, (name, (label, key)) in zip(columns, _FILTERS.items(), strict=True):
        # A value no longer in the window (another range) would make the widget fail.
        if key in st.session_state:
            st.session_state[key] = [v for v in st.session_state[key] if v in options[name]]
        chosen[name] = column.multiselect(label, options[name], key=key, placeholder="全部")
    with guard():
        listing = data.ticket_list(
            since,
            until,
            branches=chosen["branch"],
            products=chosen["product"],
            statuses=chosen["status"],
            channels=chosen["channel"],
        )
    frame = listing.frame
    m1, m2, m3 = st.columns(3)
    m1.metric("工单数", f"{len(frame):,}")
    m2.metric("未办结", f"{int((~frame['closed']).sum()):,}")
    m3.metric("时间范围内合计", f"{listing.in_window:,}{'+' if listing.capped else ''}")
    if listing.capped:
        st.caption(f"时间范围内工单过多，仅读取了最新的 {listing.in_window:,} 张。")
    st.dataframe(
        frame.assign(local_time=frame["local_time"].map(fmt_time)).rename(columns=_TICKET_LABELS),
        hide_index=True,
        width="stretch",
    )

    if not frame.empty:
        _ticket_section(frame)
    _problems_section()


def _ticket_section(frame: pd.DataFrame) -> None:
    data = get_data()
    labels = {
        str(r.ticket_id): f"{r.ticket_id} · {r.branch or '-'} · {r.product or '-'} · {r.status}"
        for r in frame.itertuples()
    }
    if st.session_state.get(_SELECTED) not in labels:
        st.session_state.pop(_SELECTED, None)
        wanted = st.query_params.get("ticket")
        if wanted in labels:
            st.session_state[_SELECTED] = wanted
    ticket_id = st.selectbox(
        "查看工单", list(labels), format_func=labels.__getitem__, key=_SELECTED, index=None
    )
    if ticket_id is None:
        return
    with guard():
        detail = data.ticket_detail(str(ticket_id))
    if detail is None:
        st.warning(f"工单 {ticket_id} 已不存在。")
        return
    t = detail.ticket
    st.subheader(f"工单 {t.ticket_id}")
    st.text(
        " · ".join(
            x
            for x in (detail.local_time, t.channel, t.branch, t.product, t.category, t.priority)
            if x
        )
    )
    st.text(f"状态：{t.status or '-'}　客户：{t.customer_ref or '-'}")
    st.text(t.summary)

    st.markdown("**关联事件**")
    if detail.incidents.empty:
        st.caption("没有事件关联到这张工单（在最近的事件中）。")
    else:
        st.dataframe(
            detail.incidents.rename(
                columns={
                    "id": "事件",
                    "grade": "等级",
                    "status_zh": "状态",
                    "title": "标题",
                    "score": "关联度",
                    "reasons": "关联依据",
                }
            ),
            hide_index=True,
            width="stretch",
            column_config={"关联度": score_column()},
        )
    for p in detail.problems:
        status = PROBLEM_STATUS_ZH.get(p.status, p.status)
        st.text(f"所属问题单 #{p.id}（{status}，负责：{problem_owner(p)}）")

    st.markdown("**可能相关的公开帖子**")
    if detail.posts is None:
        st.caption("未接入工单关联，无法查找相关帖子。")
    elif not detail.posts:
        st.caption("三天内没有提到该产品或网点、且得分足够的帖子。")
    for linked in detail.posts or []:
        st.text(f"关联度 {linked.score:.2f} · " + "；".join(linked.reasons))
        post_card(linked.item)
    if detail.posts_gone:
        st.caption(f"另有 {detail.posts_gone} 条相关帖子已不在舆情库中。")


def _problems_section() -> None:
    data = get_data()
    st.subheader("问题单")
    statuses = st.multiselect(
        "问题单状态",
        list(PROBLEM_STATUSES),
        default=["open", "investigating"],
        format_func=PROBLEM_STATUS_ZH.__getitem__,
        key="tickets_problem_filter",
        placeholder="全部状态",
    )
    with guard():
        problems = data.problem_list(statuses or None)
    if problems.empty:
        st.caption("没有符合条件的问题单。事件页可以把事件及其关联工单升级为问题单。")
        return
    st.dataframe(
        problems.assign(updated_local=problems["updated_local"].map(fmt_time))[
            list(_PROBLEM_LABELS)
        ].rename(columns=_PROBLEM_LABELS),
        hide_index=True,
        width="stretch",
    )
    st.caption("同步提示只作提醒：问题单状态由投诉处理组决定，不会自动改变。")

    user = current_user()
    may = can(user, "promote")
    ids = [int(i) for i in problems["id"]]
    if st.session_state.get(_PROBLEM) not in ids:
        st.session_state.pop(_PROBLEM, None)  # filtered out: forget it
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.selectbox("问题单", ids, format_func=lambda i: f"#{i}", key=_PROBLEM)
        st.selectbox(
            "新状态",
            list(PROBLEM_STATUSES),
            format_func=PROBLEM_STATUS_ZH.__getitem__,
            key=_NEW_STATUS,
        )
        st.text_input("说明", key=_NOTE, max_chars=500, disabled=not may)
        st.button(
            "更新状态",
            key="tickets_problem_set",
            on_click=_set_status,
            disabled=not may,
            help=None if may else f"{user.role_zh}无权更新问题单",
            icon=":material/sync:",
        )
    chosen = st.session_state.get(_PROBLEM)
    if chosen is None:
        return
    with guard():
        history = data.problem_history(int(chosen))
    st.markdown(f"**问题单 #{int(chosen)} 处理记录**")
    st.dataframe(
        history.assign(local_time=history["local_time"].map(fmt_time)).rename(
            columns={"local_time": "时间", "actor": "执行者", "event": "事件", "detail": "说明"}
        ),
        hide_index=True,
        width="stretch",
    )
