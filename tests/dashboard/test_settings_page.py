"""设置: the settings in force, read-only, with every secret hidden (AppTest and pure checks)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import streamlit as st

from core.errors import StoreUnavailable
from core.settings import Settings, load_settings
from dashboard.data import DashboardData, DataUnavailable
from dashboard.settings_view import (
    CONFIGURED,
    build_settings_view,
    hide_password,
    mask_url,
)
from tests.dashboard.apptest import (
    OpenApp,
    everything,
    frame_with,
    frames_with,
    make_opener,
)
from tests.dashboard.seed import Seed

WEBHOOK_SECRET = "whsec-Lanhai-7Q2x9Vb3"
SMTP_PASSWORD = "smtp-Pa55word-Lanhai"
DING_TOKEN = "dingtoken-8c1f0e77a2"
FEISHU_HOOK_ID = "5d0a1c2e-3f4b-4c6d-9e8f-0a1b2c3d4e5f"
URL_TOKEN = "qtoken9f8e7d6c5b"
PG_PASSWORD = "pg-Secr3t-pass"
ES_PASSWORD = "es-Secr3t-pass"
SECRET_KEY = "app-secret-key-5b9f2c7d1e"
SECRETS = [
    WEBHOOK_SECRET,
    SMTP_PASSWORD,
    DING_TOKEN,
    FEISHU_HOOK_ID,
    URL_TOKEN,
    PG_PASSWORD,
    ES_PASSWORD,
    SECRET_KEY,
]


@pytest.fixture
def open_app(
    seed: Seed, store_paths: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OpenApp]:
    """Open a page over the seeded stores (see ``tests.dashboard.apptest.make_opener``)."""
    yield make_opener(store_paths, tmp_path, monkeypatch)
    st.cache_resource.clear()
    st.cache_data.clear()


def _config() -> dict[str, Any]:
    return {
        "watchlist": {
            "bank": {"name": "澜海银行", "aliases": ["澜海", "LANHAI"]},
            "exclusions": ["澜海路"],
            "branches": [{"name": "澜海银行滨江支行", "aliases": ["滨江支行"], "region": "滨江区"}],
            "products": [{"name": "澜海稳盈理财", "aliases": ["稳盈"], "kind": "理财"}],
        },
        "sources": [
            {
                "name": "lanhai_news",
                "kind": "rss",
                "start_urls": ["https://news.lanhai.example/rss?token=" + URL_TOKEN],
                "interval_minutes": 15,
            }
        ],
        "rules": [
            {"name": "volume_spike", "type": "volume_spike", "ratio": 4.0},
            {"name": "neg_share", "type": "negative_share", "dry_run": True},
        ],
        "channels": [
            {"name": "log", "type": "log"},
            {
                "name": "hq_webhook",
                "type": "webhook",
                "url": f"https://hooks.lanhai.example/in?key={URL_TOKEN}",
                "secret_env": "YQ_TEST_WEBHOOK_SECRET",
                "audience": "head_office",
                "min_grade": "II",
            },
            {
                "name": "hq_mail",
                "type": "email",
                "recipients": ["pr-team@lanhai.example"],
                "secret_env": "YQ_TEST_SMTP_PASSWORD",
                "smtp": {
                    "host": "smtp.lanhai.example",
                    "user": "yuqing@lanhai.example",
                    "sender": "yuqing@lanhai.example",
                },
            },
            {
                "name": "ding",
                "type": "dingtalk",
                "url": "https://oapi.dingtalk.com/robot/send",
                "token_env": "YQ_TEST_DING_TOKEN",
                "secret_env": "YQ_TEST_DING_SECRET_UNSET",
            },
            {
                "name": "feishu",
                "type": "feishu",
                "url": f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU_HOOK_ID}",
            },
        ],
        "storage": {
            "state_url": f"postgresql+psycopg://yuqing:{PG_PASSWORD}@db.lanhai.example/yuqing",
        },
        "escalation": {"escalate_after_minutes": 45},
    }


@pytest.fixture
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YQ_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("YQ_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("YQ_TEST_DING_TOKEN", DING_TOKEN)
    monkeypatch.delenv("YQ_TEST_DING_SECRET_UNSET", raising=False)
    monkeypatch.setenv("YUQING_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("YUQING_STORAGE__ES_PASSWORD", ES_PASSWORD)


def test_settings_page_shows_what_is_in_force(open_app: OpenApp, secrets_in_env: None) -> None:
    at = open_app("settings", config=_config(), user="ana")  # every role may read it
    assert at.title[0].value == "设置"
    settings = load_settings(_config_path(at))
    watch = frame_with(at, "别名")
    assert list(watch["名称"]) == ["澜海银行", "澜海银行滨江支行", "澜海稳盈理财"]
    assert "澜海、LANHAI" in set(watch["别名"])
    assert "排除词：澜海路" in [t.value for t in at.main.text]
    sources = frame_with(at, "采集间隔（分钟）")
    assert list(sources["名称"]) == [s.name for s in settings.sources]
    crisis = 15 / settings.scheduler.crisis_factor
    assert sources["危机模式间隔（分钟）"].item() == pytest.approx(crisis, abs=0.01)
    rules = frame_with(at, "试运行")
    assert list(rules["名称"]) == [r.name for r in settings.rules]
    assert rules.loc[rules["名称"] == "neg_share", "试运行"].item() == "是"
    assert "ratio=4.0" in rules.loc[rules["名称"] == "volume_spike", "参数"].item()
    channels = frame_with(at, "签名密钥/密码").set_index("名称")
    assert list(channels.index) == [c.name for c in settings.channels]
    assert channels.loc["hq_webhook", "签名密钥/密码"] == CONFIGURED
    assert channels.loc["hq_mail", "签名密钥/密码"] == CONFIGURED
    assert channels.loc["ding", "令牌"] == CONFIGURED
    assert channels.loc["ding", "签名密钥/密码"].startswith("未设置")
    assert channels.loc["hq_webhook", "通报层级"] == "总行"
    pairs = {k: v for f in frames_with(at, "项目") for k, v in zip(f["项目"], f["值"], strict=True)}
    after = pairs["未确认多久后升级（分钟）"]
    assert after == str(settings.escalation.escalate_after_minutes) == "45.0"
    assert pairs["II级（重大）首次通报"] == "总行"


def _config_path(at: Any) -> str:
    import os

    return os.environ["YUQING_TEST_CONFIG"]


def test_no_secret_appears_anywhere_on_the_page(open_app: OpenApp, secrets_in_env: None) -> None:
    at = open_app("settings", config=_config())
    shown = everything(at)
    assert "smtp.lanhai.example" in shown and "hooks.lanhai.example" in shown  # the page did render
    for secret in SECRETS:
        assert secret not in shown, secret
    assert "pr-team@lanhai.example" not in shown  # recipients are PII-masked
    assert "postgresql+psycopg://yuqing:***@db.lanhai.example/yuqing" in shown


def test_without_settings_the_page_says_so(open_app: OpenApp) -> None:
    at = open_app("settings")
    assert "未提供生效配置" in at.warning[0].value
    assert not at.dataframe


def test_url_masking() -> None:
    assert mask_url(f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU_HOOK_ID}") == (
        "https://open.feishu.cn/open-apis/bot/v2/hook/***"
    )
    assert mask_url("https://oapi.dingtalk.com/robot/send?access_token=abc123") == (
        "https://oapi.dingtalk.com/robot/send?access_token=***"
    )
    assert mask_url("https://u:pw@hooks.example/services/T0AB12/B0CD34/XyZXyZXyZXyZ") == (
        "https://u@hooks.example/services/***/***/***"
    )
    assert mask_url("https://news.example/list?page=2&sign=zz", strict=False) == (
        "https://news.example/list?page=2&sign=***"
    )
    assert mask_url(None) == "—"
    assert hide_password("postgresql://a:b@h/db") == "postgresql://a:***@h/db"
    assert hide_password("sqlite:///var/state.db") == "sqlite:///var/state.db"


def test_settings_view_reads_only_whether_a_secret_is_set() -> None:
    settings = load_settings(None, **_config())
    view = build_settings_view(settings, env={"YQ_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET})
    channels = view.channels.set_index("名称")
    assert channels.loc["hq_webhook", "签名密钥/密码"] == CONFIGURED
    assert channels.loc["hq_mail", "签名密钥/密码"] == "未设置（环境变量 YQ_TEST_SMTP_PASSWORD）"
    cells = " ".join(str(v) for f in (view.channels, view.storage) for v in f.to_numpy().ravel())
    assert WEBHOOK_SECRET not in cells and PG_PASSWORD not in cells


def test_stored_silences_are_listed_with_the_config(
    open_app: OpenApp, seed: Seed, secrets_in_env: None
) -> None:
    now = datetime.now(UTC)
    seed.state_store.add_silence(
        starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(hours=4),
        created_by="张三",
        reason="滨江支行演练",
        entity="澜海银行滨江支行",
    )
    seed.state_store.add_silence(  # already over: not shown
        starts_at=now - timedelta(hours=3),
        ends_at=now - timedelta(hours=1),
        created_by="李四",
        reason="已结束的静默",
        rule="volume_spike",
    )
    at = open_app("settings", config=_config())
    silences = frame_with(at, "含特别重大")
    assert list(silences["原因"]) == ["滨江支行演练"]
    assert silences["设置人"].item() == "张三"
    assert silences["状态"].item() == "生效中"
    assert "澜海银行滨江支行" in silences["匹配"].item()


def test_an_unreadable_silence_list_is_an_error_not_none(
    seed: Seed, store_paths: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(**_kwargs: object) -> list[object]:
        raise StoreUnavailable("state database locked (simulated)")

    monkeypatch.setattr(seed.state_store, "list_silences", down)
    data = DashboardData(
        seed.post_store, seed.state_store, settings=Settings.model_validate(_config())
    )
    with pytest.raises(DataUnavailable, match="state store"):
        data.settings_view()
