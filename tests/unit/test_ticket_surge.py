"""The ticket_surge rule: decide (floors, ratio, grouping), evaluation and the detector."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from alerts.detector import Detector
from alerts.incidents import apply_match, merge_ticket_links, ticket_links_of
from alerts.rules import TicketSurge, build_rules, evaluate_rule
from alerts.rules.base import TicketsNotGiven
from core.models import Ticket
from core.settings import ChannelConfig, TicketSurgeRule, load_settings
from core.vocab import Grade
from tests.unit.fakes import T0, FakePostStore, FakeStateStore, minutes

CHANNELS = [ChannelConfig(name="log", type="log")]
PRODUCT = "澜海稳盈3号"
BRANCH = "澜海银行滨江支行"


def surge(**options: Any) -> TicketSurge:
    defaults: dict[str, Any] = {"window_minutes": 120, "min_count": 5, "ratio": 3.0}
    return TicketSurge(TicketSurgeRule(**{**defaults, **options}))


def ids(n: int, prefix: str = "T") -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(n)]


def ticket(
    tid: str,
    created: datetime,
    *,
    product: str = PRODUCT,
    branch: str = "",
    summary: str = "理财产品净值下跌，要求赎回",
    **kw: Any,
) -> Ticket:
    return Ticket(
        ticket_id=tid, created_at=created, product=product, branch=branch, summary=summary, **kw
    )


# -- decide -----------------------------------------------------------------------------------


def test_a_group_surging_above_its_baseline_matches_with_a_chinese_reason() -> None:
    (match,) = surge().decide({f"product:{PRODUCT}": ids(14)}, {f"product:{PRODUCT}": 1.2})
    assert match.key == f"tickets:product:{PRODUCT}"
    assert match.reason.startswith(f"2小时内 {PRODUCT} 工单 14 张，基线 1.2 张 (11.7×)")
    assert match.count == 14
    assert match.ticket_ids == tuple(ids(14))
    assert match.ticket_reasons[0] == f"同一产品：{PRODUCT}"
    assert match.metrics["ratio"] == pytest.approx(11.667, abs=1e-3)
    assert match.grade is Grade.III  # velocity 11.7 / 3 ≥ 2 → +2 points


def test_the_min_count_floor_and_the_ratio() -> None:
    rule = surge()
    assert rule.decide({"product:A": ids(4)}, {}) == []  # below the floor, whatever the ratio
    assert rule.decide({"product:A": ids(9)}, {"product:A": 3.5}) == []  # 2.6× < 3×
    (match,) = rule.decide({"product:A": ids(9)}, {"product:A": 3.0})  # exactly 3×
    assert match.metrics["ratio"] == 3.0


def test_the_baseline_is_floored_at_one_ticket_per_window() -> None:
    (match,) = surge(min_count=2, ratio=2.0).decide({"branch:B": ids(2)}, {"branch:B": 0.1})
    assert match.metrics["ratio"] == 2.0  # 2 / max(0.1, 1)
    assert match.key == "tickets:branch:B"
    assert match.ticket_reasons[0] == "同一网点：B"


def test_one_match_per_group_largest_ratio_first_and_regulator_raises_the_grade() -> None:
    matches = surge().decide(
        {"product:A": ids(6), "branch:B": ids(20, "B"), "product:C": ids(2)},
        {"product:A": 1.0, "branch:B": 1.0},
        regulator={"product:A": True},
    )
    assert [m.key for m in matches] == ["tickets:branch:B", "tickets:product:A"]
    by_key = {m.key: m for m in matches}
    assert by_key["tickets:product:A"].grade is Grade.II  # velocity 6/3 (+2), regulator (+2)
    assert "监管介入" in by_key["tickets:product:A"].reason


# -- evaluate over tickets ------------------------------------------------------------------


def seed_surge(state: FakeStateStore, *, count: int = 14, branch: str = "") -> None:
    now_ids = [ticket(f"N{i:03d}", T0 - minutes(5 + i), branch=branch) for i in range(count)]
    # a quiet baseline: one ticket of the product every other 2-hour window
    base = [ticket(f"B{i:03d}", T0 - timedelta(hours=3 + 4 * i)) for i in range(6)]
    other = [ticket(f"O{i:03d}", T0 - minutes(10), product="信用卡") for i in range(3)]
    state.upsert_tickets([*now_ids, *base, *other])


def test_evaluate_groups_the_window_and_compares_with_the_baseline_windows() -> None:
    state = FakeStateStore()
    seed_surge(state, branch=BRANCH)
    matches = evaluate_rule(surge(), FakePostStore(), T0, tickets=state)
    assert [m.key for m in matches] == [f"tickets:branch:{BRANCH}", f"tickets:product:{PRODUCT}"]
    product = matches[1]
    assert product.count == 14
    assert product.metrics["baseline"] == 0.5  # 6 tickets over 12 windows
    assert product.window_end == T0 and product.window_start == T0 - timedelta(hours=2)
    assert set(product.ticket_ids) == {f"N{i:03d}" for i in range(14)}


def test_group_by_product_only_and_past_incidents_leave_the_baseline() -> None:
    state = FakeStateStore()
    seed_surge(state, branch=BRANCH)
    rule = surge(group_by="product")
    (match,) = evaluate_rule(rule, FakePostStore(), T0, tickets=state)
    assert match.key == f"tickets:product:{PRODUCT}"
    # A past incident covering the whole baseline: no baseline window is left.
    (match,) = evaluate_rule(
        rule, FakePostStore(), T0, tickets=state, exclude=[(T0 - timedelta(days=2), T0)]
    )
    assert match.metrics["baseline"] == 0.0


def test_a_quiet_window_spares_the_baseline_query() -> None:
    state = FakeStateStore()
    seed_surge(state, count=3)
    assert evaluate_rule(surge(), FakePostStore(), T0, tickets=state) == []
    assert state.ticket_reads == 1


def test_a_ticket_rule_without_tickets_fails_loudly_instead_of_staying_quiet() -> None:
    with pytest.raises(TicketsNotGiven):
        surge().evaluate_all(FakePostStore(), T0)
    with pytest.raises(TicketsNotGiven):
        evaluate_rule(surge(), FakePostStore(), T0)


def test_ticket_surge_loads_from_yaml_shaped_config() -> None:
    settings = load_settings(
        rules=[{"type": "ticket_surge", "name": "tickets", "group_by": "branch", "ratio": 4}]
    )
    (rule,) = build_rules(settings.rules)
    assert isinstance(rule, TicketSurge)
    assert rule.config.group_by == "branch"


# -- incidents and the detector ---------------------------------------------------------------


def test_ticket_links_merge_by_ticket_id() -> None:
    (match,) = surge().decide({"product:A": ids(6)}, {})
    change = apply_match(
        None,
        match,
        now=T0,
        window_count=6,
        post_count=None,
        post_ids=[],
        sources=[],
        ticket_links=ticket_links_of(match),
    )
    assert [link["ticket_id"] for link in change.incident.ticket_links] == ids(6)
    merged = merge_ticket_links(change.incident.ticket_links, ticket_links_of(match)[:2])
    assert len(merged) == 6


def test_the_detector_opens_an_incident_with_its_tickets_linked() -> None:
    state = FakeStateStore()
    seed_surge(state)
    det = Detector([surge(group_by="product")], FakePostStore(), state, CHANNELS)
    (alert,) = det.run_once(T0)
    (incident,) = state.incidents.values()
    assert incident.key == f"tickets:product:{PRODUCT}"
    assert incident.title == f"投诉工单激增：{PRODUCT}"
    assert incident.grade is Grade.III
    assert incident.peak_count == 14
    linked = {link["ticket_id"] for link in incident.ticket_links}
    assert linked == {f"N{i:03d}" for i in range(14)}
    first = incident.ticket_links[0]
    assert first["score"] == 1.0
    assert first["reasons"][0] == f"同一产品：{PRODUCT}"
    assert alert.details["event"] == "opened"
    assert len(alert.details["ticket_ids"]) == 14
    assert state.outbox  # the log channel is told

    # Next cycle: one more ticket joins the same incident, linked as well.
    state.upsert_tickets([ticket("N999", T0 + minutes(1))])
    det.run_once(T0 + minutes(2))
    (incident,) = state.incidents.values()
    assert "N999" in {link["ticket_id"] for link in incident.ticket_links}


def test_a_dry_run_ticket_surge_writes_nothing() -> None:
    state = FakeStateStore()
    seed_surge(state)
    writes = state.writes
    (alert,) = Detector(
        [surge(group_by="product", dry_run=True)], FakePostStore(), state, CHANNELS
    ).run_once(T0)
    assert alert.details["dry_run"] is True
    assert state.writes == writes


def test_a_new_post_incident_links_the_related_tickets_when_the_detector_has_a_watchlist() -> None:
    from alerts.rules import VolumeSpike
    from core.settings import Product, VolumeSpikeRule, Watchlist
    from tests.unit.fakes import make_post

    text = f"澜海银行{PRODUCT}净值下跌，赎回不了"
    posts = FakePostStore(
        [make_post(i, T0 - minutes(1 + i)).model_copy(update={"text": text}) for i in range(12)]
    )
    state = FakeStateStore()
    state.upsert_tickets(
        [
            ticket("REL1", T0 - minutes(20), category="理财"),
            ticket("FAR1", T0 - timedelta(days=2), product="信用卡", summary="年费争议"),
        ]
    )
    rule = VolumeSpike(VolumeSpikeRule(window_minutes=30, baseline_windows=4, min_count=8))
    watchlist = Watchlist(products=[Product(name=PRODUCT, kind="wealth_management")])

    Detector([rule], posts, FakeStateStore(), CHANNELS).run_once(T0)  # no watchlist: no links
    Detector([rule], posts, state, CHANNELS, watchlist=watchlist).run_once(T0)
    (incident,) = state.incidents.values()
    assert [link["ticket_id"] for link in incident.ticket_links] == ["REL1"]
    assert incident.ticket_links[0]["score"] >= 0.4
    assert f"同一产品：{PRODUCT}" in incident.ticket_links[0]["reasons"]


def test_a_post_incident_without_a_watchlist_links_nothing() -> None:
    from alerts.rules import VolumeSpike
    from core.settings import VolumeSpikeRule
    from tests.unit.fakes import make_post

    posts = FakePostStore([make_post(i, T0 - minutes(1 + i)) for i in range(12)])
    state = FakeStateStore()
    state.upsert_tickets([ticket("REL1", T0 - minutes(20))])
    rule = VolumeSpike(VolumeSpikeRule(window_minutes=30, baseline_windows=4, min_count=8))
    Detector([rule], posts, state, CHANNELS).run_once(T0)
    (incident,) = state.incidents.values()
    assert incident.ticket_links == []
    assert state.ticket_reads == 0
