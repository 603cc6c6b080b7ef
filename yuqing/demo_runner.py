"""``yuqing demo``: the whole service on one machine, against the local demo web.

Starts the demo web (in this process), the service (``yuqing run``) and the
dashboard as child processes, prints where to look, and stops all of them on
Ctrl-C (or when one of them dies, saying which).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from core.settings import load_settings

log = logging.getLogger("yuqing.demo")

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "config" / "demo.yaml"
_DEMO_HOSTPORT = "127.0.0.1:8765"


def _effective_config(
    base: Path, port: int, dashboard_port: int, links_port: int, out_dir: Path
) -> Path:
    """Write the demo config with the chosen ports into ``out_dir`` and return its path."""
    data: dict[str, Any] = yaml.safe_load(base.read_text(encoding="utf-8")) or {}
    for source in data.get("sources", []):
        source["start_urls"] = [
            u.replace(_DEMO_HOSTPORT, f"127.0.0.1:{port}") for u in source.get("start_urls", [])
        ]
    dash = data.setdefault("dashboard", {})
    dash["port"] = dashboard_port
    dash["public_url"] = f"http://127.0.0.1:{dashboard_port}"
    links = data.setdefault("ack_links", {})
    links["port"] = links_port
    links["public_url"] = f"http://127.0.0.1:{links_port}"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "effective-config.yaml"
    path.write_text(
        "# Written by `yuqing demo` from "
        + str(base)
        + "; edit that file instead.\n"
        + yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    return path


def _port_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:``port`` (checked before starting a child)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stop(proc: subprocess.Popen[bytes], name: str, timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    log.info("stopping %s (pid %s)", name, proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop in %.0f s; killing it", name, timeout)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_demo(
    *,
    config: Path | None,
    port: int,
    dashboard_port: int,
    links_port: int = 8788,
    scenario: Path | None,
    speed: float,
    keep: bool,
) -> int:
    """Run the demo until Ctrl-C; returns the process exit code."""
    from yuqing.cli import dashboard_command
    from yuqing.demo.scenario import default_scenario_path, load_scenario
    from yuqing.demo.server import DemoWeb

    base = Path(config) if config else DEMO_CONFIG
    settings = load_settings(base)
    data_dir = settings.storage.posts_path.parent
    if not keep and data_dir.exists():
        # Demo data only: the scenario's times are relative to this start.
        log.info("removing the previous demo data in %s (use --keep to keep it)", data_dir)
        shutil.rmtree(data_dir)
    effective = _effective_config(base, port, dashboard_port, links_port, data_dir)
    settings = load_settings(effective)

    web = DemoWeb(load_scenario(scenario or default_scenario_path()), port=port, speed=speed)
    try:
        web.start()
    except OSError as exc:
        log.error("cannot start the demo web on 127.0.0.1:%d: %s (try --port)", port, exc)
        return 2
    for taken, what, option in (
        (dashboard_port, "the dashboard", "--dashboard-port"),
        (links_port, "the one-click action links", "--links-port"),
    ):
        if not _port_free(taken):
            web.stop()
            log.error("port %d for %s is in use (try %s)", taken, what, option)
            return 2
    # SIGTERM (a supervisor, `timeout`) stops the demo like Ctrl-C: the children run in
    # their own sessions and would otherwise be orphaned.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    env = {**os.environ, "YUQING_CONFIG": str(effective.resolve()), "PYTHONUNBUFFERED": "1"}
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        children["service"] = subprocess.Popen(
            [sys.executable, "-m", "yuqing", "run", "--config", str(effective)],
            env=env,
            start_new_session=True,
        )
        children["dashboard"] = subprocess.Popen(
            dashboard_command(settings, effective, dashboard_port),
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )
        banner = (
            "\n"
            "  yuqing demo is running\n"
            f"    dashboard : http://127.0.0.1:{dashboard_port}\n"
            f"    demo web  : {web.url}  (forum, news, complaints, tickets.csv)\n"
            f"    data      : {data_dir}\n"
            "  The scripted crisis starts a few minutes in; watch the Incidents page.\n"
            "  Press Ctrl-C to stop everything.\n"
        )
        print(banner, flush=True)  # noqa: T201 - the demo's whole point is to tell the user
        while True:
            for name, proc in children.items():
                code = proc.poll()
                if code is not None:
                    log.error("%s exited unexpectedly with code %s; stopping the demo", name, code)
                    return 1
            time.sleep(1.0)
    except KeyboardInterrupt:
        log.info("Ctrl-C: stopping the demo")
        return 0
    finally:
        for name, proc in children.items():
            _stop(proc, name)
        web.stop()
