"""Detection rules: classes that declare their options and decide in one pure function.

Importing this package registers the built-in rule types. To add a type,
write a :class:`Rule` subclass decorated with :func:`register_rule`, import
its module here, and add its options model to ``core.settings.RuleConfig``.
"""

from __future__ import annotations

from alerts.rules.base import RULE_TYPES, Match, Rule, build_rules, register_rule
from alerts.rules.volume_spike import VolumeSpike

__all__ = ["RULE_TYPES", "Match", "Rule", "VolumeSpike", "build_rules", "register_rule"]
