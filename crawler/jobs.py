"""Resumable crawls: one Scrapy ``JOBDIR`` per source under ``<data_dir>/jobs/``.

With a JOBDIR Scrapy keeps the pending requests on disk and remembers every
request it scheduled (``requests.seen``), so a crawl stopped half-way (Ctrl-C,
the service stopping, ``CLOSESPIDER_*``) goes on where it stopped the next
time the source is crawled: pages already fetched are not fetched again and
the pages still queued are. A crawl that *finished* removes its JOBDIR, so the
next scheduled crawl starts afresh (otherwise ``requests.seen`` would hide
every list page it fetched before).

The directory is locked (``flock``) while a crawl uses it: a second crawl of
the same source at the same time runs without a JOBDIR rather than corrupt
the first one's queue. A stop by SIGKILL or a power cut can lose the requests
that were being downloaded at that moment (a Scrapy limitation); a graceful
stop (one SIGINT/SIGTERM) loses nothing.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

try:  # POSIX; elsewhere concurrent crawls of one source are not guarded
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

_LOCK_NAME = ".yuqing.lock"


@dataclass
class Job:
    """The JOBDIR of one crawl (``path`` is ``None`` when the crawl runs without one)."""

    path: Path | None
    resumed: bool = False
    notes: list[str] = field(default_factory=list)

    def finished(self, finish_reason: str | None, failed: bool) -> None:
        """Remove the JOBDIR after a crawl that ran to its end; keep it to resume otherwise."""
        if self.path is None:
            return
        if finish_reason == "finished" and not failed:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            log.info(
                "crawl stopped (%s); %s is kept and the next crawl of this source resumes it",
                finish_reason or "failed",
                self.path,
            )


def jobs_root(data_dir: Path) -> Path:
    """Where the JOBDIRs of every source live."""
    return Path(data_dir) / "jobs"


@contextlib.contextmanager
def crawl_job(data_dir: Path, source: str, *, resume: bool = True) -> Iterator[Job]:
    """The JOBDIR to crawl ``source`` with, locked for the duration of the ``with`` block.

    ``resume=False`` discards an interrupted crawl's state first and still
    uses a fresh JOBDIR (so this crawl can be resumed in turn).
    """
    path = jobs_root(data_dir) / source
    path.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f"{source}{_LOCK_NAME}", "a+b") as lock:
        if fcntl is not None:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning(
                    "another crawl of %s is using %s; this one runs without resume", source, path
                )
                yield Job(path=None, notes=["another crawl of this source was running"])
                return
        try:
            state = [p for p in path.iterdir()] if path.is_dir() else []
            if state and not resume:
                shutil.rmtree(path)
                path.mkdir(parents=True)
                log.info("discarded the interrupted crawl of %s (--no-resume)", source)
                state = []
            job = Job(path=path, resumed=bool(state))
            if job.resumed:
                log.info("resuming the interrupted crawl of %s from %s", source, path)
                job.notes.append("resumed an interrupted crawl")
            yield job
        finally:
            if fcntl is not None:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
