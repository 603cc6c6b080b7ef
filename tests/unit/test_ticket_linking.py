"""Incident → ticket and ticket → post linking: reasons and ranking (pure functions)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.tickets.linking import (
    profile_posts,
    rank_posts,
    rank_tickets,
    ticket_topic,
)
from bench.bench_tickets import evaluate, load_set
from core.models import Ticket
from core.vocab import Topic

DATA = load_set()
WEALTH_TOPIC, WEALTH_POSTS = DATA.incidents[1]


def test_reasons_name_product_branch_time_and_shared_words() -> None:
    case = profile_posts(WEALTH_POSTS, DATA.watchlist, topic=WEALTH_TOPIC)
    assert case.products == {"澜海稳盈3号"} and case.branches == {"澜海银行滨江支行"}
    top = rank_tickets(case, DATA.tickets, DATA.watchlist, limit=5)
    assert len(top) == 5
    best = top[0]
    assert "同一产品：澜海稳盈3号" in best.reasons
    assert "同一网点：滨江支行" in best.reasons
    assert "同一主题：理财/基金/代销" in best.reasons
    assert any(r.startswith("时间相差 ") for r in best.reasons)
    assert any(r.startswith("共同词：") for r in best.reasons)
    assert [link.score for link in top] == sorted((link.score for link in top), reverse=True)
    assert 0 < best.score <= 1 and set(best.components) <= {
        "product",
        "branch",
        "topic",
        "time",
        "text",
    }


def test_same_branch_other_product_ranks_below_the_real_complaints() -> None:
    case = profile_posts(WEALTH_POSTS, DATA.watchlist, topic=WEALTH_TOPIC)
    ranked = rank_tickets(case, DATA.tickets, DATA.watchlist, limit=50)
    truth = DATA.links[1]
    positions = {link.ticket_id: i for i, link in enumerate(ranked)}
    worst_true = max(positions[t] for t in truth)
    distractors = [
        t.ticket_id
        for t in DATA.tickets
        if t.branch == "澜海银行滨江支行" and t.product != "澜海稳盈3号"
    ]
    assert distractors
    assert all(positions.get(d, 999) > worst_true for d in distractors)


def test_old_tickets_of_the_same_product_lose_on_time() -> None:
    case = profile_posts(WEALTH_POSTS, DATA.watchlist, topic=WEALTH_TOPIC)
    fresh = DATA.tickets[0]
    old = fresh.model_copy(
        update={"ticket_id": "OLD", "created_at": case.start - timedelta(days=8)}
    )
    links = {
        link.ticket_id: link for link in rank_tickets(case, [fresh, old], DATA.watchlist, limit=5)
    }
    assert links[fresh.ticket_id].score > links["OLD"].score
    assert links["OLD"].components["time"] < 0.01
    assert not any(r.startswith("时间相差") for r in links["OLD"].reasons)


def test_unrelated_tickets_are_left_out() -> None:
    case = profile_posts(WEALTH_POSTS, DATA.watchlist, topic=WEALTH_TOPIC)
    far = Ticket(
        ticket_id="FAR",
        created_at=case.start - timedelta(days=30),
        product="外汇",
        summary="客户咨询外币兑换",
    )
    assert rank_tickets(case, [far], DATA.watchlist) == []


def test_ticket_topic_prefers_category_then_product_kind() -> None:
    t = Ticket(ticket_id="a", created_at=WEALTH_POSTS[0].published_at, product="个人存款")
    assert ticket_topic(t.model_copy(update={"category": "服务态度"}), DATA.watchlist) is (
        Topic.SERVICE_QUALITY
    )
    assert ticket_topic(t.model_copy(update={"product": "稳盈三号"}), DATA.watchlist) is (
        Topic.WEALTH_MANAGEMENT
    )
    assert ticket_topic(t.model_copy(update={"product": "外汇"}), DATA.watchlist) is None


def test_profile_needs_posts() -> None:
    with pytest.raises(ValueError):
        profile_posts([], DATA.watchlist)


def test_rank_posts_for_a_ticket() -> None:
    every_post = [p for _topic, posts in DATA.incidents.values() for p in posts]
    ticket = next(t for t in DATA.tickets if t.ticket_id in DATA.links[3])
    ranked = rank_posts(ticket, every_post, DATA.watchlist, limit=5)
    incident3 = {p.id for p in DATA.incidents[3][1]}
    assert ranked and all(link.post_id in incident3 for link in ranked)
    assert "同一产品：澜海信用卡" in ranked[0].reasons


def test_labelled_set_meets_the_precision_goal() -> None:
    p5, r10, _notes = evaluate(DATA)
    assert p5 >= 0.8 and r10 >= 0.8
