"""The ``yuqing run`` service: a thin, defensive APScheduler 3.x around crawl, detect and outbox.

Jobs (ids are stable, so the persistent job store never holds duplicates):

============== ======================================= =============================
id             what                                    when
============== ======================================= =============================
``crawl:<s>``  source ``s`` crawled as a child process every ``interval_minutes``
``detect``     :meth:`Detector.run_once`               every ``detect_interval_seconds``
``outbox``     :func:`alerts.outbox.deliver_due`       every 30 s (and right after a
                                                       detection that raised alerts)
``escalate``   :meth:`EscalationPolicy.run_due`        every ``escalation.check_interval_seconds``
               (unacknowledged → next level; repairs
               missing messages; resolved notices)
============== ======================================= =============================

``daily_brief`` (when ``reports.daily_brief_enabled``): yesterday's 舆情日报 to
head office daily at ``reports.daily_brief_time`` (local time, a cron trigger),
through :func:`alerts.daily_brief.queue_daily_brief`, once per day and channel.
It does not run at start, except to catch up a run missed while the service
was down (the stored job's next run time has passed).

**Crisis mode.** After every detection cycle the crawl jobs are rescheduled
(:meth:`Service.apply_crisis_mode`): while an incident of
``scheduler.crisis_min_grade`` or above is active, the sources it was seen on
are crawled ``scheduler.crisis_factor`` times as often; once it is resolved
they return to ``interval_minutes``.

All jobs but ``daily_brief`` also run once right at start, so a demo shows data at once.

Design notes (why it looks like this):

* **Persistent job store.** Jobs live in ``apscheduler_jobs`` in the state
  database (``settings.storage.state_url``). APScheduler pickles a job as a
  *reference* to a module-level function plus its arguments, so the job
  functions below take only picklable names (a service key, a source name)
  and find the running :class:`Service` in a module-level registry. On start
  the service reconciles the store: every wanted job is (re)written with
  ``replace_existing=True`` and jobs that are no longer wanted (a removed
  source) are deleted; a restart therefore re-uses the same rows.
* **Job defaults:** ``coalesce=True`` (after a pause run once, not N times),
  ``max_instances=1`` (a slow crawl is never started twice),
  ``misfire_grace_time`` from ``settings.scheduler``.
* **Crawls are child processes** (Scrapy's reactor cannot restart inside one
  long-lived process). The caller injects ``crawl_command(source) -> argv`` so
  ``alerts`` never imports ``yuqing``; the child is killed after
  ``scheduler.crawl_timeout_seconds``. Its exit code and stderr tail are
  logged; a failed crawl is recorded as a failed ``CrawlRun`` (a successful
  child records its own run with its statistics) and is never fatal.
* **Shutdown** (SIGINT/SIGTERM in :meth:`Service.run_forever`, or
  :meth:`Service.stop`): no new crawl starts, running crawl children are
  terminated (then killed), running detect/outbox jobs finish, the scheduler
  shuts down. The caller closes the stores it built.
* One ``yuqing run`` per state database: the outbox relies on
  ``max_instances=1`` within a process to deliver each message once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from types import FrameType
from typing import IO, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from alerts.action_server import ActionServer
from alerts.daily_brief import BriefOutcome, queue_daily_brief
from alerts.detector import DetectionFailed, Detector
from alerts.escalation import EscalationStore
from alerts.notifiers import build_notifiers
from alerts.outbox import DeliveryReport, deliver_due
from alerts.tickets.push import TicketPushServer
from core.models import Alert, CrawlRun, Incident, utcnow
from core.ports import Notifier, PostStore, StateStore
from core.settings import Settings
from core.vocab import Grade, IncidentStatus

logger = logging.getLogger(__name__)

CrawlCommand = Callable[[str], list[str]]
"""Builds the argv of the child process that crawls one source, e.g.
``lambda s: [sys.executable, "-m", "yuqing", "crawl", s, "--config", path]``."""

JOBSTORE_TABLE = "apscheduler_jobs"
DETECT_JOB_ID = "detect"
OUTBOX_JOB_ID = "outbox"
ESCALATE_JOB_ID = "escalate"
DAILY_BRIEF_JOB_ID = "daily_brief"
CRAWL_JOB_PREFIX = "crawl:"
OUTBOX_INTERVAL_SECONDS = 30
STDERR_TAIL_CHARS = 2000
CRAWL_EXIT_RECORDED_NOT_OK = 3
"""Exit code of a crawl child that ran, judged its run not ok and recorded that run itself
(with its statistics); the service logs it but records no second, poorer run."""
KILL_GRACE_SECONDS = 5.0


CRISIS_INCIDENT_LIMIT = 500


def crawl_intervals(settings: Settings, active: Iterable[Incident]) -> dict[str, float]:
    """The crawl interval in seconds each enabled source should have now (pure).

    A source named in ``Incident.sources`` of an ``active`` (not resolved)
    incident whose grade is at least ``scheduler.crisis_min_grade`` gets
    ``interval_minutes × 60 / crisis_factor``; every other source its
    configured interval.
    """
    sched = settings.scheduler
    floor = Grade(sched.crisis_min_grade).severity
    hot: set[str] = set()
    for incident in active:
        if incident.status is not IncidentStatus.RESOLVED and incident.grade.severity >= floor:
            hot.update(incident.sources)
    return {
        source.name: source.interval_minutes
        * 60
        / (sched.crisis_factor if source.name in hot else 1)
        for source in settings.sources
        if source.enabled
    }


def crawl_job_id(source: str) -> str:
    """The scheduler job id of the crawl of ``source``: ``crawl:<source>``."""
    return f"{CRAWL_JOB_PREFIX}{source}"


# -- the registry that persistent jobs use to find the live service -------------------

_SERVICES: dict[str, Service] = {}
_SERVICES_LOCK = threading.Lock()


def _service(key: str) -> Service:
    with _SERVICES_LOCK:
        service = _SERVICES.get(key)
    if service is None:
        # A job from the store fired in a process without that service: make
        # the scheduler log it as a failed job rather than pretend it ran.
        raise RuntimeError(f"no running yuqing service registered as {key!r}")
    return service


def run_detect_job(service_key: str) -> None:
    """Scheduler entry point of the ``detect`` job (module-level so it can be pickled)."""
    _service(service_key).detect()


def run_outbox_job(service_key: str) -> None:
    """Scheduler entry point of the ``outbox`` job."""
    _service(service_key).deliver()


def run_escalate_job(service_key: str) -> None:
    """Scheduler entry point of the ``escalate`` job."""
    _service(service_key).escalate()


def run_daily_brief_job(service_key: str) -> None:
    """Scheduler entry point of the ``daily_brief`` job."""
    _service(service_key).daily_brief()


def run_crawl_job(service_key: str, source: str) -> None:
    """Scheduler entry point of the ``crawl:<source>`` jobs."""
    _service(service_key).crawl(source)


# -- scheduler ------------------------------------------------------------------------


def build_scheduler(settings: Settings, *, max_workers: int | None = None) -> BackgroundScheduler:
    """A stopped BackgroundScheduler with the persistent job store and the job defaults.

    The job store is the ``apscheduler_jobs`` table of ``settings.storage.state_url``
    (created on start). ``max_workers`` defaults to one thread per enabled
    source plus two (detect and outbox never wait behind crawls).
    """
    enabled_sources = sum(1 for s in settings.sources if s.enabled)
    workers = max_workers or max(4, enabled_sources + 2)
    return BackgroundScheduler(
        jobstores={
            "default": SQLAlchemyJobStore(url=settings.storage.state_url, tablename=JOBSTORE_TABLE)
        },
        executors={"default": ThreadPoolExecutor(max_workers=workers)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": settings.scheduler.misfire_grace_seconds,
        },
        timezone=UTC,
    )


@dataclass(frozen=True)
class CrawlOutcome:
    """How one crawl child ended. ``returncode`` is ``None`` when it never started."""

    source: str
    ok: bool
    returncode: int | None
    duration_s: float
    stderr_tail: str = ""
    message: str = ""


class Service:
    """The running monitor: scheduler + detector + outbox + crawl children.

    The caller (``yuqing.bootstrap``) builds the adapters and passes them in;
    the service does not close them. ``notifiers`` defaults to
    ``build_notifiers(settings.channels)``; ``crawl_command=None`` schedules no
    crawls (detection only). ``key`` names the service in the job registry and
    is stored in every job's arguments, so keep it stable across restarts.
    ``serve_links=True`` also serves the signed action links
    (:class:`alerts.action_server.ActionServer` on ``ack_links.host:port``)
    from :meth:`start` to :meth:`stop`, when ``ack_links.enabled``.
    ``ticket_push_token`` (set: serve) serves the complaint system's ticket push
    endpoint (:class:`alerts.tickets.push.TicketPushServer` on
    ``tickets.push_host:push_port``, as :attr:`ticket_push`) from :meth:`start`
    to :meth:`stop`; a token shorter than 16 characters makes :meth:`start`
    raise ``ValueError``, a port in use ``OSError``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        post_store: PostStore,
        state_store: StateStore,
        notifiers: Mapping[str, Notifier] | None = None,
        crawl_command: CrawlCommand | None = None,
        detector: Detector | None = None,
        clock: Callable[[], datetime] = utcnow,
        key: str = "default",
        outbox_interval_seconds: float = OUTBOX_INTERVAL_SECONDS,
        serve_links: bool = False,
        ticket_push_token: str | None = None,
    ) -> None:
        self.settings = settings
        self.post_store = post_store
        self.state_store = state_store
        self.notifiers: dict[str, Notifier] = dict(
            notifiers if notifiers is not None else build_notifiers(settings.channels)
        )
        self.crawl_command = crawl_command
        self.detector = detector or Detector.from_settings(
            settings, post_store, state_store, clock=clock
        )
        self.clock = clock
        self.key = key
        self.outbox_interval_seconds = outbox_interval_seconds
        self.scheduler: BackgroundScheduler | None = None
        self.serve_links = serve_links
        self.action_server: ActionServer | None = None
        self.ticket_push_token = ticket_push_token
        self.ticket_push: TicketPushServer | None = None
        self._outbox_lock = threading.Lock()
        self._children_lock = threading.Lock()
        self._crisis_lock = threading.Lock()
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping = False
        self._stop_event = threading.Event()
        missing = [c.name for c in settings.channels if c.enabled and c.name not in self.notifiers]
        if missing:
            logger.warning("channels without a notifier (messages stay queued): %s", missing)

    # -- lifecycle --------------------------------------------------------------------

    def wanted_jobs(self) -> dict[str, dict[str, Any]]:
        """The jobs this service schedules, by id, as ``add_job`` keyword arguments."""
        sched = self.settings.scheduler
        jobs: dict[str, dict[str, Any]] = {
            DETECT_JOB_ID: {
                "func": run_detect_job,
                "args": (self.key,),
                "trigger": IntervalTrigger(seconds=sched.detect_interval_seconds),
                "name": "detect (all rules)",
            },
            OUTBOX_JOB_ID: {
                "func": run_outbox_job,
                "args": (self.key,),
                "trigger": IntervalTrigger(seconds=self.outbox_interval_seconds),
                "name": "deliver notifications",
            },
        }
        # Always scheduled: with escalation.enabled false it still sends resolved
        # notices and repairs missing messages; only the time-based climb is off.
        jobs[ESCALATE_JOB_ID] = {
            "func": run_escalate_job,
            "args": (self.key,),
            "trigger": IntervalTrigger(seconds=self.settings.escalation.check_interval_seconds),
            "name": "escalate unacknowledged incidents, resolved notices",
        }
        if self.settings.reports.daily_brief_enabled:
            hour, minute = self.settings.reports.daily_brief_hour_minute
            jobs[DAILY_BRIEF_JOB_ID] = {
                "func": run_daily_brief_job,
                "args": (self.key,),
                "trigger": CronTrigger(hour=hour, minute=minute, timezone=self.settings.timezone),
                "name": "daily brief (舆情日报) to head office",
            }
        if self.crawl_command is not None:
            for source in self.settings.sources:
                if source.enabled:
                    jobs[crawl_job_id(source.name)] = {
                        "func": run_crawl_job,
                        "args": (self.key, source.name),
                        "trigger": IntervalTrigger(seconds=source.interval_minutes * 60),
                        "name": f"crawl {source.name}",
                    }
        return jobs

    def start(self) -> None:
        """Start the background scheduler; returns at once. Jobs first run right away.

        Raises ``RuntimeError`` if a service with the same ``key`` is already running.
        """
        with _SERVICES_LOCK:
            if self.key in _SERVICES:
                raise RuntimeError(f"a yuqing service {self.key!r} is already running")
            _SERVICES[self.key] = self
        try:
            self._stopping = False
            self._stop_event.clear()
            scheduler = build_scheduler(self.settings)
            # Paused first: reconcile the persistent store before anything fires.
            scheduler.start(paused=True)
            self.scheduler = scheduler
            wanted = self.wanted_jobs()
            for job in scheduler.get_jobs():
                if job.id not in wanted:
                    logger.info("removing stale scheduler job %r", job.id)
                    scheduler.remove_job(job.id)
            now = datetime.now(UTC)
            crawls = 0
            for job_id, spec in wanted.items():
                first_run = now
                if job_id.startswith(CRAWL_JOB_PREFIX):
                    # Stagger crawl children by a second each so they do not all fork at once.
                    first_run = now + timedelta(seconds=crawls)
                    crawls += 1
                elif job_id == DAILY_BRIEF_JOB_ID:
                    first_run = self._daily_brief_first_run(
                        spec["trigger"], now, scheduler.get_job(DAILY_BRIEF_JOB_ID)
                    )
                scheduler.add_job(id=job_id, replace_existing=True, next_run_time=first_run, **spec)
            scheduler.resume()
            self._start_action_server()
            self._start_ticket_push()
        except BaseException:
            self._stop_ticket_push()
            if self.action_server is not None:
                self.action_server.stop()
                self.action_server = None
            self._unregister()
            if self.scheduler is not None and self.scheduler.running:
                self.scheduler.shutdown(wait=False)
            self.scheduler = None
            raise
        logger.info("service %r started with jobs: %s", self.key, ", ".join(wanted))

    def stop(self, *, wait: bool = True) -> None:
        """Stop crawls (terminate children), let running detect/outbox jobs end, shut down.

        Safe to call twice and from any thread except a job of this service.
        """
        with self._children_lock:
            self._stopping = True
            children = dict(self._children)
        # Barrier: wait for a crisis-mode reschedule in progress (it needs the
        # scheduler's job-store lock, which shutdown holds while it waits for
        # jobs); later ones see _stopping and do nothing.
        with self._crisis_lock:
            pass
        self._stop_event.set()
        scheduler = self.scheduler
        if scheduler is not None and scheduler.running:
            # Pausing first means no new job is submitted while children are killed.
            scheduler.pause()
        if self.action_server is not None:
            self.action_server.stop()
            self.action_server = None
        self._stop_ticket_push()
        for source, proc in children.items():
            logger.info("stopping crawl child of %s (pid %s)", source, proc.pid)
            _terminate(proc)
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=wait)
        self.scheduler = None
        self._unregister()
        logger.info("service %r stopped", self.key)

    def run_forever(self) -> None:
        """Start, block until SIGINT/SIGTERM (or :meth:`stop`), then stop cleanly.

        Must be called from the main thread (signal handlers). A second Ctrl-C
        during shutdown falls back to Python's default (KeyboardInterrupt).
        """
        previous: dict[signal.Signals, Any] = {}

        def _restore() -> None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

        def _on_signal(signum: int, _frame: FrameType | None) -> None:
            # Only set a flag: the orderly shutdown runs in the main loop below,
            # not inside a signal handler that may interrupt the scheduler.
            logger.info("received %s, shutting down", signal.Signals(signum).name)
            _restore()
            self._stop_event.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, _on_signal)
        try:
            self.start()
            # wait() with a timeout keeps the main thread responsive to signals.
            while not self._stop_event.wait(timeout=1.0):
                pass
        finally:
            _restore()
            self.stop()

    def trigger(self, job_id: str) -> None:
        """Make job ``job_id`` run as soon as possible (tests, CLI "detect now").

        Raises ``apscheduler.jobstores.base.JobLookupError`` for an unknown id
        and ``RuntimeError`` when the service is not running.
        """
        if self.scheduler is None:
            raise RuntimeError("service is not running")
        self.scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))

    def job_ids(self) -> list[str]:
        """Ids of the jobs in the scheduler's store (sorted); empty when not running."""
        if self.scheduler is None:
            return []
        return sorted(job.id for job in self.scheduler.get_jobs())

    def _start_action_server(self) -> None:
        links = self.detector.policy.links
        if not (self.serve_links and self.settings.ack_links.enabled and links is not None):
            return
        cfg = self.settings.ack_links
        store: EscalationStore = self.state_store  # type: ignore[assignment]
        self.action_server = ActionServer(
            store,
            links,
            self.detector.policy,
            host=cfg.host,
            port=cfg.port,
            posts=self.post_store,
            clock=self.clock,
            on_change=self._deliver_now,
        )
        self.action_server.start()

    def _start_ticket_push(self) -> None:
        # The complaint system's push endpoint (issue 7) runs with the service
        # when its token is set; it writes tickets to the service's state store.
        if not self.ticket_push_token:
            return
        self.ticket_push = TicketPushServer(
            self.state_store,
            self.settings.tickets,
            token=self.ticket_push_token,
            timezone=self.settings.timezone,
        )
        self.ticket_push.start()

    def _stop_ticket_push(self) -> None:
        if self.ticket_push is not None:
            self.ticket_push.stop()
            self.ticket_push = None

    def _unregister(self) -> None:
        with _SERVICES_LOCK:
            if _SERVICES.get(self.key) is self:
                del _SERVICES[self.key]

    # -- jobs -------------------------------------------------------------------------

    def detect(self) -> list[Alert]:
        """Run every rule once now; deliver new messages right away.

        Raises ``DetectionFailed`` (the scheduler logs it as a failed job) when
        a rule could not be evaluated — never treated as quiet.
        """
        try:
            alerts = self.detector.run_once(self.clock())
        except DetectionFailed as exc:
            if any(not a.details.get("dry_run") for a in exc.alerts):
                self._deliver_now()
            self._apply_crisis_mode_safely()
            raise
        if any(not a.details.get("dry_run") for a in alerts):
            self._deliver_now()
        self._apply_crisis_mode_safely()
        return alerts

    def apply_crisis_mode(self) -> dict[str, float]:
        """Reschedule the ``crawl:<source>`` jobs to the intervals crisis mode wants now.

        Sources of an active incident of ``scheduler.crisis_min_grade`` or
        above are crawled ``crisis_factor`` times as often; the others at
        their configured interval. A job is changed only when its interval
        actually changes; its next run becomes the sooner of the one it had
        and now + the new interval (entering crisis mode never delays a
        crawl, leaving it never skips one that is due). Returns the
        changed intervals in seconds by source. Store errors propagate.
        """
        scheduler = self.scheduler
        if scheduler is None or self.crawl_command is None:
            return {}
        active = self.state_store.list_incidents(
            status=[IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED], limit=CRISIS_INCIDENT_LIMIT
        )
        wanted = crawl_intervals(self.settings, active)
        changed: dict[str, float] = {}
        for source, seconds in wanted.items():
            job = scheduler.get_job(crawl_job_id(source))
            if job is None or not isinstance(job.trigger, IntervalTrigger):
                continue
            current = job.trigger.interval.total_seconds()
            if abs(current - seconds) < 0.5:
                continue
            # Not reschedule_job: that would push a crawl due sooner (the first
            # crawl right after start) out by a whole interval.
            changes: dict[str, Any] = {"trigger": IntervalTrigger(seconds=seconds)}
            due = job.next_run_time
            if due is not None:  # None: the job is paused; leave it paused
                changes["next_run_time"] = min(due, datetime.now(UTC) + timedelta(seconds=seconds))
            scheduler.modify_job(job.id, **changes)
            changed[source] = seconds
            logger.warning(
                "crisis mode %s for source %s: crawl every %.0fs (was %.0fs)",
                "ON" if seconds < current else "OFF",
                source,
                seconds,
                current,
                extra={"source": source, "crawl_interval_seconds": seconds},
            )
        return changed

    def _apply_crisis_mode_safely(self) -> None:
        # Crisis mode must never make detection fail: a store error here is
        # logged, and the next cycle tries again.
        with self._crisis_lock:
            if self._stopping:
                return
            try:
                self.apply_crisis_mode()
            except Exception:
                logger.exception("could not apply crisis-mode crawl intervals; retrying next cycle")

    def escalate(self) -> list[tuple[int, int]]:
        """Run the escalation policy once now; deliver what it queued right away.

        Returns ``(incident_id, new_level)`` per escalation step taken. Store
        errors propagate (the scheduler logs the failed job; the next run repairs).
        """
        store: EscalationStore = self.state_store  # type: ignore[assignment]
        stepped = self.detector.policy.run_due(store, self.clock(), posts=self.post_store)
        self._deliver_now()
        return stepped

    def daily_brief(self, day: date | None = None) -> BriefOutcome:
        """Build and queue the daily brief of ``day`` (default: yesterday), deliver it now.

        Idempotent per day and channel (outbox dedup key ``daily-brief:<date>``).
        Store errors propagate (the scheduler logs the failed job).
        """
        outcome = queue_daily_brief(
            self.settings, self.post_store, self.state_store, now=self.clock(), day=day
        )
        if outcome.queued:
            self._deliver_now()
        return outcome

    @staticmethod
    def _daily_brief_first_run(trigger: CronTrigger, now: datetime, stored: Any) -> datetime:
        # Catch up: the stored job was due while the service was down (a restart
        # after 08:30 that missed it) → run now; the outbox dedup keeps one brief
        # per day. A first start (no stored job) waits for the configured time,
        # so a fresh install does not send an old brief at once.
        previous = getattr(stored, "next_run_time", None)
        if previous is not None and previous <= now:
            return now
        due: datetime = trigger.get_next_fire_time(None, now)
        return due

    def deliver(self) -> DeliveryReport | None:
        """Deliver due notifications; ``None`` if a delivery is already in progress."""
        if not self._outbox_lock.acquire(blocking=False):
            return None
        try:
            return deliver_due(self.state_store, self.notifiers, self.clock())
        finally:
            self._outbox_lock.release()

    def _deliver_now(self) -> None:
        # Called from the detect job: a new incident should not wait up to 30 s
        # for the outbox job. The lock (not scheduler.modify_job, which would
        # deadlock with a concurrent shutdown) keeps one deliverer at a time.
        if self._stopping:
            return
        try:
            self.deliver()
        except Exception:
            logger.exception("immediate delivery after detection failed; the outbox job retries")

    def crawl(self, source: str) -> CrawlOutcome:
        """Run the crawl child of ``source`` to completion or timeout; never raises for it.

        A non-zero exit, a timeout or a failure to start is logged at ERROR
        and recorded as a failed ``CrawlRun``.
        """
        started = utcnow()
        t0 = time.monotonic()
        if self.crawl_command is None:
            return CrawlOutcome(source, False, None, 0.0, message="no crawl command configured")
        timeout = self.settings.scheduler.crawl_timeout_seconds
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                argv = self.crawl_command(source)
                with self._children_lock:
                    if self._stopping:
                        return CrawlOutcome(source, False, None, 0.0, message="service stopping")
                    # Output goes to files, not pipes: a chatty crawl can never block on
                    # a full pipe, and memory stays flat. New session: we signal the
                    # whole group on timeout or shutdown.
                    proc = subprocess.Popen(
                        argv,
                        stdout=out,
                        stderr=err,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                    self._children[source] = proc
            except Exception as exc:
                outcome = CrawlOutcome(
                    source,
                    False,
                    None,
                    time.monotonic() - t0,
                    message=f"could not start crawl: {type(exc).__name__}: {exc}",
                )
                logger.error("crawl %s: %s", source, outcome.message)
                self._record_failed_crawl(outcome, started)
                return outcome
            logger.info("crawl %s started (pid %s): %s", source, proc.pid, " ".join(argv))
            timed_out = False
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _terminate(proc)
            finally:
                with self._children_lock:
                    self._children.pop(source, None)
            duration = time.monotonic() - t0
            stderr_tail = _tail(err)
            stdout_tail = _tail(out, 500)
        code = proc.returncode
        if self._stopping and not timed_out and code != 0:
            logger.info("crawl %s interrupted by shutdown (exit %s)", source, code)
            return CrawlOutcome(source, False, code, duration, stderr_tail, "interrupted")
        if code == 0 and not timed_out:
            logger.info("crawl %s finished: exit 0 in %.1fs", source, duration)
            if stdout_tail:
                logger.debug("crawl %s stdout tail:\n%s", source, stdout_tail)
            return CrawlOutcome(source, True, 0, duration, stderr_tail)
        if code == CRAWL_EXIT_RECORDED_NOT_OK and not timed_out:
            logger.warning(
                "crawl %s ran but was not ok (recorded by the crawl); stderr tail:\n%s",
                source,
                stderr_tail[-STDERR_TAIL_CHARS // 4 :] or "(empty)",
            )
            return CrawlOutcome(source, False, code, duration, stderr_tail, "crawl not ok")
        message = f"timed out after {timeout}s and was killed" if timed_out else f"exit code {code}"
        logger.error(
            "crawl %s failed: %s after %.1fs; stderr tail:\n%s",
            source,
            message,
            duration,
            stderr_tail or "(empty)",
        )
        outcome = CrawlOutcome(source, False, code, duration, stderr_tail, message)
        self._record_failed_crawl(outcome, started)
        return outcome

    def _record_failed_crawl(self, outcome: CrawlOutcome, started: datetime) -> None:
        detail = outcome.message
        if outcome.stderr_tail:
            detail += "\n" + outcome.stderr_tail[-500:]
        try:
            self.state_store.record_crawl_run(
                CrawlRun(
                    source=outcome.source,
                    started_at=started,
                    finished_at=utcnow(),
                    ok=False,
                    errors=1,
                    message=detail,
                )
            )
        except Exception:
            logger.exception("could not record the failed crawl of %s", outcome.source)


def _tail(handle: IO[bytes], chars: int = STDERR_TAIL_CHARS) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - chars * 4))  # up to 4 bytes per UTF-8 character
    return handle.read().decode("utf-8", errors="replace")[-chars:].strip()


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group, then SIGKILL it if it is still alive."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
