"""AppTest of the login: nothing but the form before login, audit rows, roles, expiry, logout."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.app import LoginSession
from dashboard.components import SESSION_KEY
from tests.dashboard.seed import Seed
from tests.dashboard.users import PASSWORDS

ENTRY = Path(__file__).with_name("app_entry.py")


@pytest.fixture(autouse=True)
def _fresh(fresh_streamlit_cache: None) -> None:
    """Every test builds its own cached DashboardData and login limiter."""


@pytest.fixture
def app(
    seed: Seed, store_paths: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., AppTest]]:
    """The app over the seeded stores, logged out, at ``page``."""
    posts_path, state_url = store_paths
    monkeypatch.setenv("YUQING_TEST_POSTS_DB", str(posts_path))
    monkeypatch.setenv("YUQING_TEST_STATE_URL", state_url)
    monkeypatch.setenv("YUQING_TEST_DOWN", "")

    def _open(page: str = "overview", *, auth: str = "") -> AppTest:
        monkeypatch.setenv("YUQING_TEST_PAGE", page)
        monkeypatch.setenv("YUQING_TEST_AUTH", auth)
        at = AppTest.from_file(str(ENTRY), default_timeout=30)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    yield _open


def _log_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    at.button(key="login_submit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _shows_no_data(at: AppTest) -> None:
    assert [t.value for t in at.title] == ["登录"]
    assert len(at.metric) == 0 and len(at.dataframe) == 0 and len(at.main.text) == 0


def _dashboard_audit(seed: Seed) -> list[tuple[str, str]]:
    return [(e.actor, e.action) for e in reversed(seed.state_store.list_audit(target="dashboard"))]


def test_login_page_shows_no_data_before_login(app: Callable[..., AppTest]) -> None:
    at = app("overview")
    _shows_no_data(at)
    assert at.text_input(key="login_password").proto.type == 1  # PASSWORD: masked
    assert len(at.sidebar.button) == 0


def test_wrong_password_is_an_error_and_audited(app: Callable[..., AppTest], seed: Seed) -> None:
    at = _log_in(app(), "ana", "wrong")
    assert "用户名或密码错误" in at.error[0].value
    _shows_no_data(at)
    at = _log_in(at, "nobody", PASSWORDS["ana"])
    assert "用户名或密码错误" in at.error[0].value
    assert _dashboard_audit(seed) == [("ana", "login_failed"), ("nobody", "login_failed")]


def test_right_password_opens_the_pages_and_logout_ends_it(
    app: Callable[..., AppTest], seed: Seed
) -> None:
    at = _log_in(app("overview"), "ana", PASSWORDS["ana"])
    assert at.title[0].value == "总览"
    assert len(at.metric) > 0
    assert "分析员小王（分析员）" in [t.value for t in at.sidebar.text]
    at.sidebar.button(key="logout").click().run()
    assert not at.exception
    _shows_no_data(at)
    assert _dashboard_audit(seed) == [("ana", "login"), ("ana", "logout")]


def test_five_failures_lock_the_name(app: Callable[..., AppTest], seed: Seed) -> None:
    at = app()
    for _ in range(5):
        at = _log_in(at, "ho", "guess")
    assert "锁定" in at.error[0].value
    at = _log_in(at, "ho", PASSWORDS["ho"])  # right password, still locked
    assert "锁定" in at.error[0].value
    _shows_no_data(at)
    assert _dashboard_audit(seed)[-1] == ("ho", "login_locked")


def test_session_expires_after_inactivity(app: Callable[..., AppTest], seed: Seed) -> None:
    at = _log_in(app("overview"), "ho", PASSWORDS["ho"])
    assert at.title[0].value == "总览"
    session = at.session_state[SESSION_KEY]
    assert isinstance(session, LoginSession)
    at.session_state[SESSION_KEY] = LoginSession(
        session.user, datetime.now(UTC) - timedelta(minutes=481)
    )
    at.run()
    _shows_no_data(at)
    assert "会话已超时" in at.error[0].value
    assert _dashboard_audit(seed)[-1] == ("ho", "session_expired")


def test_auth_none_opens_the_pages_without_login(app: Callable[..., AppTest]) -> None:
    at = app("overview", auth="none")
    assert at.title[0].value == "总览"
    assert "未启用登录" in at.sidebar.warning[0].value


def test_no_users_configured_lets_nobody_in(app: Callable[..., AppTest]) -> None:
    at = app(auth="empty")
    assert "未配置任何用户" in at.error[0].value
    assert len(at.text_input) == 0 and len(at.metric) == 0
