"""Signed one-click action links: ``<public_url>/action?t=<token>``.

A token is ``base64url(claims JSON) + "." + base64url(HMAC-SHA256(key, claims part))``
with claims ``{"i": incident id, "a": action, "w": who, "e": expiry (Unix s)}``.
The key is derived from ``settings.secret_key`` for this one purpose, so a
token can never be replayed against another use of the same secret. Who
clicked is what the link was issued to (``channel:<name>``, or a user name):
robot groups and shared mailboxes have no per-person identity, and the audit
log says exactly that.

Standard library only (``hmac``, ``hashlib``, ``base64``, ``json``): the
format is twenty lines and has no dependency to keep patched.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, cast
from urllib.parse import quote

from core.errors import YuqingError

Action = Literal["acknowledge", "escalate", "resolve"]
ACTIONS: tuple[Action, ...] = ("acknowledge", "escalate", "resolve")
KEY_PURPOSE = b"yuqing/incident-action-links/v1"


class LinkError(YuqingError):
    """A link that must not be honoured; ``reason`` is ``tampered`` or ``expired``."""

    def __init__(self, reason: Literal["tampered", "expired"], message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ActionClaims:
    """What a verified link allows: ``who`` may do ``action`` to incident ``incident_id``."""

    incident_id: int
    action: Action
    who: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Issues and verifies action tokens with a key derived from ``secret``.

    Raises ``ValueError`` for an empty secret (links signed with "" would be forgeable).
    """

    def __init__(self, secret: str, public_url: str, *, ttl: timedelta) -> None:
        if not secret:
            raise ValueError("link signing needs a non-empty secret_key")
        self._key = hmac.new(secret.encode(), KEY_PURPOSE, hashlib.sha256).digest()
        self.public_url = public_url.rstrip("/")
        self.ttl = ttl

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())

    def token(self, incident_id: int, action: Action, *, who: str, now: datetime) -> str:
        """A token letting ``who`` do ``action`` to the incident until ``now + ttl``."""
        expires = int((now + self.ttl).timestamp())
        claims = {"i": incident_id, "a": action, "w": who, "e": expires}
        body = _b64(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
        return f"{body}.{self._mac(body)}"

    def action_urls(self, incident_id: int, *, who: str, now: datetime) -> dict[str, str]:
        """One signed URL per action, in display order."""
        urls: dict[str, str] = {}
        for action in ACTIONS:
            token = self.token(incident_id, action, who=who, now=now)
            urls[action] = f"{self.public_url}/action?t={quote(token)}"
        return urls

    def verify(self, token: str, *, now: datetime) -> ActionClaims:
        """The claims of a genuine, unexpired token.

        Raises ``LinkError("tampered")`` for anything malformed or with a bad
        signature, ``LinkError("expired")`` once the expiry has passed. The
        signature is checked (in constant time) before anything is parsed.
        """
        body, _, mac = token.partition(".")
        if not body or not mac or not hmac.compare_digest(mac, self._mac(body)):
            raise LinkError("tampered", "the link's signature does not match")
        try:
            claims = json.loads(_unb64(body))
            incident_id = int(claims["i"])
            action = str(claims["a"])
            who = str(claims["w"])
            expires = datetime.fromtimestamp(int(claims["e"]), UTC)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise LinkError("tampered", "the link's content is not readable") from exc
        if action not in ACTIONS:
            raise LinkError("tampered", f"unknown action {action!r}")
        if now >= expires:
            raise LinkError("expired", f"the link expired at {expires.isoformat()}")
        return ActionClaims(incident_id, cast(Action, action), who, expires)
