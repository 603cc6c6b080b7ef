"""Notifier plugins: one module per channel type, registered by the ``type`` key of a channel.

A plugin is a class with a ``from_config(channel: ChannelConfig)`` class method
that returns an object satisfying :class:`core.ports.Notifier` (``name`` and
``send``). Register it with :func:`register_notifier`::

    @register_notifier("webhook")
    class WebhookNotifier:
        @classmethod
        def from_config(cls, channel: ChannelConfig) -> WebhookNotifier: ...
        def send(self, notification: Notification) -> None: ...

``send`` raises ``NotifierError(temporary=True)`` for "try again later" (channel
down, rate limited) and ``NotifierError(temporary=False)`` for "this will never
work" (rejected credentials, bad payload); the outbox retries or gives up
accordingly. :func:`build_notifiers` runs at start-up so a channel whose type
has no plugin, or whose config the plugin refuses, fails then — naming the
channel — and not at the first crisis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from core.errors import ConfigError
from core.ports import Notifier
from core.settings import ChannelConfig


class NotifierFactory(Protocol):
    """What the registry holds: a class (or callable object) that builds a notifier from config."""

    def from_config(self, channel: ChannelConfig) -> Notifier: ...


NOTIFIER_TYPES: dict[str, NotifierFactory] = {}
"""Registered notifier plugins by channel ``type``."""

FactoryT = TypeVar("FactoryT")


def register_notifier(type_name: str) -> Callable[[FactoryT], FactoryT]:
    """Class decorator: the decorated class implements channels of ``type: <type_name>``.

    Raises ``ValueError`` if another class already claims the type.
    """

    def decorate(cls: FactoryT) -> FactoryT:
        existing = NOTIFIER_TYPES.get(type_name)
        if existing is not None and existing is not cls:
            raise ValueError(f"notifier type {type_name!r} is already registered by {existing!r}")
        if not callable(getattr(cls, "from_config", None)):
            raise TypeError(f"{cls!r} needs a from_config(channel) class method")
        NOTIFIER_TYPES[type_name] = cls  # type: ignore[assignment]
        return cls

    return decorate


def build_notifiers(channels: Sequence[ChannelConfig]) -> dict[str, Notifier]:
    """Build one notifier per *enabled* channel, keyed by channel name.

    Raises ``ConfigError`` naming the channel when its type has no plugin yet
    or the plugin refuses the config (``ConfigError``/``ValueError`` from
    ``from_config``). Disabled channels are skipped; messages already queued
    for them stay in the outbox and are retried (see :mod:`alerts.outbox`).
    """
    notifiers: dict[str, Notifier] = {}
    for index, channel in enumerate(channels):
        if not channel.enabled:
            continue
        factory = NOTIFIER_TYPES.get(channel.type)
        if factory is None:
            known = ", ".join(sorted(NOTIFIER_TYPES)) or "(none)"
            raise ConfigError(
                f"channels[{index}] ({channel.name!r}): channel type {channel.type!r} is not "
                f"implemented yet; available types: {known}"
            )
        try:
            notifiers[channel.name] = factory.from_config(channel)
        except (ConfigError, ValueError) as exc:
            raise ConfigError(f"channels[{index}] ({channel.name!r}): {exc}") from exc
    return notifiers


# Import the built-in plugins last so they can use register_notifier.
from alerts.notifiers.dingtalk import DingTalkNotifier  # noqa: E402
from alerts.notifiers.email import EmailNotifier  # noqa: E402
from alerts.notifiers.feishu import FeishuNotifier  # noqa: E402
from alerts.notifiers.log import LogNotifier  # noqa: E402
from alerts.notifiers.webhook import WebhookNotifier  # noqa: E402
from alerts.notifiers.wecom import WeComNotifier  # noqa: E402

__all__ = [
    "NOTIFIER_TYPES",
    "DingTalkNotifier",
    "EmailNotifier",
    "FeishuNotifier",
    "LogNotifier",
    "NotifierFactory",
    "WeComNotifier",
    "WebhookNotifier",
    "build_notifiers",
    "register_notifier",
]
