"""Dashboard login: password hashes, users, roles and a per-user lockout. No Streamlit.

Passwords are stored only as ``scrypt$n$r$p$salt$hash`` (salt and hash in
URL-safe base64, a fresh random salt per hash); :func:`hash_password` makes
one (``yuqing users hash-password`` prints it for the config file) and
:func:`verify_password` checks one in constant time.

Roles (issue 8): ``analyst`` reads, acknowledges, adds notes and (issue 7)
promotes incidents to problem records and moves their status;
``head_office`` also escalates, resolves and sees reports; ``admin`` may do
everything, including managing users. :func:`can` is the one permission check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from core.errors import ConfigError
from core.settings import DashboardConfig

Role = Literal["analyst", "head_office", "admin"]
Action = Literal[
    "read", "acknowledge", "note", "escalate", "resolve", "reports", "manage_users", "promote"
]

# "promote": promote an incident to a problem record and change problem statuses
# (issue 7). The complaint team works with the analyst role.
_ANALYST: frozenset[Action] = frozenset({"read", "acknowledge", "note", "promote"})
_HEAD_OFFICE: frozenset[Action] = _ANALYST | {"escalate", "resolve", "reports"}
PERMISSIONS: Mapping[Role, frozenset[Action]] = {
    "analyst": _ANALYST,
    "head_office": _HEAD_OFFICE,
    "admin": _HEAD_OFFICE | {"manage_users"},
}
"""What each role may do."""

ROLE_LABELS_ZH: Mapping[Role, str] = {
    "analyst": "分析员",
    "head_office": "总行",
    "admin": "管理员",
}

# scrypt cost: 2**14 × 8 × 1 is ~16 MB and a few tens of ms per check — slow
# enough to hurt a guesser, fast enough for a login form.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_MAX_N = 2**20  # refuse absurd costs read from a config file (memory bomb)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=256 * 1024 * 1024
    )


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$n$r$p$salt$hash`` of ``password`` with a fresh random salt.

    Raises ``ValueError`` for an empty password.
    """
    if not password:
        raise ValueError("the password must not be empty")
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, n, r, p, _KEY_BYTES)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(key)}"


