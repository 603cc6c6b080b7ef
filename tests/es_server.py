"""An Elasticsearch-compatible test server: the ``noida-db`` binary from PyPI.

The binary bundled in the wheel (``noida_db/noida-db``) is started directly,
not through the ``noida-db`` console script: signalling that wrapper would
orphan the server. It listens on a free port (``--elasticsearch-port 0``),
prints its URL on stdout and is ready within milliseconds. It is stopped with
SIGINT, then killed after a timeout; on Linux it also gets SIGKILL if the test
process dies (``PR_SET_PDEATHSIG``), so no server outlives a crashed run.

It is not a performance reference and lacks some aggregations (see issue 5).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

log = logging.getLogger(__name__)

_URL = re.compile(r"elasticsearch\s+(http://\S+)")


class ServerError(RuntimeError):
    """The test server could not be started."""


def binary_path() -> Path | None:
    """The noida-db binary inside the installed package, or ``None`` if it is not installed."""
    spec = find_spec("noida_db")
    if spec is None or not spec.submodule_search_locations:
        return None
    name = "noida-db.exe" if os.name == "nt" else "noida-db"
    for location in spec.submodule_search_locations:
        candidate = Path(location) / name
        if candidate.is_file():
            return candidate
    return None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _wait_healthy(url: str, deadline: float) -> None:
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_cluster/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise ServerError(f"noida-db at {url} did not answer /_cluster/health: {last}")


@contextlib.contextmanager
def noida_elasticsearch(data_dir: Path, *, timeout: float = 20.0) -> Iterator[str]:
    """Run a noida-db Elasticsearch server with its data in ``data_dir``; yields its URL.

    Raises ``ServerError`` (with the server's stderr) if it cannot start, and
    ``FileNotFoundError`` if the noida-db package is not installed.
    """
    binary = binary_path()
    if binary is None:
        raise FileNotFoundError("the noida-db package is not installed (pip install noida-db)")
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)  # wheels do not always keep the executable bit
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(binary),
        "start",
        "--only",
        "elasticsearch",
        "--elasticsearch-port",
        "0",
        "--host",
        "127.0.0.1",
        "--data-dir",
        str(data_dir),
    ]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_die_with_parent if os.name == "posix" else None,
    )
    stderr_lines: list[str] = []
    url_box: list[str] = []
    found = threading.Event()

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # keep draining so the server never blocks on a full pipe
            match = _URL.search(line)
            if match and not url_box:
                url_box.append(match.group(1).rstrip("/"))
                found.set()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr_lines.append(line.rstrip())
            del stderr_lines[:-50]

    threads = [
        threading.Thread(target=read_stdout, daemon=True),
        threading.Thread(target=read_stderr, daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + timeout
        while not found.wait(0.05):
            if proc.poll() is not None or time.monotonic() > deadline:
                threads[1].join(timeout=1)  # let the reader collect the last stderr lines
                raise ServerError(
                    f"noida-db ({binary}) did not start (exit code {proc.poll()}); stderr:\n"
                    + "\n".join(stderr_lines[-20:])
                )
        url = url_box[0]
        _wait_healthy(url, deadline)
        log.info("noida-db Elasticsearch server at %s (pid %d)", url, proc.pid)
        yield url
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[str], timeout: float = 5.0) -> None:
    """SIGINT (the server's Ctrl-C: it saves and exits), then SIGKILL after ``timeout``."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("noida-db (pid %d) ignored SIGINT; killing it", proc.pid)
        proc.kill()
        proc.wait(timeout)
