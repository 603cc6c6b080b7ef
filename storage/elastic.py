"""The scale-out PostStore: Elasticsearch 8 through the official client.

Layout (all names derive from ``index_prefix``, default ``yuqing-posts``)::

    <prefix>                      read alias over every post index (searches)
    <prefix>-write                write alias, exactly one index (new posts)
    <prefix>-v1-<utc stamp>-000001  a concrete, time-based index; ILM (or a
                                  manual rollover) adds -000002, -000003 …
    index template <prefix>       storage/mappings/posts.v<N>.json, applied to
                                  <prefix>-* (mapping "dynamic": false)

Nothing is created implicitly: :meth:`ElasticPostStore.ensure_index` (``yuqing
index init``) installs the template and the first index behind both aliases.
Until then every call raises :class:`IndexNotInitialised`, a
``StoreUnavailable`` so that the crawler spools its batches instead of losing
them.

Each document keeps the whole :class:`core.models.Post` as JSON in ``post``
(stored, not indexed) beside the indexed copies the queries need: keywords
(source, platform, sentiment, topic, signals, entities, author), ``risk``
(``-1`` when not analysed, so keyset sorting needs no "missing" value),
``published_at`` floored to the second, and ``text_seg``: the injected
tokenizer's tokens of title and text, space-joined and analysed by
``whitespace`` + ``lowercase`` (no analysis plugin, same tokens as the local
store).

Semantics are those of :mod:`storage.local` (one contract suite runs against
both): list filter = any listed value, an empty list matches nothing; blank text
is no filter, text with nothing searchable matches nothing, every token must
appear and user text is never query syntax; ``terms`` ties by value ascending;
grouped histograms skip posts lacking the field; times compared to the second;
a keyset cursor is bound to its query and sort. Every aggregation runs in
Elasticsearch; no method pulls documents into Python to count them.

Errors: ``StoreUnavailable`` (message names the URL) when the cluster cannot be
reached or keeps answering 429/5xx after retries with backoff;
``PermanentStoreError`` for refused credentials or privileges (the URL is named,
secrets never); ``QueryError`` for a request that can never be answered. No
call returns an empty result because something failed.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from importlib.resources import files
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TlsError, TransportError
from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    Elasticsearch,
    NotFoundError,
    helpers,
)
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from core.errors import PermanentStoreError, QueryError, StoreError, StoreUnavailable
from core.models import Bucket, Post, PostHit, PostQuery, SearchPage, TermCount, UpsertResult
from core.ports import SHANGHAI_OFFSET_MINUTES, SortOrder, TermField, Tokenizer
from storage.local import is_searchable, make_snippet

if TYPE_CHECKING:
    from core.settings import Settings

from storage.cursor import decode_cursor, encode_cursor, query_fingerprint


def _is_doc_id(value: object) -> bool:
    """Is ``value`` the unique tie-breaker that ends a sort key here?"""
    return isinstance(value, str)


log = logging.getLogger(__name__)

MAPPING_VERSION = 2  # v2: content_hash (exact-duplicate look-ups) and duplicates
MAX_PAGE_SIZE = 1000
MAX_TERMS_SIZE = 10_000
# Values per time bucket in a grouped histogram. The dashboard groups by
# low-cardinality fields (sentiment, topic, source); Elasticsearch counts only
# the (bucket, value) pairs that exist against search.max_buckets (65,536), and
# a request over it becomes a QueryError that says to narrow it.
MAX_GROUP_VALUES = 200
# Lucene refuses a boolean query with too many clauses (1024 on small heaps).
# A query text with more distinct words keeps the first ones: the answer can
# only grow (a superset), never silently lose the posts that match.
MAX_QUERY_TOKENS = 1000
_LOOKUP_CHUNK = 1000
_TEMPORARY_STATUS = frozenset({429, 502, 503, 504})
_FIELDS: dict[str, str] = {
    "source": "source",
    "platform": "platform",
    "sentiment": "sentiment",
    "topic": "topic",
    "signals": "signals",
    "entities": "entities",
    "author": "author",
}
_SURROGATE = re.compile("[\ud800-\udfff]")
_MARKED = re.compile("【([^【】]+)】")
T = TypeVar("T")


class IndexNotInitialised(StoreUnavailable):
    """The aliases do not exist yet: run ``yuqing index init``.

    A ``StoreUnavailable`` on purpose: writers spool their batches and replay
    them once the index exists, so nothing is lost while an operator acts.
    """


def redact_url(url: str) -> str:
    """``url`` without user-info (``https://user:pw@host`` → ``https://host``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def load_template(version: int = MAPPING_VERSION) -> dict[str, Any]:
    """The index template body of mapping ``version`` (``storage/mappings/posts.v<N>.json``)."""
    text = files("storage.mappings").joinpath(f"posts.v{version}.json").read_text("utf-8")
    body = json.loads(text)
    body.pop("_comment", None)
    return body


def _scrub(value: Any) -> Any:
    """``value`` with lone surrogates replaced by U+FFFD (they cannot be encoded as UTF-8)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _iso_second(value: datetime) -> str:
    """An aware datetime as ISO-8601 UTC floored to the second (the contract's resolution)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise QueryError(f"datetime must be timezone-aware, got {value!r}")
    utc = value.astimezone(UTC).replace(microsecond=0)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}Z"


def _tz_string(offset_minutes: int) -> str:
    """A fixed ``±HH:MM`` zone (named zones give wrong buckets on the test server)."""
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(int(offset_minutes)), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def _from_millis(ms: int | float) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(ms))


