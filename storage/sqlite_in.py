"""``WHERE x IN (…)`` over many values on SQLite, in chunks.

SQLite caps the number of host parameters in one statement (999 in older
builds), so look-ups by a long list of ids run once per chunk of values.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

IN_CHUNK = 500
"""Values per statement: well under SQLite's host-parameter limit."""


def rows_in(
    conn: sqlite3.Connection, sql: str, values: Sequence[Any], *, chunk: int = IN_CHUNK
) -> Iterator[Any]:
    """The rows of ``sql`` for every value of ``values``, one statement per chunk.

    ``sql`` has one ``{marks}`` slot where the ``?, ?, …`` of a chunk go (so it
    must hold no other braces). Rows come chunk by chunk, each chunk in the
    order ``sql`` gives; an empty ``values`` runs nothing.
    """
    for lo in range(0, len(values), chunk):
        part = values[lo : lo + chunk]
        yield from conn.execute(sql.format(marks=",".join("?" * len(part))), part)
