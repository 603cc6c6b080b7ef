"""Stable ids: one canonical URL (or platform id) → one post id, forever.

Crawling the same page twice, with tracking parameters shuffled or a fragment
added, must land on the same id so every write is an idempotent upsert.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters that identify a campaign or a visit, never the content.
TRACKING_PARAMS = frozenset(
    {
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
        "spm",
        "from",
        "share_token",
        "share_from",
        "isappinstalled",
        "fbclid",
        "gclid",
        "timestamp",
        "_t",
        "ref",
        "scene",
        "clicktime",
        "enterid",
    }
)

_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str) -> str:
    """Return the canonical form of ``url``.

    Lower-cases scheme and host, drops default ports, fragments and tracking
    parameters, sorts the remaining query parameters and removes a trailing
    slash from non-root paths. Raises ``ValueError`` if ``url`` is not an
    absolute http(s) URL.
    """
    raw = url.strip()
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    host = parts.hostname.lower().rstrip(".")
    port = parts.port
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = parts.path or "/"
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    query_pairs = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in TRACKING_PARAMS
    ]
    query = urlencode(sorted(query_pairs))
    return urlunsplit((scheme, netloc, path, query, ""))


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:24]


def post_id_from_url(url: str) -> str:
    """The stable post id of the page at ``url`` (24 hex chars of SHA-1 of its canonical URL)."""
    return _digest(canonical_url(url))


def post_id_from_platform(platform: str, native_id: str) -> str:
    """The stable post id of a platform item that has its own id (a Weibo mid, a complaint no.).

    Preferred over the URL when a platform serves one item under several URLs.
    """
    if not platform or not native_id:
        raise ValueError("platform and native_id must both be non-empty")
    return _digest(f"{platform.lower()}:{native_id.strip()}")


def content_hash(text: str) -> str:
    """Hash of the whitespace-normalised text, for exact-duplicate detection."""
    return _digest(" ".join(text.split()))
