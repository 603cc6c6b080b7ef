"""Alerting: detection rules, incidents, the escalation policy, messages, the notification
outbox, notifier plugins, signed action links and the APScheduler service.

Depends on ``core`` and on ``nlp`` for PII masking only; adapters (stores, notifiers
built from settings) are passed in by ``yuqing.bootstrap``."""
