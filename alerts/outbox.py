"""Deliver due notifications from the outbox in the state database.

Every send attempt is recorded in the outbox row (``mark_sent`` /
``mark_failed``), and retries are driven by that record, so a restart neither
loses a message nor repeats a delivered one (STYLE.md #8):

* success → ``mark_sent``;
* ``NotifierError(temporary=True)`` or an unexpected exception → ``mark_failed``
  with ``retry_at = now + backoff(attempts)``: 1 min, 2, 4, 8, 16, then every
  30 min, without a limit (a channel that is down for a day still gets the
  message when it comes back — issue 6 may add an expiry);
* ``NotifierError(temporary=False)`` → ``mark_failed(retry_at=None)``: given up,
  logged at ERROR;
* a channel that is no longer configured (removed or disabled) → logged and
  retried later with the same backoff, never dropped: re-enabling the channel
  delivers it.

Delivery is at-least-once: if the process dies after a successful send but
before ``mark_sent``, the message is sent again on restart. Run one outbox
deliverer per state database (the service guarantees that with
``max_instances=1``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.errors import NotifierError
from core.models import Notification
from core.ports import Notifier, StateStore

logger = logging.getLogger(__name__)

BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(minutes=30)


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after a failure, given ``attempts`` made before it.

    ``BACKOFF_BASE × 2**attempts`` capped at ``BACKOFF_CAP``: 0 → 1 min, 1 → 2 min …
    """
    if attempts < 0:
        attempts = 0
    # Cap the exponent too, so a message retried for weeks never overflows.
    delay: timedelta = BACKOFF_BASE * (2 ** min(attempts, 16))
    return min(delay, BACKOFF_CAP)


@dataclass
class DeliveryReport:
    """What one :func:`deliver_due` pass did, by notification id."""

    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    """Permanently failed (given up)."""
    unknown_channel: list[int] = field(default_factory=list)
    """Retried later because their channel is not configured (also in ``retrying``)."""

    @property
    def attempted(self) -> int:
        return len(self.sent) + len(self.retrying) + len(self.failed)


def deliver_due(
    state_store: StateStore,
    notifiers_by_name: Mapping[str, Notifier],
    now: datetime,
    *,
    limit: int = 50,
) -> DeliveryReport:
    """Try every notification due at ``now`` (up to ``limit``) once; return what happened.

    Errors of the state store (``StoreUnavailable``…) propagate: the caller's
    job fails loudly and the messages stay queued.
    """
    report = DeliveryReport()
    for notification in state_store.due_notifications(now, limit=limit):
        if notification.id is None:  # a store bug; never send what we cannot mark
            logger.error("outbox returned a notification without id: %r", notification.dedup_key)
            continue
        notifier = notifiers_by_name.get(notification.channel)
        if notifier is None:
            retry_at = now + backoff(notification.attempts)
            logger.error(
                "outbox: channel %r is not configured; notification #%s (%s) kept, retry at %s",
                notification.channel,
                notification.id,
                notification.dedup_key,
                retry_at.isoformat(),
            )
            state_store.mark_failed(
                notification.id, f"channel {notification.channel!r} not configured", retry_at
            )
            report.retrying.append(notification.id)
            report.unknown_channel.append(notification.id)
            continue
        _attempt(state_store, notifier, notification, notification.id, now, report)
    if report.attempted:
        logger.info(
            "outbox: sent=%d retrying=%d failed=%d",
            len(report.sent),
            len(report.retrying),
            len(report.failed),
        )
    return report


def _attempt(
    state_store: StateStore,
    notifier: Notifier,
    notification: Notification,
    notification_id: int,
    now: datetime,
    report: DeliveryReport,
) -> None:
    try:
        notifier.send(notification)
    except NotifierError as exc:
        if exc.temporary:
            _retry_later(state_store, notification, notification_id, now, str(exc), report)
        else:
            logger.error(
                "outbox: giving up notification #%s to %s (%s): %s",
                notification_id,
                notification.channel,
                notification.dedup_key,
                exc,
            )
            state_store.mark_failed(notification_id, str(exc), None)
            report.failed.append(notification_id)
        return
    except Exception as exc:
        # A plugin should translate its errors; until it does, treat the
        # unknown as temporary so the message is not lost.
        logger.exception(
            "outbox: notifier %s raised unexpectedly for #%s",
            notification.channel,
            notification_id,
        )
        _retry_later(
            state_store,
            notification,
            notification_id,
            now,
            f"{type(exc).__name__}: {exc}",
            report,
        )
        return
    state_store.mark_sent(notification_id, now)
    report.sent.append(notification_id)


def _retry_later(
    state_store: StateStore,
    notification: Notification,
    notification_id: int,
    now: datetime,
    error: str,
    report: DeliveryReport,
) -> None:
    retry_at = now + backoff(notification.attempts)
    logger.warning(
        "outbox: notification #%s to %s failed (attempt %d): %s; retry at %s",
        notification_id,
        notification.channel,
        notification.attempts + 1,
        error,
        retry_at.isoformat(),
    )
    state_store.mark_failed(notification_id, error, retry_at)
    report.retrying.append(notification_id)
