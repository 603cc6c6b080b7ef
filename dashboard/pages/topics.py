"""话题与关键词 — topic trends, keywords of a period (word cloud, table), two periods compared.

Keywords come from post text, which is user content: they reach the screen
only as dataframe cells and as pixels of the word cloud, never as Markdown.
Keywords are computed over a bounded sample (the newest
``dashboard.data.KEYWORD_SAMPLE`` posts of a period), and the page says so
when it sampled.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.components import fmt_time, get_data, guard, range_picker, window_caption
from dashboard.data import DashboardData, TimeWindow
from dashboard.insights import PeriodComparison, PeriodKeywords
from reports.fonts import FontMissing, cjk_face_file

_COMPARE_DAYS = 7
# Keywords take about a second over a full sample (1 000 posts: fetch, segment,
# score), so a period's result is reused for a few minutes: clicks elsewhere
# on the page, and other users looking at the same period, do not redo it.
_KEYWORD_TTL_SECONDS = 300


def wordcloud_png(
    frequencies: Mapping[str, float], *, width: int = 900, height: int = 420
) -> bytes:
    """A PNG word cloud of ``frequencies`` drawn with the CJK font (no tofu boxes).

    Deterministic for the same input. Raises ``ValueError`` for no words and
    :class:`reports.fonts.FontMissing` when no CJK font is available.
    """
    if not frequencies:
        raise ValueError("a word cloud needs at least one word")
    from wordcloud import WordCloud  # imported on first use: it pulls in matplotlib

    cloud = WordCloud(
        font_path=str(cjk_face_file()),
        width=width,
        height=height,
        background_color="white",
        colormap="viridis",
        prefer_horizontal=0.95,
        # A cap on the largest font halves the drawing time (fewer sizes tried)
        # and keeps one dominant word from filling the picture.
        max_font_size=110,
        random_state=7,
    ).generate_from_frequencies(dict(frequencies))
    buffer = io.BytesIO()
    cloud.to_image().save(buffer, format="PNG")
    return buffer.getvalue()


@st.cache_data(max_entries=32, show_spinner=False)
def _cloud(items: tuple[tuple[str, float], ...]) -> bytes:
    # Drawing takes a few hundred ms; the same keywords (a rerun, a click
    # elsewhere on the page) reuse the picture.
    return wordcloud_png(dict(items))


@st.cache_data(ttl=_KEYWORD_TTL_SECONDS, max_entries=32, show_spinner="正在提取关键词…")
def _period_keywords(
    _data: DashboardData, data_key: int, since: datetime, until: datetime
) -> PeriodKeywords:
    # ``data_key`` (the DashboardData's id) keeps results of different stores apart.
    return _data.period_keywords(since, until)


@st.cache_data(ttl=_KEYWORD_TTL_SECONDS, max_entries=32, show_spinner="正在对比两个时段…")
def _compare(
    _data: DashboardData,
    data_key: int,
    a: tuple[datetime, datetime],
    b: tuple[datetime, datetime],
) -> PeriodComparison:
    return _data.compare_periods(a, b)


def _trend_chart(frame: pd.DataFrame, bucket_seconds: int) -> alt.Chart:
    plot = frame.copy()
    # Naive wall-clock values: Vega-Lite then shows Beijing time in every browser.
    plot["time"] = pd.to_datetime(plot["local_time"]).dt.tz_localize(None)
    axis_format = "%m-%d" if bucket_seconds >= 86400 else "%m-%d %H:%M"
    chart: alt.Chart = (
        alt.Chart(plot)
        .mark_line(point=True)
        .encode(
            x=alt.X("time:T", title="时间（北京时间）", axis=alt.Axis(format=axis_format)),
            y=alt.Y("count:Q", title="帖子数", axis=alt.Axis(tickMinStep=1, format="d")),
            color=alt.Color("topic_zh:N", title="话题"),
            tooltip=[
                alt.Tooltip("time:T", title="开始（北京时间）", format="%Y-%m-%d %H:%M"),
                alt.Tooltip("topic_zh:N", title="话题"),
                alt.Tooltip("count:Q", title="帖子数"),
            ],
        )
    )
    return chart


def _pct(share: float) -> str:
    return f"{share:.1%}"


def _pp(change: float) -> str:
    return f"{change:+.1f}"


def _sample_caption(kw: PeriodKeywords) -> None:
    if kw.sampled_all:
        st.caption(f"基于该时段全部 {kw.total_posts:,} 条帖子。")
    else:
        st.caption(
            f"该时段共 {kw.total_posts:,} 条帖子，关键词基于最新的 {kw.sampled_posts:,} 条计算。"
        )


def _keywords_section(kw: PeriodKeywords) -> None:
    st.subheader("关键词")
    if kw.total_posts == 0:
        st.info("该时间范围内没有帖子，无法提取关键词。")
        return
    if kw.keywords.empty:
        st.info("该时间范围内的帖子中没有可提取的关键词。")
        return
    _sample_caption(kw)
    left, right = st.columns([3, 2])
    with left:
        try:
            items = tuple(kw.frequencies().items())
            st.image(_cloud(items), caption="关键词词云", width="stretch")
        except FontMissing as exc:
            st.warning(f"无法绘制词云：缺少中文字体（{exc}）。关键词见右侧表格。")
    with right:
        st.dataframe(
            pd.DataFrame(
                {
                    "关键词": kw.keywords["word"],
                    "权重": kw.keywords["score"].round(3),
                    "帖子数": kw.keywords["posts"],
                    "占比": kw.keywords["share"].map(_pct),
                }
            ),
            hide_index=True,
            width="stretch",
            height=420,
        )


def _day_window(data: DashboardData, days: tuple[date, date]) -> tuple[datetime, datetime]:
    """Local calendar days ``[first, last]`` as a UTC ``[since, until)``."""
    first, last = days
    since = datetime.combine(first, time.min, tzinfo=data.tz)
    until = datetime.combine(last + timedelta(days=1), time.min, tzinfo=data.tz)
    return since, until


def _picked_days(value: object) -> tuple[date, date] | None:
    # A range date_input gives a 1-tuple while the user has picked only the start.
    if isinstance(value, tuple | list) and len(value) == 2:
        first, last = value
        if isinstance(first, date) and isinstance(last, date):
            return (first, last) if first <= last else (last, first)
    return None


def _compare_section(data: DashboardData) -> None:
    st.subheader("时段对比")
    today = datetime.now(data.tz).date()
    b_default = (today - timedelta(days=_COMPARE_DAYS - 1), today)
    a_default = (b_default[0] - timedelta(days=_COMPARE_DAYS), b_default[0] - timedelta(days=1))
    c1, c2 = st.columns(2)
    a_days = _picked_days(
        c1.date_input("对比期（较早）", value=a_default, max_value=today, key="topics_period_a")
    )
    b_days = _picked_days(
        c2.date_input("本期（较晚）", value=b_default, max_value=today, key="topics_period_b")
    )
    if a_days is None or b_days is None:
        st.info("请为两个时段都选择开始和结束日期。")
        return
    with guard():
        cmp = _compare(data, id(data), _day_window(data, a_days), _day_window(data, b_days))
    m1, m2 = st.columns(2)
    m1.metric("对比期帖子数", f"{cmp.a.total_posts:,}")
    m2.metric(
        "本期帖子数", f"{cmp.b.total_posts:,}", delta=f"{cmp.b.total_posts - cmp.a.total_posts:+,}"
    )
    if cmp.a.total_posts == 0 and cmp.b.total_posts == 0:
        st.info("两个时段都没有帖子，无可对比的数据。")
        return
    for label, kw in (("对比期", cmp.a), ("本期", cmp.b)):
        if kw.total_posts == 0:
            st.info(f"{label}没有帖子：以下变化均相对于空时段。")
        elif not kw.sampled_all:
            st.caption(
                f"{label}共 {kw.total_posts:,} 条帖子，关键词基于最新的 {kw.sampled_posts:,} 条。"
            )
    _comparison_tables(cmp)


def _comparison_tables(cmp: PeriodComparison) -> None:
    st.markdown("**话题占比**")
    if cmp.topics.empty:
        st.info("两个时段都没有已分析的帖子，无话题占比。")
    else:
        st.dataframe(
            pd.DataFrame(
                {
                    "话题": cmp.topics["topic_zh"],
                    "对比期帖子数": cmp.topics["count_a"],
                    "对比期占比": cmp.topics["share_a"].map(_pct),
                    "本期帖子数": cmp.topics["count_b"],
                    "本期占比": cmp.topics["share_b"].map(_pct),
                    "变化（百分点）": cmp.topics["change"].map(_pp),
                }
            ),
            hide_index=True,
            width="stretch",
        )
    left, right = st.columns(2)
    for col, title, frame, empty in (
        (left, "上升的关键词", cmp.rising(), "没有上升的关键词。"),
        (right, "下降的关键词", cmp.falling(), "没有下降的关键词。"),
    ):
        with col:
            st.markdown(f"**{title}**")
            if frame.empty:
                st.info(empty)
            else:
                st.dataframe(_keyword_change_table(frame), hide_index=True, width="stretch")
    if not cmp.keywords.empty:
        with st.expander(f"全部关键词对比（{len(cmp.keywords)}）"):
            st.dataframe(_keyword_change_table(cmp.keywords), hide_index=True, width="stretch")


def _keyword_change_table(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "关键词": frame["word"],
            "对比期占比": frame["share_a"].map(_pct),
            "本期占比": frame["share_b"].map(_pct),
            "变化（百分点）": frame["change"].map(_pp),
            "趋势": frame["trend"],
        }
    )


def render() -> None:
    """Render the topics & keywords page."""
    data = get_data()
    st.title("话题与关键词")
    window = TimeWindow.last(range_picker("topics_range", default="7d"))
    # On whole minutes: reruns within the minute reuse the cached keywords.
    window = TimeWindow(
        since=window.since.replace(second=0, microsecond=0),
        until=window.until.replace(second=0, microsecond=0),
        bucket_seconds=window.bucket_seconds,
    )
    window_caption(data, window)
    with guard():
        trends = data.topic_trends(window.since, window.until, window.bucket_seconds)
        keywords = _period_keywords(data, id(data), window.since, window.until)

    st.subheader("话题走势")
    if trends.empty:
        st.info("该时间范围内没有已分析的帖子，无话题走势。")
    else:
        st.altair_chart(_trend_chart(trends, window.bucket_seconds), width="stretch")
        totals = trends.groupby("topic_zh", sort=False)["count"].sum().sort_values(ascending=False)
        st.caption(
            "合计："
            + "，".join(f"{name} {int(n):,}" for name, n in totals.items())
            + f"（截至 {fmt_time(data.to_local(window.until))}）"
        )
    _keywords_section(keywords)
    _compare_section(data)
