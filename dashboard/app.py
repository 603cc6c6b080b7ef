"""The Streamlit app: page registry and the shared DashboardData.

The launcher (``yuqing/dashboard_main.py``, run by ``streamlit run``) picks
the adapters and hands over a zero-argument factory::

    from yuqing.bootstrap import build_dashboard_data
    from dashboard.app import main

    main(build_dashboard_data)

``main`` builds the :class:`~dashboard.data.DashboardData` once per process
(``st.cache_resource``; its stores are closed when the cache is cleared),
puts it in session state for the pages (:func:`dashboard.components.get_data`)
and runs the ``st.navigation`` page registry. The dashboard never chooses an
adapter itself.

Login: until someone logs in (against ``DashboardData.auth``, see
:mod:`dashboard.auth`) the only page is the login form, which reads no data.
A session ends after ``session_minutes`` without a run (any click), or by the
sidebar's logout button. Every login, failed login, lockout, logout and
expiry is written to the audit log (target ``dashboard``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import streamlit as st

from core.errors import ConfigError, StoreUnavailable
from dashboard.auth import DEV_USER, LoginLimiter, User, UserRecord, login, session_expired
from dashboard.components import DATA_KEY, SESSION_KEY, get_data
from dashboard.data import DashboardData, DataUnavailable
from dashboard.pages import feed, incidents, overview, topics
from dashboard.pages import reports as reports_page
from dashboard.pages import settings as settings_page
from dashboard.pages import tickets as tickets_page
from dashboard.pages import users as users_page

DashboardFactory = Callable[[], DashboardData]
"""Builds the DashboardData over already-chosen stores (``yuqing.bootstrap``)."""

PAGE_TITLE = "舆情监测 · yuqing"

log = logging.getLogger("yuqing.dashboard")

LOGIN_USERNAME = "login_username"
LOGIN_PASSWORD = "login_password"
_LOGIN_FLASH = "login_flash"
_AUDIT_TARGET = "dashboard"


@dataclass
class LoginSession:
    """Who is logged in to this browser session, and when they last did anything."""

    user: User
    last_activity: datetime


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PageSpec:
    """One page of the registry. ``url_path`` is the stable address (used in links)."""

    url_path: str
    title: str
    icon: str
    render: Callable[[], None]


PAGES: tuple[PageSpec, ...] = (
    PageSpec("overview", "总览", ":material/monitoring:", overview.render),
    PageSpec("feed", "舆情信息流", ":material/feed:", feed.render),
    PageSpec("incidents", "事件", ":material/crisis_alert:", incidents.render),
    PageSpec("topics", "话题与关键词", ":material/tag:", topics.render),
    PageSpec("tickets", "投诉工单", ":material/assignment:", tickets_page.render),
    PageSpec("users", "用户管理", ":material/manage_accounts:", users_page.render),
    PageSpec("reports", "报告", ":material/summarize:", reports_page.render),
    PageSpec("settings", "设置", ":material/settings:", settings_page.render),
)
"""The pages in menu order. Issue 8 adds topics, tickets, reports, settings here."""


def _close(data: DashboardData) -> None:
    data.close()


@st.cache_resource(show_spinner="正在连接数据存储…", on_release=_close)
def _build(_factory: DashboardFactory) -> DashboardData:
    # The factory is not hashable and there is one per process, so it is left
    # out of the cache key (leading underscore): the first build is reused by
    # every session and rerun. A failed build is not cached and is retried.
    return _factory()


def load_data(factory: DashboardFactory) -> DashboardData:
    """The process-wide DashboardData, built by ``factory`` on first use.

    A configuration error or a store that cannot be reached at start is shown
    as an error on the page and stops the run (the next rerun retries).
    """
    try:
        return _build(factory)
    except StoreUnavailable as exc:
        st.error(f"无法连接数据存储：{exc}", icon=":material/cloud_off:")
        st.stop()
    except ConfigError as exc:
        st.error(f"配置错误：{exc}", icon=":material/settings:")
        st.stop()


@st.cache_resource
def _limiter() -> LoginLimiter:
    # One per process, shared by every browser session: the lockout is per user name.
    return LoginLimiter()


def _audit(data: DashboardData, actor: str, action: str, detail: str = "") -> None:
    data.audit(actor=actor[:64] or "(blank)", action=action, target=_AUDIT_TARGET, detail=detail)


def _attempt_login() -> None:
    """Login form callback: check the attempt, audit it, start the session or leave an error."""
    data = get_data()
    username = str(st.session_state.get(LOGIN_USERNAME, "")).strip()
    password = str(st.session_state.get(LOGIN_PASSWORD, ""))
    st.session_state[LOGIN_PASSWORD] = ""
    try:
        # The config file's users and those added in 用户管理 (state database).
        policy = data.login_policy()
    except DataUnavailable as exc:
        st.session_state[_LOGIN_FLASH] = f"暂时无法登录：{exc.store} 无法访问（{exc.detail}）。"
        return
    result = login(policy, _limiter(), username, password)
    try:
        if result.user is not None:
            _audit(data, username, "login", f"role={result.user.role}")
        elif result.outcome == "locked":
            _audit(data, username, "login_locked")
        else:
            locked = " (now locked)" if result.locked_until else ""
            _audit(data, username, "login_failed", f"wrong user name or password{locked}")
    except DataUnavailable as exc:
        # No audit entry, no login: every login must be on record.
        st.session_state[_LOGIN_FLASH] = f"暂时无法登录：{exc.store} 无法访问（{exc.detail}）。"
        return
    if result.user is not None:
        st.session_state[SESSION_KEY] = LoginSession(result.user, _now())
    elif result.outcome == "locked" or result.locked_until is not None:
        st.session_state[_LOGIN_FLASH] = "登录失败次数过多，该账号已暂时锁定，请稍后再试。"
    else:
        st.session_state[_LOGIN_FLASH] = "用户名或密码错误。"


def _login_page() -> None:
    """The only page before login: a form, and no data at all."""
    st.title("登录")
    if not get_data().auth.users:
        # Built without users (bootstrap refuses that from a config; a wiring gap here).
        st.error(
            "未配置任何用户，无法登录：请在 dashboard.users 中配置用户。", icon=":material/lock:"
        )
        return
    flash = st.session_state.pop(_LOGIN_FLASH, None)
    if flash:
        st.error(flash, icon=":material/lock:")
    with st.form("login_form"):
        st.text_input("用户名", key=LOGIN_USERNAME, max_chars=64)
        st.text_input("密码", key=LOGIN_PASSWORD, type="password", max_chars=256)
        st.form_submit_button("登录", type="primary", on_click=_attempt_login, key="login_submit")


def _logout() -> None:
    """Sidebar button callback: audit, then forget everything of this session."""
    data = get_data()
    session = st.session_state.get(SESSION_KEY)
    if isinstance(session, LoginSession):
        try:
            _audit(data, session.user.username, "logout")
        except DataUnavailable as exc:
            log.warning("logout of %s not audited: %s", session.user.username, exc)
    for key in list(st.session_state.keys()):
        del st.session_state[key]


def _session_users(data: DashboardData) -> tuple[UserRecord, ...]:
    """Who may stay logged in: config users and enabled database users (a disabled user is out).

    With the state store down only the config users are known: a database
    user's session ends (fail closed) and the login form says why.
    """
    try:
        return data.login_policy().users
    except DataUnavailable as exc:
        log.warning("database users unknown (%s): only config users stay logged in", exc)
        return data.auth.users


def current_session_user(data: DashboardData) -> User | None:
    """The user of this browser session, or ``None`` (logged out, or the session expired).

    With ``auth: none`` (dev only) everyone is :data:`dashboard.auth.DEV_USER`.
    A run counts as activity; a session idle longer than the policy's timeout,
    or whose user is no longer configured, is ended.
    """
    policy = data.auth
    if policy.mode == "none":
        st.session_state[SESSION_KEY] = LoginSession(DEV_USER, _now())
        return DEV_USER
    session = st.session_state.get(SESSION_KEY)
    if not isinstance(session, LoginSession):
        return None
    now = _now()
    # The configured user as of now (a changed role applies; a removed user is out).
    record = next((u for u in _session_users(data) if u.username == session.user.username), None)
    if record is None:
        del st.session_state[SESSION_KEY]
        return None
    if session_expired(session.last_activity, now, policy.session_timeout):
        del st.session_state[SESSION_KEY]
        st.session_state[_LOGIN_FLASH] = "会话已超时，请重新登录。"
        try:
            _audit(data, session.user.username, "session_expired")
        except DataUnavailable as exc:
            log.warning("expiry of %s's session not audited: %s", session.user.username, exc)
        return None
    session.user = record.user()
    session.last_activity = now
    return session.user


def _sidebar_user(user: User, *, auth_none: bool) -> None:
    st.sidebar.caption(PAGE_TITLE)
    if auth_none:
        st.sidebar.warning("开发模式：未启用登录", icon=":material/lock_open:")
        return
    st.sidebar.text(f"{user.display_name}（{user.role_zh}）")
    st.sidebar.button("退出登录", key="logout", on_click=_logout, icon=":material/logout:")


def main(factory: DashboardFactory, *, default_page: str = "overview") -> None:
    """Run one script run of the dashboard: page config, data, navigation, the chosen page.

    ``default_page`` is the ``url_path`` of the page shown at the root URL.
    Raises ``ValueError`` if it names no registered page.
    """
    if default_page not in {p.url_path for p in PAGES}:
        raise ValueError(f"unknown page {default_page!r}; pages: {[p.url_path for p in PAGES]}")
    st.set_page_config(page_title=PAGE_TITLE, page_icon="📡", layout="wide")
    data = load_data(factory)
    st.session_state[DATA_KEY] = data
    user = current_session_user(data)
    if user is None:
        st.navigation(
            [st.Page(_login_page, title="登录", icon=":material/login:", url_path="login")],
            position="hidden",
        ).run()
        return
    navigation = st.navigation(
        [
            st.Page(
                p.render,
                title=p.title,
                icon=p.icon,
                url_path=p.url_path,
                default=p.url_path == default_page,
            )
            for p in PAGES
        ]
    )
    _sidebar_user(user, auth_none=data.auth.mode == "none")
    navigation.run()
