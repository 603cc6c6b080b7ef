"""The service end to end with real stores: a real BackgroundScheduler, a SQLite state
database holding the persistent job store, a LocalPostStore seeded with a spike, and
crawl children that are real processes."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from alerts.service import CRAWL_EXIT_RECORDED_NOT_OK, JOBSTORE_TABLE, Service
from core.models import Post, utcnow
from core.settings import (
    ChannelConfig,
    SchedulerConfig,
    Settings,
    SourceConfig,
    StorageConfig,
    VolumeSpikeRule,
)
from storage.local import LocalPostStore
from storage.state import SqlStateStore

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PRINT_CRAWLED = [sys.executable, "-c", "print('crawled')"]


def make_settings(tmp_path: Path, sources: list[str] = ["forum", "news"]) -> Settings:  # noqa: B006
    return Settings(
        storage=StorageConfig(
            posts_path=tmp_path / "posts.db", state_url=f"sqlite:///{tmp_path / 'state.db'}"
        ),
        sources=[
            SourceConfig(
                name=name,
                kind="rss",
                start_urls=[f"http://127.0.0.1:1/{name}.xml"],
                interval_minutes=60,
            )
            for name in sources
        ],
        rules=[VolumeSpikeRule(window_minutes=30, baseline_windows=4, min_count=8, ratio=3.0)],
        channels=[ChannelConfig(name="log", type="log")],
        scheduler=SchedulerConfig(detect_interval_seconds=5, crawl_timeout_seconds=10),
    )


@pytest.fixture(autouse=True)
def _no_yuqing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The environment outranks keyword arguments in Settings; keep the tests hermetic.
    for key in list(os.environ):
        if key.startswith("YUQING_"):
            monkeypatch.delenv(key)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[LocalPostStore, SqlStateStore]]:
    posts = LocalPostStore(tmp_path / "posts.db", tokenizer=lambda s: s.split())
    state = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield posts, state
    posts.close()
    state.close()


def seed_spike(posts: LocalPostStore) -> None:
    now = utcnow()
    quiet = [  # one post per baseline window
        Post(
            id=f"quiet{i:05d}",
            url=f"https://forum.example/q/{i}",
            source="forum",
            title=f"日常 {i}",
            text="澜海银行 网点 排队",
            published_at=now - timedelta(minutes=45 + 30 * i),
        )
        for i in range(4)
    ]
    storm = [
        Post(
            id=f"storm{i:05d}",
            url=f"https://news.example/s/{i}",
            source="news" if i % 2 else "forum",
            title=f"澜海银行 理财 亏损 {i}",
            text="澜海银行 理财 产品 亏损 维权",
            published_at=now - timedelta(minutes=2 + i),
        )
        for i in range(20)
    ]
    assert posts.upsert([*quiet, *storm]).failed == 0


def wait_for(condition: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s")


def stored_job_ids(settings: Settings) -> list[str]:
    engine = create_engine(settings.storage.state_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(f"SELECT id FROM {JOBSTORE_TABLE} ORDER BY id")).all()
    finally:
        engine.dispose()
    return [row[0] for row in rows]


def test_the_service_crawls_detects_and_notifies(
    tmp_path: Path,
    stores: tuple[LocalPostStore, SqlStateStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    posts, state = stores
    seed_spike(posts)
    settings = make_settings(tmp_path)
    service = Service(
        settings, post_store=posts, state_store=state, crawl_command=lambda s: PRINT_CRAWLED
    )
    service.start()
    try:
        wait_for(lambda: any(r.name == "yuqing.alerts" for r in caplog.records))
        wait_for(lambda: caplog.text.count("finished: exit 0") == 2)
        assert service.job_ids() == [
            "crawl:forum", "crawl:news", "daily_brief", "detect", "escalate", "outbox"
        ]  # fmt: skip
    finally:
        service.stop()

    (incident,) = state.list_incidents()
    assert incident.rule == "volume_spike"
    assert incident.peak_count == 20
    assert incident.sources == ["forum", "news"]
    assert set(incident.post_ids) == {f"storm{i:05d}" for i in range(20)}
    (alert,) = state.list_alerts(incident_id=incident.id)
    assert "30分钟内 20 条" in alert.summary
    (notification,) = state.list_notifications(incident_id=incident.id)
    assert notification.channel == "log" and notification.sent_at is not None
    (logged,) = [r for r in caplog.records if r.name == "yuqing.alerts"]
    assert logged.levelno == logging.WARNING
    assert incident.title in logged.getMessage()
    assert "crawl forum started" in caplog.text  # the child-process path ran
    assert state.list_crawl_runs() == []  # successful children record their own runs


def test_the_job_store_is_persistent_and_a_restart_reuses_it(
    tmp_path: Path, stores: tuple[LocalPostStore, SqlStateStore]
) -> None:
    posts, state = stores
    seed_spike(posts)
    settings = make_settings(tmp_path)

    first = Service(
        settings, post_store=posts, state_store=state, crawl_command=lambda s: PRINT_CRAWLED
    )
    first.start()
    wait_for(lambda: len(state.list_incidents()) == 1)
    first.stop()
    expected = ["crawl:forum", "crawl:news", "daily_brief", "detect", "escalate", "outbox"]
    assert stored_job_ids(settings) == expected

    # Restart on the same database: same rows, no duplicates, the jobs still run,
    # and detection does not open a second incident or notify twice.
    second = Service(
        settings, post_store=posts, state_store=state, crawl_command=lambda s: PRINT_CRAWLED
    )
    second.start()
    try:
        assert second.job_ids() == expected
        assert stored_job_ids(settings) == expected
        second.trigger("detect")
        wait_for(lambda: state.list_incidents()[0].updated_at > state.list_alerts()[0].created_at)
    finally:
        second.stop()
    assert len(state.list_incidents()) == 1
    assert len(state.list_notifications()) == 1

    # A source removed from the config: its job is removed from the store on start.
    fewer = make_settings(tmp_path, sources=["forum"])
    third = Service(fewer, post_store=posts, state_store=state, crawl_command=None)
    third.start()
    third.stop()
    assert stored_job_ids(fewer) == ["daily_brief", "detect", "escalate", "outbox"]


def test_a_failed_crawl_is_logged_and_recorded_not_fatal(
    tmp_path: Path,
    stores: tuple[LocalPostStore, SqlStateStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    posts, state = stores
    failing = [sys.executable, "-c", "import sys; sys.stderr.write('spider exploded'); sys.exit(7)"]
    service = Service(
        make_settings(tmp_path),
        post_store=posts,
        state_store=state,
        crawl_command=lambda s: failing,
    )
    with caplog.at_level(logging.ERROR, logger="alerts.service"):
        outcome = service.crawl("forum")
    assert not outcome.ok and outcome.returncode == 7
    assert "spider exploded" in outcome.stderr_tail
    assert "crawl forum failed: exit code 7" in caplog.text
    (run,) = state.list_crawl_runs(source="forum")
    assert not run.ok and "exit code 7" in run.message and "spider exploded" in run.message

    missing = Service(
        make_settings(tmp_path),
        post_store=posts,
        state_store=state,
        crawl_command=lambda s: [str(tmp_path / "no-such-program")],
    )
    assert missing.crawl("news").message.startswith("could not start crawl")
    assert len(state.list_crawl_runs(source="news")) == 1


def test_a_hanging_crawl_is_killed_at_the_timeout(
    tmp_path: Path, stores: tuple[LocalPostStore, SqlStateStore]
) -> None:
    posts, state = stores
    settings = make_settings(tmp_path)
    # Below the validated minimum on purpose, to keep the test fast.
    settings.scheduler = SchedulerConfig.model_construct(
        detect_interval_seconds=5, misfire_grace_seconds=60, crawl_timeout_seconds=1
    )
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    service = Service(
        settings, post_store=posts, state_store=state, crawl_command=lambda s: sleeper
    )
    t0 = time.monotonic()
    outcome = service.crawl("forum")
    assert time.monotonic() - t0 < 8
    assert not outcome.ok and "timed out" in outcome.message
    assert not state.list_crawl_runs(source="forum")[0].ok


def test_stop_terminates_running_crawl_children(
    tmp_path: Path, stores: tuple[LocalPostStore, SqlStateStore]
) -> None:
    posts, state = stores
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    service = Service(
        make_settings(tmp_path),
        post_store=posts,
        state_store=state,
        crawl_command=lambda s: sleeper,
    )
    service.start()
    wait_for(lambda: len(service._children) == 2)
    children = list(service._children.values())
    t0 = time.monotonic()
    service.stop()
    assert time.monotonic() - t0 < 8
    assert all(child.poll() is not None for child in children)
    assert state.list_crawl_runs() == []  # a shutdown is not a crawl failure


RUN_FOREVER = """
import logging, sys
from pathlib import Path
from alerts.service import Service
from storage.local import LocalPostStore
from storage.state import SqlStateStore
from tests.integration.test_service import make_settings

