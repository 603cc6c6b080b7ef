"""The ``dingtalk`` channel: a 钉钉 custom robot with its signing secret ("加签").

URL: ``<url>?access_token=<token>&timestamp=<ms>&sign=<sign>`` where
``sign = urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")))``
(DingTalk's documented scheme; the robot refuses a timestamp more than an hour
off). The token comes from ``token_env``, the secret from ``secret_env``.
Replies ``{"errcode": 0}``; 130101 (sending too fast) and -1 (busy) are
retried; 310000 (bad signature, keyword or IP) and others are permanent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import quote, urlencode

from alerts.messages import message_of
from alerts.notifiers import register_notifier
from alerts.notifiers._http import check_robot_reply, post_json, secret_from_env
from core.models import Notification
from core.settings import ChannelConfig

DINGTALK_URL = "https://oapi.dingtalk.com/robot/send"
TEMPORARY_CODES = frozenset({-1, 130101})


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The ``sign`` query value (base64, not yet URL-encoded) for ``timestamp_ms``."""
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@register_notifier("dingtalk")
class DingTalkNotifier:
    """Sends each notification as a signed DingTalk markdown message."""

    def __init__(
        self,
        name: str,
        url: str,
        token: str,
        secret: str,
        *,
        timeout: float = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._url = url
        self._token = token
        self._secret = secret
        self.timeout = timeout
        self._clock = clock

    @classmethod
    def from_config(cls, channel: ChannelConfig) -> DingTalkNotifier:
        """Raises ``ConfigError`` when ``token_env``/``secret_env`` are missing or unset."""
        return cls(
            channel.name,
            channel.url or DINGTALK_URL,
            secret_from_env(channel, "token_env", required=True),
            secret_from_env(channel, "secret_env", required=True),
            timeout=channel.timeout_seconds,
        )

    def signed_url(self) -> str:
        """The robot URL with token, timestamp and signature for this moment."""
        timestamp = int(self._clock() * 1000)
        query = urlencode(
            {
                "access_token": self._token,
                "timestamp": timestamp,
                "sign": dingtalk_sign(self._secret, timestamp),
            },
            quote_via=quote,
        )
        return f"{self._url}?{query}"

    def payload(self, notification: Notification) -> dict[str, object]:
        message = message_of(notification)
        return {
            "msgtype": "markdown",
            "markdown": {"title": message.subject[:64], "text": message.markdown()},
        }

    def send(self, notification: Notification) -> None:
        """Post the message; raises ``NotifierError`` on an HTTP failure or a non-zero errcode."""
        reply = post_json(self.signed_url(), self.payload(notification), timeout=self.timeout)
        check_robot_reply(
            reply, channel=self.name, code_keys=("errcode",), temporary_codes=TEMPORARY_CODES
        )

    def __repr__(self) -> str:
        return f"<DingTalkNotifier {self.name!r}>"
