"""设置 — the watchlist, sources, rules, channels, escalation and storage in force (read-only).

Everything shown comes from :func:`dashboard.settings_view.build_settings_view`,
which hides every secret: tokens, signing secrets and passwords are shown
only as 已配置 / 未设置. Nothing on this page can change a setting; that is
done in the config file and the environment, then the service is restarted.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.components import get_data, guard


def _table(frame: pd.DataFrame, empty: str) -> None:
    if frame.empty:
        st.info(empty)
    else:
        st.dataframe(frame, hide_index=True, width="stretch")


def render() -> None:
    """Render the read-only settings view."""
    data = get_data()
    st.title("设置")
    with guard():
        view = data.settings_view()
    if view is None:
        st.warning(
            "当前未提供生效配置，无法显示设置（仪表盘未通过 yuqing 启动）。",
            icon=":material/settings:",
        )
        return
    st.caption("只读：修改请编辑配置文件与环境变量后重启服务。密钥与密码从不显示。")

    st.subheader("概况")
    _table(view.general, "")

    st.subheader("监测对象")
    _table(view.watchlist, "未配置监测对象。")
    if view.exclusions:
        st.text("排除词：" + "、".join(view.exclusions))
    else:
        st.caption("未配置排除词。")

    st.subheader("采集来源")
    _table(view.sources, "未配置采集来源。")

    st.subheader("检测规则")
    _table(view.rules, "未配置检测规则。")

    st.subheader("通知渠道")
    _table(view.channels, "未配置通知渠道。")

    st.subheader("升级与报告")
    _table(view.escalation, "")
    st.markdown("**静默规则**")
    _table(view.silences, "当前没有静默规则。")

    st.subheader("存储")
    _table(view.storage, "")
