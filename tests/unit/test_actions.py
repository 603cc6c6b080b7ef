"""alerts.actions.act: the one implementation behind links, CLI and dashboard."""

from __future__ import annotations

from datetime import UTC

import pytest

from alerts.actions import act
from alerts.escalation import EscalationPolicy
from core.errors import QueryError
from core.models import Incident
from core.settings import ChannelConfig, EscalationConfig
from core.vocab import IncidentStatus
from tests.unit.fakes import T0, FakeStateStore

CHANNELS = [
    ChannelConfig(name="branch", type="log", audience="branch"),
    ChannelConfig(name="hq", type="log", audience="head_office"),
]


def setup() -> tuple[FakeStateStore, EscalationPolicy, int]:
    state = FakeStateStore()
    policy = EscalationPolicy(EscalationConfig(), CHANNELS, public_url="http://x", tz=UTC)
    incident = state.save_incident(Incident(rule="r", key="all", title="t", opened_at=T0))
    policy.sync(state, incident, T0)
    assert incident.id is not None
    return state, policy, incident.id


def test_escalate_twice_reaches_head_office_then_stops() -> None:
    state, policy, iid = setup()
    first = act(state, policy, iid, "escalate", user="李主管", now=T0)
    assert first.changed and first.message == "已升级至：分行/区域。"
    second = act(state, policy, iid, "escalate", user="李主管", now=T0)
    assert second.message == "已升级至：总行。"
    assert [n.channel for n in state.outbox] == ["branch", "hq"]
    third = act(state, policy, iid, "escalate", user="李主管", now=T0)
    assert not third.changed
    assert ("李主管", "escalate") in [(a, b) for a, b, _, _ in state.audit_log]


def test_acknowledge_and_resolve() -> None:
    state, policy, iid = setup()
    assert act(state, policy, iid, "acknowledge", user="王", now=T0).incident.status is (
        IncidentStatus.ACKNOWLEDGED
    )
    resolved = act(state, policy, iid, "resolve", user="王", now=T0)
    assert resolved.incident.status is IncidentStatus.RESOLVED
    assert [n.dedup_key for n in state.outbox][-1] == f"incident:{iid}:resolved"


def test_bad_requests_are_query_errors() -> None:
    state, policy, iid = setup()
    with pytest.raises(QueryError):
        act(state, policy, iid, "delete", user="王", now=T0)
    with pytest.raises(QueryError):
        act(state, policy, 999, "acknowledge", user="王", now=T0)
    with pytest.raises(QueryError):
        act(state, policy, iid, "acknowledge", user=" ", now=T0)
