"""The ticket push endpoint inside the service: real HTTP, real SQLite, a real ``yuqing run``.

In process: :class:`alerts.service.Service` started with a push token serves
``POST /tickets``; pushes are idempotent by ticket id, and a status update
changes the stored ticket and what its problem record shows. Out of process:
``yuqing run`` with the token in the environment serves the endpoint on the
port from the environment and frees it on SIGINT.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from alerts.service import Service
from core.models import Incident
from core.settings import Settings, StorageConfig, TicketsConfig
from storage.local import LocalPostStore
from storage.state import SqlStateStore

REPO = Path(__file__).resolve().parents[2]
TOKEN = "service-push-token-0123456789"


@pytest.fixture(autouse=True)
def _no_yuqing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The environment outranks keyword arguments in Settings; keep the tests hermetic.
    for key in list(os.environ):
        if key.startswith("YUQING_"):
            monkeypatch.delenv(key)


def wait_for(condition: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s")


def push(url: str, body: Any, *, token: str = TOKEN) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body, ensure_ascii=False).encode()
    req = urllib.request.Request(f"{url}/tickets", data=data, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ticket(tid: str, status: str = "待处理") -> dict[str, str]:
    return {
        "工单号": tid,
        "创建时间": "2026-11-23 10:00",
        "网点": "澜海银行滨江支行",
        "产品": "澜海稳盈3号",
        "状态": status,
        "摘要": "净值跌破1元，客户手机13812345678",
    }


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Service, SqlStateStore]]:
    settings = Settings(
        storage=StorageConfig(
            posts_path=tmp_path / "posts.db", state_url=f"sqlite:///{tmp_path / 'state.db'}"
        ),
        tickets=TicketsConfig(push_port=0),  # a free port, read back from service.ticket_push
    )
    posts = LocalPostStore(tmp_path / "posts.db", tokenizer=str.split)
    state = SqlStateStore(settings.storage.state_url)
    svc = Service(settings, post_store=posts, state_store=state, ticket_push_token=TOKEN)
    svc.start()
    try:
        yield svc, state
    finally:
        svc.stop()
        posts.close()
        state.close()


def test_the_service_serves_pushes_and_they_update_the_problem(
    service: tuple[Service, SqlStateStore],
) -> None:
    svc, state = service
    assert svc.ticket_push is not None
    url, port = svc.ticket_push.url, svc.ticket_push.port

    assert push(url, [ticket("P1"), ticket("P2")]) == (
        200,
        {"received": 2, "imported": 2, "rejected": []},
    )
    assert push(url, [ticket("P1")])[0] == 200  # the same ticket again: still one ticket
    assert sorted(t.ticket_id for t in state.list_tickets()) == ["P1", "P2"]
    assert push(url, ticket("P3"), token="wrong-token-0123456789")[0] == 401

    incident = state.save_incident(
        Incident(
            rule="tickets",
            key="product:澜海稳盈3号",
            title="投诉工单激增",
            ticket_links=[{"ticket_id": t, "score": 1.0, "reasons": []} for t in ("P1", "P2")],
        )
    )
    assert incident.id is not None
    problem = state.create_problem(
        incident.id,
        title=incident.title,
        owner_team="投诉处理组",
        ticket_ids=["P1", "P2"],
        actor="a",
    )
    closed = svc.settings.tickets.closed_statuses

    status, answer = push(url, {"tickets": [ticket("P1", "已办结")]})
    assert status == 200 and answer["imported"] == 1
    stored = state.get_ticket("P1")
    assert stored is not None and stored.status == "已办结"
    assert "13812345678" not in stored.summary
    half = state.get_problem(problem.id)
    assert half is not None and half.open_ticket_ids(closed) == ["P2"]

    assert push(url, [ticket("P2", "已办结")])[0] == 200
    done = state.get_problem(problem.id)
    assert done is not None and done.all_tickets_closed(closed)
    assert done.status == "open"  # flagged, never changed by a push
    history = state.list_audit(target=f"problem:{problem.id}")
    assert [e.action for e in history[:2]] == ["problem_ticket_status", "problem_ticket_status"]
    assert history[0].actor == "complaint-system push"
    assert "P2: 待处理 → 已办结" in history[0].detail and "工单已全部办结" in history[0].detail
    assert "P1: 待处理 → 已办结" in history[1].detail and "工单已全部办结" not in history[1].detail

    svc.stop()
    assert svc.ticket_push is None
    assert not listening(port)


def test_without_a_token_the_service_serves_no_endpoint(tmp_path: Path) -> None:
    settings = Settings(
        storage=StorageConfig(
            posts_path=tmp_path / "posts.db", state_url=f"sqlite:///{tmp_path / 'state.db'}"
        ),
    )
    posts = LocalPostStore(tmp_path / "posts.db", tokenizer=str.split)
    state = SqlStateStore(settings.storage.state_url)
    svc = Service(settings, post_store=posts, state_store=state)
    try:
        svc.start()
        assert svc.ticket_push is None
    finally:
        svc.stop()
        posts.close()
        state.close()


def _config(tmp_path: Path) -> Path:
    data = {
        "storage": {
            "posts_path": str(tmp_path / "posts.db"),
            "state_url": f"sqlite:///{tmp_path / 'state.db'}",
            "spool_dir": str(tmp_path / "spool"),
        },
        "sources": [],
        "channels": [{"name": "log", "type": "log"}],
    }
    path = tmp_path / "yuqing.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_yuqing_run_serves_pushes_and_stops_on_sigint(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUQING_")}
    env.update(
        YUQING_TICKETS_PUSH_TOKEN=TOKEN,
        YUQING_TICKETS__PUSH_PORT=str(port),
        YUQING_ACK_LINKS__ENABLED="false",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "yuqing", "run", "--config", str(_config(tmp_path))],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        wait_for(lambda: listening(port) or proc.poll() is not None)
        assert proc.poll() is None, "".join(lines[-30:])
        url = f"http://127.0.0.1:{port}"
        assert push(url, [ticket("R1"), ticket("R2")])[1]["imported"] == 2
        assert push(url, [ticket("R1", "已办结")])[0] == 200
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    assert proc.returncode == 0, "".join(lines[-30:])
    assert not listening(port)
    state = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert {t.ticket_id: t.status for t in state.list_tickets()} == {
            "R1": "已办结",
            "R2": "待处理",
        }
    finally:
        state.close()


def test_yuqing_run_refuses_a_short_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from yuqing.cli import app

    monkeypatch.setenv("YUQING_TICKETS_PUSH_TOKEN", "short")
    result = CliRunner().invoke(app, ["run", "--config", str(_config(tmp_path))])
    assert result.exit_code == 2
    assert "YUQING_TICKETS_PUSH_TOKEN is set but shorter than 16 characters" in result.output
