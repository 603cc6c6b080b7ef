"""The ``log`` channel: writes each notification to the ``yuqing.alerts`` logger at WARNING.

Always available and never fails, so a fresh install (and ``make demo``)
shows alerts without any external channel configured.
"""

from __future__ import annotations

import logging

from alerts.notifiers import register_notifier
from core.models import Notification
from core.settings import ChannelConfig

ALERTS_LOGGER = "yuqing.alerts"


@register_notifier("log")
class LogNotifier:
    """Delivers a notification by logging it (subject on the first line, body indented)."""

    def __init__(self, name: str = "log", logger_name: str = ALERTS_LOGGER) -> None:
        self.name = name
        self._logger = logging.getLogger(logger_name)

    @classmethod
    def from_config(cls, channel: ChannelConfig) -> LogNotifier:
        return cls(name=channel.name)

    def send(self, notification: Notification) -> None:
        """Log ``notification`` at WARNING; never raises for a well-formed notification."""
        body = "\n    ".join(notification.body.splitlines())
        self._logger.warning(
            "[%s] %s\n    %s",
            self.name,
            notification.subject,
            body,
            extra={
                "channel": self.name,
                "dedup_key": notification.dedup_key,
                "incident_id": notification.incident_id,
            },
        )
