"""Fixtures for the dashboard tests: real local stores in ``tmp_path``, seeded (see ``seed.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import streamlit as st

from dashboard.data import DashboardData
from nlp.segment import tokenize
from storage.local import LocalPostStore
from storage.state import SqlStateStore
from tests.dashboard.seed import Seed, seed_stores


@pytest.fixture
def store_paths(tmp_path: Path) -> tuple[Path, str]:
    """(posts db path, state store URL) inside ``tmp_path``."""
    return tmp_path / "posts.db", f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def seed(store_paths: tuple[Path, str]) -> Iterator[Seed]:
    """Real LocalPostStore + SqlStateStore in ``tmp_path``, seeded; closed afterwards."""
    posts_path, state_url = store_paths
    post_store = LocalPostStore(posts_path, tokenize)
    state_store = SqlStateStore(state_url)
    # On a minute boundary, so every seeded post is a whole number of hours old.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    yield seed_stores(post_store, state_store, now)
    post_store.close()
    state_store.close()


@pytest.fixture
def data(seed: Seed) -> DashboardData:
    """DashboardData over the seeded stores."""
    return DashboardData(seed.post_store, seed.state_store)


@pytest.fixture
def fresh_streamlit_cache() -> Iterator[None]:
    """Drop the process-wide cached DashboardData so each AppTest builds its own."""
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()
