"""Downloader middlewares of the yuqing crawler."""

from __future__ import annotations

import logging

from scrapy import Request
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.http import Response
from scrapy.settings import BaseSettings
from scrapy.utils.asyncio import sleep

log = logging.getLogger(__name__)


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's retry, waiting ``RETRY_BACKOFF_BASE * 2**(n-1)`` seconds before retry ``n``.

    A site that is overloaded or briefly down gets time to recover instead of
    three immediate hits; the wait is capped at ``RETRY_BACKOFF_MAX``. Only the
    retried request waits: the sleep is asynchronous.
    """

    def __init__(self, settings: BaseSettings) -> None:
        super().__init__(settings)
        self.backoff_base = settings.getfloat("RETRY_BACKOFF_BASE", 1.0)
        self.backoff_max = settings.getfloat("RETRY_BACKOFF_MAX", 30.0)

    async def process_response(  # type: ignore[override]
        self, request: Request, response: Response
    ) -> Request | Response:
        result = super().process_response(request, response)
        if isinstance(result, Request):
            await self._wait(result)
        return result

    async def process_exception(  # type: ignore[override]
        self, request: Request, exception: Exception
    ) -> Request | Response | None:
        result = super().process_exception(request, exception)
        if isinstance(result, Request):
            await self._wait(result)
        return result

    async def _wait(self, retry: Request) -> None:
        attempt = int(retry.meta.get("retry_times", 1))
        delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        if delay > 0:
            log.debug("backing off %.1f s before retry %d of %s", delay, attempt, retry.url)
            await sleep(delay)
