"""Small shared Streamlit widgets and the accessor pages use to reach the data.

Rule for everything here: text that comes from the outside world (post
titles and bodies, authors, source names, incident titles that quote them)
is rendered with ``st.text`` — never Markdown or HTML — so a post containing
``<script>``, ``**bold**`` or ``[x](javascript:…)`` shows literally. Markdown
is used only for labels made of our own vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Final, Literal, cast, get_args

import altair as alt
import pandas as pd
import streamlit as st

from core.errors import PermanentStoreError, StoreUnavailable
from core.vocab import Grade, IncidentStatus, Sentiment
from dashboard.auth import User
from dashboard.data import (
    RANGE_PRESETS,
    DashboardData,
    DataUnavailable,
    FeedItem,
    TimeWindow,
)

DATA_KEY: Final = "yuqing.dashboard.data"
"""Session-state key under which ``dashboard.app.main`` puts the shared DashboardData."""

SESSION_KEY: Final = "yuqing.dashboard.session"
"""Session-state key of the logged-in :class:`dashboard.app.LoginSession` (absent: logged out)."""

GRADE_EMOJI: Final[dict[Grade, str]] = {
    Grade.IV: "🔵",
    Grade.III: "🟡",
    Grade.II: "🟠",
    Grade.I: "🔴",
}
GRADE_CELL_STYLE: Final[dict[Grade, str]] = {
    Grade.IV: "background-color: #dbeafe; color: #1e3a8a",
    Grade.III: "background-color: #fef9c3; color: #713f12",
    Grade.II: "background-color: #ffedd5; color: #7c2d12",
    Grade.I: "background-color: #fee2e2; color: #7f1d1d",
}
SENTIMENT_COLORS: Final[dict[str, str]] = {
    Sentiment.NEGATIVE.value: "#d62728",
    Sentiment.NEUTRAL.value: "#9e9e9e",
    Sentiment.POSITIVE.value: "#2ca02c",
    "unanalysed": "#c7c7c7",
}
BadgeColor = Literal[
    "red", "orange", "yellow", "blue", "green", "violet", "gray", "grey", "primary"
]
"""The colours ``st.badge`` accepts."""

_SENTIMENT_BADGE: Final[dict[Sentiment, BadgeColor]] = {
    Sentiment.NEGATIVE: "red",
    Sentiment.NEUTRAL: "gray",
    Sentiment.POSITIVE: "green",
}
STATUS_BADGE: Final[dict[IncidentStatus, BadgeColor]] = {
    IncidentStatus.OPEN: "red",
    IncidentStatus.ACKNOWLEDGED: "orange",
    IncidentStatus.RESOLVED: "green",
}
# Very long posts are cut in the card and shown whole in an expander, so one
# 50 000-character post does not push the rest of the page out of reach.
TEXT_PREVIEW_CHARS: Final = 600
TIME_FORMAT: Final = "%Y-%m-%d %H:%M"


def get_data() -> DashboardData:
    """The DashboardData built by ``dashboard.app.main`` for this session.

    Raises ``RuntimeError`` if a page runs without ``main`` (a wiring bug).
    """
    data = st.session_state.get(DATA_KEY)
    if not isinstance(data, DashboardData):
        raise RuntimeError("dashboard.app.main(factory) must run before any page")
    return data


def current_user() -> User:
    """The user logged in to this session (``dashboard.app.main`` lets no page run without one).

    Raises ``RuntimeError`` if a page runs with nobody logged in (a wiring bug).
    """
    session = st.session_state.get(SESSION_KEY)
    user = getattr(session, "user", None)
    if not isinstance(user, User):
        raise RuntimeError("no user is logged in: dashboard.app.main must run before any page")
    return user


@contextmanager
def guard() -> Iterator[None]:
    """Show a store outage as a red error naming the store, then stop the page.

    Wrap every data call of a page in it: the page then shows either real
    numbers or a clear outage, never zeros standing in for missing data.
    """
    try:
        yield
    except DataUnavailable as exc:
        st.error(
            f"数据暂不可用：{exc.store} 无法访问，本页未显示任何数字（不是“没有舆情”）。\n\n"
            f"详情：{exc.detail}",
            icon=":material/cloud_off:",
        )
        st.stop()
    except StoreUnavailable as exc:
        st.error(f"数据暂不可用：存储无法访问（{exc}）。", icon=":material/cloud_off:")
        st.stop()
    except PermanentStoreError as exc:
        st.error(f"查询无法执行：{exc}", icon=":material/error:")
        st.stop()


def show_flash(key: str) -> None:
    """Show, once, the ``(kind, message)`` an action left in ``st.session_state[key]``.

    Actions store their outcome there and rerun, so the message survives the
    rerun that redraws the page with the new state. ``kind`` is ``"success"``
    or anything else (shown as an error).
    """
    flash = st.session_state.pop(key, None)
    if flash is None:
        return
    kind, message = flash
    if kind == "success":
        st.success(message, icon=":material/check_circle:")
    else:
        st.error(message, icon=":material/error:")


def fmt_time(when: datetime | pd.Timestamp | None) -> str:
    """``2024-05-01 08:30`` in the time zone ``when`` already carries (the display zone)."""
    if when is None or pd.isna(when):
        return ""
    return when.strftime(TIME_FORMAT)


def range_picker(key: str, *, default: str = "24h", allow_all: bool = False) -> str:
    """A segmented control over the range presets; returns the chosen key ("all" if allowed)."""
    options = list(RANGE_PRESETS)
    labels = {k: p.label for k, p in RANGE_PRESETS.items()}
    if allow_all:
        options.append("all")
        labels["all"] = "全部"
    choice = st.segmented_control(
        "时间范围",
        options,
        default=default,
        format_func=lambda k: labels[k],
        required=True,
        key=key,
    )
    return str(choice or default)


def window_caption(data: DashboardData, window: TimeWindow) -> None:
    """One line naming the window in local time, so nobody reads UTC as Beijing time."""
    st.caption(
        f"{fmt_time(data.to_local(window.since))} — {fmt_time(data.to_local(window.until))}"
        "（北京时间）"
    )


def grade_text(grade: Grade) -> str:
    """``"🔴 I 特别重大"`` — plain text, usable in tables and select boxes."""
    return f"{GRADE_EMOJI[grade]} {grade.value} {grade.label_zh}"


def badge_color(name: str) -> BadgeColor:
    """``name`` if ``st.badge`` knows the colour (grade colours do), else gray."""
    return cast(BadgeColor, name) if name in get_args(BadgeColor) else "gray"


def grade_badge(grade: Grade) -> None:
    """A coloured badge for an incident grade (IV blue … I red)."""
    st.badge(f"{grade.value} {grade.label_zh}", color=badge_color(grade.color))


def volume_chart(frame: pd.DataFrame, bucket_seconds: int) -> alt.Chart:
    """Stacked bars of posts per bucket by sentiment, x axis in display-zone wall-clock time."""
    plot = frame.copy()
    # Vega-Lite shows aware datetimes in the *browser's* zone; naive wall-clock
    # values are shown as they are, so the axis reads Beijing time everywhere.
    plot["time"] = pd.to_datetime(plot["local_time"]).dt.tz_localize(None)
    plot["time_end"] = pd.to_datetime(plot["local_end"]).dt.tz_localize(None)
    keys = [k for k in SENTIMENT_COLORS if k in set(plot["sentiment"])]
    labels = plot.drop_duplicates("sentiment").set_index("sentiment")["sentiment_zh"]
    # Rectangles from x..x2 (the whole bucket) and y0..y1 (stacked here, in a
    # fixed sentiment order): Vega-Lite's own stacking does not combine with x2.
    plot["stack_order"] = plot["sentiment"].map({k: i for i, k in enumerate(keys)})
    plot = plot.sort_values(["time", "stack_order"])
    plot["y1"] = plot.groupby("time")["count"].cumsum()
    plot["y0"] = plot["y1"] - plot["count"]
    # Zero rows draw nothing but would still need a place; the domain keeps
    # the whole window on the axis even when only its last hours have posts.
    domain = [_vega_local(plot["time"].min()), _vega_local(plot["time_end"].max())]
    plot = plot[plot["count"] > 0]
    axis_format = "%m-%d" if bucket_seconds >= 86400 else "%m-%d %H:%M"
    chart: alt.Chart = (
        alt.Chart(plot)
        .mark_rect(stroke="white", strokeWidth=1)
        .encode(
            x=alt.X(
                "time:T",
                title="时间（北京时间）",
                axis=alt.Axis(format=axis_format),
                scale=alt.Scale(domain=domain),
            ),
            x2="time_end:T",
            y=alt.Y("y1:Q", title="帖子数", axis=alt.Axis(tickMinStep=1, format="d")),
            y2="y0:Q",
            color=alt.Color(
                "sentiment_zh:N",
                title="情感",
                scale=alt.Scale(
                    domain=[labels[k] for k in keys], range=[SENTIMENT_COLORS[k] for k in keys]
                ),
            ),
            tooltip=[
                alt.Tooltip("time:T", title="开始（北京时间）", format="%Y-%m-%d %H:%M"),
                alt.Tooltip("sentiment_zh:N", title="情感"),
                alt.Tooltip("count:Q", title="帖子数"),
            ],
        )
    )
    return chart


def _step_frame(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Naive local ``time`` per bucket plus one closing row at the last bucket's end.

    A ``step-after`` line or area through these points covers each bucket from
    its start to its end, like the bars it is drawn over.
    """
    plot = frame[["local_time", "local_end", *columns]].copy()
    plot["time"] = pd.to_datetime(plot["local_time"]).dt.tz_localize(None)
    if not plot.empty:
        last = plot.iloc[[-1]].copy()
        last["time"] = pd.to_datetime(last["local_end"]).dt.tz_localize(None)
        plot = pd.concat([plot, last], ignore_index=True)
    return plot.drop(columns=["local_time", "local_end"])


