"""Benchmark of the dashboard: render time of the overview and the feed on a big local store.

Figures:

* ``overview_render_p95_ms`` — one full script run of the overview page
  (``streamlit.testing.v1.AppTest``: the real app, its widgets and every data
  call, minus the browser), p95 over ``RUNS`` runs per time range after a
  warm-up, over the three range presets (24 h, 7 d, 30 d).
* ``feed_render_p95_ms`` — the same for the feed page: the default view
  (7 days, newest first), a text search and a filtered view.
* ``dashboard_query_p95_ms`` — the :class:`dashboard.data.DashboardData` calls
  behind those pages, timed one by one (p95 of each in ``detail``).

The posts are ``bench_store``'s deterministic synthetic corpus (1,000,000;
20,000 with ``--quick``), built once into a cached SQLite file under
``var/bench/`` (``YUQING_BENCH_CACHE``) and reused by later runs: the corpus
is fixed by its seed, so the file is the same every time. ``bench_store``
still builds its own store, because building is what it measures.

The corpus ends at ``bench_store.END`` (a fixed date), so the bench's app
entry (:mod:`bench.dashboard_entry`) pins the pages' "now" to that date;
otherwise a "last 24 hours" window would hold no posts at all.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from bench.bench_store import BATCH, DAYS, END, SEED, SOURCES, Corpus, _percentile
from bench.results import Result

log = logging.getLogger(__name__)

RUNS = 10
"""Timed script runs per view (after one warm-up run)."""
RENDER_GOAL_MS = 1000
QUERY_GOAL_MS = 200
_CACHE_FORMAT = 1  # bump when the corpus or the store layout changes
_ENTRY = Path(__file__).with_name("dashboard_entry.py")


def cache_dir() -> Path:
    """Where built benchmark stores are kept (``YUQING_BENCH_CACHE``, default ``var/bench``)."""
    return Path(os.environ.get("YUQING_BENCH_CACHE", "var/bench"))


def cached_store(n: int) -> Path:
    """Path of a LocalPostStore file holding ``bench_store``'s first ``n`` corpus posts.

    Built on first use (a few minutes for 1M posts) into ``cache_dir()`` and
    reused while its stamp matches (``n``, seed, corpus end, format). A build
    that was interrupted leaves no stamp and is redone from scratch.
    """
    from nlp.segment import tokenize
    from storage.local import LocalPostStore

    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"local-posts-{n}-s{SEED}.db"
    stamp_path = path.with_suffix(".stamp.json")
    stamp = {
        "n": n,
        "seed": SEED,
        "end": END.isoformat(),
        "days": DAYS,
        "format": _CACHE_FORMAT,
    }
    # No schema version in the stamp: LocalPostStore upgrades an older file in place.
    if path.exists() and stamp_path.exists():
        try:
            if json.loads(stamp_path.read_text(encoding="utf-8")) == stamp:
                log.info("reusing the cached bench store %s", path)
                return path
        except (OSError, ValueError):
            pass  # an unreadable stamp: rebuild
    stamp_path.unlink(missing_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)

    corpus = Corpus(tokenize_fragment=tokenize)
    store = LocalPostStore(path, lambda text: corpus.tokens[text])
    start = time.perf_counter()
    done = 0
    try:
        for batch in corpus.posts(n):
            result = store.upsert(batch)
            if result.failed:
                raise RuntimeError(f"bench store build: {result.failed} posts failed: {result}")
            done += len(batch)
            if done % (50 * BATCH) == 0:
                log.info("bench store: %d/%d posts (%.0f s)", done, n, time.perf_counter() - start)
        store.optimize()
    finally:
        store.close()
    stamp_path.write_text(json.dumps(stamp), encoding="utf-8")
    log.info("built bench store %s (%d posts) in %.0f s", path, n, time.perf_counter() - start)
    return path


def _seed_state(state_url: str, post_ids: list[str]) -> None:
    """A realistic state database: incidents (some open) and crawl runs of every source."""
    from core.models import CrawlRun, Incident
    from core.vocab import Grade, IncidentStatus, Topic
    from storage.state import SqlStateStore

    state = SqlStateStore(state_url)
    try:
        grades = list(Grade)
        for i in range(40):
            opened = END - timedelta(hours=6 * i + 1)
            status = IncidentStatus.OPEN if i < 8 else IncidentStatus.RESOLVED
            resolved = None if status is IncidentStatus.OPEN else opened + timedelta(hours=3)
            state.save_incident(
                Incident(
                    rule="volume_spike",
                    key=f"topic:{list(Topic)[i % len(Topic)].value}",
                    title=f"澜海银行舆情事件 {i}",
                    grade=grades[i % len(grades)],
                    status=status,
                    opened_at=opened,
                    updated_at=opened + timedelta(minutes=30),
                    resolved_at=resolved,
                    post_count=len(post_ids),
                    peak_count=len(post_ids),
                    post_ids=post_ids,
                    sources=[s for s, _ in SOURCES[:3]],
                )
            )
        for source, _ in SOURCES:
            for k in range(100):
                started = END - timedelta(minutes=10 * k + 5)
                state.record_crawl_run(
                    CrawlRun(
                        source=source,
                        started_at=started,
                        finished_at=started + timedelta(seconds=50),
                        ok=k % 17 != 3,
                        fetched=40 + k % 7,
                        kept=30 + k % 5,
                        dropped={"no_mention": 5, "duplicate": k % 4},
                        errors=0 if k % 17 != 3 else 1,
                        message="" if k % 17 != 3 else "HTTP 503 from the site",
                    )
                )
    finally:
        state.close()


def _time_ms(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm-up: connections, page cache, Streamlit's caches
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def _render_views(runs: int) -> dict[str, dict[str, list[float]]]:
    """Render timings (ms) per page and view, through AppTest over the bench entry script."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from core.vocab import Sentiment

    views: dict[str, dict[str, dict[str, object]]] = {
        "overview": {
            "24h": {"overview_range": "24h"},
            "7d": {"overview_range": "7d"},
            "30d": {"overview_range": "30d"},
        },
        "feed": {
            "7d": {},
            "text": {"feed_text": "理财 亏损"},
            "filtered": {
                "feed_sentiments": [Sentiment.NEGATIVE],
                "feed_sources": [SOURCES[0][0], SOURCES[2][0]],
                "feed_min_risk": 0.3,
            },
            "all_text": {"feed_text": "挤兑", "feed_range": "all"},
        },
    }
    st.cache_resource.clear()
    timings: dict[str, dict[str, list[float]]] = {}
    for page, page_views in views.items():
        os.environ["YUQING_BENCH_PAGE"] = page
        timings[page] = {}
        for view, state in page_views.items():
            at = AppTest.from_file(str(_ENTRY), default_timeout=300)
            for key, value in state.items():
                at.session_state[key] = value

            def render(at: AppTest = at, page: str = page, view: str = view) -> None:
                at.run()
                if at.exception:
                    raise RuntimeError(f"{page}/{view}: {[e.value for e in at.exception]}")

            timings[page][view] = _time_ms(render, runs)
            log.info("%s/%s: p95 %.0f ms", page, view, _percentile(timings[page][view], 95))
    st.cache_resource.clear()  # closes the stores
    return timings


