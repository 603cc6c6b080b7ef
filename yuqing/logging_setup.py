"""Process-wide logging for the command line and the service's child processes."""

from __future__ import annotations

import logging
import os

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str | None = None) -> None:
    """Log to stderr at ``level`` (default ``$YUQING_LOG_LEVEL`` or INFO); idempotent."""
    chosen = (level or os.environ.get("YUQING_LOG_LEVEL") or "INFO").upper()
    root = logging.getLogger()
    if not any(getattr(h, "_yuqing", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._yuqing = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(chosen)
    # Third-party chatter that buries our own lines at INFO.
    for noisy in (
        "jieba",
        "urllib3",
        "apscheduler.executors.default",
        "scrapy.core.scraper",
        "scrapy.middleware",
        "scrapy.crawler",
        "scrapy.utils.log",
        "scrapy.addons",
        "scrapy.extensions.telnet",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
