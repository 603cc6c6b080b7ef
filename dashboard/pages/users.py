"""用户管理 — admins list users, add one with a role and an initial password, disable, enable,
reset a password. Other roles see "no permission" and no user data.

Users of the config file are listed read-only; those added here live in the
state database (:mod:`dashboard.accounts`). Every change is written to the
audit log (who, when) by the store, in the same transaction as the change.

Passwords: typed into password fields, hashed (scrypt) in the data module,
and cleared from the session as soon as the callback has used them; no page
ever shows a password or a hash.
"""

from __future__ import annotations

import streamlit as st

from core.errors import YuqingError
from dashboard.accounts import MIN_PASSWORD_CHARS, ROLES, SOURCE_DATABASE
from dashboard.auth import ROLE_LABELS_ZH, can
from dashboard.components import current_user, fmt_time, get_data, guard, show_flash
from dashboard.data import DataUnavailable

_FLASH = "users_flash"
NEW_NAME = "users_new_name"
NEW_DISPLAY = "users_new_display"
NEW_ROLE = "users_new_role"
NEW_PASSWORD = "users_new_password"
NEW_PASSWORD2 = "users_new_password2"
SELECTED = "users_selected"
RESET_PASSWORD = "users_reset_password"
_PASSWORD_KEYS = (NEW_PASSWORD, NEW_PASSWORD2, RESET_PASSWORD)


def _allowed(action: str) -> bool:
    """Whether the current user may manage users; a forged click is refused and audited."""
    user = current_user()
    if can(user, "manage_users"):
        return True
    get_data().audit(
        actor=user.username,
        action="denied_manage_users",
        target="users",
        detail=f"{action}; role={user.role}",
    )
    st.session_state[_FLASH] = ("error", f"操作未完成：{user.role_zh}无权管理用户。")
    return False


def _run(action: str, change: str, done: str) -> None:
    """Apply one change (``change``: which) and leave a message; passwords are cleared always."""
    data = get_data()
    actor = current_user().username
    state = st.session_state
    try:
        if not _allowed(action):
            return
        if change == "add":
            if state.get(NEW_PASSWORD, "") != state.get(NEW_PASSWORD2, ""):
                raise ValueError("两次输入的密码不一致。")
            data.add_user(
                actor=actor,
                username=str(state.get(NEW_NAME, "")),
                display_name=str(state.get(NEW_DISPLAY, "")),
                role=str(state.get(NEW_ROLE, "")),
                password=str(state.get(NEW_PASSWORD, "")),
            )
            state[NEW_NAME] = state[NEW_DISPLAY] = ""
        elif change in ("enable", "disable"):
            data.set_user_enabled(str(state.get(SELECTED, "")), change == "enable", actor=actor)
        else:
            data.reset_password(
                str(state.get(SELECTED, "")), str(state.get(RESET_PASSWORD, "")), actor=actor
            )
    except DataUnavailable as exc:
        state[_FLASH] = ("error", f"操作未完成：{exc.store} 无法访问（{exc.detail}）。")
    except (ValueError, YuqingError) as exc:
        state[_FLASH] = ("error", f"操作未完成：{exc}")
    else:
        state[_FLASH] = ("success", done)
    finally:
        for key in _PASSWORD_KEYS:
            state[key] = ""


def _add() -> None:
    name = str(st.session_state.get(NEW_NAME, "")).strip()
    _run("add", "add", f"已添加用户 {name}。")


def _set_enabled(enabled: bool) -> None:
    name = str(st.session_state.get(SELECTED, ""))
    verb = "启用" if enabled else "停用"
    _run(verb, "enable" if enabled else "disable", f"已{verb}用户 {name}。")


def _reset() -> None:
    name = str(st.session_state.get(SELECTED, ""))
    _run("reset_password", "reset", f"已重置用户 {name} 的密码。")


def render() -> None:
    """Render the users page (admins only)."""
    data = get_data()
    st.title("用户管理")
    user = current_user()
    if not can(user, "manage_users"):
        st.error(
            f"无权限：仅管理员可以管理用户（当前角色：{user.role_zh}）。", icon=":material/lock:"
        )
        return
    show_flash(_FLASH)

    with guard():
        frame = data.users()
    st.dataframe(
        frame.assign(
            created_local=frame["created_local"].map(fmt_time),
            updated_local=frame["updated_local"].map(fmt_time),
        )[
            [
                "username",
                "display_name",
                "role_zh",
                "source_zh",
                "status_zh",
                "created_local",
                "created_by",
                "updated_local",
                "updated_by",
            ]
        ].rename(
            columns={
                "username": "用户名",
                "display_name": "显示名",
                "role_zh": "角色",
                "source_zh": "来源",
                "status_zh": "状态",
                "created_local": "创建时间",
                "created_by": "创建人",
                "updated_local": "更新时间",
                "updated_by": "更新人",
            }
        ),
        hide_index=True,
        width="stretch",
        key="users_table",
    )
    st.caption("配置文件中的用户只读，请在配置文件 dashboard.users 中修改。")
    if not data.manages_users:
        st.warning("当前状态库不支持在界面中添加用户。", icon=":material/info:")
        return

    st.subheader("添加用户")
    with st.form("users_add_form", clear_on_submit=False):
        c1, c2, c3 = st.columns(3)
        c1.text_input("用户名", key=NEW_NAME, max_chars=64)
        c2.text_input("显示名", key=NEW_DISPLAY, max_chars=200)
        c3.selectbox("角色", ROLES, key=NEW_ROLE, format_func=lambda r: ROLE_LABELS_ZH[r])
        p1, p2 = st.columns(2)
        p1.text_input(
            "初始密码",
            key=NEW_PASSWORD,
            type="password",
            max_chars=256,
            help=f"至少 {MIN_PASSWORD_CHARS} 个字符",
        )
        p2.text_input("确认密码", key=NEW_PASSWORD2, type="password", max_chars=256)
        st.form_submit_button("添加用户", type="primary", on_click=_add, key="users_add")

    st.subheader("停用 / 启用 / 重置密码")
    database_users = frame[frame["source"] == SOURCE_DATABASE]
    if database_users.empty:
        st.info("数据库中还没有用户。")
        return
    labels = {
        str(r.username): f"{r.username}（{r.display_name} · {r.role_zh} · {r.status_zh}）"
        for r in database_users.itertuples()
    }
    selected = st.selectbox("选择用户", list(labels), format_func=labels.__getitem__, key=SELECTED)
    if selected is None:
        return
    enabled = bool(database_users.set_index("username").loc[selected, "enabled"])
    with st.container(horizontal=True, vertical_alignment="bottom"):
        if enabled:
            st.button(
                "停用", key="users_disable", on_click=_set_enabled, args=(False,),
                icon=":material/block:",
            )  # fmt: skip
        else:
            st.button(
                "启用", key="users_enable", on_click=_set_enabled, args=(True,),
                icon=":material/check_circle:",
            )  # fmt: skip
        st.text_input("新密码", key=RESET_PASSWORD, type="password", max_chars=256)
        st.button("重置密码", key="users_reset", on_click=_reset, icon=":material/key:")
