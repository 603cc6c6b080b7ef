"""Streamlit main script of the dashboard benchmark (run in AppTest by ``bench_dashboard``).

The real ``dashboard.app.main`` over the stores named by the environment:

* ``YUQING_BENCH_POSTS_DB`` — the (big) LocalPostStore file;
* ``YUQING_BENCH_STATE_URL`` — the state database;
* ``YUQING_BENCH_PAGE`` — url_path of the page to open.

No login (``auth: none``). The pages' "now" is pinned to the synthetic
corpus' end (``bench_store.END``) so their time windows hold the posts: this
changes which rows the queries select, not how the queries are made.
"""

import os
from datetime import datetime

from bench.bench_store import END
from dashboard.app import main
from dashboard.auth import AuthPolicy
from dashboard.data import DashboardData, TimeWindow
from nlp.segment import tokenize
from storage.local import LocalPostStore
from storage.state import SqlStateStore

_last = TimeWindow.last.__func__  # type: ignore[attr-defined]


def _last_at_corpus_end(
    cls: type[TimeWindow], preset: str, *, now: datetime | None = None
) -> TimeWindow:
    window: TimeWindow = _last(cls, preset, now=now or END)
    return window


TimeWindow.last = classmethod(_last_at_corpus_end)  # type: ignore[method-assign,assignment]


def build() -> DashboardData:
    """DashboardData over the benchmark stores."""
    return DashboardData(
        LocalPostStore(os.environ["YUQING_BENCH_POSTS_DB"], tokenize),
        SqlStateStore(os.environ["YUQING_BENCH_STATE_URL"]),
        auth=AuthPolicy(mode="none"),
    )


main(build, default_page=os.environ.get("YUQING_BENCH_PAGE", "overview"))
