"""AppTest of the 报告 (reports) page over the seeded real local stores.

Head office sees the brief of the chosen day (numbers equal to the store's),
the hostile post shown as text, download buttons; an analyst sees "no
permission" and no report data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.models import PostQuery
from dashboard.app import LoginSession
from dashboard.components import SESSION_KEY
from reports.brief import day_window
from tests.dashboard.seed import RAW_PHONE, Seed
from tests.dashboard.users import USERS

ENTRY = Path(__file__).with_name("app_entry.py")
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture(autouse=True)
def _fresh(fresh_streamlit_cache: None) -> None:
    """Every test builds its own cached DashboardData."""


@pytest.fixture
def open_reports(
    seed: Seed, store_paths: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., AppTest]]:
    posts_path, state_url = store_paths
    monkeypatch.setenv("YUQING_TEST_POSTS_DB", str(posts_path))
    monkeypatch.setenv("YUQING_TEST_STATE_URL", state_url)
    monkeypatch.setenv("YUQING_TEST_PAGE", "reports")
    monkeypatch.setenv("YUQING_TEST_DOWN", "")
    monkeypatch.setenv("YUQING_TEST_AUTH", "")

    def _open(user: str, query: dict[str, str] | None = None) -> AppTest:
        st.cache_resource.clear()
        at = AppTest.from_file(str(ENTRY), default_timeout=60)
        at.session_state[SESSION_KEY] = LoginSession(USERS[user], datetime.now(UTC))
        for name, value in (query or {}).items():
            at.query_params[name] = value
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    yield _open


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_head_office_sees_the_brief_of_the_day_with_the_store_numbers(
    open_reports: Callable[..., AppTest], seed: Seed
) -> None:
    day = seed.hostile_post.published_at.astimezone(TZ).date()
    at = open_reports("ho", {"date": day.isoformat()})
    assert at.title[0].value == "报告"
    start, end = day_window(day, TZ)
    total = seed.post_store.count(PostQuery(since=start, until=end))
    assert total > 0
    assert _metric(at, "舆情总量") == str(total)
    markdown = "\n".join(m.value for m in at.markdown)
    assert "舆情日报" in markdown
    # The hostile post is in the preview as escaped text, its phone masked.
    assert "\\[点我\\]\\(javascript\\:alert\\(1\\)\\)" in markdown
    assert "<script>" not in markdown.replace("\\<script\\>", "")
    assert RAW_PHONE not in markdown
    buttons = at.get("download_button")
    assert len(buttons) >= 3  # PDF, DOCX, Markdown of the brief


def test_head_office_sees_an_incident_report(
    open_reports: Callable[..., AppTest], seed: Seed
) -> None:
    at = open_reports("root", {"incident": str(seed.incident.id)})
    markdown = "\n".join(m.value for m in at.markdown)
    assert "声誉事件报告" in markdown and "时间线" in markdown
    assert str(seed.incident.title) in markdown.replace("\\", "")


def test_an_analyst_has_no_permission(open_reports: Callable[..., AppTest]) -> None:
    at = open_reports("ana")
    errors = [e.value for e in at.error]
    assert any("无权限" in e for e in errors)
    assert not at.metric and not at.get("download_button")


def test_an_outage_is_shown_not_an_empty_brief(
    open_reports: Callable[..., AppTest], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YUQING_TEST_DOWN", "posts")
    at = open_reports("ho")
    assert any("数据暂不可用" in e.value for e in at.error)
    assert not at.metric  # no "0 posts" standing in for missing data


def test_the_download_data_is_the_rendered_report(seed: Seed) -> None:
    from dashboard.data import DashboardData

    data = DashboardData(seed.post_store, seed.state_store)
    day = seed.hostile_post.published_at.astimezone(TZ).date()
    brief = data.daily_brief(day, now=seed.now)
    pdf, name, mime = data.render_report(brief, "pdf", now=seed.now)
    assert pdf.startswith(b"%PDF-") and name == f"daily-brief-{day.isoformat()}.pdf"
    assert mime == "application/pdf"
    assert seed.incident.id is not None
    report = data.incident_report(seed.incident.id, now=seed.now)
    assert report is not None and report.grade_label == "II 重大"
    docx, name, _ = data.render_report(report, "docx", now=seed.now)
    assert docx.startswith(b"PK") and name == f"incident-{seed.incident.id}-report.docx"
    assert data.incident_report(99999, now=seed.now) is None
    with pytest.raises(ValueError, match="unknown report format"):
        data.render_report(brief, "html", now=seed.now)
