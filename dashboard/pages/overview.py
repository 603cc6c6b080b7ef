"""总览 — headline numbers, volume by sentiment over time, topic and source mix, open incidents."""

from __future__ import annotations

import streamlit as st

from core.vocab import Grade
from dashboard.components import (
    bar_chart,
    get_data,
    grade_text,
    guard,
    incidents_table,
    range_picker,
    volume_chart,
    window_caption,
)
from dashboard.data import ACTIVE_STATUSES, TimeWindow


def render() -> None:
    """Render the overview page."""
    data = get_data()
    st.title("总览")
    window = TimeWindow.last(range_picker("overview_range"))
    window_caption(data, window)

    # Every query runs before anything is drawn: an outage shows one clear
    # error instead of half a page of numbers next to a gap.
    with guard():
        kpis = data.kpis(window.since, window.until)
        volume = data.volume_over_time(window.since, window.until, window.bucket_seconds)
        topics = data.topic_mix(window.since, window.until)
        sources = data.source_mix(window.since, window.until)
        open_incidents = data.incidents(ACTIVE_STATUSES)

    share = kpis.negative_share
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("舆情总量", f"{kpis.total_posts:,}")
    c2.metric("负面占比", "—" if share is None else f"{share:.1%}", help="负面帖子数 / 舆情总量")
    c3.metric("高危信号帖", f"{kpis.critical_posts:,}", help="含挤兑传闻、群体事件等高危信号的帖子")
    c4.metric(
        "未结事件",
        f"{kpis.open_incidents:,}" + ("+" if kpis.open_incidents_capped else ""),
        help="状态为待处理或已确认的事件（不受时间范围影响）",
    )
    for col, grade in zip(st.columns(4), reversed(list(Grade)), strict=True):
        col.metric(grade_text(grade), f"{kpis.open_by_grade[grade]:,}")

    st.subheader("舆情走势（按情感）")
    if kpis.total_posts == 0:
        st.info("该时间范围内没有采集到舆情。")
    else:
        st.altair_chart(volume_chart(volume, window.bucket_seconds), width="stretch")

    left, right = st.columns(2)
    with left:
        st.subheader("话题分布")
        if not topics.empty:
            st.altair_chart(
                bar_chart(topics, label="topic_zh", value="count", title="话题"), width="stretch"
            )
    with right:
        st.subheader("来源分布")
        if not sources.empty:
            st.altair_chart(
                bar_chart(sources, label="source", value="count", title="来源"), width="stretch"
            )

    st.subheader("未结事件")
    incidents_table(open_incidents)
