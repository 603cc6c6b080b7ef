from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import get_settings, load_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("YUQING_"):
            monkeypatch.delenv(key)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "yuqing.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_and_demo_configs_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    # The example is a production config: it needs a real secret from the environment.
    monkeypatch.setenv("YUQING_SECRET_KEY", "a-real-long-random-secret-value")
    for name in ("yuqing.example.yaml", "demo.yaml"):
        settings = load_settings(REPO / "config" / name)
        assert settings.watchlist.bank.name
        assert settings.sources, name


def test_precedence_defaults_file_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path,
        "scheduler:\n  detect_interval_seconds: 30\n  misfire_grace_seconds: 10\n"
        "storage:\n  posts_path: from-file.db\n",
    )
    assert load_settings(path).scheduler.detect_interval_seconds == 30
    monkeypatch.setenv("YUQING_SCHEDULER__DETECT_INTERVAL_SECONDS", "45")
    settings = load_settings(path)
    assert settings.scheduler.detect_interval_seconds == 45  # env beats file
    assert settings.scheduler.misfire_grace_seconds == 10  # file beats default, merged
    assert str(settings.storage.posts_path) == "from-file.db"
    assert settings.storage.state_url == "sqlite:///var/state.db"  # default kept


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - type: volume_spike\n    window_minutes: 5*60\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    message = str(err.value)
    assert str(path) in message
    assert "rules.0" in message and "window_minutes" in message and "5*60" in message


def test_bad_env_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUQING_DASHBOARD__PORT", "eighty")
    with pytest.raises(ConfigError, match=r"dashboard\.port"):
        load_settings()


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "watchlist:\n  bank:\n    name: 澜海银行\n    alias: [澜海]\n")
    with pytest.raises(ConfigError, match=r"watchlist\.bank\.alias"):
        load_settings(path)


def test_html_source_needs_selectors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sources:\n  - name: forum\n    kind: html\n    start_urls: [http://127.0.0.1/forum/]\n",
    )
    with pytest.raises(ConfigError, match="listing"):
        load_settings(path)


def test_duplicate_source_names(tmp_path: Path) -> None:
    src = "  - name: news\n    kind: rss\n    start_urls: [http://127.0.0.1/rss.xml]\n"
    path = write(tmp_path, "sources:\n" + src + src)
    with pytest.raises(ConfigError, match="duplicate source"):
        load_settings(path)


def test_secrets_are_refused_in_files(tmp_path: Path) -> None:
    path = write(tmp_path, "secret_key: hunter2\n")
    with pytest.raises(ConfigError, match="YUQING_SECRET_KEY"):
        load_settings(path)


def test_placeholder_secret_refused_in_prod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUQING_ENV", "prod")
    with pytest.raises(ConfigError, match="secret_key"):
        load_settings()
    monkeypatch.setenv("YUQING_SECRET_KEY", "a-real-long-random-secret-value")
    settings = load_settings()
    assert settings.secret_key.get_secret_value() == "a-real-long-random-secret-value"
    assert "a-real-long" not in repr(settings)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "a: [unclosed\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(write(tmp_path, "- a\n- b\n"))


def test_unknown_source_lists_known(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sources:\n  - name: news\n    kind: rss\n    start_urls: [http://127.0.0.1/r.xml]\n",
    )
    with pytest.raises(ConfigError, match="news"):
        load_settings(path).source("forum")


def test_get_settings_reads_yuqing_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "dashboard:\n  port: 9999\n")
    monkeypatch.setenv("YUQING_CONFIG", str(path))
    get_settings.cache_clear()
    try:
        assert get_settings().dashboard.port == 9999
    finally:
        get_settings.cache_clear()
