"""The noida-db launcher used by the Elasticsearch test fixtures fails loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import es_server


def test_a_binary_that_cannot_start_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "noida-db"
    fake.write_text("#!/bin/sh\necho 'boom: cannot bind' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(es_server, "binary_path", lambda: fake)
    with (
        pytest.raises(es_server.ServerError, match="boom: cannot bind"),
        es_server.noida_elasticsearch(tmp_path / "data", timeout=5),
    ):
        pass


def test_a_missing_package_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(es_server, "binary_path", lambda: None)
    with (
        pytest.raises(FileNotFoundError, match="pip install noida-db"),
        es_server.noida_elasticsearch(tmp_path),
    ):
        pass
