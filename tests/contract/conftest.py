"""Fixtures of the contract suites: one suite, run against every adapter of a port.

A new PostStore adapter (Elasticsearch) adds one factory to ``POST_STORES``
(and one to ``BROKEN_POST_STORES``); every contract test then runs against it.
A factory is a context manager that yields a fresh, empty store and cleans up.

Elasticsearch runs twice: against the ``noida-db`` test server started once per
session (param ``elasticsearch``; the noida-db package must be installed, and if
its binary cannot start those tests fail rather than skip), and, when
``YUQING_ES_URL`` is set, against that real cluster (param ``real_es``, marker
``real_es``). The noida-db params carry the ``slow`` marker (they start a
server). Each test gets its own index prefix, deleted afterwards.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.ports import PostStore, StateStore, Tokenizer

PG_URL_ENV = "YUQING_TEST_PG_URL"
ES_URL_ENV = "YUQING_ES_URL"


def _load_tokenizer() -> Tokenizer:
    """The production tokenizer (``nlp.segment.tokenize``), or a jieba stand-in."""
    try:
        from nlp.segment import tokenize
    except ImportError:
        import jieba

        word = re.compile(r"\w")

        def tokenize(text: str) -> list[str]:
            return [t.lower() for t in jieba.lcut_for_search(text) if word.search(t)]

    return tokenize


TOKENIZER: Tokenizer = _load_tokenizer()


# ---------------------------------------------------------------------- post stores


@contextmanager
def _local_store(tmp_path: Path) -> Iterator[PostStore]:
    from storage.local import LocalPostStore

    store = LocalPostStore(tmp_path / "posts.db", TOKENIZER)
    try:
        yield store
    finally:
        store.close()


@dataclass
class BrokenStore:
    """A store whose backend cannot be used, and the location its errors must name."""

    store: PostStore
    location: str


@contextmanager
def _local_store_bad_path(tmp_path: Path) -> Iterator[BrokenStore]:
    from storage.local import LocalPostStore

    # A regular file where the parent directory should be: no mkdir, no open
    # (works even as root, unlike a read-only directory).
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    path = blocker / "posts.db"
    store = LocalPostStore(path, TOKENIZER)
    try:
        yield BrokenStore(store, str(path))
    finally:
        store.close()


@contextmanager
def _local_store_not_a_database(tmp_path: Path) -> Iterator[BrokenStore]:
    from storage.local import LocalPostStore

    path = tmp_path / "posts.db"
    path.write_bytes(b"this is not an SQLite database, it is a stray file " * 200)
    store = LocalPostStore(path, TOKENIZER)
    try:
        yield BrokenStore(store, str(path))
    finally:
        store.close()


# ---------------------------------------------------------------------- elasticsearch


@pytest.fixture(scope="session")
def noida_es_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a noida-db Elasticsearch server for the whole session."""
    from tests.es_server import ServerError, binary_path, noida_elasticsearch

    if binary_path() is None:
        pytest.skip("the noida-db package is not installed (pip install noida-db)")
    try:
        with noida_elasticsearch(tmp_path_factory.mktemp("noida-es")) as url:
            yield url
    except ServerError as exc:
        pytest.fail(f"the Elasticsearch test server (noida-db) could not start: {exc}")


@pytest.fixture(scope="session")
def real_es_url() -> str:
    """``$YUQING_ES_URL``: a real Elasticsearch 8 cluster to run the contract against."""
    url = os.environ.get(ES_URL_ENV)
    if not url:
        pytest.skip(f"real Elasticsearch tests need {ES_URL_ENV} (e.g. http://127.0.0.1:9200)")
    return url


def es_prefix() -> str:
    """An index prefix no other test uses."""
    return f"yuqing-test-{uuid.uuid4().hex[:12]}"


@contextmanager
def es_store(url: str, *, init: bool = True) -> Iterator[PostStore]:
    """A fresh ElasticPostStore on its own index prefix, deleted afterwards."""
    from storage.elastic import ElasticPostStore

    store = ElasticPostStore(
        url, TOKENIZER, index_prefix=es_prefix(), number_of_replicas=0, backoff_seconds=0.05
    )
    try:
        if init:
            store.ensure_index()
        yield store
    finally:
        cleaner = ElasticPostStore(url, TOKENIZER, index_prefix=store.prefix, retries=0)
        try:
            cleaner.drop_everything()
        finally:
            cleaner.close()
            store.close()


