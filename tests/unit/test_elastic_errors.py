"""How the Elasticsearch store classifies failures (STYLE.md #6), against a scripted HTTP server.

A real cluster is not needed to answer 401, 429 or a bulk item error: a
``pytest_httpserver`` plays Elasticsearch and each test scripts its answers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from core.errors import ConfigError, PermanentStoreError, QueryError, StoreUnavailable
from core.models import Post, PostQuery
from core.settings import load_settings
from storage.elastic import ElasticPostStore, build_document, from_settings, redact_url

HEADERS = {"X-Elastic-Product": "Elasticsearch", "Content-Type": "application/json"}
PREFIX = "yq"


def es_json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, headers=HEADERS)


def post(i: int, text: str = "澜海银行 挤兑") -> Post:
    return Post(
        id=f"post-{i:08d}",
        url=f"https://demo.example/{i}",
        source="forum",
        text=text,
        published_at=datetime(2025, 3, 1, tzinfo=UTC),
    )


def store(server: HTTPServer, **kwargs: Any) -> ElasticPostStore:
    return ElasticPostStore(
        server.url_for("/").rstrip("/"),
        str.split,
        index_prefix=PREFIX,
        backoff_seconds=0.001,
        **kwargs,
    )


def no_existing_posts(server: HTTPServer) -> None:
    server.expect_request(f"/{PREFIX}/_search", method="POST").respond_with_response(
        es_json({"hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}})
    )


def bulk_items(request: Request) -> list[str]:
    lines = [json.loads(x) for x in request.get_data(as_text=True).splitlines() if x.strip()]
    return [line["index"]["_id"] for line in lines[::2]]


def item(pid: str, status: int, error: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"_index": f"{PREFIX}-v1-x-000001", "_id": pid, "status": status}
    if error:
        body["error"] = error
    else:
        body["result"] = "created"
    return {"index": body}


def test_bad_credentials_are_permanent_and_name_the_url_without_secrets(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request(f"/{PREFIX}/_count").respond_with_response(
        es_json({"error": {"type": "security_exception", "reason": "unable to authenticate"}}, 401)
    )
    url = httpserver.url_for("/").replace("http://", "http://elastic:hunter2@").rstrip("/")
    es = ElasticPostStore(url, str.split, index_prefix=PREFIX)
    with pytest.raises(PermanentStoreError) as info:
        es.count(PostQuery())
    assert not isinstance(info.value, StoreUnavailable)
    assert redact_url(url) in str(info.value)
    assert "hunter2" not in str(info.value)
    es.close()


def test_429_is_retried_then_answered(httpserver: HTTPServer) -> None:
    calls = []

    def handler(request: Request) -> Response:
        calls.append(1)
        if len(calls) < 3:
            return es_json({"error": {"type": "es_rejected_execution_exception"}}, 429)
        return es_json({"count": 7})

    httpserver.expect_request(f"/{PREFIX}/_count").respond_with_handler(handler)
    assert store(httpserver).count(PostQuery()) == 7
    assert len(calls) == 3


def test_persistent_503_is_unavailable(httpserver: HTTPServer) -> None:
    httpserver.expect_request(f"/{PREFIX}/_count").respond_with_response(
        es_json({"error": {"type": "cluster_block_exception"}}, 503)
    )
    with pytest.raises(StoreUnavailable, match="503"):
        store(httpserver, retries=2).count(PostQuery())


def test_bulk_items_are_classified_and_temporary_ones_retried(httpserver: HTTPServer) -> None:
    no_existing_posts(httpserver)
    seen: list[list[str]] = []

    def bulk(request: Request) -> Response:
        ids = bulk_items(request)
        seen.append(ids)
        items = []
        for pid in ids:
            if pid.endswith("1"):  # a document the mapping refuses: permanent
                err = {"type": "mapper_parsing_exception", "reason": "failed to parse"}
                items.append(item(pid, 400, err))
            elif pid.endswith("2") and len(seen) == 1:  # a busy shard, once: temporary
                items.append(item(pid, 503, {"type": "unavailable_shards_exception"}))
            else:
                items.append(item(pid, 201))
        return es_json({"took": 1, "errors": True, "items": items})

    httpserver.expect_request("/_bulk", method="PUT").respond_with_handler(bulk)
    httpserver.expect_request("/_bulk", method="POST").respond_with_handler(bulk)
    result = store(httpserver).upsert([post(i) for i in range(4)])
    assert (result.inserted, result.updated, result.failed) == (3, 0, 1)
    assert "post-00000001" in result.errors[0]
    assert "mapper_parsing_exception" in result.errors[0]
    assert seen[1] == ["post-00000002"]  # only the temporary failure was sent again


def test_bulk_items_that_stay_temporary_make_the_batch_unavailable(
    httpserver: HTTPServer,
) -> None:
    no_existing_posts(httpserver)

    def bulk(request: Request) -> Response:
        items = [
            item(pid, 503, {"type": "unavailable_shards_exception"}) for pid in bulk_items(request)
        ]
        return es_json({"took": 1, "errors": True, "items": items})

    httpserver.expect_request("/_bulk").respond_with_handler(bulk)
    with pytest.raises(StoreUnavailable, match="spool"):
        store(httpserver, retries=1).upsert([post(1)])


def test_documents_are_built_from_the_post() -> None:
    doc = build_document(
        post(1, "澜海\udc80银行"), ["澜海", "银行", " "], indexed_at=datetime.now(UTC)
    )
    assert doc["text_seg"] == "澜海 银行"
    assert doc["post"]["text"] == "澜海\ufffd银行"
    assert doc["risk"] == -1.0 and "sentiment" not in doc and doc["critical"] is False
    assert doc["published_at"] == "2025-03-01T00:00:00Z"


def test_from_settings_reads_credentials_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("YUQING_STORAGE__ES_URL", "https://es.internal:9200")
    monkeypatch.setenv("YUQING_STORAGE__ES_API_KEY", "c2VjcmV0")
    monkeypatch.setenv("YUQING_STORAGE__ES_INDEX_PREFIX", "bank-posts")
    settings = load_settings(None, storage={"posts_backend": "elasticsearch"})
    es = from_settings(settings, str.split)
    assert es.url == "https://es.internal:9200"
    assert (es.read_alias, es.write_alias) == ("bank-posts", "bank-posts-write")
    assert "c2VjcmV0" not in repr(es)
    es.close()


def test_es_secrets_are_refused_in_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "yuqing.yaml"
    config.write_text("storage:\n  posts_backend: elasticsearch\n  es_password: hunter2\n")
    with pytest.raises(ConfigError, match="YUQING_STORAGE__ES_PASSWORD"):
        load_settings(config)


def test_too_many_buckets_is_a_query_error_not_an_outage(httpserver: HTTPServer) -> None:
    httpserver.expect_request(f"/{PREFIX}/_search").respond_with_response(
        es_json({"error": {"type": "too_many_buckets_exception", "reason": "max 65536"}}, 503)
    )
    with pytest.raises(QueryError, match="too many buckets"):
        store(httpserver).histogram(PostQuery(), bucket_seconds=1)