def with_baseline(chart: alt.Chart, baseline: pd.DataFrame) -> alt.LayerChart:
    """``chart`` (the volume bars) with the normal band and its median drawn over it.

    ``baseline`` is :meth:`DashboardData.volume_baseline` for the same window.
    """
    plot = _step_frame(baseline, ["median", "low", "high"])
    band = (
        alt.Chart(plot)
        .mark_area(interpolate="step-after", opacity=0.18, color="#475569")
        .encode(x="time:T", y="low:Q", y2="high:Q")
    )
    median = (
        alt.Chart(plot)
        .mark_line(interpolate="step-after", strokeDash=[5, 3], color="#334155")
        .encode(
            x="time:T",
            y="median:Q",
            tooltip=[
                alt.Tooltip("time:T", title="开始（北京时间）", format="%Y-%m-%d %H:%M"),
                alt.Tooltip("median:Q", title="基线（中位数）", format=".1f"),
                alt.Tooltip("high:Q", title="正常上限", format=".1f"),
            ],
        )
    )
    return cast(alt.LayerChart, alt.layer(chart, band, median))


def negative_share_frame(volume: pd.DataFrame) -> pd.DataFrame:
    """Per bucket of a ``volume_over_time`` frame: ``total``, ``negative`` and ``share``.

    ``share`` is missing (NaN) for a bucket without posts: no posts is not 0 % negative.
    """
    grouped = volume.groupby(["start", "local_time", "local_end"], sort=True)
    frame = grouped["count"].sum().rename("total").to_frame()
    negative = volume[volume["sentiment"] == Sentiment.NEGATIVE.value]
    frame["negative"] = negative.groupby(["start", "local_time", "local_end"])["count"].sum()
    frame = frame.fillna({"negative": 0}).reset_index()
    frame["share"] = [
        (n / t) if t else None for n, t in zip(frame["negative"], frame["total"], strict=True)
    ]
    return frame


