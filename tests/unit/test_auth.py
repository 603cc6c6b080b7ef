"""dashboard.auth: password hashes, authentication, lockout, permissions; the users settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.errors import ConfigError
from core.settings import DEMO_PASSWORD_HASHES, DashboardConfig, load_settings
from dashboard.auth import (
    AuthPolicy,
    LoginLimiter,
    User,
    UserRecord,
    authenticate,
    can,
    hash_password,
    is_password_hash,
    login,
    session_expired,
    verify_password,
)
from yuqing.cli_users import app as users_app

REPO = Path(__file__).resolve().parents[2]
FAST = {"n": 2**10}  # cheap scrypt for the tests; same format and check
DEMO_PASSWORDS = {
    "analyst": "demo-analyst",
    "head_office": "demo-head-office",
    "admin": "demo-admin",
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("YUQING_"):
            monkeypatch.delenv(key)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _users() -> tuple[UserRecord, ...]:
    return (
        UserRecord("ana", "小王", "analyst", hash_password("ana-secret", **FAST)),
        UserRecord("ho", "", "head_office", hash_password("ho-secret", **FAST)),
    )


def test_hash_and_verify() -> None:
    encoded = hash_password("正确的密码 1", **FAST)
    assert encoded.startswith("scrypt$1024$8$1$") and is_password_hash(encoded)
    assert verify_password("正确的密码 1", encoded)
    assert not verify_password("正确的密码 2", encoded)
    assert not verify_password("", encoded)
    assert hash_password("same", **FAST) != hash_password("same", **FAST)  # salted


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "plain-password",
        "scrypt$16384$8$1$salt",
        "scrypt$3$8$1$c2FsdHNhbHQ$aGFzaA",
        "scrypt$1073741824$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
        "pbkdf2$x$y$z$a$b",
    ],
)
def test_malformed_hashes_never_match(bad: str) -> None:
    assert not is_password_hash(bad)
    assert not verify_password("plain-password", bad)


def test_empty_password_cannot_be_hashed() -> None:
    with pytest.raises(ValueError):
        hash_password("")


def test_authenticate() -> None:
    users = _users()
    assert authenticate(users, " ana ", "ana-secret") == User("ana", "小王", "analyst")
    assert authenticate(users, "ho", "ho-secret") == User("ho", "ho", "head_office")
    assert authenticate(users, "ana", "ho-secret") is None
    assert authenticate(users, "nobody", "ana-secret") is None
    assert authenticate(users, "ANA", "ana-secret") is None


def test_permissions() -> None:
    analyst = User("a", "a", "analyst")
    head = User("h", "h", "head_office")
    admin = User("r", "r", "admin")
    assert can(analyst, "read") and can(analyst, "acknowledge") and can(analyst, "note")
    assert not can(analyst, "resolve") and not can(analyst, "escalate")
    assert not can(analyst, "reports") and not can(analyst, "manage_users")
    assert can(head, "resolve") and can(head, "escalate") and can(head, "reports")
    assert not can(head, "manage_users")
    assert all(
        can(admin, a)
        for a in ("read", "acknowledge", "note", "escalate", "resolve", "reports", "manage_users")
    )
    assert not can(None, "read")


def test_lockout_after_five_failures_for_five_minutes() -> None:
    clock = Clock()
    limiter = LoginLimiter(clock=clock)
    policy = AuthPolicy(users=_users())
    for _ in range(4):
        assert login(policy, limiter, "ana", "wrong").outcome == "bad_credentials"
    fifth = login(policy, limiter, "ana", "wrong")
    assert fifth.outcome == "bad_credentials" and fifth.locked_until is not None
    assert login(policy, limiter, "ana", "ana-secret").outcome == "locked"
    assert login(policy, limiter, "ho", "ho-secret").outcome == "ok"  # per user name
    clock.now += timedelta(minutes=5)
    result = login(policy, limiter, "ana", "ana-secret")
    assert result.outcome == "ok" and result.user is not None


def test_success_resets_the_failure_count() -> None:
    limiter = LoginLimiter(clock=Clock())
    policy = AuthPolicy(users=_users())
    for _ in range(4):
        login(policy, limiter, "ana", "wrong")
    assert login(policy, limiter, "ana", "ana-secret").outcome == "ok"
    for _ in range(4):
        assert login(policy, limiter, "ana", "wrong").outcome == "bad_credentials"
    assert limiter.locked_until("ana") is None


def test_session_expiry() -> None:
    start = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    timeout = timedelta(minutes=480)
    assert not session_expired(start, start + timeout, timeout)
    assert session_expired(start, start + timeout + timedelta(seconds=1), timeout)


# ---------------------------------------------------------------------- settings


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "yuqing.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_demo_users_have_the_documented_passwords() -> None:
    settings = load_settings(REPO / "config" / "demo.yaml")
    users = settings.dashboard.users
    assert {u.username: u.role for u in users} == {
        "analyst": "analyst",
        "head_office": "head_office",
        "admin": "admin",
    }
    for user in users:
        assert user.password_hash in DEMO_PASSWORD_HASHES
        assert verify_password(DEMO_PASSWORDS[user.username], user.password_hash)
    policy = AuthPolicy.from_config(settings.dashboard, env=settings.env)
    assert len(policy.users) == 3 and policy.session_minutes == 480


def test_prod_refuses_demo_password_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUQING_SECRET_KEY", "a-real-long-random-secret-value")
    demo_hash = sorted(DEMO_PASSWORD_HASHES)[0]
    user = f"    - {{username: boss, role: admin, password_hash: '{demo_hash}'}}\n"
    path = _write(tmp_path, f"env: prod\ndashboard:\n  users:\n{user}")
    with pytest.raises(ConfigError, match="demo password"):
        load_settings(path)
    real = hash_password("a real password", **FAST)
    path = _write(
        tmp_path,
        f"env: prod\ndashboard:\n  users:\n    - {{username: boss, role: admin, "
        f"password_hash: '{real}'}}\n",
    )
    assert load_settings(path).dashboard.users[0].username == "boss"


def test_plain_passwords_and_duplicates_are_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "dashboard:\n  users:\n    - {username: a, role: admin, password_hash: hunter2}\n"
    )
    with pytest.raises(ConfigError, match="never a plain password"):
        load_settings(path)
    h = hash_password("x" * 10, **FAST)
    path = _write(
        tmp_path,
        "dashboard:\n  users:\n"
        f"    - {{username: a, role: admin, password_hash: '{h}'}}\n"
        f"    - {{username: a, role: analyst, password_hash: '{h}'}}\n",
    )
    with pytest.raises(ConfigError, match="duplicate user names"):
        load_settings(path)


def test_auth_none_only_in_dev(tmp_path: Path) -> None:
    assert load_settings(_write(tmp_path, "dashboard:\n  auth: none\n")).dashboard.auth == "none"
    with pytest.raises(ConfigError, match="only with env: dev"):
        load_settings(_write(tmp_path, "env: test\ndashboard:\n  auth: none\n"))


def test_no_users_refuses_to_start_the_dashboard() -> None:
    with pytest.raises(ConfigError, match=r"dashboard\.users"):
        AuthPolicy.from_config(DashboardConfig(), env="prod")
    assert AuthPolicy.from_config(DashboardConfig(auth="none"), env="dev").mode == "none"


# ---------------------------------------------------------------------- CLI


def test_cli_hash_password_from_stdin_and_prompt() -> None:
    runner = CliRunner()
    result = runner.invoke(users_app, ["hash-password", "--stdin"], input="a long password\n")
    assert result.exit_code == 0, result.output
    encoded = result.stdout.strip()
    assert verify_password("a long password", encoded)
    assert "a long password" not in result.stdout

    result = runner.invoke(users_app, ["hash-password"], input="another pass\nanother pass\n")
    assert result.exit_code == 0, result.output
    assert verify_password("another pass", result.stdout.strip().splitlines()[-1])

    result = runner.invoke(users_app, ["hash-password", "--stdin"], input="short\n")
    assert result.exit_code == 2

    check = runner.invoke(users_app, ["check-password", encoded, "--stdin"], input="nope\n")
    assert check.exit_code == 1
