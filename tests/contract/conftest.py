"""Fixtures of the contract suites: one suite, run against every adapter of a port.

A new PostStore adapter (Elasticsearch) adds one factory to ``POST_STORES``
(and one to ``BROKEN_POST_STORES``); every contract test then runs against it.
A factory is a context manager that yields a fresh, empty store and cleans up.
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


PostStoreFactory = Callable[[Path], AbstractContextManager[PostStore]]
BrokenStoreFactory = Callable[[Path], AbstractContextManager[BrokenStore]]

POST_STORES: dict[str, PostStoreFactory] = {"local": _local_store}
BROKEN_POST_STORES: dict[str, BrokenStoreFactory] = {
    "local-bad-path": _local_store_bad_path,
    "local-not-a-database": _local_store_not_a_database,
}


@pytest.fixture(params=sorted(POST_STORES))
def post_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PostStore]:
    """A fresh, empty PostStore of each adapter."""
    with POST_STORES[request.param](tmp_path) as store:
        yield store


@pytest.fixture(params=sorted(BROKEN_POST_STORES))
def broken_post_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrokenStore]:
    """A PostStore of each adapter whose backend is unusable."""
    with BROKEN_POST_STORES[request.param](tmp_path) as broken:
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
