"""The one place that picks adapters from settings.

Everything else receives already-built ports: the crawler gets a
:class:`crawler.services.CrawlServices`, the service gets stores and
notifiers, the dashboard gets a :class:`dashboard.data.DashboardData`
factory. Swapping SQLite for Elasticsearch or PostgreSQL is a settings change
that only this module reads.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from alerts.actions import act
from alerts.detector import Detector, policy_from_settings
from alerts.service import Service
from core.errors import ConfigError, StoreUnavailable
from core.models import CrawlRun, Incident, PostQuery, utcnow
from core.ports import PostStore, StateStore
from core.settings import Settings, get_settings
from crawler.services import CrawlServices
from dashboard.auth import AuthPolicy
from dashboard.data import DashboardData
from nlp.analyzer import Analyzer
from nlp.mentions import MentionMatcher
from nlp.segment import tokenize
from storage.local import LocalPostStore
from storage.spool import Spool
from storage.state import SqlStateStore

log = logging.getLogger(__name__)


def build_post_store(settings: Settings) -> PostStore:
    """The PostStore named by ``storage.posts_backend``.

    Raises ``ConfigError`` for a backend this release does not ship and
    ``StoreUnavailable`` when the store cannot be opened.
    """
    backend = settings.storage.posts_backend
    if backend == "local":
        return LocalPostStore(settings.storage.posts_path, tokenizer=tokenize)
    if backend == "elasticsearch":
        from storage.elastic import from_settings

        return from_settings(settings, tokenize)
    raise ConfigError(f"storage.posts_backend: unknown backend {backend!r}")


def build_state_store(settings: Settings) -> StateStore:
    """The state database at ``storage.state_url`` (tables created if missing)."""
    return SqlStateStore(settings.storage.state_url)


def build_analyzer(settings: Settings) -> Analyzer:
    """The analyzer for the configured watchlist."""
    return Analyzer(settings.watchlist)


def build_crawl_services(settings: Settings) -> CrawlServices:
    """Everything one crawl needs; the caller closes it (``services.close()``)."""
    return CrawlServices(
        post_store=build_post_store(settings),
        spool=Spool(settings.storage.spool_dir),
        analyzer=build_analyzer(settings),
        mention_matcher=MentionMatcher(settings.watchlist),
        state_store=build_state_store(settings),
    )


def run_one_crawl(settings: Settings, source: str, services: CrawlServices) -> CrawlRun:
    """Crawl ``source`` once in this process (Scrapy's reactor: once per process)."""
    from crawler.runner import run_crawl

    return run_crawl(settings, source, services)


def crawl_command_for(config_path: Path | None) -> Callable[[str], list[str]]:
    """How the service starts the crawl of one source as a child process."""
    config_args = ["--config", str(Path(config_path).resolve())] if config_path else []

    def command(source: str) -> list[str]:
        return [sys.executable, "-m", "yuqing", "crawl", source, *config_args]

    return command


def build_detector(settings: Settings) -> tuple[Detector, Callable[[], None]]:
    """A detector over freshly opened stores, and the function that closes them."""
    posts, state = build_post_store(settings), build_state_store(settings)

    def close() -> None:
        posts.close()
        state.close()

    return Detector.from_settings(settings, posts, state), close


class _OwningService(Service):
    """A Service that also closes the stores bootstrap opened for it."""

    def __init__(self, settings: Settings, config_path: Path | None) -> None:
        self._owned_posts = build_post_store(settings)
        self._owned_state = build_state_store(settings)
        try:
            # Create the schema now, before the first crawl children race to create it.
            self._owned_posts.count(PostQuery())
        except StoreUnavailable as exc:
            # Not fatal: crawls spool their batches and the detector reports the outage.
            log.error("post store unavailable at start: %s", exc)
        super().__init__(
            settings,
            post_store=self._owned_posts,
            state_store=self._owned_state,
            crawl_command=crawl_command_for(config_path),
            serve_links=True,
        )

    def run_forever(self) -> None:
        try:
            super().run_forever()
        finally:
            self._owned_posts.close()
            self._owned_state.close()


def build_service(settings: Settings, *, config_path: Path | None) -> Service:
    """The ``yuqing run`` service; ``run_forever()`` closes its stores when it ends."""
    return _OwningService(settings, config_path)


def incident_action(
    settings: Settings, state: StateStore, posts: PostStore | None = None
) -> Callable[[int, str, str, str], Incident]:
    """``(incident_id, action, user, note) -> Incident`` through the alerting engine.

    Every entry point (CLI, dashboard, signed links) acts through
    ``alerts.actions.act`` so each action writes the same audit entries and
    queues the same escalation or resolved messages.
    """
    policy = policy_from_settings(settings)

    def run(incident_id: int, action: str, user: str, note: str) -> Incident:
        result = act(
            state,  # type: ignore[arg-type]  # SqlStateStore implements EscalationStore
            policy,
            incident_id,
            action,
            user=user,
            note=note,
            now=utcnow(),
            posts=posts,
        )
        return result.incident

    return run


def build_dashboard_data(settings: Settings | None = None) -> DashboardData:
    """The dashboard's data module over the configured stores (settings from the environment)."""
    settings = settings or get_settings()
    # Refuse to start without users (or with demo passwords in prod) before opening stores.
    auth = AuthPolicy.from_config(settings.dashboard, env=settings.env)
    posts, state = build_post_store(settings), build_state_store(settings)
    return DashboardData(
        posts,
        state,
        tz=settings.timezone,
        public_url=settings.dashboard.public_url,
        act=incident_action(settings, state, posts),
        auth=auth,
    )