def negative_share_chart(volume: pd.DataFrame, bucket_seconds: int) -> alt.Chart:
    """A step line of the negative share per bucket (gaps where a bucket has no posts)."""
    plot = _step_frame(negative_share_frame(volume), ["share", "total", "negative"])
    axis_format = "%m-%d" if bucket_seconds >= 86400 else "%m-%d %H:%M"
    chart: alt.Chart = (
        alt.Chart(plot)
        .mark_line(interpolate="step-after", color=SENTIMENT_COLORS[Sentiment.NEGATIVE.value])
        .encode(
            x=alt.X("time:T", title="时间（北京时间）", axis=alt.Axis(format=axis_format)),
            y=alt.Y(
                "share:Q",
                title="负面占比",
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
            tooltip=[
                alt.Tooltip("time:T", title="开始（北京时间）", format="%Y-%m-%d %H:%M"),
                alt.Tooltip("share:Q", title="负面占比", format=".1%"),
                alt.Tooltip("negative:Q", title="负面帖子"),
                alt.Tooltip("total:Q", title="帖子总数"),
            ],
        )
    )
    return chart


def _vega_local(when: pd.Timestamp) -> alt.DateTime:
    """A naive wall-clock time as a Vega-Lite DateTime (read as local, like the data)."""
    return alt.DateTime(
        year=when.year,
        month=when.month,
        date=when.day,
        hours=when.hour,
        minutes=when.minute,
    )


def bar_chart(frame: pd.DataFrame, *, label: str, value: str, title: str) -> alt.Chart:
    """Horizontal bars of ``value`` per ``label``, largest on top."""
    chart: alt.Chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X(f"{value}:Q", title="帖子数", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y(f"{label}:N", title=None, sort="-x", axis=alt.Axis(labelLimit=240)),
            tooltip=[
                alt.Tooltip(f"{label}:N", title=title),
                alt.Tooltip(f"{value}:Q", title="帖子数"),
            ],
        )
    )
    return chart


