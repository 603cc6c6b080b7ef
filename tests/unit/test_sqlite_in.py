"""Chunked ``IN (…)`` look-ups return every row, however many values are asked for."""

from __future__ import annotations

import sqlite3

from storage.sqlite_in import rows_in


def test_rows_in_spans_chunks_and_skips_missing_values() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(f"id{i}", i) for i in range(1200)])
    wanted = [f"id{i}" for i in range(0, 1200, 2)] + ["missing"]
    got = dict(rows_in(conn, "SELECT id, n FROM t WHERE id IN ({marks})", wanted, chunk=250))
    assert got == {f"id{i}": i for i in range(0, 1200, 2)}
    assert list(rows_in(conn, "SELECT id FROM t WHERE id IN ({marks})", [])) == []