@contextmanager
def _es_unreachable(tmp_path: Path) -> Iterator[BrokenStore]:
    import socket

    from storage.elastic import ElasticPostStore

    # A port that was just free: nothing listens there (connection refused at once).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    store = ElasticPostStore(
        url, TOKENIZER, index_prefix=es_prefix(), retries=1, backoff_seconds=0.01, request_timeout=2
    )
    try:
        yield BrokenStore(store, url)
    finally:
        store.close()


def _es_not_initialised(url: str) -> Callable[[Path], AbstractContextManager[BrokenStore]]:
    @contextmanager
    def factory(tmp_path: Path) -> Iterator[BrokenStore]:
        with es_store(url, init=False) as store:
            yield BrokenStore(store, url)

    return factory


PostStoreFactory = Callable[[Path], AbstractContextManager[PostStore]]
BrokenStoreFactory = Callable[[Path], AbstractContextManager[BrokenStore]]

POST_STORES: dict[str, PostStoreFactory] = {"local": _local_store}
BROKEN_POST_STORES: dict[str, BrokenStoreFactory] = {
    "local-bad-path": _local_store_bad_path,
    "local-not-a-database": _local_store_not_a_database,
    "elasticsearch-unreachable": _es_unreachable,
}
# Adapters that need a server: param -> (URL fixture, marks).
SERVER_POST_STORES: dict[str, tuple[str, tuple[pytest.MarkDecorator, ...]]] = {
    "elasticsearch": ("noida_es_url", (pytest.mark.slow,)),
    "real_es": ("real_es_url", (pytest.mark.real_es,)),
}
SERVER_BROKEN_POST_STORES: dict[str, tuple[str, tuple[pytest.MarkDecorator, ...]]] = {
    "elasticsearch-not-initialised": ("noida_es_url", (pytest.mark.slow,)),
}


def _params(
    plain: dict[str, object], served: dict[str, tuple[str, tuple[pytest.MarkDecorator, ...]]]
) -> list[object]:
    return [*sorted(plain), *(pytest.param(n, marks=m) for n, (_, m) in sorted(served.items()))]


@pytest.fixture(params=_params(POST_STORES, SERVER_POST_STORES))  # type: ignore[arg-type]
def post_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PostStore]:
    """A fresh, empty PostStore of each adapter."""
    if request.param in SERVER_POST_STORES:
        url = request.getfixturevalue(SERVER_POST_STORES[request.param][0])
        with es_store(url) as store:
            yield store
        return
    with POST_STORES[request.param](tmp_path) as store:
        yield store


@pytest.fixture(params=_params(BROKEN_POST_STORES, SERVER_BROKEN_POST_STORES))  # type: ignore[arg-type]
def broken_post_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrokenStore]:
    """A PostStore of each adapter whose backend is unusable."""
    if request.param in SERVER_BROKEN_POST_STORES:
        url = request.getfixturevalue(SERVER_BROKEN_POST_STORES[request.param][0])
        factory = _es_not_initialised(url)
    else:
        factory = BROKEN_POST_STORES[request.param]
    with factory(tmp_path) as broken:
        yield broken


@pytest.fixture
def tokenizer() -> Tokenizer:
    return TOKENIZER


# ---------------------------------------------------------------------- state stores


class FakeClock:
    """A clock the test moves by hand; starts at a fixed UTC instant."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2025, 3, 10, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@contextmanager
def _sqlite_state(tmp_path: Path, clock: FakeClock) -> Iterator[StateStore]:
    from storage.state import SqlStateStore

    store = SqlStateStore(f"sqlite:///{tmp_path}/var/state.db", clock=clock)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def _postgres_state(tmp_path: Path, clock: FakeClock) -> Iterator[StateStore]:
    url = os.environ.get(PG_URL_ENV)
    if not url:
        pytest.skip(
            f"PostgreSQL contract tests need {PG_URL_ENV} "
            "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    import sqlalchemy as sa
    from sqlalchemy.schema import CreateSchema, DropSchema

    from storage.state import SqlStateStore

    # A throw-away schema per test: isolated, and dropping it never touches
    # anything else in the database.
    schema = f"yuqing_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(CreateSchema(schema))
    store = None
    try:
        store = SqlStateStore(url, schema=schema, clock=clock)
        yield store
    finally:
        if store is not None:
            store.close()
        with admin.begin() as conn:
            conn.execute(DropSchema(schema, cascade=True))
        admin.dispose()


STATE_STORES = {"sqlite": _sqlite_state, "postgres": _postgres_state}


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def state_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[StateStore]:
    """A fresh StateStore on SQLite and (with ``YUQING_TEST_PG_URL``) on PostgreSQL."""
    with STATE_STORES[request.param](tmp_path, clock) as store:
        yield store
