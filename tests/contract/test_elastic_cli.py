"""``yuqing index init|status|rebuild`` against the noida-db test server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from core.models import PostQuery
from storage.elastic import ElasticPostStore
from tests.contract.conftest import TOKENIZER, es_prefix
from tests.contract.test_post_store import POSTS
from yuqing.cli_index import app

pytestmark = pytest.mark.slow


@pytest.fixture
def env(noida_es_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ElasticPostStore]:
    prefix = es_prefix()
    monkeypatch.delenv("YUQING_CONFIG", raising=False)
    monkeypatch.setenv("YUQING_STORAGE__POSTS_BACKEND", "elasticsearch")
    monkeypatch.setenv("YUQING_STORAGE__ES_URL", noida_es_url)
    monkeypatch.setenv("YUQING_STORAGE__ES_INDEX_PREFIX", prefix)
    store = ElasticPostStore(noida_es_url, TOKENIZER, index_prefix=prefix)
    yield store
    store.drop_everything()
    store.close()


def test_init_status_rebuild(env: ElasticPostStore) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["status"])
    assert missing.exit_code == 1
    assert "yuqing index init" in " ".join(missing.output.split())

    first = runner.invoke(app, ["init", "--replicas", "0"])
    assert first.exit_code == 0, first.output
    assert "created" in first.output
    again = runner.invoke(app, ["init"])
    assert again.exit_code == 0 and "already present" in again.output

    env.upsert(POSTS)
    old = env.write_indices()
    rebuilt = runner.invoke(app, ["rebuild", "--no-reanalyze", "--batch-size", "10"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert f"{len(POSTS)} posts copied" in " ".join(rebuilt.output.split())
    assert env.write_indices() != old
    assert env.count(PostQuery()) == len(POSTS)

    status = runner.invoke(app, ["status"])
    assert status.exit_code == 0 and f"{len(POSTS)} posts" in " ".join(status.output.split())


def test_index_commands_refuse_the_local_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YUQING_CONFIG", raising=False)
    monkeypatch.setenv("YUQING_STORAGE__POSTS_BACKEND", "local")
    result = CliRunner().invoke(app, ["init"])
    assert result.exit_code == 2
    assert "posts_backend" in result.output
