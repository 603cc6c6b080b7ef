"""用户管理 (issue 8): admins manage database users; those users log in; nothing in clear.

AppTest of the real app (``app_entry.py``) over a real SqlStateStore. The
config users are the tests' ``ana`` (analyst), ``ho`` (head office) and
``root`` (admin) of ``tests/dashboard/users.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.errors import QueryError
from dashboard.app import LoginSession
from dashboard.auth import verify_password
from dashboard.components import SESSION_KEY
from dashboard.data import DashboardData
from dashboard.pages import users as page
from tests.dashboard.seed import Seed
from tests.dashboard.users import USERS, policy

ENTRY = Path(__file__).with_name("app_entry.py")
NEW_PASSWORD = "wang-initial-pass-1"


@pytest.fixture(autouse=True)
def _fresh(fresh_streamlit_cache: None) -> None:
    """Every test builds its own cached DashboardData and login limiter."""


@pytest.fixture
def app(
    seed: Seed, store_paths: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., AppTest]]:
    """Open ``page`` logged in as ``user`` (a test user name; ``None``: logged out)."""
    posts_path, state_url = store_paths
    monkeypatch.setenv("YUQING_TEST_POSTS_DB", str(posts_path))
    monkeypatch.setenv("YUQING_TEST_STATE_URL", state_url)
    monkeypatch.setenv("YUQING_TEST_DOWN", "")
    monkeypatch.setenv("YUQING_TEST_AUTH", "")

    def _open(page_name: str = "users", *, user: str | None = "root") -> AppTest:
        monkeypatch.setenv("YUQING_TEST_PAGE", page_name)
        at = AppTest.from_file(str(ENTRY), default_timeout=30)
        if user is not None:
            at.session_state[SESSION_KEY] = LoginSession(USERS[user], datetime.now(UTC))
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    yield _open


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _table(at: AppTest) -> dict[str, dict[str, str]]:
    frames = [d.value for d in at.dataframe if "用户名" in d.value.columns]
    assert len(frames) == 1
    return {str(r["用户名"]): r for r in frames[0].to_dict("records")}


def _add(at: AppTest, name: str, password: str, *, confirm: str | None = None) -> AppTest:
    at.text_input(key=page.NEW_NAME).input(name)
    at.text_input(key=page.NEW_DISPLAY).input(f"新用户{name}")
    at.selectbox(key=page.NEW_ROLE).select("analyst")
    at.text_input(key=page.NEW_PASSWORD).input(password)
    at.text_input(key=page.NEW_PASSWORD2).input(password if confirm is None else confirm)
    return _ok(at.button(key="users_add").click().run())


def _log_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    return _ok(at.button(key="login_submit").click().run())


def _logged_in_as(at: AppTest) -> str | None:
    try:
        session = at.session_state[SESSION_KEY]
    except KeyError:
        return None
    return session.user.username if isinstance(session, LoginSession) else None


def _everything(at: AppTest) -> str:
    parts = [t.value for t in at.text] + [m.value for m in at.markdown]
    parts += [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [s.value for s in at.success] + [f.value.to_string() for f in at.dataframe]
    return "\n".join(str(p) for p in parts)


def _state_files_bytes(store_paths: tuple[Path, str]) -> bytes:
    db = Path(store_paths[1].removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def test_analyst_gets_no_permission_and_no_data(app: Callable[..., AppTest]) -> None:
    for who in ("ana", "ho"):
        at = app(user=who)
        assert [t.value for t in at.title] == ["用户管理"]
        assert any("无权限" in e.value for e in at.error)
        assert len(at.dataframe) == 0 and len(at.text_input) == 0 and len(at.main.button) == 0


def test_admin_sees_config_users_read_only(app: Callable[..., AppTest]) -> None:
    at = app()
    rows = _table(at)
    assert set(rows) == {"ana", "ho", "root"}
    assert rows["root"]["角色"] == "管理员" and rows["ana"]["角色"] == "分析员"
    assert {r["来源"] for r in rows.values()} == {"配置文件（只读）"}
    assert any("数据库中还没有用户" in i.value for i in at.info)  # nothing to disable yet


def test_added_user_logs_in_and_nothing_is_in_clear(
    app: Callable[..., AppTest], seed: Seed, store_paths: tuple[Path, str]
) -> None:
    at = _add(app(), "wang", NEW_PASSWORD)
    assert [s.value for s in at.success] == ["已添加用户 wang。"]
    row = _table(at)["wang"]
    shown_row = (row["角色"], row["来源"], row["状态"], row["创建人"])
    assert shown_row == ("分析员", "数据库", "启用", "root")
    # The password fields are emptied, and neither password nor hash is shown.
    assert at.text_input(key=page.NEW_PASSWORD).value == ""
    assert at.text_input(key=page.NEW_PASSWORD2).value == ""
    stored = seed.state_store.get_user("wang")
    assert stored is not None and stored.role == "analyst" and stored.enabled
    assert stored.password_hash.startswith("scrypt$")
    assert verify_password(NEW_PASSWORD, stored.password_hash)
    shown = _everything(at)
    assert NEW_PASSWORD not in shown and stored.password_hash not in shown
    assert NEW_PASSWORD.encode() not in _state_files_bytes(store_paths)
    assert NEW_PASSWORD not in repr(stored)
    audit = seed.state_store.list_audit(target="user:wang")
    assert [(e.actor, e.action, e.detail) for e in audit] == [("root", "user_add", "role=analyst")]

    login = _log_in(app("overview", user=None), "wang", NEW_PASSWORD)
    assert _logged_in_as(login) == "wang"
    assert [t.value for t in login.title] == ["总览"]
    assert ("wang", "login") in [(e.actor, e.action) for e in seed.state_store.list_audit()]


def test_disabled_user_cannot_log_in_and_is_logged_out(
    app: Callable[..., AppTest], seed: Seed
) -> None:
    admin = _add(app(), "wang", NEW_PASSWORD)
    session = _log_in(app("overview", user=None), "wang", NEW_PASSWORD)
    assert _logged_in_as(session) == "wang"

    admin.selectbox(key=page.SELECTED).select("wang")
    admin = _ok(admin.button(key="users_disable").click().run())
    assert [s.value for s in admin.success] == ["已停用用户 wang。"]
    assert _table(admin)["wang"]["状态"] == "已停用"
    assert [e.action for e in seed.state_store.list_audit(target="user:wang")] == [
        "user_disable",
        "user_add",
    ]

    refused = _log_in(app("overview", user=None), "wang", NEW_PASSWORD)
    assert _logged_in_as(refused) is None
    assert "用户名或密码错误" in refused.error[0].value
    # The session opened before the user was disabled ends at its next run.
    session.run()
    assert _logged_in_as(_ok(session)) is None
    assert [t.value for t in session.title] == ["登录"]

    admin = _ok(admin.button(key="users_enable").click().run())
    assert _table(admin)["wang"]["状态"] == "启用"
    assert _logged_in_as(_log_in(app("overview", user=None), "wang", NEW_PASSWORD)) == "wang"


def test_reset_password(app: Callable[..., AppTest], seed: Seed) -> None:
    admin = _add(app(), "wang", NEW_PASSWORD)
    admin.selectbox(key=page.SELECTED).select("wang")
    admin.text_input(key=page.RESET_PASSWORD).input("wang-second-pass-2")
    admin = _ok(admin.button(key="users_reset").click().run())
    assert [s.value for s in admin.success] == ["已重置用户 wang 的密码。"]
    assert admin.text_input(key=page.RESET_PASSWORD).value == ""
    audit = seed.state_store.list_audit(target="user:wang")
    assert (audit[0].actor, audit[0].action, audit[0].detail) == ("root", "user_password_reset", "")

    assert _logged_in_as(_log_in(app("overview", user=None), "wang", NEW_PASSWORD)) is None
    assert _logged_in_as(_log_in(app("overview", user=None), "wang", "wang-second-pass-2")) == (
        "wang"
    )


@pytest.mark.parametrize(
    ("name", "password", "confirm", "message"),
    [
        ("wang", NEW_PASSWORD, "something-else-1", "两次输入的密码不一致"),
        ("wang", "short", None, "密码至少需要 10 个字符"),
        ("ana", NEW_PASSWORD, None, "已在配置文件中使用"),
        ("<b>x</b>", NEW_PASSWORD, None, "用户名只能包含"),
    ],
)
def test_bad_input_is_refused_with_a_reason(
    app: Callable[..., AppTest],
    seed: Seed,
    name: str,
    password: str,
    confirm: str | None,
    message: str,
) -> None:
    at = _add(app(), name, password, confirm=confirm)
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert seed.state_store.list_users() == []
    assert at.text_input(key=page.NEW_PASSWORD).value == ""


def test_data_module_refuses_config_users_and_duplicates(seed: Seed) -> None:
    data = DashboardData(seed.post_store, seed.state_store, auth=policy())
    with pytest.raises(ValueError, match="配置文件"):
        data.set_user_enabled("ana", False, actor="root")
    with pytest.raises(ValueError, match="配置文件"):
        data.reset_password("root", NEW_PASSWORD, actor="root")
    data.add_user(
        actor="root", username="wang", display_name="", role="head_office", password=NEW_PASSWORD
    )
    with pytest.raises(QueryError, match="already exists"):
        data.add_user(
            actor="root", username="wang", display_name="", role="analyst", password=NEW_PASSWORD
        )
    with pytest.raises(ValueError, match="未知角色"):
        data.add_user(
            actor="root", username="li", display_name="", role="superuser", password=NEW_PASSWORD
        )
    # Login policy: config users first, then the enabled database user.
    names = [u.username for u in data.login_policy().users]
    assert names == ["ana", "ho", "root", "wang"]
    data.set_user_enabled("wang", False, actor="root")
    assert [u.username for u in data.login_policy().users] == ["ana", "ho", "root"]
    with pytest.raises(ValueError, match="不能停用自己"):
        data.set_user_enabled("wang", False, actor="wang")


def test_store_refuses_a_clear_password(seed: Seed) -> None:
    with pytest.raises(QueryError, match="never a clear password"):
        seed.state_store.add_user(
            username="li", display_name="", role="analyst", password_hash="plain", actor="root"
        )
