"""What only the Elasticsearch store has: index management, rollover, rebuild.

Runs against the noida-db test server (and a real cluster with ``YUQING_ES_URL``,
through the same fixtures as the contract suite).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.models import PostQuery
from core.vocab import Topic
from storage.elastic import ElasticPostStore, IndexNotInitialised
from tests.contract.conftest import es_store
from tests.contract.test_post_store import BY_KEY, POSTS, found, make_post


@pytest.fixture(
    params=[
        pytest.param("noida_es_url", marks=pytest.mark.slow),
        pytest.param("real_es_url", marks=pytest.mark.real_es),
    ]
)
def es_url(request: pytest.FixtureRequest) -> str:
    """The noida-db test server, and a real cluster when ``YUQING_ES_URL`` is set."""
    return str(request.getfixturevalue(request.param))


@pytest.fixture
def es(es_url: str) -> Iterator[ElasticPostStore]:
    with es_store(es_url) as store:
        assert isinstance(store, ElasticPostStore)
        yield store


def test_ensure_index_is_idempotent_and_mapping_is_not_dynamic(es: ElasticPostStore) -> None:
    again = es.ensure_index()
    assert not again.created
    assert again.indices == [again.write_index]
    mapping = es.client.indices.get_mapping(index=again.write_index)[again.write_index]
    assert mapping["mappings"]["dynamic"] in (False, "false")
    assert mapping["mappings"]["properties"]["text_seg"]["type"] == "text"
    assert mapping["mappings"]["properties"]["source"]["ignore_above"] == 256


def test_a_post_in_a_rolled_over_index_is_updated_where_it_lives(es: ElasticPostStore) -> None:
    assert es.upsert(POSTS[:2]).inserted == 2
    es.client.indices.rollover(alias=es.write_alias)
    result = es.upsert(POSTS)
    assert (result.inserted, result.updated) == (len(POSTS) - 2, 2)
    assert es.count(PostQuery()) == len(POSTS)
    assert len(es.client.indices.get_alias(name=es.read_alias)) == 2
    assert es.get(POSTS[0].id) == POSTS[0]


UNANALYSABLE = "澜海银行 这条帖子让模型出错"


def test_rebuild_reanalyses_and_swaps_aliases(es: ElasticPostStore) -> None:
    es.upsert(POSTS)
    old = es.ensure_index().write_index

    pages: list[int] = []

    def analyze(posts):  # type: ignore[no-untyped-def]
        pages.append(len(posts))
        if any(p.text == UNANALYSABLE for p in posts):
            # A model failure, or a batch that loses a post: both mean the page is
            # redone post by post, and the post is copied as it was.
            if len(posts) > 1:
                return [p for p in posts if p.text != UNANALYSABLE]
            raise ValueError("model failure")
        return [
            p
            if p.analysis is None
            else p.model_copy(
                update={"analysis": p.analysis.model_copy(update={"topic": Topic.OTHER})}
            )
            for p in posts
        ]

    report = es.rebuild(analyze=analyze, batch_size=3)
    assert report.old_indices == [old]
    assert report.copied == len(POSTS)
    assert report.failed == 0 and report.not_reanalysed == 0 and report.deleted_old
    assert pages and max(pages) == 3  # pages of posts, scored as one batch each
    info = es.ensure_index()
    assert info.write_index == report.new_index
    assert info.indices == [report.new_index]
    assert es.count(PostQuery()) == len(POSTS)
    assert es.count(PostQuery(topics=[Topic.OTHER])) == len(POSTS) - 1  # one is unanalysed
    assert found(es, PostQuery(text="挤兑")) == {BY_KEY["run"].id}
    assert es.upsert([POSTS[0]]).updated == 1

    # A post the models choke on: its page is redone post by post, and that
    # post is copied with the analysis it had, not lost.
    bad = make_post("unanalysable", UNANALYSABLE, BY_KEY["cc"].published_at, topic=Topic.LOANS)
    assert es.upsert([bad]).inserted == 1
    pages.clear()
    report = es.rebuild(analyze=analyze, batch_size=3)
    assert report.copied == len(POSTS) + 1 and report.failed == 0
    assert report.not_reanalysed == 1 and any("unanalysable" in e for e in report.errors)
    assert 1 in pages  # the retry, one post at a time
    assert es.get(bad.id) == bad
    assert es.count(PostQuery(topics=[Topic.OTHER])) == len(POSTS) - 1  # the others re-analysed


def test_lone_surrogates_are_replaced_not_fatal(es: ElasticPostStore) -> None:
    post = make_post("surrogate", "澜海银行\ud800客服", BY_KEY["cc"].published_at)
    assert es.upsert([post]).inserted == 1
    got = es.get(post.id)
    assert got is not None
    assert got.text == "澜海银行\ufffd客服"


def test_keywords_beyond_lucene_limits_do_not_refuse_the_post(es: ElasticPostStore) -> None:
    # Lucene refuses a keyword term over 32,766 bytes (real Elasticsearch; noida-db
    # accepts it): ignore_above keeps the post, unindexed in that field only.
    author = "澜" * 12_000  # 36,000 bytes of UTF-8
    post = make_post("longauthor", "澜海银行服务差", BY_KEY["cc"].published_at, author=author)
    assert es.upsert([post]).inserted == 1
    assert es.get(post.id) == post
    assert found(es, PostQuery(text="服务")) == {post.id}


def test_a_store_without_index_says_to_run_index_init(es_url: str) -> None:
    with es_store(es_url, init=False) as store:
        with pytest.raises(IndexNotInitialised, match="yuqing index init"):
            store.upsert(POSTS)
        with pytest.raises(IndexNotInitialised, match="yuqing index init"):
            store.count(PostQuery())
        with pytest.raises(IndexNotInitialised, match="yuqing index init"):
            store.rebuild()  # type: ignore[attr-defined]
