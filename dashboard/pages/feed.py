"""舆情信息流 — search and filter posts, newest first, with keyset paging.

Post text is user content: it reaches the screen only through ``post_card``
(plain ``st.text``), already masked by the data module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from core.errors import QueryError
from core.vocab import TOPIC_LABELS_ZH, Sentiment, Topic
from dashboard.components import fmt_time, get_data, guard, post_card, range_picker
from dashboard.data import SENTIMENT_LABELS_ZH, TimeWindow

PAGE_SIZES = (20, 50, 100)
# Session state of the paging: the filters, the time window frozen when they
# were set (a keyset cursor belongs to one exact query, so "now" must not move
# under it) and the cursors of the pages visited (page one has cursor None).
_PAGING = "feed_paging"


@dataclass
class _Paging:
    filters: dict[str, Any]
    window: TimeWindow | None
    cursors: list[str | None] = field(default_factory=lambda: [None])


def _next_page(cursor: str) -> None:
    st.session_state[_PAGING].cursors.append(cursor)


def _previous_page() -> None:
    cursors = st.session_state[_PAGING].cursors
    if len(cursors) > 1:
        cursors.pop()


def _refresh() -> None:
    # Forget the frozen window: the next run starts again at page one, up to now.
    st.session_state.pop(_PAGING, None)


def render() -> None:
    """Render the feed & search page."""
    data = get_data()
    st.title("舆情信息流")

    text = st.text_input(
        "搜索",
        key="feed_text",
        placeholder="输入关键词，如：理财 亏损（按词匹配，不支持查询语法）",
        max_chars=200,
    )
    range_key = range_picker("feed_range", default="7d", allow_all=True)
    with guard():
        source_options = data.sources()
    c1, c2, c3 = st.columns(3)
    sources = c1.multiselect("来源", source_options, key="feed_sources", placeholder="全部来源")
    sentiments = c2.multiselect(
        "情感",
        list(Sentiment),
        format_func=SENTIMENT_LABELS_ZH.__getitem__,
        key="feed_sentiments",
        placeholder="全部情感",
    )
    topics = c3.multiselect(
        "话题",
        list(Topic),
        format_func=TOPIC_LABELS_ZH.__getitem__,
        key="feed_topics",
        placeholder="全部话题",
    )
    c4, c5 = st.columns(2)
    min_risk = c4.slider("最低风险分", 0.0, 1.0, 0.0, 0.05, key="feed_min_risk")
    page_size = int(c5.selectbox("每页条数", PAGE_SIZES, key="feed_page_size"))

    filters: dict[str, Any] = {
        "text": text or None,
        "sources": sources,
        "sentiments": sentiments,
        "topics": topics,
        "min_risk": min_risk,
        "page_size": page_size,
        "range": range_key,
    }
    paging: _Paging | None = st.session_state.get(_PAGING)
    if paging is None or paging.filters != filters:
        # New filters start again at page one over a window ending now.
        window = TimeWindow.last(range_key) if range_key != "all" else None
        paging = _Paging(filters=filters, window=window)
        st.session_state[_PAGING] = paging

    with guard():
        try:
            page = data.feed(
                text=text,
                since=paging.window.since if paging.window else None,
                until=paging.window.until if paging.window else None,
                sources=sources,
                sentiments=sentiments,
                topics=topics,
                min_risk=min_risk,
                cursor=paging.cursors[-1],
                page_size=page_size,
            )
        except QueryError:
            if paging.cursors[-1] is None:
                raise  # not a paging problem: the guard shows it
            # A cursor the store no longer accepts (e.g. after an upgrade):
            # start again at page one rather than leave the user stuck.
            _refresh()
            st.rerun()

    page_no = len(paging.cursors)
    with st.container(horizontal=True, vertical_alignment="center"):
        if page.items:
            first = (page_no - 1) * page_size + 1
            last = first + len(page.items) - 1
            st.caption(f"共 {page.total:,} 条 · 第 {page_no} 页（第 {first}–{last} 条）")
        else:
            st.caption(f"共 {page.total:,} 条")
        if paging.window is not None:
            st.caption(f"截至 {fmt_time(data.to_local(paging.window.until))}（北京时间）")
        st.button("刷新", key="feed_refresh", on_click=_refresh, icon=":material/refresh:")
    if not page.items:
        st.info("没有符合条件的帖子。")
    for item in page.items:
        post_card(item)

    with st.container(horizontal=True):
        st.button(
            "上一页",
            key="feed_prev",
            on_click=_previous_page,
            disabled=page_no == 1,
            icon=":material/chevron_left:",
        )
        st.button(
            "下一页",
            key="feed_next",
            on_click=_next_page,
            args=(page.next_cursor,),
            disabled=page.next_cursor is None,
            icon=":material/chevron_right:",
        )