def _query_timings(posts_path: Path, state_url: str, runs: int) -> dict[str, list[float]]:
    """The DashboardData calls behind the two pages, timed one by one (ms)."""
    from core.vocab import Sentiment
    from dashboard.data import ACTIVE_STATUSES, DashboardData
    from nlp.segment import tokenize
    from storage.local import LocalPostStore
    from storage.state import SqlStateStore

    data = DashboardData(LocalPostStore(posts_path, tokenize), SqlStateStore(state_url))
    day = timedelta(days=1)
    try:
        calls: dict[str, Callable[[], object]] = {
            "kpis_24h": lambda: data.kpis(END - day, END),
            "kpis_30d": lambda: data.kpis(END - 30 * day, END),
            "volume_24h": lambda: data.volume_over_time(END - day, END, 3600),
            "volume_30d": lambda: data.volume_over_time(END - 30 * day, END, 86400),
            "topic_mix_30d": lambda: data.topic_mix(END - 30 * day, END),
            "source_mix_30d": lambda: data.source_mix(END - 30 * day, END),
            "open_incidents": lambda: data.incidents(ACTIVE_STATUSES),
            "source_health": lambda: data.source_health(now=END),
            "sources": data.sources,
            "feed_7d": lambda: data.feed(since=END - 7 * day, until=END),
            "feed_text": lambda: data.feed(text="理财 亏损", since=END - 7 * day, until=END),
            "feed_filtered": lambda: data.feed(
                since=END - 7 * day,
                until=END,
                sentiments=[Sentiment.NEGATIVE],
                sources=[SOURCES[0][0], SOURCES[2][0]],
                min_risk=0.3,
            ),
            "feed_text_all": lambda: data.feed(text="挤兑"),
            "incident_detail_50": lambda: data.incident_detail(1),
        }
        return {name: _time_ms(fn, runs) for name, fn in calls.items()}
    finally:
        data.close()


