"""Streamlit AppTest over every page of the dashboard, on seeded real local stores.

Each test runs ``tests/dashboard/app_entry.py`` (the real ``dashboard.app.main``
with test stores) and opens one page through ``YUQING_TEST_PAGE``: AppTest's
``switch_page`` only knows file pages, and ours are callables. ``open_page``
starts logged in (a session put in session state, see ``tests/dashboard/users.py``);
the login form itself is tested in ``test_login.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.models import PostQuery
from core.vocab import IncidentStatus, Sentiment
from dashboard.app import LoginSession, main
from dashboard.components import SESSION_KEY, negative_share_frame
from dashboard.data import DashboardData
from tests.dashboard.seed import (
    HOSTILE_TEXT,
    HOSTILE_TITLE,
    LOSS_TEXT,
    RAW_PHONE,
    SEARCH_WORD,
    Seed,
    _post,
)
from tests.dashboard.users import USERS

ENTRY = Path(__file__).with_name("app_entry.py")


@pytest.fixture(autouse=True)
def _fresh(fresh_streamlit_cache: None) -> None:
    """Every test builds its own cached DashboardData."""


@pytest.fixture
def open_page(
    seed: Seed, store_paths: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., AppTest]]:
    """Open a page of the app over the seeded stores, logged in as ``user`` (None: logged out).

    ``down`` makes one store fail; ``auth="none"`` runs without login (dev).
    """
    posts_path, state_url = store_paths
    monkeypatch.setenv("YUQING_TEST_POSTS_DB", str(posts_path))
    monkeypatch.setenv("YUQING_TEST_STATE_URL", state_url)

    def _open(
        page: str,
        *,
        down: str = "",
        query: dict[str, str] | None = None,
        user: str | None = "ho",
        auth: str = "",
    ) -> AppTest:
        monkeypatch.setenv("YUQING_TEST_PAGE", page)
        monkeypatch.setenv("YUQING_TEST_DOWN", down)
        monkeypatch.setenv("YUQING_TEST_AUTH", auth)
        st.cache_resource.clear()  # the cached DashboardData is per process: rebuild it
        at = AppTest.from_file(str(ENTRY), default_timeout=30)
        if user is not None:
            at.session_state[SESSION_KEY] = LoginSession(USERS[user], datetime.now(UTC))
        for name, value in (query or {}).items():
            at.query_params[name] = value
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    yield _open


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _texts(at: AppTest) -> list[str]:
    return [t.value for t in at.main.text]  # not the sidebar's "who is logged in"


def _everything(at: AppTest) -> str:
    """Every string the page shows, for "never shown" checks."""
    parts = [*_texts(at)]
    parts += [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error] + [s.value for s in at.success]
    for frame in at.dataframe:
        parts.append(frame.value.to_string())
    return "\n".join(str(p) for p in parts)


# ---------------------------------------------------------------------- overview


def test_overview_numbers_match_the_store(open_page: Callable[..., AppTest], seed: Seed) -> None:
    at = open_page("overview")
    assert at.title[0].value == "总览"
    in_24h = seed.post_store.count(PostQuery(since=seed.now - timedelta(hours=24)))
    assert _metric(at, "舆情总量") == str(in_24h) == "5"
    assert _metric(at, "负面占比") == "60.0%"
    assert _metric(at, "高危信号帖") == "1"
    assert _metric(at, "未结事件") == "1"
    assert _metric(at, "🟠 II 重大") == "1"
    assert _metric(at, "🔴 I 特别重大") == "0"
    # volume with its baseline band, negative share, sentiment, topics, sources
    assert len(at.get("vega_lite_chart")) == 5
    # The open incident is grade II: the headline risk level says so, in red.
    assert any("当前风险等级：🟠 II 重大" in m.value for m in at.markdown)
    assert not at.error
    incidents = at.dataframe[0].value
    assert list(incidents["标题"]) == [seed.incident.title]
    assert list(incidents["等级"]) == ["🟠 II 重大"]

    at.segmented_control(key="overview_range").set_value("7d").run()
    assert not at.exception
    assert _metric(at, "舆情总量") == "29"


def test_overview_shows_an_outage_not_zeros(open_page: Callable[..., AppTest]) -> None:
    at = open_page("overview", down="posts")
    assert len(at.error) == 1
    assert "post store" in at.error[0].value
    assert "simulated outage" in at.error[0].value
    assert len(at.metric) == 0  # no "0 posts" anywhere

    at = open_page("overview", down="state")
    assert "state store" in at.error[0].value
    assert len(at.metric) == 0


def test_store_down_at_start_is_an_error_then_retried(
    open_page: Callable[..., AppTest], monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page("overview", down="build")
    assert "无法连接数据存储" in at.error[0].value
    assert len(at.metric) == 0
    # A failed build is not cached: once the store is back, the next run works.
    monkeypatch.setenv("YUQING_TEST_DOWN", "")
    at.run()
    assert not at.exception and not at.error
    assert _metric(at, "舆情总量") == "5"


def test_main_refuses_an_unknown_page() -> None:
    with pytest.raises(ValueError, match="unknown page"):
        main(_never_called, default_page="nope")


def _never_called() -> DashboardData:
    raise AssertionError("the factory must not be called")


# ---------------------------------------------------------------------- feed


def test_feed_search_shows_the_post(open_page: Callable[..., AppTest]) -> None:
    at = open_page("feed")
    assert at.title[0].value == "舆情信息流"
    assert any("共 29 条" in c.value for c in at.caption)  # default range: 7 days
    at.text_input(key="feed_text").input(SEARCH_WORD).run()
    assert not at.exception
    assert any("共 1 条" in c.value for c in at.caption)
    assert LOSS_TEXT in _texts(at)


def test_feed_shows_hostile_text_literally_and_masked(open_page: Callable[..., AppTest]) -> None:
    at = open_page("feed")
    texts = _texts(at)
    assert HOSTILE_TITLE in texts
    assert HOSTILE_TEXT.replace(RAW_PHONE, "138****5678") in texts
    everything = _everything(at)
    assert RAW_PHONE not in everything
    # Nothing of the post went through Markdown/HTML rendering.
    for md in at.markdown:
        assert "<script>" not in md.value and "javascript:" not in md.value


def test_feed_paging(open_page: Callable[..., AppTest]) -> None:
    at = open_page("feed")
    first_page = _texts(at)
    assert any("第 1 页（第 1–20 条）" in c.value for c in at.caption)
    at.button(key="feed_next").click().run()
    assert not at.exception
    assert any("第 2 页（第 21–29 条）" in c.value for c in at.caption)
    assert at.button(key="feed_next").disabled
    second_page = _texts(at)
    assert not set(first_page) & set(second_page)
    at.button(key="feed_prev").click().run()
    assert any("第 1 页" in c.value for c in at.caption)


def test_feed_filters_reset_paging(open_page: Callable[..., AppTest]) -> None:
    at = open_page("feed")
    at.button(key="feed_next").click().run()
    at.multiselect(key="feed_sources").select("news").run()
    assert not at.exception
    assert any("第 1 页" in c.value and "共 2 条" in c.value for c in at.caption)  # news, 7 days


def test_feed_stale_cursor_goes_back_to_page_one(open_page: Callable[..., AppTest]) -> None:
    at = open_page("feed")
    at.button(key="feed_next").click().run()
    at.session_state["feed_paging"].cursors[-1] = "not-a-cursor"
    at.run()
    assert not at.exception and not at.error
    assert any("第 1 页（第 1–20 条）" in c.value for c in at.caption)


def test_feed_outage(open_page: Callable[..., AppTest]) -> None:
    at = open_page("feed", down="posts")
    assert "post store" in at.error[0].value
    assert not any("共 0 条" in c.value for c in at.caption)


# ---------------------------------------------------------------------- incidents


def test_incidents_page_and_acknowledge(open_page: Callable[..., AppTest], seed: Seed) -> None:
    incident_id = seed.incident.id
    at = open_page("incidents")
    assert at.title[0].value == "事件"
    assert list(at.dataframe[0].value["编号"]) == [incident_id]
    assert at.selectbox(key="incident_selected").value == incident_id
    assert _metric(at, "帖子数") == "3"
    texts = _texts(at)
    assert seed.incident.title in texts
    assert LOSS_TEXT in texts  # its posts, masked, as text
    assert RAW_PHONE not in _everything(at)
    timeline = at.dataframe[1].value
    assert list(timeline["事件"]) == ["事件开启", "告警"]
    assert "操作人：总行张三（ho · 总行）" in texts

    at.text_input(key="incident_note").input("已通知分行").run()
    at.button(key="incident_ack").click().run()
    assert not at.exception
    stored = seed.state_store.get_incident(incident_id or 0)
    assert stored is not None and stored.status is IncidentStatus.ACKNOWLEDGED
    assert "已确认" in at.success[0].value
    assert at.button(key="incident_ack").disabled

    at.button(key="incident_resolve").click().run()
    assert not at.exception
    stored = seed.state_store.get_incident(incident_id or 0)
    assert stored is not None and stored.status is IncidentStatus.RESOLVED
    # Resolved incidents leave the default (active) list.
    assert len(at.dataframe) == 0 or incident_id not in list(at.dataframe[0].value["编号"])


def test_incident_link_opens_it_and_a_resolved_selection_is_dropped(
    open_page: Callable[..., AppTest], seed: Seed
) -> None:
    second = seed.state_store.save_incident(
        seed.incident.model_copy(update={"id": None, "title": "第二个事件", "key": "all"})
    )
    # Newest first: without a link the second incident would be selected.
    at = open_page("incidents", query={"incident": str(seed.incident.id)})
    assert at.selectbox(key="incident_selected").value == seed.incident.id
    at.selectbox(key="incident_selected").select(second.id).run()
    at.button(key="incident_resolve").click().run()
    assert not at.exception
    # The resolved incident left the active list; the remaining one is selected now.
    assert at.selectbox(key="incident_selected").value == seed.incident.id
    assert "已解决" in at.success[0].value


def test_analyst_acknowledges_but_cannot_resolve(
    open_page: Callable[..., AppTest], seed: Seed
) -> None:
    incident_id = seed.incident.id or 0
    at = open_page("incidents", user="ana")
    assert "操作人：分析员小王（ana · 分析员）" in _texts(at)
    assert at.button(key="incident_resolve").disabled
    assert any("总行或管理员" in c.value for c in at.caption)
    at.button(key="incident_ack").click().run()
    assert not at.exception
    stored = seed.state_store.get_incident(incident_id)
    assert stored is not None and stored.status is IncidentStatus.ACKNOWLEDGED
    assert seed.state_store.list_acks(incident_id)[0].user == "ana"
    assert at.button(key="incident_resolve").disabled


def test_head_office_resolves_as_itself(open_page: Callable[..., AppTest], seed: Seed) -> None:
    incident_id = seed.incident.id or 0
    at = open_page("incidents", user="ho")
    assert not at.button(key="incident_resolve").disabled
    at.button(key="incident_resolve").click().run()
    stored = seed.state_store.get_incident(incident_id)
    assert stored is not None and stored.status is IncidentStatus.RESOLVED
    audit = seed.state_store.list_audit(target=f"incident:{incident_id}")
    assert [(e.actor, e.action) for e in audit][:1] == [("ho", "resolve")]


def test_incidents_outages(open_page: Callable[..., AppTest], seed: Seed) -> None:
    at = open_page("incidents", down="state")
    assert "state store" in at.error[0].value
    # Post store down: the list (state store) shows, the room says posts are unavailable.
    at = open_page("incidents", down="posts")
    assert list(at.dataframe[0].value["编号"]) == [seed.incident.id]
    assert "post store" in at.error[0].value


def test_overview_is_calm_without_open_incidents(
    open_page: Callable[..., AppTest], seed: Seed
) -> None:
    seed.state_store.resolve(seed.incident.id or 0, user="tester")
    at = open_page("overview")
    assert not at.exception and not at.error
    assert any("当前风险等级：平稳" in m.value for m in at.markdown)
    assert _metric(at, "未结事件") == "0"


def test_baseline_band_comes_from_the_same_hour_on_previous_days(
    data: DashboardData, seed: Seed
) -> None:
    day = timedelta(days=1)
    until = seed.now.replace(minute=0)
    since = until - timedelta(hours=24)
    # A regular history: at 3 hours before `until`, k + 1 posts on day k back.
    hour = until - timedelta(hours=3)
    extra = [
        _post(900000 + k * 10 + i, hour - k * day + timedelta(minutes=5 + i), text="日常帖子")
        for k in range(1, 8)
        for i in range(k + 1)
    ]
    seed.post_store.upsert(extra)
    band = data.volume_baseline(since, until, 3600, days=7)
    assert len(band) == 24
    for row in band.itertuples():
        past = [
            seed.post_store.count(
                PostQuery(since=row.start - k * day, until=row.start - k * day + timedelta(hours=1))
            )
            for k in range(1, 8)
        ]
        median = float(np.median(past))
        assert row.median == median
        assert row.low <= median <= row.high
    # That hour's band is centred on its history (2..8 posts a day: median 5).
    row = band[band["start"] == hour].iloc[0]
    assert row["median"] >= 5 and row["high"] > row["median"]


def test_negative_share_per_bucket_matches_the_store(data: DashboardData, seed: Seed) -> None:
    until = seed.now.replace(minute=0) + timedelta(hours=1)
    since = until - timedelta(hours=24)
    shares = negative_share_frame(data.volume_over_time(since, until, 3600))
    for row in shares.itertuples():
        window = PostQuery(since=row.start, until=row.start + timedelta(hours=1))
        total = seed.post_store.count(window)
        negative = seed.post_store.count(
            window.model_copy(update={"sentiments": [Sentiment.NEGATIVE]})
        )
        assert (row.total, row.negative) == (total, negative)
        if total:
            assert row.share == negative / total
        else:
            assert np.isnan(row.share)


def test_overview_auto_refresh_reruns_only_the_body(open_page: Callable[..., AppTest]) -> None:
    at = open_page("overview")
    at.toggle(key="overview_auto_refresh").set_value(True).run()
    assert not at.exception and not at.error
    # The body (in a fragment that reruns every minute) still shows the same numbers.
    assert _metric(at, "舆情总量") == "5"
    assert at.toggle(key="overview_auto_refresh").value is True