def incidents_table(frame: pd.DataFrame) -> None:
    """The incident list as a read-only table with grade colour and Chinese labels."""
    if frame.empty:
        st.info("没有符合条件的事件。")
        return
    shown = pd.DataFrame(
        {
            "编号": frame["id"],
            "等级": [grade_text(Grade(g)) for g in frame["grade"]],
            "状态": frame["status_zh"],
            "标题": frame["title"],
            "开始时间": [fmt_time(t) for t in frame["opened_local"]],
            "更新时间": [fmt_time(t) for t in frame["updated_local"]],
            "帖子数": frame["post_count"],
            "来源": frame["sources"],
        }
    )
    # Colour the grade cell too: the emoji alone depends on the viewer's fonts.
    grade_styles = [GRADE_CELL_STYLE[Grade(g)] for g in frame["grade"]]
    styled = shown.style.apply(lambda _col: grade_styles, subset=["等级"], axis=0)
    st.dataframe(styled, hide_index=True, width="stretch")


def post_card(item: FeedItem) -> None:
    """One post: title, badges and time/source/author, masked text, link to the original."""
    with st.container(border=True):
        st.text(item.title or "（无标题）")
        with st.container(horizontal=True, vertical_alignment="center"):
            if item.sentiment is not None:
                st.badge(item.sentiment_zh, color=_SENTIMENT_BADGE[item.sentiment])
            else:
                st.badge("未分析", color="gray")
            st.badge(item.topic_zh, color="violet")
            if item.risk is not None:
                st.badge(f"风险 {item.risk:.2f}", color="orange" if item.risk >= 0.5 else "blue")
            if item.critical:
                st.badge("高危信号", color="red", icon=":material/warning:")
            meta = [fmt_time(item.local_time), item.source]
            if item.author:
                meta.append(item.author)
            if item.signals:
                meta.append("信号: " + ", ".join(item.signals))
            st.text(" · ".join(meta))
            if item.url:
                st.link_button("原文", item.url, icon=":material/open_in_new:", type="tertiary")
            else:
                st.badge("无原文链接", color="gray")
        if len(item.text) > TEXT_PREVIEW_CHARS:
            st.text(item.text[:TEXT_PREVIEW_CHARS] + "…")
            with st.expander(f"全文（{len(item.text)} 字）"):
                st.text(item.text)
        else:
            st.text(item.text)