def build_document(post: Post, tokens: Sequence[str], *, indexed_at: datetime) -> dict[str, Any]:
    """The Elasticsearch ``_source`` of ``post``: indexed copies plus the whole Post as JSON."""
    a = post.analysis
    entities = set(post.matched_entities) | (set(a.entities) if a else set())
    doc: dict[str, Any] = {
        "id": post.id,
        "published_at": _iso_second(post.published_at),
        "indexed_at": _iso_second(indexed_at),
        "source": post.source,
        "platform": post.platform.value,
        "signals": sorted(set(a.signal_names)) if a else [],
        "entities": sorted(entities),
        "risk": a.risk_score if a else -1.0,
        "critical": bool(a and a.critical),
        "text_seg": " ".join(t for t in tokens if t.strip()),
        "content_hash": post.content_hash,
        "duplicates": post.duplicates,
        "post": post.model_dump(mode="json"),
    }
    if a is not None:
        doc.update(sentiment=a.sentiment.value, topic=a.topic.value, model_version=a.model_version)
    if post.author is not None:
        doc["author"] = post.author
    return _scrub(doc)


@dataclass
class IndexInfo:
    """What :meth:`ElasticPostStore.ensure_index` found or created."""

    template: str
    read_alias: str
    write_alias: str
    write_index: str
    created: bool
    indices: list[str] = field(default_factory=list)


def _same_length(posts: list[Post], analysed: list[Post]) -> list[Post]:
    """``analysed`` when it has one post per post of ``posts``; a re-analysis that
    returned fewer (or more) must not drop posts silently, so it raises."""
    if len(analysed) != len(posts):
        raise ValueError(f"re-analysis returned {len(analysed)} posts for {len(posts)}")
    return analysed


@dataclass
class RebuildReport:
    """Outcome of :meth:`ElasticPostStore.rebuild`."""

    new_index: str
    old_indices: list[str]
    copied: int
    failed: int
    deleted_old: bool
    errors: list[str] = field(default_factory=list)
    # Copied with the analysis they had, because re-analysing them raised.
    not_reanalysed: int = 0


