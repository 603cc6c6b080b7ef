"""``python -m yuqing.demo [--port 8765] [--scenario PATH] [--speed 1]``: serve the demo web.

Prints the bound URL and serves until Ctrl-C (or SIGTERM).
"""

# This is a command: printing the URL and errors for the user is its job.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from yuqing.demo.scenario import ScenarioError, default_scenario_path, load_scenario
from yuqing.demo.server import DemoWeb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yuqing.demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one")
    parser.add_argument("--scenario", type=Path, default=None, help="scenario YAML")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="scenario minutes per real minute (default 1)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        scenario = load_scenario(args.scenario or default_scenario_path())
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.speed <= 0:
        print("--speed must be > 0", file=sys.stderr)
        return 2
    web = DemoWeb(scenario, host=args.host, port=args.port, speed=args.speed)
    try:
        web.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(
        f"demo web: {web.url}/index.html  (scenario {scenario.name!r}, speed {args.speed:g})",
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        web.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
