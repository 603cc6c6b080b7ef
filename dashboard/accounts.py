"""Dashboard users kept in the state database, beside the read-only users of the config file.

The 用户管理 screen (:mod:`dashboard.pages.users`, role ``admin``) adds users
with a role and an initial password, disables and enables them and resets
passwords. Those users live in the state store's ``users`` table
(:class:`UserDirectory`, ``SqlStateStore`` has it); the users of
``dashboard.users`` in the config file are listed too but cannot be changed
here (their hashes are in a file the dashboard does not write).

Who may log in (:func:`merged_records`): every config user, plus every
*enabled* database user whose name is not a config user's (the config wins,
so nobody can shadow a configured account from the screen).

Passwords: hashed with :func:`dashboard.auth.hash_password` (scrypt, fresh
salt) before they reach a store; the store refuses anything that is not a
``scrypt$…`` hash. No function here returns a hash to a page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Protocol, get_args, runtime_checkable

import pandas as pd

from dashboard.auth import ROLE_LABELS_ZH, Role, UserRecord

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Allowed user names: letters, digits, ``_ . -``; 1–64 characters, a letter or digit first."""
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 256
ROLES: tuple[Role, ...] = get_args(Role)

SOURCE_CONFIG = "config"
SOURCE_DATABASE = "database"
SOURCE_LABELS_ZH = {SOURCE_CONFIG: "配置文件（只读）", SOURCE_DATABASE: "数据库"}

COLUMNS = [
    "username",
    "display_name",
    "role",
    "role_zh",
    "source",
    "source_zh",
    "enabled",
    "status_zh",
    "created_local",
    "created_by",
    "updated_local",
    "updated_by",
]
"""Columns of :func:`users_frame` — there is no password or hash column."""


class StoredUserRecord(Protocol):
    """One database user as the state store returns it."""

    @property
    def username(self) -> str: ...
    @property
    def display_name(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def password_hash(self) -> str: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def created_at(self) -> datetime | None: ...
    @property
    def created_by(self) -> str: ...
    @property
    def updated_at(self) -> datetime | None: ...
    @property
    def updated_by(self) -> str: ...


@runtime_checkable
class UserDirectory(Protocol):
    """Optional StateStore extension (``SqlStateStore`` has it): the ``users`` table.

    Every change writes its audit entry (target ``user:<name>``) in the same
    transaction. Unknown or duplicate names raise ``QueryError``.
    """

    def list_users(self) -> Sequence[StoredUserRecord]: ...

    def add_user(
        self, *, username: str, display_name: str, role: str, password_hash: str, actor: str
    ) -> StoredUserRecord: ...

    def set_user_enabled(self, username: str, enabled: bool, *, actor: str) -> StoredUserRecord: ...

    def set_user_password(
        self, username: str, password_hash: str, *, actor: str
    ) -> StoredUserRecord: ...


def _role(value: str) -> Role | None:
    return next((r for r in ROLES if r == value), None)


def merged_records(
    config: Sequence[UserRecord], stored: Iterable[StoredUserRecord]
) -> tuple[UserRecord, ...]:
    """Who may log in: the config users, then the enabled database users not named in the config.

    A database user with a role this version does not know is left out (it
    could not be given any permission).
    """
    names = {u.username for u in config}
    extra = []
    for u in stored:
        role = _role(u.role)
        if u.enabled and role is not None and u.username not in names:
            extra.append(UserRecord(u.username, u.display_name, role, u.password_hash))
    return (*config, *extra)


def check_username(username: str, config_names: Iterable[str]) -> str:
    """``username`` stripped, if it is a valid new name; else ``ValueError`` saying why."""
    name = username.strip()
    if not USERNAME_RE.fullmatch(name):
        raise ValueError("用户名只能包含字母、数字和 _ . -，以字母或数字开头，最长 64 个字符。")
    if name in set(config_names):
        raise ValueError(f"用户名 {name} 已在配置文件中使用。")
    return name


def check_password(password: str) -> str:
    """``password`` if it is acceptable as a new password; else ``ValueError`` saying why."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"密码至少需要 {MIN_PASSWORD_CHARS} 个字符。")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"密码最长 {MAX_PASSWORD_CHARS} 个字符。")
    if password.strip() != password:
        raise ValueError("密码首尾不能有空格。")
    return password


def check_role(role: str) -> Role:
    """``role`` as a :data:`dashboard.auth.Role`; ``ValueError`` for an unknown one."""
    found = _role(role)
    if found is None:
        raise ValueError(f"未知角色 {role!r}（可选：{', '.join(ROLES)}）。")
    return found


def users_frame(
    config: Sequence[UserRecord],
    stored: Iterable[StoredUserRecord],
    *,
    to_local: Callable[[datetime], datetime],
) -> pd.DataFrame:
    """Config users then database users (by name), columns :data:`COLUMNS`; never a hash."""
    rows: list[dict[str, object]] = [
        {
            "username": u.username,
            "display_name": u.display_name or u.username,
            "role": u.role,
            "role_zh": ROLE_LABELS_ZH[u.role],
            "source": SOURCE_CONFIG,
            "source_zh": SOURCE_LABELS_ZH[SOURCE_CONFIG],
            "enabled": True,
            "status_zh": "启用",
            "created_local": None,
            "created_by": "",
            "updated_local": None,
            "updated_by": "",
        }
        for u in config
    ]
    names = {u.username for u in config}
    for u in sorted(stored, key=lambda s: s.username):
        role = _role(u.role)
        shadowed = u.username in names
        rows.append(
            {
                "username": u.username,
                "display_name": u.display_name or u.username,
                "role": u.role,
                "role_zh": ROLE_LABELS_ZH[role] if role else f"未知角色 {u.role}",
                "source": SOURCE_DATABASE,
                "source_zh": SOURCE_LABELS_ZH[SOURCE_DATABASE],
                "enabled": u.enabled and not shadowed,
                "status_zh": (
                    "被配置文件用户覆盖" if shadowed else "启用" if u.enabled else "已停用"
                ),
                "created_local": to_local(u.created_at) if u.created_at else None,
                "created_by": u.created_by,
                "updated_local": to_local(u.updated_at) if u.updated_at else None,
                "updated_by": u.updated_by,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)
