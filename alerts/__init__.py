"""Alerting: detection rules, incidents, the notification outbox, notifier plugins and the
APScheduler service. Depends on ``core`` only; adapters are passed in by ``yuqing.bootstrap``."""
