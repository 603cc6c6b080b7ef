"""Errors shared by every layer.

Every failure is one of three (STYLE.md #6): a duplicate (counted and skipped),
a permanent failure (quarantined with a reason) or a temporary one (retried or
spooled). Adapters translate their client's exceptions into these so callers
never depend on a driver.
"""

from __future__ import annotations


class YuqingError(Exception):
    """Base class of every error raised on purpose by yuqing."""


class ConfigError(YuqingError):
    """The configuration is invalid. The message names the file and the key."""


class StoreError(YuqingError):
    """A store operation failed."""


class StoreUnavailable(StoreError):
    """Temporary: the store cannot be reached now. Retry or spool; never report 'no data'."""


class PermanentStoreError(StoreError):
    """Permanent: the request itself is wrong (bad document, bad query); retrying will not help."""


class QueryError(PermanentStoreError):
    """The query cannot be answered as asked (bad field, bad cursor)."""


class NotifierError(YuqingError):
    """A notification could not be delivered."""

    def __init__(self, message: str, *, temporary: bool = True) -> None:
        super().__init__(message)
        self.temporary = temporary