def run(quick: bool) -> list[Result]:
    """Render the overview and the feed over N cached posts (1,000,000; 20,000 when ``quick``)."""
    from core.models import PostQuery
    from nlp.segment import tokenize
    from storage.local import LocalPostStore

    n = 20_000 if quick else 1_000_000
    runs = 3 if quick else RUNS
    posts_path = cached_store(n)
    store = LocalPostStore(posts_path, tokenize)
    try:
        recent = store.search(PostQuery(since=END - timedelta(days=1), until=END), limit=50)
        post_ids = [hit.post.id for hit in recent.hits]
    finally:
        store.close()

    with tempfile.TemporaryDirectory(prefix="yuqing-bench-dash-") as tmp:
        state_url = f"sqlite:///{Path(tmp) / 'state.db'}"
        _seed_state(state_url, post_ids)
        os.environ["YUQING_BENCH_POSTS_DB"] = str(posts_path)
        os.environ["YUQING_BENCH_STATE_URL"] = state_url
        renders = _render_views(runs)
        queries = _query_timings(posts_path, state_url, runs)

    def p95(samples: list[float]) -> float:
        return _percentile(samples, 95)

    def per_view(page: str) -> str:
        return ", ".join(f"{v} {p95(s):.0f}" for v, s in renders[page].items())

    query_p95 = {name: p95(s) for name, s in queries.items()}
    worst = max(query_p95, key=query_p95.__getitem__)
    common = (
        f"N={n:,} posts (bench_store corpus, cached in {posts_path.parent}); AppTest script "
        f"runs of the real app, {runs} timed runs per view after a warm-up"
    )
    results = []
    for page, figure in (("overview", "overview_render_p95_ms"), ("feed", "feed_render_p95_ms")):
        samples = [t for ts in renders[page].values() for t in ts]
        results.append(
            Result(
                name=figure,
                value=round(p95(samples), 1),
                unit="ms",
                goal=RENDER_GOAL_MS,
                better="lower",
                detail=(
                    f"{common}; p95 over all views; per view p95 ms: {per_view(page)}; "
                    f"median {statistics.median(samples):.0f} ms"
                ),
            )
        )
    results.append(
        Result(
            name="dashboard_query_p95_ms",
            value=round(query_p95[worst], 1),
            unit="ms",
            goal=QUERY_GOAL_MS,
            better="lower",
            detail=(
                f"N={n:,} posts; the DashboardData calls behind the overview, feed and incident "
                f"room, {runs} runs each; value = the slowest call's p95 ({worst}); per call "
                "p95 ms: " + ", ".join(f"{k} {v:.1f}" for k, v in query_p95.items())
            ),
        )
    )
    return results


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for res in run(quick="--full" not in sys.argv):
        print(f"{res.name} = {res.value:g} {res.unit} (goal {res.goal}, {res.better} is better)")
        print(f"    {res.detail}")
