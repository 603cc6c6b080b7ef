"""Escalation end to end over one SQLite state database and a real local HTTP receiver:
branch → regional → head office while nobody acknowledges, a resolved notice at the end,
and two "crashes" (one after queueing, one between recording a level and queueing) with a
new Service each time — nothing is lost and nothing is sent twice."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from alerts.escalation import POLICY_ACTOR
from alerts.notifiers import build_notifiers
from alerts.service import Service
from core.models import utcnow
from core.settings import (
    AckLinkConfig,
    ChannelConfig,
    DashboardConfig,
    EscalationConfig,
    Settings,
    StorageConfig,
    VolumeSpikeRule,
)
from storage.local import LocalPostStore
from storage.state import SqlStateStore
from tests.integration.test_service import seed_spike


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


@pytest.fixture(autouse=True)
def _no_yuqing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("YUQING_"):
            monkeypatch.delenv(key)


@pytest.fixture
def posts(tmp_path: Path) -> Iterator[LocalPostStore]:
    store = LocalPostStore(tmp_path / "posts.db", tokenizer=lambda s: s.split())
    seed_spike(store)
    yield store
    store.close()


def settings_for(tmp_path: Path, httpserver: HTTPServer) -> Settings:
    return Settings(
        secret_key="test-secret-key-for-links",
        storage=StorageConfig(
            posts_path=tmp_path / "posts.db", state_url=f"sqlite:///{tmp_path / 'state.db'}"
        ),
        rules=[VolumeSpikeRule(window_minutes=30, baseline_windows=4, min_count=8, ratio=3.0)],
        channels=[
            ChannelConfig(
                name=name, type="webhook", audience=audience, url=httpserver.url_for(f"/{name}")
            )
            for name, audience in (
                ("branch", "branch"),
                ("regional", "regional"),
                ("hq", "head_office"),
            )
        ],
        escalation=EscalationConfig(
            start={"IV": "branch", "III": "branch", "II": "head_office", "I": "head_office"},
            escalate_after_minutes=30,
        ),
        dashboard=DashboardConfig(public_url="https://yuqing.example.com"),
        ack_links=AckLinkConfig(public_url="https://ack.example.com"),
    )


def received(httpserver: HTTPServer) -> dict[str, list[dict[str, object]]]:
    by_path: dict[str, list[dict[str, object]]] = {}
    for request, _ in httpserver.log:
        by_path.setdefault(request.path.strip("/"), []).append(json.loads(request.get_data()))
    return by_path


def kinds(httpserver: HTTPServer) -> dict[str, list[str]]:
    return {
        path: [str(m["message"]["kind"]) for m in msgs]  # type: ignore[index]
        for path, msgs in received(httpserver).items()
    }


def new_service(settings: Settings, posts: LocalPostStore, clock: Clock) -> Service:
    """A service process starting over the state database on disk (its own connection)."""
    state = SqlStateStore(settings.storage.state_url, clock=clock)
    return Service(
        settings,
        post_store=posts,
        state_store=state,
        notifiers=build_notifiers(settings.channels),
        clock=clock,
    )


def test_a_restart_in_the_middle_of_an_escalation_neither_loses_nor_repeats(
    tmp_path: Path, httpserver: HTTPServer, posts: LocalPostStore
) -> None:
    httpserver.expect_request(re.compile("/.*")).respond_with_data("ok")
    settings = settings_for(tmp_path, httpserver)
    clock = Clock()

    # 1. The spike: grade III starts at branch level; the branch channel hears at once.
    first = new_service(settings, posts, clock)
    first.detect()
    assert kinds(httpserver) == {"branch": ["alert"]}
    (incident,) = first.state_store.list_incidents()
    assert incident.id is not None

    # 2. Nobody acknowledges for 31 minutes: the job records level 1 and queues the
    #    regional message — then the process dies before delivering it.
    clock.advance(31)
    stepped = first.detector.policy.run_due(first.state_store, clock())  # type: ignore[arg-type]
    assert stepped == [(incident.id, 1)]
    first.state_store.close()

    # 3. A new service on the same database delivers the queued message once, and a
    #    second pass (or detection) adds nothing.
    second = new_service(settings, posts, clock)
    assert second.escalate() == []
    second.escalate()
    second.detect()
    assert kinds(httpserver) == {"branch": ["alert"], "regional": ["escalation"]}
    regional = received(httpserver)["regional"][0]
    assert "已升级至：分行/区域" in str(regional["text"])
    assert "https://ack.example.com/action?t=" in str(regional["text"])

    # 4. 31 more minutes: the process records level 2 (head office) and dies before it
    #    could queue anything. The next service repairs the missing message.
    clock.advance(31)
    assert second.state_store.record_escalation(  # type: ignore[attr-defined]
        incident.id, 2, "head_office", actor=POLICY_ACTOR, note="crash right after this"
    )
    second.state_store.close()
    third = new_service(settings, posts, clock)
    try:
        assert third.escalate() == []  # the step was already recorded
        third.escalate()
        assert kinds(httpserver) == {
            "branch": ["alert"],
            "regional": ["escalation"],
            "hq": ["escalation"],
        }

        # 5. Top of the ladder: more time changes nothing. Resolving sends one notice
        #    to everybody who was told, however often the job runs.
        clock.advance(120)
        third.escalate()
        third.state_store.resolve(incident.id, user="总行办公室")
        third.escalate()
        third.escalate()
        store = third.state_store
        steps = store.list_escalations(incident.id)  # type: ignore[attr-defined]
        audit = store.list_audit(50, target=f"incident:{incident.id}")  # type: ignore[attr-defined]
    finally:
        third.state_store.close()
    assert kinds(httpserver) == {
        "branch": ["alert", "resolved"],
        "regional": ["escalation", "resolved"],
        "hq": ["escalation", "resolved"],
    }
    assert [(s.level, s.audience) for s in steps] == [
        (0, "branch"),
        (1, "regional"),
        (2, "head_office"),
    ]
    assert [e.action for e in audit].count("escalate") == 3


def test_grade_two_goes_to_head_office_at_once_and_acknowledged_incidents_do_not_climb(
    tmp_path: Path, httpserver: HTTPServer, posts: LocalPostStore
) -> None:
    httpserver.expect_request(re.compile("/.*")).respond_with_data("ok")
    settings = settings_for(tmp_path, httpserver)
    settings.escalation.start["III"] = "head_office"
    clock = Clock()
    service = new_service(settings, posts, clock)
    try:
        service.detect()
        assert kinds(httpserver) == {"branch": ["alert"], "regional": ["alert"], "hq": ["alert"]}
    finally:
        service.state_store.close()
    settings.escalation.start["III"] = "branch"

    # A fresh incident at branch level that someone acknowledges never escalates.
    httpserver.clear_log()
    state = SqlStateStore(f"sqlite:///{tmp_path / 'other.db'}", clock=clock)
    other = Service(
        settings.model_copy(
            update={"storage": StorageConfig(state_url=f"sqlite:///{tmp_path / 'other.db'}")}
        ),
        post_store=posts,
        state_store=state,
        notifiers=build_notifiers(settings.channels),
        clock=clock,
    )
    try:
        other.detect()
        (incident,) = state.list_incidents()
        state.acknowledge(incident.id, user="滨江支行")  # type: ignore[arg-type]
        clock.advance(300)
        assert other.escalate() == []
    finally:
        state.close()
    assert kinds(httpserver) == {"branch": ["alert"]}
