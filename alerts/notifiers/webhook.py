"""The ``webhook`` channel: a generic JSON POST for the bank's own systems.

Body (UTF-8 JSON)::

    {"channel": …, "dedup_key": …, "incident_id": …, "subject": …, "text": …,
     "message": {…structured message, see alerts.messages.Message…}}

``dedup_key`` lets the receiver drop a repeat (delivery is at-least-once).
With ``secret_env`` set, two headers let it check origin and freshness:
``X-Yuqing-Timestamp`` (Unix seconds) and ``X-Yuqing-Signature:
sha256=<hex HMAC-SHA256 of "<timestamp>." + body>``, keyed by the secret.
2xx = delivered; 5xx/429/timeouts = retry; other 4xx = give up.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable

from alerts.notifiers import register_notifier
from alerts.notifiers._http import post_json, secret_from_env
from core.errors import ConfigError
from core.models import Notification
from core.settings import ChannelConfig

SIGNATURE_HEADER = "X-Yuqing-Signature"
TIMESTAMP_HEADER = "X-Yuqing-Timestamp"


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of ``timestamp + "." + body`` keyed by ``secret``.

    Receivers recompute it and compare with ``hmac.compare_digest``.
    """
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


@register_notifier("webhook")
class WebhookNotifier:
    """POSTs each notification as JSON to ``url``; signs it when a secret is configured."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        secret: str = "",
        timeout: float = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.url = url
        self._secret = secret
        self.timeout = timeout
        self._clock = clock

    @classmethod
    def from_config(cls, channel: ChannelConfig) -> WebhookNotifier:
        """Raises ``ConfigError`` without ``url`` or when ``secret_env`` names an unset variable."""
        if not channel.url or not channel.url.startswith(("http://", "https://")):
            raise ConfigError("url: a webhook channel needs an http(s) url")
        secret = secret_from_env(channel, required=bool(channel.secret_env))
        return cls(channel.name, channel.url, secret=secret, timeout=channel.timeout_seconds)

    def send(self, notification: Notification) -> None:
        """POST the notification; raises ``NotifierError`` (temporary or not) on failure."""
        body = json.dumps(
            {
                "channel": self.name,
                "dedup_key": notification.dedup_key,
                "incident_id": notification.incident_id,
                "subject": notification.subject,
                "text": notification.body,
                "message": notification.payload or None,
            },
            ensure_ascii=False,
        ).encode("utf-8")
        headers: dict[str, str] = {}
        if self._secret:
            timestamp = str(int(self._clock()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = webhook_signature(self._secret, timestamp, body)
        post_json(self.url, {}, body=body, headers=headers, timeout=self.timeout)

    def __repr__(self) -> str:  # never show the secret
        return f"<WebhookNotifier {self.name!r}>"
