"""End to end: a scripted crisis on the demo web becomes an incident in the running service.

Real everything: the demo web over HTTP, ``yuqing run`` as a child process
(APScheduler with its job store in the state database), crawls as its own
child processes (Scrapy), SQLite stores, the volume-spike rule, the log
notifier. The test only watches the state database and the service's log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from core.models import Incident
from core.vocab import Grade, IncidentStatus
from storage.state import SqlStateStore
from yuqing.demo.scenario import load_scenario
from yuqing.demo.server import DemoWeb

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "tests" / "fixtures" / "scenarios" / "e2e_crisis.yaml"
DEMO_CONFIG = ROOT / "config" / "demo.yaml"
DEADLINE_SECONDS = 180

pytestmark = pytest.mark.slow


def write_config(path: Path, web_url: str, data_dir: Path) -> Path:
    """The demo config, reduced to the forum source of ``web_url``, with fast cycles."""
    data = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    forum = next(s for s in data["sources"] if s["name"] == "demo_forum")
    forum["start_urls"] = [f"{web_url}/forum/"]
    forum["interval_minutes"] = 0.2  # every 12 s
    forum["max_pages"] = 3
    data["sources"] = [forum]
    data["data_dir"] = str(data_dir)
    data["storage"] = {
        "posts_backend": "local",
        "posts_path": str(data_dir / "posts.db"),
        "state_url": f"sqlite:///{data_dir / 'state.db'}",
        "spool_dir": str(data_dir / "spool"),
    }
    data["ack_links"] = {"port": 0}  # any free port: the test does not click links
    data["scheduler"] = {
        "detect_interval_seconds": 5,
        "misfire_grace_seconds": 30,
        "crawl_timeout_seconds": 60,
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def signal_incidents(incidents: list[Incident]) -> dict[str, Incident]:
    """``signal:<name>`` → the incident holding that critical-signal match.

    With grouping a signal's match may have joined the incident of another rule
    about the same subject: its ``"<rule>:<key>"`` is then a member.
    """
    return {
        member.split(":", 1)[1]: inc
        for inc in incidents
        for member in (inc.members or [f"{inc.rule}:{inc.key}"])
        if member.startswith("critical_signal:")
    }


def test_scripted_crisis_raises_an_incident(tmp_path: Path) -> None:
    web = DemoWeb(load_scenario(SCENARIO), port=0, speed=12).start()
    data_dir = tmp_path / "data"
    config = write_config(tmp_path / "config.yaml", web.url, data_dir)
    log_path = tmp_path / "service.log"
    env = {**os.environ, "YUQING_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
    env.pop("YUQING_CONFIG", None)
    with log_path.open("wb") as log_file:
        service = subprocess.Popen(
            [sys.executable, "-m", "yuqing", "run", "--config", str(config)],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        incidents: list[Incident] = []
        deadline = time.monotonic() + DEADLINE_SECONDS

        def rules_seen() -> set[str]:
            # Grouping: a rule may have joined another rule's incident (Incident.rules).
            return {rule for inc in incidents for rule in (inc.rules or [inc.rule])}

        def settled() -> bool:
            # Wait for everything asserted below: one detector pass writes its incidents
            # one by one, so "both rules seen" can be read before the bank-run match is in.
            return {"volume_spike", "critical_signal"} <= rules_seen() and {
                "signal:bank_run",
                "signal:collective_action",
            } <= set(signal_incidents(incidents))

        while time.monotonic() < deadline and not settled():
            assert service.poll() is None, "service died:\n" + log_path.read_text()[-4000:]
            time.sleep(2)
            if (data_dir / "state.db").exists():
                state = SqlStateStore(f"sqlite:///{data_dir / 'state.db'}")
                try:
                    incidents = state.list_incidents()
                    alerts = state.list_alerts()
                    runs = state.list_crawl_runs(source="demo_forum")
                finally:
                    state.close()
        log_text = log_path.read_text(encoding="utf-8", errors="replace")
        assert {"volume_spike", "critical_signal"} <= rules_seen(), (
            f"incidents {rules_seen()} within {DEADLINE_SECONDS} s; log tail:\n{log_text[-4000:]}"
        )
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            code = service.wait(timeout=60)
        except subprocess.TimeoutExpired:
            service.kill()
            code = None
        web.stop()

    incident = next(inc for inc in incidents if "volume_spike" in (inc.rules or [inc.rule]))
    assert incident.status is IncidentStatus.OPEN
    assert incident.post_count >= 8
    assert incident.sources == ["demo_forum"]
    assert incident.post_ids, "the incident must carry the posts of the spike"
    assert any(alert.incident_id == incident.id for alert in alerts)
    # The bank-run rumour and the collective action raise incidents graded at least
    # III (较大) at once.
    signals = signal_incidents(incidents)
    assert {"signal:bank_run", "signal:collective_action"} <= set(signals), sorted(signals)
    assert all(inc.grade.severity >= Grade.III.severity for inc in signals.values())
    assert any(run.ok and run.kept > 0 for run in runs), runs
    # The log notifier delivered it, and the service stopped cleanly on SIGTERM.
    assert "yuqing.alerts" in log_text and "WARNING" in log_text
    assert code == 0, f"service exit code {code}; log tail:\n{log_text[-3000:]}"
