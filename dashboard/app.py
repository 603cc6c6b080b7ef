"""The Streamlit app: page registry and the shared DashboardData.

The launcher (``yuqing/dashboard_main.py``, run by ``streamlit run``) picks
the adapters and hands over a zero-argument factory::

    from yuqing.bootstrap import build_dashboard_data
    from dashboard.app import main

    main(build_dashboard_data)

``main`` builds the :class:`~dashboard.data.DashboardData` once per process
(``st.cache_resource``; its stores are closed when the cache is cleared),
puts it in session state for the pages (:func:`dashboard.components.get_data`)
and runs the ``st.navigation`` page registry. The dashboard never chooses an
adapter itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from core.errors import ConfigError, StoreUnavailable
from dashboard.components import DATA_KEY
from dashboard.data import DashboardData
from dashboard.pages import feed, incidents, overview

DashboardFactory = Callable[[], DashboardData]
"""Builds the DashboardData over already-chosen stores (``yuqing.bootstrap``)."""

PAGE_TITLE = "舆情监测 · yuqing"


@dataclass(frozen=True)
class PageSpec:
    """One page of the registry. ``url_path`` is the stable address (used in links)."""

    url_path: str
    title: str
    icon: str
    render: Callable[[], None]


PAGES: tuple[PageSpec, ...] = (
    PageSpec("overview", "总览", ":material/monitoring:", overview.render),
    PageSpec("feed", "舆情信息流", ":material/feed:", feed.render),
    PageSpec("incidents", "事件", ":material/crisis_alert:", incidents.render),
)
"""The pages in menu order. Issue 8 adds topics, tickets, reports, settings here."""


def _close(data: DashboardData) -> None:
    data.close()


@st.cache_resource(show_spinner="正在连接数据存储…", on_release=_close)
def _build(_factory: DashboardFactory) -> DashboardData:
    # The factory is not hashable and there is one per process, so it is left
    # out of the cache key (leading underscore): the first build is reused by
    # every session and rerun. A failed build is not cached and is retried.
    return _factory()


def load_data(factory: DashboardFactory) -> DashboardData:
    """The process-wide DashboardData, built by ``factory`` on first use.

    A configuration error or a store that cannot be reached at start is shown
    as an error on the page and stops the run (the next rerun retries).
    """
    try:
        return _build(factory)
    except StoreUnavailable as exc:
        st.error(f"无法连接数据存储：{exc}", icon=":material/cloud_off:")
        st.stop()
    except ConfigError as exc:
        st.error(f"配置错误：{exc}", icon=":material/settings:")
        st.stop()


def main(factory: DashboardFactory, *, default_page: str = "overview") -> None:
    """Run one script run of the dashboard: page config, data, navigation, the chosen page.

    ``default_page`` is the ``url_path`` of the page shown at the root URL.
    Raises ``ValueError`` if it names no registered page.
    """
    if default_page not in {p.url_path for p in PAGES}:
        raise ValueError(f"unknown page {default_page!r}; pages: {[p.url_path for p in PAGES]}")
    st.set_page_config(page_title=PAGE_TITLE, page_icon="📡", layout="wide")
    st.session_state[DATA_KEY] = load_data(factory)
    navigation = st.navigation(
        [
            st.Page(
                p.render,
                title=p.title,
                icon=p.icon,
                url_path=p.url_path,
                default=p.url_path == default_page,
            )
            for p in PAGES
        ]
    )
    st.sidebar.caption(PAGE_TITLE)
    navigation.run()