class ElasticPostStore:
    """A :class:`core.ports.PostStore` on Elasticsearch 8 (see the module docstring).

    ``client_or_url`` is a ready ``Elasticsearch`` client (not closed by
    :meth:`close`) or a URL (the store builds and owns a client with the given
    credentials; TLS certificates are verified unless ``verify_certs=False``).
    ``tokenizer`` must be the one used for the local store
    (``nlp.segment.tokenize`` in production).

    ``retries``/``backoff_seconds``: temporary failures (connection errors,
    429, 502-504, per-document 429/5xx in bulk) are retried with exponential
    backoff before ``StoreUnavailable`` is raised. ``refresh="wait_for"`` makes
    an upsert visible to the next read (the contract's read-your-writes); pass
    ``False`` for bulk loads that do not read back at once.
    """

    def __init__(
        self,
        client_or_url: Elasticsearch | str,
        tokenizer: Tokenizer,
        *,
        index_prefix: str = "yuqing-posts",
        api_key: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        ca_certs: str | None = None,
        verify_certs: bool = True,
        request_timeout: float = 30.0,
        number_of_shards: int | None = None,
        number_of_replicas: int | None = None,
        retries: int = 3,
        backoff_seconds: float = 0.5,
        refresh: bool | str = "wait_for",
    ) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", index_prefix):
            raise ValueError(f"index_prefix must be a lower-case index name, got {index_prefix!r}")
        if isinstance(client_or_url, str):
            self._url = redact_url(client_or_url)
            kwargs: dict[str, Any] = {
                "request_timeout": request_timeout,
                "verify_certs": verify_certs,
                # Retries with backoff are ours (tenacity); the transport's are immediate.
                "max_retries": 0,
            }
            if api_key:
                kwargs["api_key"] = api_key
            if basic_auth:
                kwargs["basic_auth"] = basic_auth
            if ca_certs:
                kwargs["ca_certs"] = ca_certs
            self._client = Elasticsearch(client_or_url, **kwargs)
            self._owns_client = True
        else:
            self._client = client_or_url
            self._owns_client = False
            nodes = [redact_url(str(n.base_url)) for n in client_or_url.transport.node_pool.all()]
            self._url = ", ".join(nodes) or "<elasticsearch>"
        self._tokenizer = tokenizer
        self.prefix = index_prefix
        self.read_alias = index_prefix
        self.write_alias = f"{index_prefix}-write"
        self._shards = number_of_shards
        self._replicas = number_of_replicas
        self._retries = max(0, int(retries))
        self._backoff = max(0.0, float(backoff_seconds))
        self._refresh = refresh
        self._closed = False

    @property
    def url(self) -> str:
        """The cluster URL(s), without credentials."""
        return self._url

    @property
    def client(self) -> Elasticsearch:
        return self._client

    def __repr__(self) -> str:
        return f"ElasticPostStore({self._url!r}, index_prefix={self.prefix!r})"

    # ------------------------------------------------------------------ errors and retries

    def _translate(self, exc: BaseException, action: str) -> StoreError:
        where = f"Elasticsearch at {self._url}"
        if isinstance(exc, AuthenticationException):
            return PermanentStoreError(
                f"{where} refused the credentials ({action}): check YUQING_STORAGE__ES_API_KEY "
                "or YUQING_STORAGE__ES_USERNAME / YUQING_STORAGE__ES_PASSWORD"
            )
        if isinstance(exc, AuthorizationException):
            return PermanentStoreError(
                f"{where}: the configured user may not {action} on {self.prefix!r}: {_reason(exc)}"
            )
        if isinstance(exc, NotFoundError) and _is_index_missing(exc):
            return IndexNotInitialised(
                f"{where}: index alias {self.read_alias!r} does not exist ({action}); "
                "run `yuqing index init`"
            )
        if isinstance(exc, TlsError):
            return StoreUnavailable(
                f"{where}: TLS handshake failed ({action}); set YUQING_STORAGE__ES_CA_CERTS "
                f"to the cluster's CA certificate: {exc}"
            )
        if isinstance(exc, TransportConnectionError | ConnectionTimeout | TransportError):
            return StoreUnavailable(f"{where} unreachable ({action}): {exc}")
        if isinstance(exc, ApiError) and _too_many_buckets(exc):
            return QueryError(
                f"{where}: the {action} would create too many buckets; use a shorter time "
                "range or wider buckets"
            )
        if isinstance(exc, ApiError):
            if exc.meta.status in _TEMPORARY_STATUS or exc.meta.status >= 500:
                return StoreUnavailable(
                    f"{where} unavailable ({action}): HTTP {exc.meta.status} {_reason(exc)}"
                )
            return QueryError(f"{where} rejected the {action}: {_reason(exc)}")
        return StoreUnavailable(f"{where} failed ({action}): {exc!r}")

    def _call(self, action: str, fn: Callable[[], T]) -> T:
        """Run one request: retry temporary failures with backoff, translate the rest."""
        if self._closed and self._owns_client:
            raise StoreUnavailable(f"Elasticsearch store {self._url} is closed ({action})")
        retrying = Retrying(
            retry=retry_if_exception(_is_temporary),
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_exponential(multiplier=self._backoff, max=max(self._backoff * 16, 0.0)),
            reraise=True,
        )
        try:
            return retrying(fn)
        except (ApiError, TransportError) as exc:
            err = self._translate(exc, action)
            if isinstance(err, StoreUnavailable):
                log.warning("%s", err)
            raise err from exc
        except RetryError as exc:  # pragma: no cover - reraise=True makes this unreachable
            raise StoreUnavailable(f"Elasticsearch at {self._url}: {action} failed") from exc

    # ------------------------------------------------------------------ index management

    def template_body(self) -> dict[str, Any]:
        """The index template this store installs (mapping file + prefix, aliases, overrides)."""
        body = load_template()
        settings = body["template"]["settings"]
        if self._shards is not None:
            settings["number_of_shards"] = self._shards
        if self._replicas is not None:
            settings["number_of_replicas"] = self._replicas
        # New indices from a rollover (ILM) join the read alias by themselves.
        body["template"]["aliases"] = {self.read_alias: {}}
        body["index_patterns"] = [f"{self.prefix}-*"]
        body["version"] = MAPPING_VERSION
        body["priority"] = 200
        body["meta"] = {"managed_by": "yuqing", "mapping_version": MAPPING_VERSION}
        return body

    def _new_index_name(self) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
        return f"{self.prefix}-v{MAPPING_VERSION}-{stamp}-000001"

    def ensure_index(self) -> IndexInfo:
        """Install the index template and, if there is none, the first index behind both aliases.

        Idempotent: re-running only refreshes the template (new indices use it;
        existing ones keep their mapping — change those with :meth:`rebuild`).
        Raises ``StoreUnavailable`` / ``PermanentStoreError`` like every call.
        """
        body = self.template_body()
        self._call(
            "put index template",
            lambda: self._client.indices.put_index_template(name=self.prefix, **body),
        )
        existing = self.write_indices()
        created = False
        if existing:
            write_index = existing[0]
        else:
            write_index = self._new_index_name()
            self._call(
                "create index",
                lambda: self._client.indices.create(
                    index=write_index,
                    aliases={self.write_alias: {"is_write_index": True}, self.read_alias: {}},
                ),
            )
            created = True
            log.info(
                "created index %s behind %s and %s", write_index, self.write_alias, self.read_alias
            )
        return IndexInfo(
            template=self.prefix,
            read_alias=self.read_alias,
            write_alias=self.write_alias,
            write_index=write_index,
            created=created,
            indices=self.read_indices(),
        )

    def _alias_indices(self, alias: str) -> list[str]:
        def read() -> dict[str, Any]:
            try:
                return dict(self._client.indices.get_alias(name=alias).body)
            except NotFoundError:
                # Only "no such alias" means "no indices yet" (before `yuqing index init`);
                # any other refusal is an error the caller must see.
                return {}

        body = self._call("read aliases", read)
        return sorted(name for name, spec in body.items() if alias in spec.get("aliases", {}))

    def write_indices(self) -> list[str]:
        """The index behind the write alias (empty before ``ensure_index``)."""
        return self._alias_indices(self.write_alias)

    def read_indices(self) -> list[str]:
        """The indices behind the read alias, sorted (empty before ``ensure_index``)."""
        return self._alias_indices(self.read_alias)

    def drop_everything(self) -> None:
        """Delete every index of this prefix and its template (tests and ``index rebuild`` only)."""
        indices = sorted(set(self.read_indices()) | set(self.write_indices()))
        for name in indices:
            self._call("delete index", partial(self._client.indices.delete, index=name))
        try:
            self._call(
                "delete template",
                lambda: self._client.indices.delete_index_template(name=self.prefix),
            )
        except (QueryError, StoreUnavailable):
            log.debug("no template %s to delete", self.prefix)

    # ------------------------------------------------------------------ writes

    def upsert(self, posts: Sequence[Post]) -> UpsertResult:
        """Insert or replace ``posts`` by id with the bulk API; idempotent.

        Every input is counted once: ``inserted``, ``updated`` (id already
        stored, or repeated earlier in the batch — the last occurrence wins) or
        ``failed`` (tokenizer failure or a document Elasticsearch refuses for
        good, reason in ``errors`` and a log line). A post already stored in an
        older (rolled-over) index is replaced where it lives, never duplicated.

        Temporary per-document failures (429, 5xx) are retried with backoff;
        if some remain, or the cluster cannot be reached, ``StoreUnavailable``
        is raised and the caller spools the whole batch (replaying it is
        harmless: upserts are idempotent).
        """
        errors: list[str] = []
        docs: dict[str, dict[str, Any]] = {}
        repeats = 0
        now = datetime.now(UTC)
        for post in posts:
            try:
                tokens = self._tokenizer(f"{post.title}\n{post.text}")
            except Exception as exc:  # third-party tokenizer: a per-post permanent failure
                errors.append(f"{post.id}: tokenizer failed: {exc!r}")
                log.warning("post %s not indexed: tokenizer failed: %r", post.id, exc)
                continue
            if post.id in docs:
                repeats += 1
                del docs[post.id]  # re-insert so the batch keeps the last occurrence's order
            docs[post.id] = build_document(post, tokens, indexed_at=now)
        if not docs:
            return UpsertResult(failed=len(errors), errors=errors)

        where = self._locate(list(docs))
        pending = {
            pid: {
                "_op_type": "index",
                "_index": where.get(pid, self.write_alias),
                "_id": pid,
                "_source": doc,
            }
            for pid, doc in docs.items()
        }
        inserted = updated = 0
        for attempt in range(self._retries + 1):
            temporary: dict[str, str] = {}
            for pid, outcome, reason in self._bulk(list(pending.values())):
                if outcome == "created":
                    inserted += 1
                elif outcome in ("updated", "duplicate"):
                    updated += 1
                elif outcome == "temporary":
                    temporary[pid] = reason
                    continue
                else:
                    errors.append(f"{pid}: {reason}")
                    log.warning(
                        "post %s refused by Elasticsearch at %s: %s", pid, self._url, reason
                    )
                pending.pop(pid, None)
            if not temporary:
                break
            if attempt < self._retries:
                delay = min(self._backoff * 2**attempt, self._backoff * 16)
                log.info("retrying %d posts after temporary errors in %.1fs", len(temporary), delay)
                time.sleep(delay)
        else:
            sample = "; ".join(f"{k}: {v}" for k, v in list(temporary.items())[:3])
            raise StoreUnavailable(
                f"Elasticsearch at {self._url} kept refusing {len(temporary)} of {len(docs)} "
                f"posts with temporary errors ({sample}); spool the batch and retry"
            )
        return UpsertResult(
            inserted=inserted,
            updated=updated + repeats,
            failed=len(errors),
            errors=errors,
        )

    def _hits_by_ids(self, action: str, ids: Sequence[str], **source: Any) -> Iterator[Any]:
        """The hits of an ``ids`` search over the read alias, one search per chunk of ids.

        ``source`` is the ``_source`` filter (``source=False`` or
        ``source_includes=[...]``). An id may hit twice while an index rebuild
        overlaps the old and the new index; callers keep the first hit.
        Raises ``StoreUnavailable`` on failure.
        """
        for lo in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = list(ids[lo : lo + _LOOKUP_CHUNK])
            resp = self._call(
                action,
                partial(
                    self._client.search,
                    index=self.read_alias,
                    query={"ids": {"values": chunk}},
                    # Room for a second copy while a rebuild overlaps (first wins).
                    size=min(2 * len(chunk), 10_000),
                    track_total_hits=False,
                    **source,
                ),
            )
            yield from resp["hits"]["hits"]

    def _locate(self, ids: list[str]) -> dict[str, str]:
        """Concrete index of each id already stored (so updates never duplicate across indices)."""
        found: dict[str, str] = {}
        for hit in self._hits_by_ids("look up existing posts", ids, source=False):
            found.setdefault(hit["_id"], hit["_index"])
        return found

    def _bulk(self, actions: list[dict[str, Any]]) -> Iterator[tuple[str, str, str]]:
        """(id, outcome, reason) per action: created/updated/duplicate/temporary/permanent."""

        def expand(
            data: bytes | str | dict[str, Any],
        ) -> tuple[dict[str, Any], bytes | dict[str, Any] | None]:
            header, body = helpers.expand_action(data)
            if isinstance(data, dict) and data["_index"] == self.write_alias:
                # Never let a missing alias auto-create an index with a guessed mapping.
                header["index"]["require_alias"] = True
            return header, body

        def run() -> list[tuple[bool, dict[str, Any]]]:
            return list(
                helpers.streaming_bulk(
                    self._client,
                    actions,
                    chunk_size=500,
                    max_chunk_bytes=20 * 1024 * 1024,
                    raise_on_error=False,
                    raise_on_exception=True,
                    expand_action_callback=expand,
                    # streaming_bulk retries per-document 429s itself, with backoff.
                    max_retries=self._retries,
                    initial_backoff=max(self._backoff, 0.01),
                    max_backoff=max(self._backoff * 16, 0.01),
                    refresh=self._refresh,
                )
            )

        for ok, item in self._call(f"bulk upsert of {len(actions)} posts", run):
            info = next(iter(item.values()))
            pid = str(info.get("_id"))
            status = int(info.get("status", 0))
            if ok:
                yield pid, str(info.get("result", "updated")), ""
                continue
            error = info.get("error", {})
            kind = error.get("type", "") if isinstance(error, dict) else ""
            reason = _item_reason(error)
            if status == 409:
                yield pid, "duplicate", reason
            elif status in _TEMPORARY_STATUS or status >= 500:
                yield pid, "temporary", f"HTTP {status} {reason}"
            elif kind == "index_not_found_exception" or "require_alias" in reason:
                raise IndexNotInitialised(
                    f"Elasticsearch at {self._url}: write alias {self.write_alias!r} does not "
                    "exist; run `yuqing index init`"
                )
            elif status in (401, 403):
                raise PermanentStoreError(
                    f"Elasticsearch at {self._url} refused the write (HTTP {status}): {reason}"
                )
            else:
                yield pid, "permanent", f"HTTP {status} {reason}"

    # ------------------------------------------------------------------ dedup look-ups

    def existing_hashes(self, hashes: Sequence[str]) -> dict[str, str]:
        """``{content_hash: id}`` of stored posts with these hashes (first stored wins).

        A ``terms`` query on the ``content_hash`` keyword (mapping v2; posts in
        v1 indices are found only after ``yuqing index rebuild``), sorted by
        ``indexed_at`` so the earliest stored copy wins. Raises
        ``StoreUnavailable`` on failure.
        """
        wanted = list(dict.fromkeys(h for h in hashes if h))
        found: dict[str, str] = {}
        for lo in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = wanted[lo : lo + _LOOKUP_CHUNK]
            resp = self._call(
                "look up content hashes",
                partial(
                    self._client.search,
                    index=self.read_alias,
                    query={"terms": {"content_hash": chunk}},
                    sort=[{"indexed_at": "asc"}, {"id": "asc"}],
                    # A hash is normally stored once (dedup); room for a few old copies.
                    size=min(4 * len(chunk), 10_000),
                    source_includes=["id", "content_hash"],
                    track_total_hits=False,
                ),
            )
            for hit in resp["hits"]["hits"]:
                src = hit["_source"]
                found.setdefault(str(src["content_hash"]), str(src.get("id", hit["_id"])))
        return found

    def stored_hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """``{id: content_hash}`` of the stored posts among ``ids``.

        Raises ``StoreUnavailable`` on failure.
        """
        found: dict[str, str] = {}
        # From the Post copy: v1 documents have no top-level content_hash.
        hits = self._hits_by_ids(
            "look up stored hashes",
            list(dict.fromkeys(ids)),
            source_includes=["post.content_hash"],
        )
        for hit in hits:
            post = hit["_source"].get("post") or {}
            found.setdefault(str(hit["_id"]), str(post.get("content_hash", "")))
        return found

    def set_group_counts(self, counts: Mapping[str, tuple[int, int]]) -> set[str]:
        """Set the repost counts of stored posts; returns the ids updated.

        Read back and re-indexed where they live (``upsert``), so the indexed
        ``duplicates`` and the Post copy agree. Raises ``StoreUnavailable`` on failure.
        """
        posts = [
            post.model_copy(
                update={"duplicates": int(counts[pid][0]), "duplicate_reach": int(counts[pid][1])}
            )
            for pid, post in self.get_many(list(counts)).items()
        ]
        if posts:
            self.upsert(posts)
        return {p.id for p in posts}

    # ------------------------------------------------------------------ reads

    def get(self, post_id: str) -> Post | None:
        """The post with this id, or ``None``. Raises ``StoreUnavailable`` on failure."""
        resp = self._call(
            "get",
            lambda: self._client.search(
                index=self.read_alias,
                query={"ids": {"values": [post_id]}},
                size=1,
                source_includes=["post"],
                track_total_hits=False,
            ),
        )
        hits = resp["hits"]["hits"]
        return Post.model_validate(hits[0]["_source"]["post"]) if hits else None

    def get_many(self, ids: Sequence[str]) -> dict[str, Post]:
        """``{id: post}`` for each of ``ids`` that is stored, in the order of ``ids``.

        Missing ids are left out; repeated ids count once. One ``ids`` search
        per 1000 ids (not one round trip per post). Raises ``StoreUnavailable``
        on failure.
        """
        wanted = list(dict.fromkeys(ids))
        docs: dict[str, dict[str, Any]] = {}
        for hit in self._hits_by_ids("get many", wanted, source_includes=["post"]):
            docs.setdefault(str(hit["_id"]), hit["_source"]["post"])
        return {i: Post.model_validate(docs[i]) for i in wanted if i in docs}

    def count(self, query: PostQuery) -> int:
        """How many posts match ``query``. Raises ``StoreUnavailable`` on failure."""
        es_query, _ = self._query(query)
        resp = self._call(
            "count", lambda: self._client.count(index=self.read_alias, query=es_query)
        )
        return int(resp["count"])

    def search(
        self,
        query: PostQuery,
        *,
        sort: SortOrder = "newest",
        limit: int = 20,
        cursor: str | None = None,
        highlight: bool = False,
    ) -> SearchPage:
        """One page of matching posts; see :meth:`core.ports.PostStore.search`.

        Orders: ``newest``/``oldest`` by ``published_at``; ``risk`` by risk
        (unanalysed last) then newest; ``relevance`` by BM25 over ``text_seg``
        when there is text, else as ``newest``. Ties are broken by post id so
        ``search_after`` paging is total. The snippet is the post's plain text
        around the words Elasticsearch highlighted, marked with 【】.

        Raises ``QueryError`` for a malformed or foreign cursor or a ``limit``
        outside 1..1000; ``StoreUnavailable`` on failure.
        """
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise QueryError(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
        if sort not in _SORTS:
            raise QueryError(f"unknown sort {sort!r}")
        es_query, tokens = self._query(query)
        if sort == "relevance" and not tokens:
            sort = "newest"
        fingerprint = query_fingerprint(query, sort)
        after = decode_cursor(cursor, fingerprint, sort, tie_breaker=_is_doc_id) if cursor else None
        body: dict[str, Any] = {
            "query": es_query,
            "sort": _SORTS[sort],
            "size": limit + 1,  # one more than asked: tells whether there is a next page
            "track_total_hits": True,
            "source": ["post"],
        }
        if after is not None:
            body["search_after"] = after
        if highlight and tokens:
            body["highlight"] = {
                "pre_tags": ["【"],
                "post_tags": ["】"],
                "fields": {"text_seg": {"number_of_fragments": 5, "fragment_size": 200}},
            }
        resp = self._call("search", lambda: self._client.search(index=self.read_alias, **body))
        raw = resp["hits"]["hits"]
        page = raw[:limit]
        hits = []
        for hit in page:
            post = Post.model_validate(hit["_source"]["post"])
            snippet = None
            if highlight:
                marked = {
                    word
                    for fragment in hit.get("highlight", {}).get("text_seg", [])
                    for word in _MARKED.findall(fragment)
                }
                snippet = make_snippet(post.text, sorted(marked) or tokens)
            hits.append(PostHit(post=post, snippet=snippet))
        next_cursor = None
        if len(raw) > limit:
            next_cursor = encode_cursor(fingerprint, sort, list(page[-1]["sort"]))
        return SearchPage(
            hits=hits, total=int(resp["hits"]["total"]["value"]), next_cursor=next_cursor
        )

    def histogram(
        self,
        query: PostQuery,
        *,
        bucket_seconds: int,
        tz_offset_minutes: int = SHANGHAI_OFFSET_MINUTES,
        group_by: TermField | None = None,
    ) -> list[Bucket]:
        """Counts per time bucket aligned to local time; see the port for the contract.

        One ``date_histogram`` (``fixed_interval``, a fixed ``±HH:MM`` zone,
        empty buckets omitted) with a ``terms`` sub-aggregation for ``group_by``
        (at most ``MAX_GROUP_VALUES`` values per bucket). Raises ``QueryError``
        for ``bucket_seconds < 1``, an unknown ``group_by`` or too many buckets;
        ``StoreUnavailable`` on failure.
        """
        if (
            isinstance(bucket_seconds, bool)
            or not isinstance(bucket_seconds, int)
            or bucket_seconds < 1
        ):
            raise QueryError(f"bucket_seconds must be a positive integer, got {bucket_seconds!r}")
        group_field = _field(group_by) if group_by is not None else None
        es_query, _ = self._query(query)
        agg: dict[str, Any] = {
            "date_histogram": {
                "field": "published_at",
                "fixed_interval": f"{bucket_seconds}s",
                "time_zone": _tz_string(tz_offset_minutes),
                "min_doc_count": 1,
            }
        }
        if group_field is not None:
            agg["aggs"] = {
                "g": {
                    "terms": {
                        "field": group_field,
                        "size": MAX_GROUP_VALUES,
                        "order": [{"_count": "desc"}, {"_key": "asc"}],
                    }
                }
            }
        resp = self._call(
            "histogram",
            lambda: self._client.search(
                index=self.read_alias,
                query=es_query,
                size=0,
                track_total_hits=False,
                aggs={"h": agg},
            ),
        )
        out: list[Bucket] = []
        for b in sorted(resp["aggregations"]["h"]["buckets"], key=lambda b: b["key"]):
            if b["doc_count"] < 1:
                continue
            start = _from_millis(b["key"])
            if group_field is None:
                out.append(Bucket(start=start, count=int(b["doc_count"])))
                continue
            for g in sorted(b["g"]["buckets"], key=lambda g: str(g["key"])):
                out.append(Bucket(start=start, key=str(g["key"]), count=int(g["doc_count"])))
        return out

    def terms(self, query: PostQuery, field: TermField, *, size: int = 10) -> list[TermCount]:
        """The ``size`` most frequent values of ``field`` among matches, count desc then value.

        A ``terms`` aggregation; posts without a value are not counted. Raises
        ``QueryError`` for a field outside :data:`core.ports.TermField` or a
        size outside 1..10000; ``StoreUnavailable`` on failure.
        """
        if not 1 <= size <= MAX_TERMS_SIZE:
            raise QueryError(f"size must be between 1 and {MAX_TERMS_SIZE}, got {size}")
        es_field = _field(field)
        es_query, _ = self._query(query)
        resp = self._call(
            "terms",
            lambda: self._client.search(
                index=self.read_alias,
                query=es_query,
                size=0,
                track_total_hits=False,
                aggs={
                    "t": {
                        "terms": {
                            "field": es_field,
                            "size": size,
                            # Counts are exact on one shard; on several, ask each
                            # shard for more candidates than the default.
                            "shard_size": min(MAX_TERMS_SIZE, max(100, size * 5)),
                            "order": [{"_count": "desc"}, {"_key": "asc"}],
                        }
                    }
                },
            ),
        )
        rows = [(str(b["key"]), int(b["doc_count"])) for b in resp["aggregations"]["t"]["buckets"]]
        rows.sort(key=lambda r: (-r[1], r[0]))
        return [TermCount(value=v, count=c) for v, c in rows[:size]]

    def close(self) -> None:
        """Close the client if this store built it. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            self._client.close()

    # ------------------------------------------------------------------ query building

    def _query_tokens(self, text: str | None) -> list[str]:
        if text is None or not text.strip():
            return []
        seen: dict[str, None] = {}
        for tok in self._tokenizer(text):
            if is_searchable(tok) and not any(ch.isspace() for ch in tok):
                seen.setdefault(tok, None)
        tokens = list(seen)
        if len(tokens) > MAX_QUERY_TOKENS:
            log.info(
                "query text has %d words; searching for the first %d", len(tokens), MAX_QUERY_TOKENS
            )
            tokens = tokens[:MAX_QUERY_TOKENS]
        return tokens

    def _query(self, q: PostQuery) -> tuple[dict[str, Any], list[str]]:
        """The Elasticsearch query for ``q`` and the searchable tokens of its text."""
        must: list[dict[str, Any]] = []
        filters: list[dict[str, Any]] = []
        tokens: list[str] = []
        if q.text is not None and q.text.strip():
            tokens = self._query_tokens(q.text)
            if not tokens:
                return {"match_none": {}}, []
            # One ``match`` (never query_string): the words are analysed like the
            # index and all must appear; no character of user text is syntax.
            must.append({"match": {"text_seg": {"query": " ".join(tokens), "operator": "and"}}})
        rng: dict[str, str] = {}
        if q.since is not None:
            rng["gte"] = _iso_second(q.since)
        if q.until is not None:
            rng["lt"] = _iso_second(q.until)
        if rng:
            filters.append({"range": {"published_at": rng}})
        for name, values in (
            ("source", q.sources),
            ("platform", q.platforms),
            ("sentiment", q.sentiments),
            ("topic", q.topics),
            ("signals", q.signals),
            ("entities", q.entities),
        ):
            if values is None:
                continue
            if not values:
                return {"match_none": {}}, tokens
            filters.append({"terms": {name: [str(getattr(v, "value", v)) for v in values]}})
        if q.min_risk is not None:
            filters.append({"range": {"risk": {"gte": q.min_risk}}})
        if q.critical is not None:
            filters.append({"term": {"critical": q.critical}})
        if not must and not filters:
            return {"match_all": {}}, tokens
        return {"bool": {"must": must, "filter": filters}}, tokens

    # ------------------------------------------------------------------ rebuild

    def rebuild(
        self,
        *,
        analyze: Callable[[list[Post]], list[Post]] | None = None,
        batch_size: int = 500,
        delete_old: bool = True,
        max_catch_up_passes: int = 3,
        progress: Callable[[int], None] | None = None,
    ) -> RebuildReport:
        """Copy every post into a new index (re-analysed by ``analyze``) and swap the aliases.

        ``analyze`` takes a page of posts and returns them re-analysed, in
        order (so the models score a page in one batch); when it raises, the
        page is redone post by post, and a post whose re-analysis fails is
        copied with the analysis it had (counted in ``not_reanalysed``, the
        reason in ``errors``). The old indices are kept, whatever
        ``delete_old`` says, when any post failed to copy.

        No downtime: reads and writes keep using the old indices while the copy
        runs; posts written meanwhile are copied again in catch-up passes
        (``indexed_at`` after the pass started); then one atomic alias update
        moves both aliases, and a last pass copies (``create`` only, never
        overwriting) whatever arrived between the final pass and the swap.
        The template is re-installed first, so the new index gets the current
        mapping version. Old indices are deleted unless ``delete_old=False``.

        Raises ``IndexNotInitialised`` if there is nothing to rebuild,
        ``StoreUnavailable`` / ``PermanentStoreError`` like every call.
        """
        old = self.read_indices()
        if not old:
            raise IndexNotInitialised(
                f"Elasticsearch at {self._url}: nothing to rebuild under {self.read_alias!r}; "
                "run `yuqing index init`"
            )
        body = self.template_body()
        self._call(
            "put index template",
            lambda: self._client.indices.put_index_template(name=self.prefix, **body),
        )
        new = self._new_index_name()
        self._call("create index", lambda: self._client.indices.create(index=new))
        # The template adds the read alias to every new index; the copy must stay
        # invisible until the swap, or every post would count twice.
        self._call(
            "hide new index",
            lambda: self._client.indices.update_aliases(
                actions=[{"remove": {"index": new, "alias": self.read_alias}}]
            ),
        )
        copied: set[str] = set()
        failed: set[str] = set()
        stale: set[str] = set()
        errors: list[str] = []
        since: datetime | None = None
        for _ in range(max_catch_up_passes + 1):
            # indexed_at is stamped by the writers' clocks: allow them some skew.
            started = datetime.now(UTC) - timedelta(seconds=2)
            done, bad, kept, errs = self._copy(
                old, new, since, analyze, batch_size, "index", progress
            )
            copied |= done
            failed |= bad
            stale |= kept
            errors.extend(errs)
            if since is not None and len(done) < batch_size:
                break  # little arrived during the last pass: swap now
            since = started
        # Make the copy searchable before readers see it: no dip in the dashboard's counts.
        self._call("refresh new index", lambda: self._client.indices.refresh(index=new))
        actions: list[dict[str, Any]] = [
            {"add": {"index": new, "alias": self.read_alias}},
            {"add": {"index": new, "alias": self.write_alias, "is_write_index": True}},
        ]
        for name in old:
            actions.append({"remove": {"index": name, "alias": self.read_alias}})
        for name in self.write_indices():
            actions.append({"remove": {"index": name, "alias": self.write_alias}})
        self._call("swap aliases", lambda: self._client.indices.update_aliases(actions=actions))
        log.info("aliases %s and %s now point to %s", self.read_alias, self.write_alias, new)
        done, bad, kept, errs = self._copy(old, new, since, analyze, batch_size, "create", progress)
        copied |= done
        failed = (failed | bad) - copied
        stale |= kept
        errors.extend(errs)
        if done:
            self._call("refresh new index", lambda: self._client.indices.refresh(index=new))
        # A post that failed to copy lives only in the old indices: keep them.
        delete = delete_old and not failed
        if delete_old and failed:
            log.warning("%d posts not copied: old indices %s kept", len(failed), old)
        if delete:
            for name in old:
                self._call("delete old index", partial(self._client.indices.delete, index=name))
        return RebuildReport(
            new, old, len(copied), len(failed), delete, errors[:50], not_reanalysed=len(stale)
        )

    @staticmethod
    def _analyze_page(
        posts: list[Post], analyze: Callable[[list[Post]], list[Post]], errors: list[str]
    ) -> tuple[list[Post], set[str]]:
        """``analyze(posts)``; if the batch raises, post by post, keeping a post whose
        re-analysis fails as it was. Returns the posts and the ids of those kept as they were."""
        try:
            return _same_length(posts, analyze(posts)), set()
        except Exception:  # analysis of one post must not stop the rebuild
            log.warning("re-analysing a page of %d posts failed; retrying one by one", len(posts))
        done: list[Post] = []
        kept: set[str] = set()
        for post in posts:
            try:
                done.extend(_same_length([post], analyze([post])))
            except Exception as exc:
                done.append(post)
                kept.add(post.id)
                errors.append(f"{post.id}: not re-analysed, copied as it was: {exc!r}")
                log.warning("post %s not re-analysed: %r", post.id, exc)
        return done, kept

    def _copy(
        self,
        source_indices: list[str],
        target: str,
        since: datetime | None,
        analyze: Callable[[list[Post]], list[Post]] | None,
        batch_size: int,
        op_type: str,
        progress: Callable[[int], None] | None,
    ) -> tuple[set[str], set[str], set[str], list[str]]:
        """Copy posts (``indexed_at >= since``) page by page, keyset on id.

        Returns the ids copied (``create`` skips posts already in ``target``),
        the ids that failed, the ids copied without re-analysis (it raised)
        and the reasons.
        """
        query: dict[str, Any] = {"match_all": {}}
        if since is not None:
            query = {"range": {"indexed_at": {"gte": _iso_second(since)}}}
        copied: set[str] = set()
        failed: set[str] = set()
        stale: set[str] = set()
        errors: list[str] = []
        after: list[Any] | None = None
        index = ",".join(source_indices)
        now = datetime.now(UTC)
        while True:
            page: dict[str, Any] = {
                "index": index,
                "query": query,
                "sort": [{"id": "asc"}],
                "size": batch_size,
                "source": ["post"],
                "track_total_hits": False,
            }
            if after:
                page["search_after"] = after
            resp = self._call("read posts to copy", partial(self._client.search, **page))
            hits = resp["hits"]["hits"]
            if not hits:
                break
            actions = []
            posts = [Post.model_validate(hit["_source"]["post"]) for hit in hits]
            if analyze is not None:
                posts, kept = self._analyze_page(posts, analyze, errors)
                stale |= kept
            for post in posts:
                try:
                    tokens = self._tokenizer(f"{post.title}\n{post.text}")
                except Exception as exc:  # one post must not stop the rebuild
                    failed.add(post.id)
                    errors.append(f"{post.id}: {exc!r}")
                    log.warning("post %s not copied: %r", post.id, exc)
                    continue
                actions.append(
                    {
                        "_op_type": op_type,
                        "_index": target,
                        "_id": post.id,
                        "_source": build_document(post, tokens, indexed_at=now),
                    }
                )
            for pid, outcome, reason in self._bulk(actions):
                if outcome in ("created", "updated"):
                    copied.add(pid)
                elif outcome != "duplicate":
                    failed.add(pid)
                    errors.append(f"{pid}: {reason}")
            if progress is not None:
                progress(len(hits))
            after = hits[-1]["sort"]
            if len(hits) < batch_size:
                break
        return copied, failed, stale, errors


_SORTS: dict[str, list[dict[str, Any]]] = {
    "newest": [{"published_at": {"order": "desc"}}, {"id": {"order": "desc"}}],
    "oldest": [{"published_at": {"order": "asc"}}, {"id": {"order": "asc"}}],
    "risk": [
        {"risk": {"order": "desc"}},
        {"published_at": {"order": "desc"}},
        {"id": {"order": "desc"}},
    ],
    "relevance": [{"_score": {"order": "desc"}}, {"id": {"order": "asc"}}],
}


def _field(name: object) -> str:
    if not isinstance(name, str) or name not in _FIELDS:
        allowed = ", ".join(_FIELDS)
        raise QueryError(f"cannot count terms of field {name!r}; allowed: {allowed}")
    return _FIELDS[name]


def _is_temporary(exc: BaseException) -> bool:
    if isinstance(exc, AuthenticationException | AuthorizationException):
        return False
    if isinstance(exc, ApiError):
        return exc.meta.status in _TEMPORARY_STATUS and not _too_many_buckets(exc)
    # Connection refused/reset and timeouts; a TLS failure will not heal by itself.
    return isinstance(exc, TransportError) and not isinstance(exc, TlsError)


def _too_many_buckets(exc: ApiError) -> bool:
    # Some versions answer it with 503: it is still the request's fault, not an outage.
    return "too_many_buckets_exception" in str(exc.body)


def _is_index_missing(exc: ApiError) -> bool:
    body = exc.body if isinstance(exc.body, Mapping) else {}
    err = body.get("error", {})
    kind = err.get("type", "") if isinstance(err, Mapping) else str(err)
    return kind == "index_not_found_exception" or "no such index" in str(exc)


def _reason(exc: ApiError) -> str:
    body = exc.body if isinstance(exc.body, Mapping) else {}
    err = body.get("error")
    if isinstance(err, Mapping):
        return _item_reason(err)
    return str(err or exc.message)[:300]


def _item_reason(error: Any) -> str:
    if isinstance(error, Mapping):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, Mapping):
            text += f" (caused by {cause.get('type', '')}: {cause.get('reason', '')})"
        return text[:500]
    return str(error)[:500]


def from_settings(settings: Settings, tokenizer: Tokenizer, **overrides: Any) -> ElasticPostStore:
    """The store described by ``settings.storage`` (what ``yuqing.bootstrap`` calls).

    Raises ``ConfigError`` if ``storage.es_url`` is not set. Builds no
    connection yet: the first call reaches the cluster.
    """
    from core.errors import ConfigError

    st = settings.storage
    if not st.es_url:
        raise ConfigError(
            "storage.es_url: set YUQING_STORAGE__ES_URL (e.g. https://es.internal:9200) "
            "to use posts_backend 'elasticsearch'"
        )
    api_key = st.es_api_key.get_secret_value() if st.es_api_key else None
    basic_auth = None
    if st.es_username:
        password = st.es_password.get_secret_value() if st.es_password else ""
        basic_auth = (st.es_username, password)
    kwargs: dict[str, Any] = {
        "index_prefix": st.es_index_prefix,
        "api_key": api_key,
        "basic_auth": basic_auth,
        "ca_certs": str(st.es_ca_certs) if st.es_ca_certs else None,
        "verify_certs": st.es_verify_certs,
        "request_timeout": st.es_request_timeout_seconds,
    }
    kwargs.update(overrides)
    return ElasticPostStore(st.es_url, tokenizer, **kwargs)
