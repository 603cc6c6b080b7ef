"""AppTest helpers shared by the topics, settings and incident-room tests.

``make_opener`` opens one page of ``app_entry.py`` over the seeded stores, logged
in as a test user, optionally with a YAML config (``YUQING_TEST_CONFIG``: the
dashboard then gets settings, the incident action and the draft builder, as
``yuqing.bootstrap`` wires them).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
import yaml
from streamlit.testing.v1 import AppTest

from dashboard.app import LoginSession
from dashboard.components import SESSION_KEY
from tests.dashboard.users import USERS

ENTRY = Path(__file__).with_name("app_entry.py")

OpenApp = Callable[..., AppTest]


def make_opener(
    store_paths: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> OpenApp:
    """``open_app(page, user="ho", config=None, down="", query=None, posts_db=None)``.

    Each test module wraps it in its own ``open_app`` fixture (after the ``seed``
    fixture has filled the stores). ``config`` is a settings mapping written to
    a YAML file for the app; ``posts_db`` points the app at another post store
    file (e.g. an empty one).
    """
    posts_path, state_url = store_paths
    monkeypatch.setenv("YUQING_TEST_STATE_URL", state_url)
    monkeypatch.setenv("YUQING_TEST_AUTH", "")

    def _open(
        page: str,
        *,
        user: str | None = "ho",
        config: dict[str, Any] | None = None,
        down: str = "",
        query: dict[str, str] | None = None,
        posts_db: Path | None = None,
    ) -> AppTest:
        monkeypatch.setenv("YUQING_TEST_POSTS_DB", str(posts_db or posts_path))
        monkeypatch.setenv("YUQING_TEST_PAGE", page)
        monkeypatch.setenv("YUQING_TEST_DOWN", down)
        if config is None:
            monkeypatch.delenv("YUQING_TEST_CONFIG", raising=False)
        else:
            path = tmp_path / "dashboard-test.yaml"
            path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
            monkeypatch.setenv("YUQING_TEST_CONFIG", str(path))
        st.cache_resource.clear()  # the cached DashboardData is per process: rebuild it
        st.cache_data.clear()  # keywords cached for another store must not leak in
        at = AppTest.from_file(str(ENTRY), default_timeout=60)
        if user is not None:
            at.session_state[SESSION_KEY] = LoginSession(USERS[user], datetime.now(UTC))
        for name, value in (query or {}).items():
            at.query_params[name] = value
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return _open


def main_texts(at: AppTest) -> list[str]:
    """Every ``st.text`` of the main area (not the sidebar)."""
    return [t.value for t in at.main.text]


def all_cells(at: AppTest) -> list[str]:
    """Every cell and column name of every dataframe on the page, as strings (untruncated)."""
    cells: list[str] = []
    for frame in at.dataframe:
        value = frame.value
        cells += [str(c) for c in value.columns]
        cells += [str(v) for v in value.astype(str).to_numpy().ravel()]
    return cells


def everything(at: AppTest) -> str:
    """Every string the page shows (texts, markdown, captions, boxes, tables, inputs)."""
    parts: list[str] = [*main_texts(at)]
    parts += [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error] + [w.value for w in at.warning]
    parts += [i.value for i in at.info] + [s.value for s in at.success]
    parts += [str(m.value) for m in at.metric] + [str(t.value) for t in at.title]
    parts += [str(h.value) for h in at.subheader]
    parts += [str(a.value) for a in at.text_area] + [str(t.value) for t in at.text_input]
    parts += all_cells(at)
    return "\n".join(parts)


def frame_with(at: AppTest, column: str) -> Any:
    """The first dataframe on the page that has ``column`` (AssertionError if none)."""
    for frame in at.dataframe:
        if column in frame.value.columns:
            return frame.value
    raise AssertionError(f"no dataframe with column {column!r}")


def frames_with(at: AppTest, column: str) -> list[Any]:
    """Every dataframe on the page that has ``column``."""
    return [f.value for f in at.dataframe if column in f.value.columns]
