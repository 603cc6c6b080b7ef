"""A real browser on the real dashboard: log in, open the incident room, acknowledge.

The dashboard runs as ``streamlit run yuqing/dashboard_main.py`` (the script
``yuqing dashboard`` starts) on a free port, over a config made from
``config/demo.yaml`` whose stores point at seeded SQLite files in
``tmp_path`` (``tests/dashboard/seed.py``: an open grade-II incident about
澜海银行's wealth-management losses). Debian's ``/usr/bin/chromium`` is driven
by Playwright — Playwright's own browser downloads are never used. Install
Chromium with ``tests/browser/install_chromium.sh``; without it the test is
skipped and says so.

A screenshot of the acknowledged incident room is saved to
``$YUQING_TEST_ARTIFACTS/incident_room.png`` (default ``var/test-artifacts``).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import pytest
import yaml

from core.vocab import IncidentStatus
from nlp.segment import tokenize
from reports.fonts import cjk_font_path
from storage.local import LocalPostStore
from storage.state import SqlStateStore
from tests.dashboard.seed import seed_stores

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("YUQING_CHROMIUM", "/usr/bin/chromium"))
INSTALL_HINT = (
    "Debian's chromium is not installed: run tests/browser/install_chromium.sh "
    "(as root: apt-get install -y --no-install-recommends chromium)"
)
# The demo config's head-office login (config/demo.yaml documents it).
USERNAME, PASSWORD = "head_office", "demo-head-office"
TIMEOUT_MS = 60_000  # a first Streamlit run on a busy 2-core CI box can take a while


def artifacts_dir() -> Path:
    """Where test artifacts go (``YUQING_TEST_ARTIFACTS``, default ``var/test-artifacts``)."""
    path = Path(os.environ.get("YUQING_TEST_ARTIFACTS", REPO / "var" / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fontconfig_with_cjk(directory: Path) -> Path:
    """A fontconfig file: the system's fonts plus the bundled CJK font.

    Debian's chromium comes without Chinese fonts; without this the screenshot
    shows every Chinese character as a box.
    """
    font_dir = cjk_font_path().parent
    path = directory / "fonts.conf"
    path.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">\n'
        "<fontconfig>\n"
        '  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>\n'
        f"  <dir>{font_dir}</dir>\n"
        f"  <cachedir>{directory / 'fontconfig-cache'}</cachedir>\n"
        "</fontconfig>\n",
        encoding="utf-8",
    )
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Dashboard:
    url: str
    state_url: str
    incident_id: int
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
            raise AssertionError(f"dashboard exited with {proc.returncode}:\n{tail}")
        try:
            with urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (URLError, OSError):
            pass
        time.sleep(0.3)  # polling a server that is starting; not a wait for the UI
    raise AssertionError(f"dashboard at {url} not healthy after 90 s:\n{log_path.read_text()}")


@pytest.fixture
def chromium() -> Path:
    """Debian's chromium, or a skip that says how to install it (before any server starts)."""
    if not CHROMIUM.exists():
        pytest.skip(INSTALL_HINT)
    return CHROMIUM


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    """The real dashboard server over seeded stores in ``tmp_path``; stopped afterwards."""
    posts_path = tmp_path / "posts.db"
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    post_store, state_store = LocalPostStore(posts_path, tokenize), SqlStateStore(state_url)
    try:
        seed = seed_stores(post_store, state_store, datetime.now(UTC).replace(microsecond=0))
    finally:
        post_store.close()
        state_store.close()
    assert seed.incident.id is not None

    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text(encoding="utf-8"))
    config["data_dir"] = str(tmp_path / "data")
    config["storage"] = {
        "posts_backend": "local",
        "posts_path": str(posts_path),
        "state_url": state_url,
        "spool_dir": str(tmp_path / "spool"),
    }
    config_path = tmp_path / "yuqing.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUQING_")}
    env["YUQING_CONFIG"] = str(config_path)
    log_path = tmp_path / "dashboard.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(REPO / "yuqing" / "dashboard_main.py"),
                "--server.address=127.0.0.1",
                f"--server.port={port}",
                "--server.headless=true",
                "--browser.gatherUsageStats=false",
                "--server.fileWatcherType=none",
                "--client.toolbarMode=viewer",
            ],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_healthy(url, proc, log_path)
        yield Dashboard(url, state_url, seed.incident.id, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def test_head_office_acknowledges_the_incident_in_chromium(
    chromium: Path, dashboard: Dashboard, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package (dev)")
    expect = sync_api.expect
    expect.set_options(timeout=TIMEOUT_MS)
    incident_id = dashboard.incident_id
    screenshot = artifacts_dir() / "incident_room.png"

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(chromium),
            headless=True,
            # Root in a container has no user namespaces for Chromium's sandbox.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
            env={**os.environ, "FONTCONFIG_FILE": str(_fontconfig_with_cjk(tmp_path))},
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600}, locale="zh-CN")
            page.set_default_timeout(TIMEOUT_MS)
            try:
                page.goto(dashboard.url)
                # Logged out: the login form and nothing else.
                expect(page.get_by_role("heading", name="登录")).to_be_visible()
                page.get_by_label("用户名").fill(USERNAME)
                page.get_by_label("密码").fill(PASSWORD)
                page.get_by_role("button", name="登录").click()

                # Logged in: the overview, and the sidebar names the user.
                expect(page.get_by_role("heading", name="总览")).to_be_visible()
                sidebar = page.get_by_test_id("stSidebar")
                expect(sidebar.get_by_text("演示总行（总行）")).to_be_visible()

                # The incident room, through the app's own navigation (a full page
                # load would start a new, logged-out session).
                sidebar.get_by_role("link", name="事件", exact=True).click()
                expect(page.get_by_role("heading", name=f"事件 #{incident_id}")).to_be_visible()
                expect(page.get_by_text("澜海银行理财亏损讨论量激增").first).to_be_visible()
                ack = page.get_by_role("button", name=re.compile("确认事件"))
                expect(ack).to_be_enabled()
                ack.click()

                expect(page.get_by_text(f"事件 #{incident_id} 已确认。")).to_be_visible()
                badge_row = page.get_by_role("heading", name=f"事件 #{incident_id}").locator(
                    "xpath=ancestor::*[@data-testid='stVerticalBlock'][1]"
                )
                expect(badge_row.get_by_text("已确认", exact=True).first).to_be_visible()
                # While Streamlit reruns, the previous run's (enabled) button may
                # linger beside the new one, even after the count was 1 once: wait
                # for the settled state — no enabled ack button, one disabled one.
                ack_name = re.compile("确认事件")
                expect(page.get_by_role("button", name=ack_name, disabled=False)).to_have_count(0)
                expect(page.get_by_role("button", name=ack_name, disabled=True)).to_have_count(1)
            finally:
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()

    assert screenshot.stat().st_size > 10_000, "the screenshot is (nearly) empty"
    state = SqlStateStore(dashboard.state_url)
    try:
        incident = state.get_incident(incident_id)
        acks = state.list_acks(incident_id)
        audit = state.list_audit(target=f"incident:{incident_id}")
        logins = state.list_audit(target="dashboard")
    finally:
        state.close()
    assert incident is not None and incident.status is IncidentStatus.ACKNOWLEDGED
    assert [a.user for a in acks] == [USERNAME]
    assert any(e.actor == USERNAME and e.action == "acknowledge" for e in audit), audit
    assert any(e.actor == USERNAME and e.action == "login" for e in logins), logins