logging.basicConfig(level=logging.INFO, stream=sys.stderr)
tmp = Path(sys.argv[1])
settings = make_settings(tmp, sources=["forum"])
posts = LocalPostStore(tmp / "posts.db", tokenizer=str.split)
state = SqlStateStore(settings.storage.state_url)
sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
service = Service(settings, post_store=posts, state_store=state, crawl_command=lambda s: sleeper)
service.run_forever()
posts.close()
state.close()
print("clean exit", flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_forever_shuts_down_cleanly_on_a_signal(tmp_path: Path, signum: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_FOREVER, str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        wait_for(lambda: any("crawl forum started" in line for line in lines))
        started = next(line for line in lines if "crawl forum started" in line)
        crawl_pid = int(re.search(r"\(pid (\d+)\)", started).group(1))  # type: ignore[union-attr]
        proc.send_signal(signum)
        proc.wait(timeout=15)  # output is a few lines: no pipe can fill up
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=5)
    out = proc.stdout.read()  # type: ignore[union-attr]
    assert proc.returncode == 0, "".join(lines[-20:])
    assert "clean exit" in out
    assert any("shutting down" in line for line in lines)
    wait_for(lambda: not _alive(crawl_pid), timeout=5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_crawl_that_recorded_its_own_failure_is_not_recorded_twice(
    tmp_path: Path,
    stores: tuple[LocalPostStore, SqlStateStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    posts, state = stores
    # The crawl child records its own not-ok run (with statistics) and exits with this code.
    child = [sys.executable, "-c", f"import sys; sys.exit({CRAWL_EXIT_RECORDED_NOT_OK})"]
    service = Service(
        make_settings(tmp_path), post_store=posts, state_store=state, crawl_command=lambda s: child
    )
    with caplog.at_level(logging.WARNING, logger="alerts.service"):
        outcome = service.crawl("forum")
    assert not outcome.ok and outcome.returncode == CRAWL_EXIT_RECORDED_NOT_OK
    assert "ran but was not ok" in caplog.text
    assert state.list_crawl_runs(source="forum") == []


def test_crisis_mode_crawls_the_sources_of_a_grade_iii_incident_more_often(
    tmp_path: Path,
    stores: tuple[LocalPostStore, SqlStateStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from alerts.detector import Detector
    from core.models import Incident
    from core.vocab import Grade

    posts, state = stores
    settings = make_settings(tmp_path)
    settings.scheduler = SchedulerConfig(
        detect_interval_seconds=3600, crawl_timeout_seconds=10, crisis_factor=3.0
    )
    # No rules: the test drives the incidents itself.
    detector = Detector([], posts, state, settings.channels)
    service = Service(
        settings,
        post_store=posts,
        state_store=state,
        crawl_command=lambda source: PRINT_CRAWLED,
        detector=detector,
        key="crisis-test",
    )

    def interval(source: str) -> float:
        assert service.scheduler is not None
        job = service.scheduler.get_job(f"crawl:{source}")
        return float(job.trigger.interval.total_seconds())

    service.start()
    try:
        assert (interval("forum"), interval("news")) == (3600, 3600)
        minor = state.save_incident(
            Incident(rule="r", key="minor", title="t", grade=Grade.IV, sources=["news"])
        )
        crisis = state.save_incident(
            Incident(rule="r", key="crisis", title="t", grade=Grade.III, sources=["forum"])
        )
        with caplog.at_level(logging.WARNING, logger="alerts.service"):
            service.detect()
        assert (interval("forum"), interval("news")) == (1200, 3600)
        assert any("crisis mode ON for source forum" in r.getMessage() for r in caplog.records)
        # Nothing changed: no reschedule (it would restart the countdown).
        assert service.apply_crisis_mode() == {}

        state.resolve(crisis.id or 0, user="tester")
        service.detect()
        assert (interval("forum"), interval("news")) == (3600, 3600)
        assert any("crisis mode OFF for source forum" in r.getMessage() for r in caplog.records)
        assert minor.id is not None
    finally:
        service.stop()
