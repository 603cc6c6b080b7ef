"""Streamlit main script for AppTest: the real app over stores named by the environment.

It plays the part of ``yuqing/dashboard_main.py`` without the bootstrap, so
the tests control the data:

* ``YUQING_TEST_POSTS_DB`` — path of the seeded LocalPostStore file;
* ``YUQING_TEST_STATE_URL`` — SQLAlchemy URL of the seeded state database;
* ``YUQING_TEST_PAGE`` — url_path of the page to open (overview, feed, incidents);
* ``YUQING_TEST_DOWN`` — ``posts`` or ``state`` to replace that store by a failing one,
  ``build`` to make building the data fail (a store unreachable at start);
* ``YUQING_TEST_AUTH`` — ``none`` for a dashboard without login (dev), else the
  test users of ``tests/dashboard/users.py`` must log in;
* ``YUQING_TEST_CONFIG`` — path of a YAML config: the dashboard then gets those
  settings and, as ``yuqing.bootstrap`` wires it, the alerting engine's incident
  action (escalate) and the draft-report builder.
"""

import os

from core.errors import StoreUnavailable
from dashboard.app import main
from dashboard.data import DashboardData
from nlp.segment import tokenize
from storage.local import LocalPostStore
from storage.state import SqlStateStore
from tests.dashboard.fakes import DownPostStore, DownStateStore
from tests.dashboard.users import policy


def build() -> DashboardData:
    """Build DashboardData over the test stores (or a failing one)."""
    down = os.environ.get("YUQING_TEST_DOWN", "")
    if down == "build":
        raise StoreUnavailable("state database sqlite:///nowhere unavailable (simulated)")
    posts = (
        DownPostStore()
        if down == "posts"
        else LocalPostStore(os.environ["YUQING_TEST_POSTS_DB"], tokenize)
    )
    state = (
        DownStateStore() if down == "state" else SqlStateStore(os.environ["YUQING_TEST_STATE_URL"])
    )
    auth = policy(os.environ.get("YUQING_TEST_AUTH", ""))
    config = os.environ.get("YUQING_TEST_CONFIG", "")
    if config:
        from core.settings import load_settings
        from yuqing.bootstrap import draft_reporter, incident_action

        settings = load_settings(config)
        return DashboardData(
            posts,
            state,
            auth=auth,
            settings=settings,
            act=incident_action(settings, state, posts),
            draft_report=draft_reporter(settings, state, posts),
        )
    return DashboardData(posts, state, auth=auth)


main(build, default_page=os.environ.get("YUQING_TEST_PAGE", "overview"))
