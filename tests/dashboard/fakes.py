"""Hand-written failing stores: simulate an outage without a real database going down."""

from __future__ import annotations

from core.errors import StoreUnavailable


class DownPostStore:
    """A PostStore whose every read fails as if the database were unreachable."""

    def __init__(self, message: str = "database is locked (simulated outage)") -> None:
        self.message = message

    def _down(self, *_args: object, **_kwargs: object) -> None:
        raise StoreUnavailable(self.message)

    upsert = get = search = count = histogram = terms = _down

    def close(self) -> None:
        pass


class DownStateStore:
    """A StateStore whose every call fails as if the state database were unreachable."""

    def __init__(self, message: str = "connection refused (simulated outage)") -> None:
        self.message = message

    def _down(self, *_args: object, **_kwargs: object) -> None:
        raise StoreUnavailable(self.message)

    save_incident = get_incident = find_active_incident = list_incidents = _down
    acknowledge = resolve = add_alert = list_alerts = audit = _down
    enqueue = due_notifications = mark_sent = mark_failed = _down
    upsert_tickets = list_tickets = record_crawl_run = list_crawl_runs = _down

    def close(self) -> None:
        pass
