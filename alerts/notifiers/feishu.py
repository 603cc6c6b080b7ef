"""The ``feishu`` channel: a 飞书 custom robot with its signing secret ("签名校验").

The body carries ``timestamp`` (Unix seconds) and ``sign =
base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b""))`` — Feishu's
documented scheme, where the string to sign is the *key*. ``url`` is the
robot's hook URL, or the hook base with the hook id from ``token_env``
appended. The message is an interactive card with a header in the grade
colour. Replies ``{"code": 0}`` (older robots: ``{"StatusCode": 0}``); 9499
and 11232 (rate limits) are retried; 19021 (bad signature) and others are permanent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

from alerts.messages import message_of
from alerts.notifiers import register_notifier
from alerts.notifiers._http import check_robot_reply, post_json, redact, secret_from_env
from core.errors import ConfigError
from core.models import Notification
from core.settings import ChannelConfig

FEISHU_HOOK_BASE = "https://open.feishu.cn/open-apis/bot/v2/hook/"
TEMPORARY_CODES = frozenset({9499, 11232})
CARD_TEMPLATE = {"blue": "blue", "yellow": "yellow", "orange": "orange", "red": "red"}


def feishu_sign(secret: str, timestamp: int) -> str:
    """The ``sign`` body field for ``timestamp`` (seconds)."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


@register_notifier("feishu")
class FeishuNotifier:
    """Sends each notification as a signed Feishu interactive card."""

    def __init__(
        self,
        name: str,
        url: str,
        secret: str,
        *,
        timeout: float = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._url = url
        self._secret = secret
        self.timeout = timeout
        self._clock = clock

    @classmethod
    def from_config(cls, channel: ChannelConfig) -> FeishuNotifier:
        """Raises ``ConfigError`` without a hook (url or token) or signing secret."""
        hook = secret_from_env(channel, "token_env", required=False)
        url = (channel.url or FEISHU_HOOK_BASE) + hook if hook else channel.url
        if not url:
            raise ConfigError("url/token_env: a feishu channel needs its hook URL or hook id")
        return cls(
            channel.name,
            url,
            secret_from_env(channel, "secret_env", required=True),
            timeout=channel.timeout_seconds,
        )

    def payload(self, notification: Notification) -> dict[str, object]:
        """The signed JSON body."""
        message = message_of(notification)
        timestamp = int(self._clock())
        return {
            "timestamp": str(timestamp),
            "sign": feishu_sign(self._secret, timestamp),
            "msg_type": "interactive",
            "card": {
                "header": {
                    "title": {"tag": "plain_text", "content": message.subject},
                    "template": CARD_TEMPLATE[message.color],
                },
                "elements": [{"tag": "markdown", "content": message.markdown()}],
            },
        }

    def send(self, notification: Notification) -> None:
        """Post the card; raises ``NotifierError`` on an HTTP failure or a non-zero code."""
        # The hook id in the path is the robot's credential: never show it in errors.
        shown = redact(self._url).rsplit("/", 1)[0] + "/…"
        reply = post_json(self._url, self.payload(notification), timeout=self.timeout, shown=shown)
        check_robot_reply(
            reply,
            channel=self.name,
            code_keys=("code", "StatusCode"),
            temporary_codes=TEMPORARY_CODES,
        )

    def __repr__(self) -> str:
        return f"<FeishuNotifier {self.name!r}>"
