"""Streamlit main script for the tickets AppTests: the real app, wired as ``yuqing.bootstrap`` does.

Like ``app_entry.py``, but the DashboardData gets the ticket desk
(``alerts.tickets.problems.TicketDesk``: real linking over the test stores,
with the labelled linking set's watchlist) unless ``YUQING_TEST_NO_DESK`` is
set. ``YUQING_TEST_DOWN=tickets`` makes the state store's ticket and problem
reads fail as if the database were unreachable.
"""

import os

from alerts.tickets.problems import TicketDesk
from bench.bench_tickets import load_set
from core.errors import StoreUnavailable
from core.settings import TicketsConfig
from dashboard.app import main
from dashboard.data import DashboardData
from nlp.segment import tokenize
from storage.local import LocalPostStore
from storage.state import SqlStateStore
from tests.dashboard.users import policy


class DownTicketState(SqlStateStore):
    """A real state store whose ticket and problem reads fail (a simulated outage)."""

    def _down(self, *_args: object, **_kwargs: object) -> None:
        raise StoreUnavailable("connection refused (simulated outage)")

    list_tickets = get_ticket = list_problems = get_problem_for_incident = _down  # type: ignore[assignment]


def build() -> DashboardData:
    """DashboardData over the test stores, with the ticket desk."""
    posts = LocalPostStore(os.environ["YUQING_TEST_POSTS_DB"], tokenize)
    url = os.environ["YUQING_TEST_STATE_URL"]
    state = (
        DownTicketState(url)
        if os.environ.get("YUQING_TEST_DOWN") == "tickets"
        else SqlStateStore(url)
    )
    desk = None
    if not os.environ.get("YUQING_TEST_NO_DESK"):
        desk = TicketDesk(posts, state, load_set().watchlist, TicketsConfig().closed_statuses)
    return DashboardData(posts, state, auth=policy(), tickets=desk)


main(build, default_page=os.environ.get("YUQING_TEST_PAGE", "tickets"))
