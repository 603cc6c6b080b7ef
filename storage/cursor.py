"""Opaque keyset-paging cursors shared by every PostStore adapter.

A cursor carries the sort key of the last hit of a page plus a fingerprint of
the query and the sort it came from, so a cursor can never be replayed against
another query (that would silently skip or repeat posts).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from typing import Any

from core.errors import QueryError
from core.models import PostQuery

SORT_KEY_LENGTHS = {"newest": 2, "oldest": 2, "relevance": 2, "risk": 3}
"""How many values the sort key of each sort order holds (the last one breaks ties)."""


def query_fingerprint(query: PostQuery, sort: str) -> str:
    """A short digest of ``query`` and ``sort``, stored in cursors to refuse foreign ones."""
    digest = hashlib.sha1(f"{sort}|{query.model_dump_json()}".encode(), usedforsecurity=False)
    return digest.hexdigest()[:16]


def encode_cursor(fingerprint: str, sort: str, key: list[Any]) -> str:
    """The cursor for the page after the hit whose sort key is ``key``."""
    raw = json.dumps({"q": fingerprint, "s": sort, "k": key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def decode_cursor(
    cursor: str, fingerprint: str, sort: str, *, tie_breaker: Callable[[Any], bool]
) -> list[Any]:
    """The sort key inside ``cursor``.

    Every value but the last must be a number; ``tie_breaker`` checks the last
    one (an adapter's unique id). Raises ``QueryError`` if the cursor is
    malformed or belongs to another query or sort.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        key = data["k"]
        ok = (
            isinstance(data, dict)
            and isinstance(key, list)
            and len(key) == SORT_KEY_LENGTHS[sort]
            and all(_is_number(v) for v in key[:-1])
            and tie_breaker(key[-1])
        )
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise QueryError(f"malformed cursor {cursor[:40]!r}") from exc
    if not ok:
        raise QueryError(f"malformed cursor {cursor[:40]!r}")
    if data.get("q") != fingerprint or data.get("s") != sort:
        raise QueryError("cursor belongs to a different query or sort; start from page one")
    return list(key)
