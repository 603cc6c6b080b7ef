"""``yuqing demo`` (what ``make demo`` runs): starts everything, serves, stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, deadline: float) -> bytes:
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bytes(resp.read())
        except OSError as exc:
            last = exc
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer: {last}")


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    return [int(p) for p, pp in (line.split() for line in out.splitlines()) if int(pp) == pid]


def test_demo_starts_serves_and_stops_cleanly(tmp_path: Path) -> None:
    web_port, dash_port, links_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUQING_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "yuqing",
            "demo",
            "--port",
            str(web_port),
            "--dashboard-port",
            str(dash_port),
            "--links-port",
            str(links_port),
        ],
        cwd=tmp_path,  # the demo config keeps its data under ./var/demo
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        assert b"forum" in wait_http(f"http://127.0.0.1:{web_port}/index.html", deadline)
        assert wait_http(f"http://127.0.0.1:{dash_port}/_stcore/health", deadline) == b"ok"
        children = children_of(proc.pid)
        assert len(children) == 2  # the service and the dashboard
        time.sleep(3)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-3000:]
    assert f"dashboard : http://127.0.0.1:{dash_port}" in out
    assert "service 'default' started" in out
    for child in children:  # nothing is left running
        assert (
            not Path(f"/proc/{child}").exists()
            or "zombie" in Path(f"/proc/{child}/status").read_text().lower()
        ), f"child {child} still running"
    assert (tmp_path / "var" / "demo" / "posts.db").exists()


def test_demo_says_which_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "yuqing", "demo", "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in result.stderr and "--port" in result.stderr
