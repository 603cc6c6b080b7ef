"""Detection rules: classes that declare their options and decide in one pure function.

Importing this package registers the built-in rule types. To add a type,
write a :class:`Rule` subclass decorated with :func:`register_rule`, import
its module here, and add its options model to ``core.settings.RuleConfig``.
"""

from __future__ import annotations

from alerts.rules.base import (
    RULE_TYPES,
    Match,
    Rule,
    TicketRule,
    build_rules,
    evaluate_rule,
    register_rule,
)
from alerts.rules.critical_signal import CriticalSignal
from alerts.rules.influential_author import InfluentialAuthor
from alerts.rules.negative_share import NegativeShare
from alerts.rules.ticket_surge import TicketSurge
from alerts.rules.topic_burst import TopicBurst
from alerts.rules.volume_spike import VolumeSpike

__all__ = [
    "RULE_TYPES",
    "CriticalSignal",
    "InfluentialAuthor",
    "Match",
    "NegativeShare",
    "Rule",
    "TicketRule",
    "TicketSurge",
    "TopicBurst",
    "VolumeSpike",
    "build_rules",
    "evaluate_rule",
    "register_rule",
]
