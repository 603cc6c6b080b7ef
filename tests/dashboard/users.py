"""Dashboard users of the tests: one per role, with their (test-only) passwords."""

from __future__ import annotations

from dashboard.auth import AuthPolicy, User, UserRecord, hash_password

PASSWORDS = {"ana": "ana-pass-1", "ho": "ho-pass-1", "root": "root-pass-1"}

USERS: dict[str, User] = {
    "ana": User("ana", "分析员小王", "analyst"),
    "ho": User("ho", "总行张三", "head_office"),
    "root": User("root", "系统管理员", "admin"),
}

# Cheap scrypt cost for the tests (the shape is the same; the hash is checked the same way).
RECORDS = tuple(
    UserRecord(u.username, u.display_name, u.role, hash_password(PASSWORDS[name], n=2**10))
    for name, u in USERS.items()
)


def policy(mode: str = "required", *, session_minutes: int = 480) -> AuthPolicy:
    """The tests' auth policy (``none``: no login, as in a dev config; ``empty``: no users)."""
    if mode == "none":
        return AuthPolicy(mode="none")
    if mode == "empty":
        return AuthPolicy()
    return AuthPolicy(users=RECORDS, session_minutes=session_minutes)
