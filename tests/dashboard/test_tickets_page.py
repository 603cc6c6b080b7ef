"""AppTest over the 投诉工单 page and the incident room's linked tickets, on real local stores.

The stores hold the shipped labelled linking set (posts and ~110 tickets),
moved in time so its newest record is an hour old, plus one incident with
its tickets linked as the detector links them and one without stored links.
Every number the page shows is compared with what the store holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from alerts.tickets.linking import profile_posts, rank_tickets
from bench.bench_tickets import LinkingSet, load_set
from core.models import Incident, Post, Ticket
from core.settings import TicketsConfig
from core.vocab import Grade, Topic
from dashboard.app import LoginSession
from dashboard.components import SESSION_KEY
from dashboard.data import DashboardData
from nlp.segment import tokenize
from storage.local import LocalPostStore
from storage.state import SqlStateStore
from tests.dashboard.users import USERS

ENTRY = Path(__file__).with_name("tickets_entry.py")
CLOSED = TicketsConfig().closed_statuses


@dataclass
class TicketSeed:
    posts: LocalPostStore
    state: SqlStateStore
    data: LinkingSet
    now: datetime
    linked: Incident
    """Incident 1 of the set (澜海稳盈3号), its top tickets stored as the detector stores them."""
    bare: Incident
    """Incident 2 of the set, opened without stored ticket links."""


def _shift(
    data: LinkingSet, now: datetime
) -> tuple[list[Post], list[Ticket], dict[int, list[Post]]]:
    latest = max(
        [t.created_at for t in data.tickets]
        + [p.published_at for _topic, ps in data.incidents.values() for p in ps]
    )
    delta = now - timedelta(hours=1) - latest
    by_incident = {
        iid: [p.model_copy(update={"published_at": p.published_at + delta}) for p in ps]
        for iid, (_topic, ps) in data.incidents.items()
    }
    tickets = [t.model_copy(update={"created_at": t.created_at + delta}) for t in data.tickets]
    return [p for ps in by_incident.values() for p in ps], tickets, by_incident


@pytest.fixture
def tickets_seed(store_paths: tuple[Path, str]) -> Iterator[TicketSeed]:
    posts_path, state_url = store_paths
    posts = LocalPostStore(posts_path, tokenize)
    state = SqlStateStore(state_url)
    data = load_set()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    all_posts, tickets, by_incident = _shift(data, now)
    posts.upsert(all_posts)
    state.upsert_tickets(tickets)
    wealth = by_incident[1]
    case = profile_posts(wealth, data.watchlist, topic=Topic.WEALTH_MANAGEMENT)
    links = rank_tickets(case, tickets, data.watchlist, limit=5)
    linked = state.save_incident(
        Incident(
            rule="volume_spike",
            key="entity:澜海稳盈3号",
            title="澜海稳盈3号 舆情量突增",
            grade=Grade.II,
            opened_at=now - timedelta(hours=2),
            updated_at=now - timedelta(hours=2),
            topic=Topic.WEALTH_MANAGEMENT,
            post_ids=[p.id for p in wealth],
            post_count=len(wealth),
            ticket_links=[
                {"ticket_id": x.ticket_id, "score": x.score, "reasons": list(x.reasons)}
                for x in links
            ],
        )
    )
    bare = state.save_incident(
        Incident(
            rule="volume_spike",
            key="entity:other",
            title="另一起事件",
            grade=Grade.III,
            opened_at=now - timedelta(hours=3),
            updated_at=now - timedelta(hours=3),
            post_ids=[p.id for p in by_incident[2]],
        )
    )
    yield TicketSeed(posts, state, data, now, linked, bare)
    posts.close()
    state.close()


@pytest.fixture
def open_app(
    tickets_seed: TicketSeed, store_paths: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., AppTest]]:
    posts_path, state_url = store_paths
    monkeypatch.setenv("YUQING_TEST_POSTS_DB", str(posts_path))
    monkeypatch.setenv("YUQING_TEST_STATE_URL", state_url)

    def _open(
        page: str = "tickets",
        *,
        user: str = "ana",
        query: dict[str, str] | None = None,
        desk: bool = True,
        down: str = "",
    ) -> AppTest:
        monkeypatch.setenv("YUQING_TEST_PAGE", page)
        monkeypatch.setenv("YUQING_TEST_DOWN", down)
        if desk:
            monkeypatch.delenv("YUQING_TEST_NO_DESK", raising=False)
        else:
            monkeypatch.setenv("YUQING_TEST_NO_DESK", "1")
        st.cache_resource.clear()
        at = AppTest.from_file(str(ENTRY), default_timeout=60)
        at.session_state[SESSION_KEY] = LoginSession(USERS[user], datetime.now(UTC))
        for name, value in (query or {}).items():
            at.query_params[name] = value
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    yield _open
    st.cache_resource.clear()


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _frame_with(at: AppTest, column: str) -> list:  # type: ignore[type-arg]
    return [f.value for f in at.dataframe if column in f.value.columns]


def _in_window(seed: TicketSeed, days: int = 7) -> list[Ticket]:
    return seed.state.list_tickets(since=datetime.now(UTC) - timedelta(days=days), limit=10_000)


# ---------------------------------------------------------------------- tickets page


def test_tickets_page_numbers_match_the_store(
    open_app: Callable[..., AppTest], tickets_seed: TicketSeed
) -> None:
    at = open_app()
    assert at.title[0].value == "投诉工单"
    week = _in_window(tickets_seed)
    assert 0 < len(week) < len(tickets_seed.data.tickets)  # the 7-day default leaves some out
    open_count = sum(1 for t in week if t.status not in CLOSED)
    assert _metric(at, "工单数") == f"{len(week):,}"
    assert _metric(at, "未办结") == f"{open_count:,}"
    [table] = _frame_with(at, "工单号")
    assert sorted(table["工单号"]) == sorted(t.ticket_id for t in week)

    at.segmented_control(key="tickets_range").set_value("all").run()
    assert _metric(at, "工单数") == f"{len(tickets_seed.data.tickets):,}"

    at.multiselect(key="tickets_branch").set_value(["澜海银行滨江支行"]).run()
    at.multiselect(key="tickets_status").set_value(["待处理"]).run()
    assert not at.exception
    wanted = [
        t
        for t in tickets_seed.state.list_tickets(limit=10_000)
        if t.branch == "澜海银行滨江支行" and t.status == "待处理"
    ]
    assert wanted and _metric(at, "工单数") == f"{len(wanted):,}"
    [table] = _frame_with(at, "工单号")
    assert sorted(table["工单号"]) == sorted(t.ticket_id for t in wanted)
    assert "13812345678" not in table.to_string()


def test_a_ticket_shows_its_incident_and_likely_posts(
    open_app: Callable[..., AppTest], tickets_seed: TicketSeed
) -> None:
    link = tickets_seed.linked.ticket_links[0]
    at = open_app()
    at.segmented_control(key="tickets_range").set_value("all").run()
    at.selectbox(key="tickets_selected").set_value(link["ticket_id"]).run()
    assert at.subheader[0].value == f"工单 {link['ticket_id']}"
    [incidents] = _frame_with(at, "关联依据")
    assert list(incidents["事件"]) == [tickets_seed.linked.id]
    assert list(incidents["关联度"]) == [pytest.approx(link["score"])]
    assert incidents["关联依据"][0] == "；".join(link["reasons"])
    reasons = [t.value for t in at.main.text if t.value.startswith("关联度 ")]
    assert reasons and all("同一产品：澜海稳盈3号" in r for r in reasons[:3])
    shown = "\n".join(t.value for t in at.main.text)
    wealth = [tickets_seed.posts.get(pid) for pid in tickets_seed.linked.post_ids]
    assert any(p is not None and p.title in shown for p in wealth)


def test_a_link_with_a_ticket_id_opens_that_ticket(
    open_app: Callable[..., AppTest], tickets_seed: TicketSeed
) -> None:
    newest = _in_window(tickets_seed)[0]
    at = open_app(query={"ticket": newest.ticket_id})
    assert at.subheader[0].value == f"工单 {newest.ticket_id}"
    assert any(t.value == newest.summary for t in at.main.text)  # no PII in the set: as stored


def test_without_the_desk_the_page_says_posts_cannot_be_found(
    open_app: Callable[..., AppTest], tickets_seed: TicketSeed
) -> None:
    ticket_id = tickets_seed.linked.ticket_links[0]["ticket_id"]
    at = open_app(desk=False)
    at.segmented_control(key="tickets_range").set_value("all").run()
    at.selectbox(key="tickets_selected").set_value(ticket_id).run()
    assert any("未接入工单关联" in c.value for c in at.caption)
    assert _frame_with(at, "关联依据")  # the stored incident links still show


def test_tickets_page_shows_an_outage_not_zeros(open_app: Callable[..., AppTest]) -> None:
    at = open_app(down="tickets")
    assert len(at.error) == 1 and "simulated outage" in at.error[0].value
    assert len(at.metric) == 0


def test_problem_list_and_status_change(
    open_app: Callable[..., AppTest], tickets_seed: TicketSeed
) -> None:
    state = tickets_seed.state
    ids = [x["ticket_id"] for x in tickets_seed.linked.ticket_links]
    assert tickets_seed.linked.id is not None
    problem = state.create_problem(
        tickets_seed.linked.id, title="稳盈3号", owner_team="投诉处理组", ticket_ids=ids, actor="a"
    )
    at = open_app()
    [problems] = _frame_with(at, "问题单")
    assert list(problems["问题单"]) == [problem.id]
    expected_open = len(problem.open_ticket_ids(CLOSED))
    assert list(problems["工单数"]) == [len(ids)] and list(problems["未办结"]) == [expected_open]

    at.selectbox(key="tickets_problem_status").set_value("investigating").run()
    at.text_input(key="tickets_problem_note").input("已联系客户").run()
    at.button(key="tickets_problem_set").click().run()
    assert not at.exception
    assert any("处理中" in s.value for s in at.success)
    stored = state.get_problem(problem.id)
    assert stored is not None and stored.status == "investigating"
    [entry, *_] = state.list_audit(target=f"problem:{problem.id}")
    assert (entry.action, entry.actor) == ("problem_status", "ana")
    assert entry.detail == "open → investigating: 已联系客户"
    [history] = _frame_with(at, "执行者")
    assert list(history["事件"]) == ["状态变更", "升级为问题单"]
    assert history["说明"][0] == "open → investigating: 已联系客户"


# ---------------------------------------------------------------------- incident room


def test_incident_room_lists_linked_tickets_and_promotes(
    open_app: Callable[..., AppTest], tickets_seed: TicketSeed
) -> None:
    incident = tickets_seed.linked
    at = open_app("incidents", query={"incident": str(incident.id)})
    assert any(s.value == "关联投诉工单" for s in at.subheader)
    [linked] = _frame_with(at, "共同词")
    assert list(linked["工单号"]) == [x["ticket_id"] for x in incident.ticket_links]
    assert list(linked["关联度"]) == pytest.approx([x["score"] for x in incident.ticket_links])
    assert all("同一产品：澜海稳盈3号" in same for same in linked["相同产品/网点/主题"])
    assert all(gap for gap in linked["时间差"])

    button = at.button(key="incident_promote")
    assert not button.disabled
    at.text_input(key="incident_problem_owner").input("李经理").run()
    at.button(key="incident_promote").click().run()
    assert not at.exception
    [problem] = tickets_seed.state.list_problems()
    assert problem.incident_id == incident.id and problem.owner_user == "李经理"
    assert problem.ticket_ids == [x["ticket_id"] for x in incident.ticket_links]
    assert any(f"问题单 #{problem.id}" in s.value for s in at.success)
    assert any(f"已升级为问题单 #{problem.id}" in t.value for t in at.main.text)
    assert not [b for b in at.button if b.key == "incident_promote"]  # promoted: no button


def test_incident_without_stored_links_is_linked_live(
    open_app: Callable[..., AppTest], tickets_seed: TicketSeed
) -> None:
    at = open_app("incidents", query={"incident": str(tickets_seed.bare.id)})
    assert any("实时计算" in c.value for c in at.caption)
    [linked] = _frame_with(at, "共同词")
    # The tickets a promotion would take (score >= 0.4 and >= 0.8 x the best).
    assert 0 < len(linked) <= 10
    assert set(linked["工单号"]) <= tickets_seed.data.links[2]
    assert min(linked["关联度"]) >= max(0.4, 0.8 * max(linked["关联度"]))
    at.button(key="incident_promote").click().run()
    [problem] = tickets_seed.state.list_problems()
    assert problem.ticket_ids == list(linked["工单号"])  # promoted with what the room showed


def test_incident_without_links_and_without_desk_cannot_be_promoted(
    open_app: Callable[..., AppTest], tickets_seed: TicketSeed
) -> None:
    at = open_app("incidents", query={"incident": str(tickets_seed.bare.id)}, desk=False)
    assert any("暂无关联的投诉工单" in c.value for c in at.caption)
    assert at.button(key="incident_promote").disabled


# ---------------------------------------------------------------------- data module


def test_promote_problem_bad_input(tickets_seed: TicketSeed) -> None:
    from alerts.tickets.problems import ProblemError, TicketDesk

    desk = TicketDesk(tickets_seed.posts, tickets_seed.state, tickets_seed.data.watchlist, CLOSED)
    data = DashboardData(tickets_seed.posts, tickets_seed.state, tickets=desk)
    with pytest.raises(ProblemError, match="no incident 999"):
        data.promote_problem(999, "ana")
    with pytest.raises(ValueError, match="操作人不能为空"):
        data.promote_problem(1, " ")
    without = DashboardData(tickets_seed.posts, tickets_seed.state)
    with pytest.raises(ValueError, match="no ticket desk"):
        without.promote_problem(1, "ana")
    assert tickets_seed.state.list_problems() == []


def test_an_empty_store_shows_zero_tickets_and_no_problems(
    store_paths: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    posts_path, state_url = store_paths
    LocalPostStore(posts_path, tokenize).close()
    SqlStateStore(state_url).close()
    monkeypatch.setenv("YUQING_TEST_POSTS_DB", str(posts_path))
    monkeypatch.setenv("YUQING_TEST_STATE_URL", state_url)
    monkeypatch.setenv("YUQING_TEST_PAGE", "tickets")
    st.cache_resource.clear()
    at = AppTest.from_file(str(ENTRY), default_timeout=60)
    at.session_state[SESSION_KEY] = LoginSession(USERS["ho"], datetime.now(UTC))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert _metric(at, "工单数") == "0" and _metric(at, "未办结") == "0"
    assert any("没有符合条件的问题单" in c.value for c in at.caption)
    st.cache_resource.clear()
