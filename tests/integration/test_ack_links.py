"""Signed one-click links with real HTTP requests: the links in a delivered message
acknowledge, escalate and resolve through the service's endpoint; tampered and expired
links get a 403 page and change nothing; tokens never reach the log."""

from __future__ import annotations

import logging
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from alerts.action_server import ActionServer
from alerts.escalation import EscalationStore
from alerts.links import LinkSigner
from alerts.notifiers import build_notifiers
from alerts.service import Service
from core.settings import AckLinkConfig, Settings, StorageConfig
from core.vocab import IncidentStatus
from storage.local import LocalPostStore
from storage.state import SqlStateStore
from tests.integration.test_escalation import Clock, kinds, received, settings_for
from tests.integration.test_service import seed_spike


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class World:
    """A detected incident, its delivered branch message, and a running link endpoint."""

    def __init__(self, tmp_path: Path, httpserver: HTTPServer, posts: LocalPostStore) -> None:
        httpserver.expect_request(re.compile("/.*")).respond_with_data("ok")
        self.httpserver = httpserver
        self.port = free_port()
        base = settings_for(tmp_path, httpserver)
        self.settings: Settings = base.model_copy(
            update={
                "ack_links": AckLinkConfig(
                    port=self.port, public_url=f"http://127.0.0.1:{self.port}"
                )
            }
        )
        self.clock = Clock()
        self.state = SqlStateStore(self.settings.storage.state_url, clock=self.clock)
        self.service = Service(
            self.settings,
            post_store=posts,
            state_store=self.state,
            notifiers=build_notifiers(self.settings.channels),
            clock=self.clock,
        )
        self.service.detect()
        (self.incident,) = self.state.list_incidents()
        store: EscalationStore = self.state  # type: ignore[assignment]
        policy = self.service.detector.policy
        assert policy.links is not None
        self.server = ActionServer(
            store,
            policy.links,
            policy,
            port=self.port,
            posts=posts,
            clock=self.clock,
            on_change=self.service.deliver,
        )
        self.server.start()

    def link(self, action: str) -> str:
        text = str(received(self.httpserver)["branch"][0]["text"])
        label = {"acknowledge": "确认接收", "escalate": "升级上报", "resolve": "解除事件"}[action]
        (url,) = re.findall(rf"{label}：(\S+)", text)
        return url

    def close(self) -> None:
        self.server.stop()
        self.state.close()


@pytest.fixture
def world(tmp_path: Path, httpserver: HTTPServer, posts: LocalPostStore) -> Iterator[World]:
    w = World(tmp_path, httpserver, posts)
    yield w
    w.close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def post(url: str, token: str) -> tuple[int, str]:
    data = urllib.parse.urlencode({"t": token}).encode()
    try:
        with urllib.request.urlopen(url, data=data, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def token_of(url: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["t"][0]


def click(world: World, action: str) -> tuple[int, str]:
    """What a person does: open the link, then press the button on the page."""
    url = world.link(action)
    status, page = get(url)
    assert status == 200, page
    assert "<form method='post'" in page
    return post(f"http://127.0.0.1:{world.port}/action", token_of(url))


def test_acknowledge_link_confirms_then_acknowledges_and_stops_escalation(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = world.link("acknowledge")
    assert url.startswith(f"http://127.0.0.1:{world.port}/action?t=")

    status, page = get(url)  # a link scanner's GET changes nothing
    assert status == 200 and "请确认：确认接收" in page
    assert world.state.get_incident(world.incident.id).status is IncidentStatus.OPEN  # type: ignore[arg-type,union-attr]

    status, page = post(f"http://127.0.0.1:{world.port}/action", token_of(url))
    assert status == 200 and "已确认接收" in page and "channel:branch" in page
    incident = world.state.get_incident(world.incident.id)  # type: ignore[arg-type]
    assert incident is not None and incident.status is IncidentStatus.ACKNOWLEDGED
    (entry,) = world.state.list_audit(10, target=f"incident:{incident.id}")[:1]
    assert (entry.actor, entry.action) == ("channel:branch", "acknowledge")
    assert entry.at == world.clock.now
    assert "一键链接" in entry.detail

    world.clock.advance(120)  # acknowledged: the escalate job leaves it where it is
    assert world.service.escalate() == []
    assert token_of(url) not in caplog.text


def test_escalate_and_resolve_links(world: World) -> None:
    status, page = click(world, "escalate")
    assert status == 200 and "已升级至：分行/区域" in page
    assert kinds(world.httpserver) == {"branch": ["alert"], "regional": ["escalation"]}
    steps = world.state.list_escalations(world.incident.id)  # type: ignore[arg-type]
    assert [(s.level, s.actor) for s in steps][-1] == (1, "channel:branch")

    status, page = click(world, "resolve")
    assert status == 200 and "事件已解除" in page
    assert kinds(world.httpserver) == {
        "branch": ["alert", "resolved"],
        "regional": ["escalation", "resolved"],
    }
    # The same link again changes nothing more (resolve is idempotent, notices deduped).
    click(world, "resolve")
    assert len(received(world.httpserver)["branch"]) == 2


def test_tampered_and_expired_links_get_403_and_change_nothing(world: World) -> None:
    url = world.link("acknowledge")
    token = token_of(url)
    body, _, mac = token.partition(".")
    forged = LinkSigner(
        "another-secret", world.settings.ack_links.public_url, ttl=timedelta(days=9)
    )
    bad_tokens = [
        f"{body}.{mac[:-2]}{'AA' if mac[-2:] != 'AA' else 'BB'}",  # signature changed
        f"{body[:-2]}xx.{mac}",  # claims changed
        forged.token(world.incident.id, "resolve", who="attacker", now=world.clock.now),  # type: ignore[arg-type]
        "not-a-token",
        "",
    ]
    base = f"http://127.0.0.1:{world.port}/action"
    for bad in bad_tokens:
        status, page = get(f"{base}?t={urllib.parse.quote(bad)}")
        assert status == 403 and "链接无效" in page, bad
        status, page = post(base, bad)
        assert status == 403 and "链接无效" in page, bad

    world.clock.advance(world.settings.ack_links.ttl_hours * 60 + 1)
    status, page = get(url)
    assert status == 403 and "链接已过期" in page
    assert post(base, token)[0] == 403

    incident = world.state.get_incident(world.incident.id)  # type: ignore[arg-type]
    assert incident is not None and incident.status is IncidentStatus.OPEN
    actions = {e.action for e in world.state.list_audit(50)}
    assert actions <= {"escalate"}  # only the policy's own start-level record
    assert get(f"http://127.0.0.1:{world.port}/healthz") == (200, "ok")
    assert get(f"http://127.0.0.1:{world.port}/elsewhere")[0] == 404


def test_the_service_serves_the_links_while_it_runs(
    tmp_path: Path, httpserver: HTTPServer, posts: LocalPostStore
) -> None:
    port = free_port()
    settings = settings_for(tmp_path, httpserver).model_copy(
        update={
            "ack_links": AckLinkConfig(port=port),
            "storage": StorageConfig(
                posts_path=tmp_path / "posts.db", state_url=f"sqlite:///{tmp_path / 'svc.db'}"
            ),
        }
    )
    state = SqlStateStore(settings.storage.state_url)
    service = Service(settings, post_store=posts, state_store=state, notifiers={}, serve_links=True)
    service.start()
    try:
        assert get(f"http://127.0.0.1:{port}/healthz") == (200, "ok")
    finally:
        service.stop()
        state.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
