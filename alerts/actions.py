"""Acknowledge, escalate, resolve: one implementation for the signed links, the CLI and
the dashboard, so each action writes the same audit entries and queues the same messages.

The audit entry's actor is ``user`` (a person's name, or ``channel:<name>`` for a
link sent to a group). ``acknowledge`` stops time-based escalation; ``escalate``
moves the incident one level up at once and queues the messages to the new
audience; ``resolve`` closes it and queues the resolved notice. Delivery is the
outbox's job (call ``Service.deliver`` or let the outbox job run).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from alerts.escalation import EscalationPolicy, EscalationStore
from alerts.messages import AUDIENCE_ZH
from core.errors import QueryError
from core.models import Incident
from core.ports import PostStore
from core.settings import AUDIENCE_ORDER

ACTIONS = ("acknowledge", "escalate", "resolve")


@dataclass(frozen=True)
class ActionResult:
    """The incident after the action and a Chinese sentence saying what happened."""

    incident: Incident
    message: str
    changed: bool


def act(
    store: EscalationStore,
    policy: EscalationPolicy,
    incident_id: int,
    action: str,
    *,
    user: str,
    now: datetime,
    note: str = "",
    posts: PostStore | None = None,
) -> ActionResult:
    """Perform ``action`` on the incident as ``user``.

    Raises ``QueryError`` for an unknown incident, an unknown action or an
    empty user; store errors (``StoreUnavailable``) propagate.
    """
    if action not in ACTIONS:
        raise QueryError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if not user.strip():
        raise QueryError(f"{action}: user must not be empty")
    incident = store.get_incident(incident_id)
    if incident is None:
        raise QueryError(f"unknown incident {incident_id}")
    if action == "acknowledge":
        incident = store.acknowledge(incident_id, user=user, note=note)
        return ActionResult(incident, "已确认接收，事件不再自动升级。", True)
    if action == "resolve":
        incident = store.resolve(incident_id, user=user, note=note)
        policy.sync(store, incident, now)
        return ActionResult(incident, "事件已解除，已通知相关渠道。", True)
    level = policy.escalate_now(store, incident, actor=user, now=now, note=note, posts=posts)
    if level is None:
        return ActionResult(incident, "事件已在总行层级，无需再升级。", False)
    return ActionResult(incident, f"已升级至：{AUDIENCE_ZH[AUDIENCE_ORDER[level]]}。", True)
