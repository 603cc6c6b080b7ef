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
from alerts.tickets.problems import TicketDesk
from core.errors import ConfigError, StoreUnavailable
from core.models import CrawlRun, Incident, PostQuery, utcnow
from core.ports import PostStore, StateStore
from core.settings import Settings, get_settings
from crawler.progress import CrawlProgress
from crawler.services import CrawlServices
from dashboard.auth import AuthPolicy
from dashboard.data import DashboardData
from nlp.analyzer import Analyzer
from nlp.mentions import MentionMatcher
from nlp.segment import tokenize
from storage.dedup_index import DedupIndex
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
    """The analyzer for the configured watchlist (and ``nlp`` settings)."""
    return Analyzer(settings.watchlist, critical_threshold=settings.nlp.critical_threshold)


def build_crawl_services(settings: Settings) -> CrawlServices:
    """Everything one crawl needs; the caller closes it (``services.close()``)."""
    return CrawlServices(
        post_store=build_post_store(settings),
        spool=Spool(settings.storage.spool_dir),
        analyzer=build_analyzer(settings),
        mention_matcher=MentionMatcher(settings.watchlist),
        state_store=build_state_store(settings),
        # LSH band keys and repost groups (docs/dedup.md), shared by every crawl process.
        dedup_index=DedupIndex(Path(settings.data_dir) / "dedup.db"),
    )


def run_one_crawl(
    settings: Settings,
    source: str,
    services: CrawlServices,
    *,
    resume: bool = True,
    progress: Callable[[CrawlProgress], None] | None = None,
) -> CrawlRun:
    """Crawl ``source`` once in this process (Scrapy's reactor: once per process).

    ``resume`` and ``progress``: see :func:`crawler.runner.run_crawl`.
    """
    from crawler.runner import run_crawl

    return run_crawl(settings, source, services, resume=resume, progress=progress)


def crawl_command_for(config_path: Path | None) -> Callable[[str], list[str]]:
    """How the service starts the crawl of one source as a child process."""
    config_args = ["--config", str(Path(config_path).resolve())] if config_path else []

    def command(source: str) -> list[str]:
        return [sys.executable, "-m", "yuqing", "crawl", source, *config_args]

    return command


def build_copy_counter(settings: Settings) -> DedupIndex:
    """The crawl's repost groups (``<data_dir>/dedup.db``, shared with the crawl processes),
    read by the volume rule so that reposts grouped under one stored post still count
    (docs/alerting.md). The caller closes it."""
    return DedupIndex(Path(settings.data_dir) / "dedup.db")


def build_detector(settings: Settings) -> tuple[Detector, Callable[[], None]]:
    """A detector over freshly opened stores, and the function that closes them."""
    posts, state = build_post_store(settings), build_state_store(settings)
    copies = build_copy_counter(settings)

    def close() -> None:
        posts.close()
        state.close()
        copies.close()

    return Detector.from_settings(settings, posts, state, copies=copies), close


class _OwningService(Service):
    """A Service that also closes the stores bootstrap opened for it."""

    def __init__(self, settings: Settings, config_path: Path | None) -> None:
        push_token = ticket_push_token(settings)  # a bad token fails before any store opens
        self._owned_posts = build_post_store(settings)
        self._owned_state = build_state_store(settings)
        self._owned_copies = build_copy_counter(settings)
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
            ticket_push_token=push_token,
            detector=Detector.from_settings(
                settings, self._owned_posts, self._owned_state, copies=self._owned_copies
            ),
        )

    def run_forever(self) -> None:
        try:
            super().run_forever()
        finally:
            self._owned_posts.close()
            self._owned_state.close()
            self._owned_copies.close()


def ticket_push_token(settings: Settings) -> str | None:
    """The ticket push endpoint's token from the environment (``tickets.push_token_env``).

    ``None`` when the variable is unset or empty: ``yuqing run`` then serves no
    push endpoint. Raises ``ConfigError`` for a token shorter than 16 characters.
    """
    import os

    from alerts.tickets.push import MIN_TOKEN_LENGTH

    env = settings.tickets.push_token_env
    token = os.environ.get(env, "").strip()
    if not token:
        return None
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"{env} is set but shorter than {MIN_TOKEN_LENGTH} characters: use a random token "
            f"(the complaint system sends it as 'Authorization: Bearer <token>'), or unset it "
            "to run without the ticket push endpoint"
        )
    return token


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


def draft_reporter(
    settings: Settings, state: StateStore, posts: PostStore
) -> Callable[[int], str | None]:
    """``incident_id -> draft report`` (``alerts.regulatory.draft_report``) for the dashboard.

    The draft is built from what yuqing recorded: the incident, its alerts,
    its first five posts (masked) and its audit trail. ``None`` for an unknown
    incident. Store errors (``StoreUnavailable``) propagate.
    """
    from zoneinfo import ZoneInfo

    from alerts.regulatory import draft_report

    def build(incident_id: int) -> str | None:
        incident = state.get_incident(incident_id)
        if incident is None:
            return None
        found = [posts.get(pid) for pid in incident.post_ids[:5]]
        list_audit = getattr(state, "list_audit", None)  # SqlStateStore keeps an audit log
        audit = list_audit(100, target=f"incident:{incident_id}") if list_audit else []
        return draft_report(
            incident,
            bank=settings.watchlist.bank.name,
            alerts=state.list_alerts(incident_id=incident_id),
            posts=[p for p in found if p is not None],
            actions=[(e.at, e.actor, e.action, e.detail) for e in audit],
            config=settings.reporting,
            tz=ZoneInfo(settings.timezone),
            now=utcnow(),
        )

    return build


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
        settings=settings,
        draft_report=draft_reporter(settings, state, posts),
        tickets=TicketDesk(posts, state, settings.watchlist, settings.tickets.closed_statuses),
    )
