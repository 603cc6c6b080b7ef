"""Benchmark of the Elasticsearch PostStore (``storage.elastic.ElasticPostStore``).

Same synthetic posts and the same dashboard query mix as ``bench_store`` (the
local store), so the figures sit side by side in ``bench/results.json``:

* ``es_ingest_posts_per_s`` — posts upserted per second through
  ``ElasticPostStore.upsert`` (bulk API, batches of ``bench_store.BATCH``,
  ``refresh=False`` as a crawler writes; one refresh at the end is included).
  Tokenizing is excluded as in ``bench_store`` (pre-segmented texts).
* ``es_query_p95_ms`` — p95 latency of the dashboard query mix.

The server: ``$YUQING_BENCH_ES_URL`` if set (a real cluster; an index prefix
``yuqing-bench-<random>`` is created and deleted), otherwise the noida-db
Elasticsearch-compatible test server from PyPI, started for the run. noida-db
is *not* a performance reference: its full-text search scans linearly (tens of
seconds per query at 100k documents), so it holds ``N_FULL`` posts (10,000),
and its figures say how the adapter behaves, not how Elasticsearch scales —
see docs/scaling.md for that.
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.bench_store import BATCH, DAYS, Corpus, _percentile, _query_mix
from bench.results import Result
from core.models import PostQuery

log = logging.getLogger(__name__)

URL_ENV = "YUQING_BENCH_ES_URL"
N_FULL = 10_000
N_QUICK = 2_000


@contextmanager
def _server() -> Iterator[tuple[str, str]]:
    """(URL, description) of the cluster to measure."""
    url = os.environ.get(URL_ENV)
    if url:
        yield url, "the cluster at $YUQING_BENCH_ES_URL"
        return
    from tests.es_server import noida_elasticsearch

    with (
        tempfile.TemporaryDirectory(prefix="yuqing-bench-es-") as tmp,
        noida_elasticsearch(Path(tmp)) as noida,
    ):
        yield noida, "the noida-db 0.2 test server (not a performance reference)"


def run(quick: bool) -> list[Result]:
    """Fill an index with N posts (10,000; 2,000 when ``quick``), time ingest and queries."""
    from nlp.segment import tokenize
    from storage.elastic import ElasticPostStore

    n = N_QUICK if quick else N_FULL
    corpus = Corpus(tokenize_fragment=tokenize)

    def lookup(text: str) -> list[str]:
        return corpus.tokens[text]

    prefix = f"yuqing-bench-{uuid.uuid4().hex[:8]}"
    with _server() as (url, where):
        writer = ElasticPostStore(
            url, lookup, index_prefix=prefix, number_of_replicas=0, refresh=False
        )
        try:
            writer.ensure_index()
            upsert_s = 0.0
            for batch in corpus.posts(n):
                t0 = time.perf_counter()
                result = writer.upsert(batch)
                upsert_s += time.perf_counter() - t0
                if result.failed:
                    raise RuntimeError(f"{result.failed} posts refused: {result.errors[:3]}")
            t0 = time.perf_counter()
            writer.client.indices.refresh(index=writer.read_alias)
            upsert_s += time.perf_counter() - t0
            ingest_rate = n / upsert_s
            # Queries use the real tokenizer, as the dashboard does.
            reader = ElasticPostStore(url, tokenize, index_prefix=prefix)
            try:
                stored = reader.count(PostQuery())
                if stored != n:
                    raise RuntimeError(f"expected {n} posts in the index, found {stored}")
                timings = _query_mix(reader, reps=10 if quick else 20)
            finally:
                reader.close()
        finally:
            writer.drop_everything()
            writer.close()

    all_ms = [t for ts in timings.values() for t in ts]
    p95 = _percentile(all_ms, 95)
    per_query = ", ".join(f"{k} {_percentile(v, 95):.1f}" for k, v in timings.items())
    return [
        Result(
            name="es_ingest_posts_per_s",
            value=round(ingest_rate),
            unit="posts/s",
            goal=None,
            better="higher",
            detail=(
                f"N={n:,} synthetic posts over {DAYS} days into {where}, bulk batches of "
                f"{BATCH} through ElasticPostStore.upsert (id lookup + streaming_bulk, "
                "refresh at the end); jieba tokenizing excluded (pre-segmented). Not "
                "comparable to a real cluster, which indexes far faster per node."
            ),
        ),
        Result(
            name="es_query_p95_ms",
            value=round(p95, 1),
            unit="ms",
            goal=None,
            better="lower",
            detail=(
                f"N={n:,} posts on {where}; p95 over {len(all_ms)} dashboard queries "
                f"(same mix as local_query_p95_ms); per query p95 ms: {per_query}; median "
                f"{statistics.median(all_ms):.1f} ms. noida-db's full-text search is a "
                "linear scan, so N is kept small; the local store's figure is at 1M posts."
            ),
        ),
    ]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for res in run(quick=True):
        print(f"{res.name} = {res.value:g} {res.unit} ({res.better} is better)")
        print(f"    {res.detail}")
