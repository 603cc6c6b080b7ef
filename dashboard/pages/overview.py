"""总览 — headline numbers, volume by sentiment over time, topic and source mix, open incidents,
source health."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait

import pandas as pd
import streamlit as st

from core.vocab import Grade
from dashboard.components import (
    badge_color,
    bar_chart,
    fmt_time,
    get_data,
    grade_text,
    guard,
    incidents_table,
    negative_share_chart,
    range_picker,
    volume_chart,
    window_caption,
    with_baseline,
)
from dashboard.data import ACTIVE_STATUSES, TimeWindow
from dashboard.source_health import SOURCE_HEALTH_RUNS, STALE_FACTOR

_QUERY_THREADS = 4
_HEALTH_EMOJI = {"ok": "🟢", "failing": "🔴", "stale": "🟠"}
_HEALTH_CELL_STYLE = {
    "ok": "background-color: #dcfce7; color: #14532d",
    "failing": "background-color: #fee2e2; color: #7f1d1d",
    "stale": "background-color: #ffedd5; color: #7c2d12",
}


def _shutdown(pool: ThreadPoolExecutor) -> None:
    pool.shutdown(wait=False)


@st.cache_resource(on_release=_shutdown)
def _query_pool() -> ThreadPoolExecutor:
    # One pool per process, its threads reused: the local store opens one
    # connection per thread, so fresh threads per run would pile up connections.
    return ThreadPoolExecutor(max_workers=_QUERY_THREADS, thread_name_prefix="overview-query")


_AUTO_REFRESH_SECONDS = 60


def render() -> None:
    """Render the overview page; with 自动刷新 on, its body reruns every minute."""
    st.title("总览")
    preset = range_picker("overview_range")
    auto = st.toggle(
        f"自动刷新（每 {_AUTO_REFRESH_SECONDS} 秒）",
        key="overview_auto_refresh",
        help="打开后本页数据每分钟自动更新，适合值班大屏。",
    )
    # A fragment reruns only the body (new time window, fresh queries), not the
    # whole app: the login check and the navigation are not redone each minute.
    body = st.fragment(run_every=_AUTO_REFRESH_SECONDS if auto else None)(_body)
    body(preset)


def _body(preset: str) -> None:
    data = get_data()
    window = TimeWindow.last(preset)
    window_caption(data, window)

    # Every query runs before anything is drawn: an outage shows one clear
    # error instead of half a page of numbers next to a gap. The queries are
    # independent reads, so they run side by side (the stores are thread-safe;
    # SQLite and the ES client release the GIL while they wait).
    since, until = window.since, window.until
    pool = _query_pool()
    volume_f = pool.submit(data.volume_over_time, since, until, window.bucket_seconds)
    # The KPIs take the total and negative counts from the volume histogram. Waiting
    # on it inside the pool cannot deadlock: the queue is FIFO, so by the time a
    # worker picks this task up the volume task has been picked up already.
    kpis_f = pool.submit(lambda: data.kpis(since, until, volume=volume_f.result()))
    topics_f = pool.submit(data.topic_mix, since, until)
    sources_f = pool.submit(data.source_mix, since, until)
    incidents_f = pool.submit(data.incidents, ACTIVE_STATUSES)
    health_f = pool.submit(data.source_health)
    baseline_f = pool.submit(data.volume_baseline, since, until, window.bucket_seconds)
    with guard():
        # Wait for all before raising: no query is left running behind an error.
        wait([volume_f, kpis_f, topics_f, sources_f, incidents_f, health_f, baseline_f])
        kpis, volume = kpis_f.result(), volume_f.result()
        topics, sources = topics_f.result(), sources_f.result()
        open_incidents, health = incidents_f.result(), health_f.result()
        baseline = baseline_f.result()

    risk_banner(kpis.risk_level, kpis.open_by_grade)
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
        st.altair_chart(
            with_baseline(volume_chart(volume, window.bucket_seconds), baseline),
            width="stretch",
        )
        st.caption("灰色带：前 7 天同一时段的正常范围（中位数 ± 3×MAD），虚线为中位数。")
        st.subheader("负面占比走势")
        st.altair_chart(negative_share_chart(volume, window.bucket_seconds), width="stretch")

    mix, left, right = st.columns(3)
    with mix:
        st.subheader("情感分布")
        sentiments = sentiment_mix(volume)
        if not sentiments.empty:
            st.altair_chart(
                bar_chart(sentiments, label="sentiment_zh", value="count", title="情感"),
                width="stretch",
            )
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

    st.subheader("数据源健康")
    source_health_table(health)


def risk_banner(level: Grade | None, open_by_grade: dict[Grade, int]) -> None:
    """当前风险等级: the most severe open incident's grade, or 平稳 when none is open.

    A badge in the grade's colour, not an ``st.error``: a page element styled as
    an error is reserved for something that went wrong (a store down).
    """
    if level is None:
        st.badge("当前风险等级：平稳（无未结事件）", color="green", icon=":material/verified_user:")
        return
    count = open_by_grade[level]
    st.badge(
        f"当前风险等级：{grade_text(level)}（未结 {level.value} 级事件 {count} 起）",
        color=badge_color(level.color),
        icon=":material/crisis_alert:",
    )


def sentiment_mix(volume: pd.DataFrame) -> pd.DataFrame:
    """Posts per sentiment over the window (from the volume frame), most first; no zero rows."""
    mix = volume.groupby(["sentiment", "sentiment_zh"], as_index=False)["count"].sum()
    return mix[mix["count"] > 0].sort_values("count", ascending=False, ignore_index=True)


def _count(value: float | None) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:,.0f}"


def source_health_table(frame: pd.DataFrame) -> None:
    """Per source: status, last run and success, error rate, items per run. Failing first."""
    if frame.empty:
        st.info("尚无数据源：未配置数据源，也没有采集记录。")
        return
    failing = int((frame["status"] == "failing").sum())
    stale = int((frame["status"] == "stale").sum())
    if failing:
        st.error(f"{failing} 个数据源最近一次采集失败（见下表）。", icon=":material/error:")
    if stale:
        st.warning(
            f"{stale} 个数据源已超过 {STALE_FACTOR} 个采集周期没有运行（见下表）。",
            icon=":material/schedule:",
        )
    rate_label = f"错误率（近{SOURCE_HEALTH_RUNS}次）"
    rows = [
        {
            "状态": f"{_HEALTH_EMOJI[r.status]} {r.status_zh}",
            "数据源": r.source,
            "最近运行": fmt_time(r.last_run_local) or "从未运行",
            "最近成功": fmt_time(r.last_success_local) or "—",
            rate_label: "—" if pd.isna(r.error_rate) else f"{r.error_rate:.0%}",
            "运行次数": r.runs,
            "平均抓取/保留/丢弃": " / ".join(
                _count(v) for v in (r.fetched_avg, r.kept_avg, r.dropped_avg)
            ),
            "最近一次抓取/保留/丢弃": " / ".join(
                _count(v) for v in (r.last_fetched, r.last_kept, r.last_dropped)
            ),
            "最近错误": r.last_message,
        }
        for r in frame.itertuples()
    ]
    shown = pd.DataFrame(rows)
    # Colour the status cell too: the emoji alone depends on the viewer's fonts.
    styles = [_HEALTH_CELL_STYLE[s] for s in frame["status"]]
    st.dataframe(
        shown.style.apply(lambda _col: styles, subset=["状态"], axis=0),
        hide_index=True,
        width="stretch",
        key="source_health",
    )
