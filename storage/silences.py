"""Silences: hold the notifications of matching incidents for a while; nothing else changes.

(Pure matching over ``core`` models plus reads of the state store's
``silences`` table. It lives in ``storage`` so that both the alerting side
— :class:`alerts.escalation.EscalationPolicy` — and the dashboard, which may
not import ``alerts``, use the same rules.)

A silence says "do not notify about *this* until *then*, because *why*" — a
planned drill, a known outage story already handled by PR, a noisy rule
being tuned. Two places hold them, matched the same way:

* **stored silences** in the state database (``silences`` table), added and
  removed with ``yuqing rules silence add|list|remove`` (the dashboard can
  use the same functions later), with who and why, audited;
* **config silences** (``escalation.silences``: a rule, optionally a key,
  until a time) — the older, file-based form.

Matching (:func:`matches`): a silence is *in force* in ``[starts_at,
ends_at)`` unless removed; each matcher it gives must match the incident,
and it gives at least one:

=========== =====================================================
``rule``    one of the incident's rules (grouped incidents have several)
``key``     the incident's key, or the key of a match that joined it
``entity``  the incident's entity (branch, product or the bank)
``topic``   the incident's topic
``source``  one of the incident's sources
=========== =====================================================

What a silence does (honoured by :meth:`alerts.escalation.EscalationPolicy.sync`,
the one step that queues messages into the outbox): no message is queued
for a silenced incident and it does not climb the escalation ladder. The
incident itself is still opened, updated, regraded and recorded with its
alerts, and it shows the silence (``Incident.silenced_by``, set by the
detector; config silences have no id and show as ``0``). When the silence
ends (or is removed) and the incident is still active, its messages go out
at the next detection or escalation pass. A resolved incident's notice is
held while the silence is in force too.

**Grade I (特别重大) is never held by a silence unless the silence says so**
(``include_grade_i``): a broad silence set for a drill must not swallow a
real bank-run. An incident that climbs to grade I during a silence is
announced at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from core.models import Incident
from core.settings import Silence as ConfigSilence
from core.vocab import Grade

MAX_SILENCE = timedelta(days=30)
"""The longest silence the CLI accepts (a forgotten silence must not mute a bank for good)."""


@dataclass(frozen=True)
class SilenceRule:
    """One silence, stored or from config, in the shape :func:`matches` needs.

    ``id`` is the stored silence's id, ``0`` for a config silence.
    """

    id: int
    starts_at: datetime | None
    ends_at: datetime
    reason: str = ""
    created_by: str = "config"
    rule: str | None = None
    key: str | None = None
    entity: str | None = None
    topic: str | None = None
    source: str | None = None
    include_grade_i: bool = False
    removed_at: datetime | None = None

    @classmethod
    def from_config(cls, silence: ConfigSilence) -> SilenceRule:
        return cls(
            id=0,
            starts_at=None,
            ends_at=silence.until,
            reason=silence.reason,
            rule=silence.rule,
            key=silence.key,
            include_grade_i=silence.include_grade_i,
        )

    @classmethod
    def from_stored(cls, entry: Any) -> SilenceRule:
        """From a :class:`storage.state.SilenceEntry` (or anything with its attributes)."""
        return cls(
            id=int(entry.id),
            starts_at=entry.starts_at,
            ends_at=entry.ends_at,
            reason=entry.reason,
            created_by=entry.created_by,
            rule=entry.rule,
            key=entry.key,
            entity=entry.entity,
            topic=entry.topic,
            source=entry.source,
            include_grade_i=entry.include_grade_i,
            removed_at=entry.removed_at,
        )

    def in_force(self, now: datetime) -> bool:
        started = self.starts_at is None or self.starts_at <= now
        return started and now < self.ends_at and self.removed_at is None

    def describe(self) -> str:
        """The matchers in one line, e.g. ``rule=volume_spike entity=澜海银行滨江支行``."""
        parts = [
            f"{name}={value}"
            for name, value in (
                ("rule", self.rule),
                ("key", self.key),
                ("entity", self.entity),
                ("topic", self.topic),
                ("source", self.source),
            )
            if value
        ]
        return " ".join(parts) or "(nothing)"


def matches(silence: SilenceRule, incident: Incident, now: datetime) -> bool:
    """True when ``silence`` holds the notifications of ``incident`` at ``now`` (pure).

    See the module docstring: in force, every matcher given matches, at least
    one given, and grade I only with ``include_grade_i``.
    """
    if not silence.in_force(now):
        return False
    if incident.grade is Grade.I and not silence.include_grade_i:
        return False
    given = False
    if silence.rule is not None:
        given = True
        if silence.rule not in {incident.rule, *incident.rules}:
            return False
    if silence.key is not None:
        given = True
        keys = {incident.key, *(m.split(":", 1)[1] for m in incident.members if ":" in m)}
        if silence.key not in keys:
            return False
    if silence.entity is not None:
        given = True
        if silence.entity != incident.entity:
            return False
    if silence.topic is not None:
        given = True
        if incident.topic is None or silence.topic != incident.topic.value:
            return False
    if silence.source is not None:
        given = True
        if silence.source not in incident.sources:
            return False
    return given


def first_match(
    silences: Sequence[SilenceRule], incident: Incident, now: datetime
) -> SilenceRule | None:
    """The first of ``silences`` that holds ``incident`` at ``now``, or ``None``."""
    return next((s for s in silences if matches(s, incident, now)), None)


@runtime_checkable
class SilenceStore(Protocol):
    """A state store with stored silences (``SqlStateStore``)."""

    def list_silences(
        self, *, active_at: datetime | None = None, include_removed: bool = False, limit: int = 200
    ) -> Sequence[Any]: ...


def stored_silences(store: object, now: datetime) -> list[SilenceRule]:
    """The stored silences in force at ``now`` (none when the store has no silences table,
    e.g. a test fake). Store errors propagate: an unreadable silence list never turns
    into "nothing is silenced" silently, nor into "everything is"."""
    if not isinstance(store, SilenceStore):
        return []
    return [SilenceRule.from_stored(e) for e in store.list_silences(active_at=now)]


SILENCE_COLUMNS = ("编号", "匹配", "开始", "结束", "含特别重大", "设置人", "原因", "状态")
"""The keys of :func:`silence_rows`, in display order."""


def silence_rows(
    store: object, now: datetime, config: Sequence[ConfigSilence] = ()
) -> list[dict[str, Any]]:
    """Every silence in force or still to come at ``now``, for a table (dashboard, CLI).

    Keys (Chinese, like the dashboard's tables): ``编号`` (0 = config),
    ``匹配``, ``开始``, ``结束``, ``含特别重大``, ``设置人``, ``原因``, ``状态``.
    """
    rows: list[SilenceRule] = [SilenceRule.from_config(s) for s in config]
    if isinstance(store, SilenceStore):
        rows += [SilenceRule.from_stored(e) for e in store.list_silences()]
    table: list[dict[str, Any]] = []
    for s in rows:
        if s.ends_at <= now or s.removed_at is not None:
            continue
        table.append(
            {
                "编号": s.id,
                "匹配": s.describe(),
                "开始": s.starts_at.isoformat(timespec="minutes") if s.starts_at else "—",
                "结束": s.ends_at.isoformat(timespec="minutes"),
                "含特别重大": "是" if s.include_grade_i else "否",
                "设置人": s.created_by,
                "原因": s.reason,
                "状态": "生效中" if s.in_force(now) else "未开始",
            }
        )
    return table


def incident_silence(
    store: object, incident: Incident, now: datetime, config: Sequence[ConfigSilence] = ()
) -> dict[str, Any] | None:
    """The silence holding ``incident`` now, as a small dict for the incident room
    (``id``, ``match``, ``until``, ``by``, ``reason``), or ``None``."""
    silence = first_match(
        [*stored_silences(store, now), *(SilenceRule.from_config(s) for s in config)],
        incident,
        now,
    )
    if silence is None:
        return None
    return {
        "id": silence.id,
        "match": silence.describe(),
        "until": silence.ends_at,
        "by": silence.created_by,
        "reason": silence.reason,
    }
