"""The ``wecom`` channel: a 企业微信 group robot (群机器人), markdown message.

The robot URL is ``<url>?key=<key>``: ``url`` defaults to the public WeCom
endpoint and the key (a secret: anyone with it can post to the group) comes
from the env variable named by ``token_env``. Replies ``{"errcode": 0}`` on
success; 45009 (rate limit, 20 messages/minute) and -1 (system busy) are
retried, other codes are permanent.
"""

from __future__ import annotations

from urllib.parse import quote

from alerts.messages import message_of
from alerts.notifiers import register_notifier
from alerts.notifiers._http import check_robot_reply, post_json, secret_from_env
from core.models import Notification
from core.settings import ChannelConfig

WECOM_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
TEMPORARY_CODES = frozenset({-1, 45009})
MAX_MARKDOWN_BYTES = 4096
"""WeCom refuses markdown content longer than this (in UTF-8 bytes)."""


def clip_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, on a character boundary, with "…"."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", errors="ignore") + "…"


@register_notifier("wecom")
class WeComNotifier:
    """Sends each notification as one WeCom markdown message."""

    def __init__(self, name: str, url: str, key: str, *, timeout: float = 10) -> None:
        self.name = name
        self._url = f"{url}?key={quote(key, safe='')}"
        self.timeout = timeout

    @classmethod
    def from_config(cls, channel: ChannelConfig) -> WeComNotifier:
        """Raises ``ConfigError`` when ``token_env`` is missing or names an unset variable."""
        key = secret_from_env(channel, "token_env", required=True)
        return cls(channel.name, channel.url or WECOM_URL, key, timeout=channel.timeout_seconds)

    def payload(self, notification: Notification) -> dict[str, object]:
        """The JSON body WeCom expects."""
        content = message_of(notification).markdown(font_colors=True)
        return {
            "msgtype": "markdown",
            "markdown": {"content": clip_utf8(content, MAX_MARKDOWN_BYTES)},
        }

    def send(self, notification: Notification) -> None:
        """Post the message; raises ``NotifierError`` on an HTTP failure or a non-zero errcode."""
        reply = post_json(self._url, self.payload(notification), timeout=self.timeout)
        check_robot_reply(
            reply, channel=self.name, code_keys=("errcode",), temporary_codes=TEMPORARY_CODES
        )

    def __repr__(self) -> str:
        return f"<WeComNotifier {self.name!r}>"