def is_password_hash(encoded: str) -> bool:
    """Whether ``encoded`` is a well-formed ``scrypt$…`` hash (not whether any password matches)."""
    return _parse(encoded) is not None


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return None
    if n < 2 or n > _MAX_N or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16:
        return None
    if len(salt) < 8 or len(key) < 16:
        return None
    return n, r, p, salt, key


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches the hash ``encoded``; ``False`` for a malformed hash.

    The comparison is constant-time (``hmac.compare_digest``).
    """
    parsed = _parse(encoded)
    if parsed is None:
        return False
    n, r, p, salt, key = parsed
    candidate = _scrypt(password, salt, n, r, p, len(key))
    return hmac.compare_digest(candidate, key)


@dataclass(frozen=True)
class User:
    """A logged-in dashboard user (never carries the password hash)."""

    username: str
    display_name: str
    role: Role

    @property
    def role_zh(self) -> str:
        return ROLE_LABELS_ZH[self.role]


@dataclass(frozen=True)
class UserRecord:
    """A configured user: who, which role, and the password hash to check against."""

    username: str
    display_name: str
    role: Role
    password_hash: str = field(repr=False)

    def user(self) -> User:
        return User(self.username, self.display_name or self.username, self.role)


# Checked when the user name is unknown, so a wrong name costs as long as a
# wrong password (no user-name enumeration by timing).
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def authenticate(users: Iterable[UserRecord], username: str, password: str) -> User | None:
    """The user named ``username`` if ``password`` is theirs, else ``None``.

    User names are compared after stripping spaces, case-sensitively.
    """
    name = username.strip()
    record = next((u for u in users if u.username == name), None)
    if record is None:
        verify_password(password, _DUMMY_HASH)
        return None
    return record.user() if verify_password(password, record.password_hash) else None


def can(user: User | None, action: Action) -> bool:
    """Whether ``user`` may do ``action`` (nobody may do anything when logged out)."""
    return user is not None and action in PERMISSIONS[user.role]


DEV_USER = User("dev", "开发模式（未启用登录）", "admin")
"""The user of a dev dashboard with ``dashboard.auth: none``."""


@dataclass(frozen=True)
class AuthPolicy:
    """How the dashboard logs people in: ``required`` (against ``users``) or ``none`` (dev)."""

    users: tuple[UserRecord, ...] = ()
    mode: Literal["required", "none"] = "required"
    session_minutes: int = 480

    @property
    def session_timeout(self) -> timedelta:
        return timedelta(minutes=self.session_minutes)

    @classmethod
    def from_config(cls, config: DashboardConfig, *, env: str) -> AuthPolicy:
        """The policy of ``settings.dashboard`` in ``env``.

        Raises ``ConfigError`` when login is required but no user is configured
        (the dashboard then refuses to start: nobody could log in, and in prod
        an open dashboard is not an option).
        """
        users = tuple(
            UserRecord(u.username, u.display_name, u.role, u.password_hash) for u in config.users
        )
        if config.auth == "required" and not users:
            hint = "" if env == "prod" else "，或在开发环境设置 dashboard.auth: none"
            raise ConfigError(
                "dashboard.users 为空：请用 `yuqing users hash-password` 生成密码哈希"
                f"并配置用户{hint}"
                f" (env={env}: the dashboard refuses to start without users)"
            )
        return cls(users=users, mode=config.auth, session_minutes=config.session_minutes)


Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LoginLimiter:
    """In-memory per-user-name lockout: ``max_failures`` failures in a row lock for ``lockout``.

    A success clears the count. Process-local by design (one dashboard
    process); a restart forgets it.
    """

    def __init__(
        self,
        *,
        max_failures: int = 5,
        lockout: timedelta = timedelta(minutes=5),
        clock: Clock = _utcnow,
    ) -> None:
        self.max_failures = max_failures
        self.lockout = lockout
        self._clock = clock
        self._failures: dict[str, int] = {}
        self._locked_until: dict[str, datetime] = {}

    def locked_until(self, username: str) -> datetime | None:
        """When the lockout of ``username`` ends, or ``None`` if it is not locked."""
        until = self._locked_until.get(username.strip())
        if until is None:
            return None
        if self._clock() >= until:
            del self._locked_until[username.strip()]
            return None
        return until

    def failure(self, username: str) -> None:
        """Count a failed attempt; the ``max_failures``-th locks the name."""
        name = username.strip()
        count = self._failures.get(name, 0) + 1
        if count >= self.max_failures:
            self._locked_until[name] = self._clock() + self.lockout
            count = 0
        self._failures[name] = count

    def success(self, username: str) -> None:
        """Forget the failures of ``username``."""
        self._failures.pop(username.strip(), None)


LoginOutcome = Literal["ok", "bad_credentials", "locked"]


@dataclass(frozen=True)
class LoginResult:
    outcome: LoginOutcome
    user: User | None = None
    locked_until: datetime | None = None


def login(policy: AuthPolicy, limiter: LoginLimiter, username: str, password: str) -> LoginResult:
    """Check a login attempt against ``policy`` and the lockout; records the attempt.

    A locked name is refused without checking the password (so a guesser learns
    nothing while it is locked).
    """
    until = limiter.locked_until(username)
    if until is not None:
        return LoginResult("locked", locked_until=until)
    user = authenticate(policy.users, username, password)
    if user is None:
        limiter.failure(username)
        return LoginResult("bad_credentials", locked_until=limiter.locked_until(username))
    limiter.success(username)
    return LoginResult("ok", user=user)


def session_expired(last_activity: datetime, now: datetime, timeout: timedelta) -> bool:
    """Whether a session last active at ``last_activity`` has expired at ``now``."""
    return now - last_activity > timeout
