"""Source health on the overview (issue 3): per-source numbers from the seeded crawl runs.

Real SqlStateStore with known crawl runs; DashboardData.source_health is
checked number by number, and the overview (AppTest) must show the failing
source as failing — first, with its masked error — never hide it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.models import CrawlRun
from core.settings import Settings, SourceConfig
from core.vocab import SourceKind
from dashboard.data import DashboardData
from tests.dashboard.seed import Seed

ENTRY = Path(__file__).with_name("health_entry.py")
PHONE = "13812345678"


def health_settings() -> Settings:
    """Four configured sources (one never ran); ``old_forum`` has runs but no config."""

    def source(name: str, minutes: float) -> SourceConfig:
        return SourceConfig(
            name=name, kind=SourceKind.RSS, start_urls=[f"http://127.0.0.1:9/{name}.xml"],
            interval_minutes=minutes,
        )  # fmt: skip

    return Settings(
        sources=[
            source("demo_news", 10),
            source("demo_forum", 10),
            source("demo_complaints", 10),
            source("demo_weibo", 5),
        ]
    )


def _run(
    source: str,
    started: datetime,
    *,
    ok: bool = True,
    fetched: int = 0,
    kept: int = 0,
    dropped: dict[str, int] | None = None,
    message: str = "",
    finished: bool = True,
) -> CrawlRun:
    return CrawlRun(
        source=source,
        started_at=started,
        finished_at=started + timedelta(seconds=40) if finished else None,
        ok=ok,
        fetched=fetched,
        kept=kept,
        dropped=dropped or {},
        errors=0 if ok else 1,
        message=message,
    )


@pytest.fixture
def runs(seed: Seed) -> datetime:
    """Seed the crawl runs; returns the "now" they are relative to (the seed's now)."""
    now = seed.now
    m = timedelta(minutes=1)
    for run in [
        # demo_news: ok now, one failure two runs ago → ok, error rate 1/3.
        _run("demo_news", now - 25 * m, ok=False, message=f"HTTP 403 blocked; call {PHONE}"),
        _run("demo_news", now - 15 * m, fetched=8, kept=6, dropped={"dup": 1, "no_mention": 1}),
        _run("demo_news", now - 5 * m, fetched=12, kept=10, dropped={"no_mention": 2}),
        # A run still going does not count in the rates.
        _run("demo_news", now - 1 * m, finished=False),
        # demo_forum: the last run failed → failing, error rate 1/2.
        _run("demo_forum", now - 13 * m, fetched=20, kept=15, dropped={"no_mention": 5}),
        _run("demo_forum", now - 3 * m, ok=False, message=f"captcha page (联系 {PHONE})"),
        # demo_complaints: fine, but nothing for two hours (interval 10 min) → stale.
        _run("demo_complaints", now - 2 * 60 * m, fetched=5, kept=5),
        # old_forum: not configured any more, no schedule → never stale.
        _run("old_forum", now - 3 * 24 * 60 * m, fetched=3, kept=1, dropped={"dup": 2}),
    ]:
        seed.state_store.record_crawl_run(run)
    return now


def _by_source(frame: pd.DataFrame) -> dict[str, dict[str, object]]:
    return {str(r["source"]): dict(r) for r in frame.to_dict("records")}


def test_numbers_match_the_seeded_runs(seed: Seed, runs: datetime) -> None:
    data = DashboardData(seed.post_store, seed.state_store, settings=health_settings())
    frame = data.source_health(now=runs)
    rows = _by_source(frame)
    m = timedelta(minutes=1)

    assert list(frame["source"]) == [
        "demo_forum",  # failing first
        "demo_complaints",  # then stale, by name
        "demo_weibo",
        "demo_news",  # then ok
        "old_forum",
    ]
    news = rows["demo_news"]
    assert news["status"] == "ok" and news["status_zh"] == "正常"
    assert news["runs"] == 3 and news["failed_runs"] == 1
    assert news["error_rate"] == pytest.approx(1 / 3)
    assert news["fetched_avg"] == pytest.approx(20 / 3)
    assert news["kept_avg"] == pytest.approx(16 / 3)
    assert news["dropped_avg"] == pytest.approx(4 / 3)
    assert (news["last_fetched"], news["last_kept"], news["last_dropped"]) == (12, 10, 2)
    assert news["last_run_local"] == data.to_local(runs - 1 * m)  # the one still running
    assert news["last_success_local"] == data.to_local(runs - 5 * m)
    assert news["last_message"] == ""

    forum = rows["demo_forum"]
    assert forum["status"] == "failing" and forum["last_run_ok"] is False
    assert forum["error_rate"] == pytest.approx(0.5)
    assert forum["last_success_local"] == data.to_local(runs - 13 * m)
    assert (forum["last_fetched"], forum["last_kept"], forum["last_dropped"]) == (0, 0, 0)
    assert "captcha page" in str(forum["last_message"])
    assert PHONE not in str(forum["last_message"]), "crawl messages must be PII-masked"

    assert rows["demo_complaints"]["status"] == "stale"
    assert rows["demo_complaints"]["error_rate"] == 0
    weibo = rows["demo_weibo"]
    assert weibo["status"] == "stale" and weibo["runs"] == 0
    assert pd.isna(weibo["last_run_local"]) and pd.isna(weibo["error_rate"])
    assert rows["old_forum"]["status"] == "ok"  # no schedule to be late against
    assert rows["old_forum"]["interval_minutes"] is None or pd.isna(
        rows["old_forum"]["interval_minutes"]
    )


def test_stale_threshold_is_three_intervals(seed: Seed, runs: datetime) -> None:
    data = DashboardData(seed.post_store, seed.state_store, settings=health_settings())
    # demo_news last started 1 min before `runs`: stale only once 3 × 10 min have passed.
    m = timedelta(minutes=1)
    assert _by_source(data.source_health(now=runs + 29 * m))["demo_news"]["status"] == "ok"
    assert _by_source(data.source_health(now=runs + 32 * m))["demo_news"]["status"] == "stale"


def test_last_success_older_than_the_window_is_still_found(seed: Seed) -> None:
    now = seed.now
    seed.state_store.record_crawl_run(_run("demo_news", now - timedelta(days=1), fetched=4))
    for i in range(5):
        seed.state_store.record_crawl_run(
            _run("demo_news", now - timedelta(minutes=10 * (5 - i)), ok=False, message="timeout")
        )
    data = DashboardData(seed.post_store, seed.state_store, settings=health_settings())
    news = _by_source(data.source_health(now=now, runs=3))["demo_news"]
    assert news["status"] == "failing" and news["error_rate"] == 1.0 and news["runs"] == 3
    assert news["last_success_local"] == data.to_local(now - timedelta(days=1))


@pytest.fixture
def overview(
    runs: datetime, store_paths: tuple[Path, str], monkeypatch: pytest.MonkeyPatch,
    fresh_streamlit_cache: None,
) -> Iterator[AppTest]:  # fmt: skip
    posts_path, state_url = store_paths
    monkeypatch.setenv("YUQING_TEST_POSTS_DB", str(posts_path))
    monkeypatch.setenv("YUQING_TEST_STATE_URL", state_url)
    monkeypatch.setenv("YUQING_TEST_PAGE", "overview")
    at = AppTest.from_file(str(ENTRY), default_timeout=30)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    yield at


def _health_table(at: AppTest) -> pd.DataFrame:
    tables = [d.value for d in at.dataframe if "数据源" in d.value.columns]
    assert len(tables) == 1, [list(d.value.columns) for d in at.dataframe]
    table: pd.DataFrame = tables[0]
    return table


def test_overview_shows_the_failing_source_first_with_its_numbers(
    overview: AppTest, seed: Seed
) -> None:
    assert "数据源健康" in [h.value for h in overview.subheader]
    assert any("1 个数据源最近一次采集失败" in e.value for e in overview.error)
    assert any("2 个数据源已超过 3 个采集周期没有运行" in w.value for w in overview.warning)

    table = _health_table(overview)
    # What the page shows is what the data module computes from the store.
    expected = DashboardData(
        seed.post_store, seed.state_store, settings=health_settings()
    ).source_health()
    assert list(table["数据源"]) == list(expected["source"])
    first = table.iloc[0]
    assert first["数据源"] == "demo_forum"
    assert first["状态"] == "🔴 失败"
    assert first["错误率（近20次）"] == "50%"
    assert first["最近一次抓取/保留/丢弃"] == "0 / 0 / 0"
    assert first["平均抓取/保留/丢弃"] == "10 / 8 / 2"  # (20+0)/2, (15+0)/2, (5+0)/2 rounded
    assert "captcha page" in first["最近错误"] and PHONE not in first["最近错误"]

    rows = table.set_index("数据源")
    assert rows.loc["demo_news", "状态"] == "🟢 正常"
    assert rows.loc["demo_news", "错误率（近20次）"] == "33%"
    assert rows.loc["demo_news", "最近一次抓取/保留/丢弃"] == "12 / 10 / 2"
    assert rows.loc["demo_complaints", "状态"] == "🟠 停滞"
    assert rows.loc["demo_weibo", "最近运行"] == "从未运行"
    assert rows.loc["demo_weibo", "错误率（近20次）"] == "—"
    assert rows.loc["old_forum", "状态"] == "🟢 正常"
