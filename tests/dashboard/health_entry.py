"""Streamlit main script for the source-health AppTests: the real app, with configured sources.

Like ``app_entry.py`` (stores from ``YUQING_TEST_POSTS_DB`` / ``YUQING_TEST_STATE_URL``,
page from ``YUQING_TEST_PAGE``), but the DashboardData also gets settings whose
sources are those of :func:`tests.dashboard.test_source_health.health_settings`, so schedule
intervals (and "stale") are known. No login (``auth: none``).
"""

import os

from dashboard.app import main
from dashboard.data import DashboardData
from nlp.segment import tokenize
from storage.local import LocalPostStore
from storage.state import SqlStateStore
from tests.dashboard.test_source_health import health_settings
from tests.dashboard.users import policy


def build() -> DashboardData:
    """DashboardData over the test stores, with the test sources' settings."""
    return DashboardData(
        LocalPostStore(os.environ["YUQING_TEST_POSTS_DB"], tokenize),
        SqlStateStore(os.environ["YUQING_TEST_STATE_URL"]),
        auth=policy("none"),
        settings=health_settings(),
    )


main(build, default_page=os.environ.get("YUQING_TEST_PAGE", "overview"))
