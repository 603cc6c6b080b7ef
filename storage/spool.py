"""A durable spool for post batches that could not be stored (STYLE.md #6: temporary failures).

When the PostStore raises ``StoreUnavailable`` the crawler appends the batch
here; the next crawl (or the service) replays the spool before writing new
posts. Nothing is lost while the store is down, and nothing is replayed twice
to harm: upserts are idempotent by post id.

Layout of ``directory``::

    00001732355123456789012-000000-04711.jsonl   one batch, one Post JSON per line
    quarantine/                                  files that could not be read back
    .replay.lock                                 held while a process replays

A file name starts with a zero-padded wall-clock nanosecond time (made strictly
increasing within a process) then a counter and the pid, so lexical order is
the order batches were spooled. Files are written under a temporary name,
fsync'd and renamed, so a crash never leaves a half batch under a final name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from core.errors import StoreUnavailable
from core.models import Post, UpsertResult

try:  # POSIX only; on other systems concurrent replays are merely redundant
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"
_TMP_SUFFIX = ".tmp"


class BatchWriter(Protocol):
    """What replay needs of a store: the ``upsert`` of :class:`core.ports.PostStore`."""

    def upsert(self, posts: Sequence[Post]) -> UpsertResult: ...


class Spool:
    """Batches of posts on disk, replayed in the order they were spooled.

    ``directory`` is created on first use. Raises ``OSError`` if the spool
    itself cannot be written (a full or read-only disk): the caller must then
    fail loudly, since there is nowhere left to keep the posts.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.quarantine_dir = self.directory / "quarantine"
        self._lock = threading.Lock()
        self._last_ns = 0
        self._counter = 0

    def _next_name(self) -> str:
        with self._lock:
            # Strictly increasing even if the wall clock stalls or steps back.
            now = max(time.time_ns(), self._last_ns + 1)
            self._last_ns = now
            self._counter = (self._counter + 1) % 1_000_000
            return f"{now:023d}-{self._counter:06d}-{os.getpid():07d}{SUFFIX}"

    def append(self, posts: Sequence[Post]) -> Path | None:
        """Write ``posts`` as one spool file, durably; returns its path (``None`` if empty).

        Raises ``OSError`` if the file cannot be written.
        """
        if not posts:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / self._next_name()
        tmp = final.with_name(final.name + _TMP_SUFFIX)
        data = "".join(p.model_dump_json() + "\n" for p in posts).encode("utf-8")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(self.directory)
        log.warning("spooled %d posts to %s (post store unavailable)", len(posts), final)
        return final

    def files(self) -> list[Path]:
        """Spooled batch files, oldest first (temporary and quarantined files excluded)."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if p.name.endswith(SUFFIX))

    def pending(self) -> int:
        """How many posts wait in the spool (lines of the batch files)."""
        total = 0
        for path in self.files():
            try:
                with open(path, "rb") as fh:
                    total += sum(1 for line in fh if line.strip())
            except FileNotFoundError:
                continue  # replayed by another process meanwhile
        return total

    def replay(self, store: BatchWriter) -> int:
        """Upsert every spooled batch into ``store`` in order; returns how many posts were stored.

        A file is deleted only after its batch was upserted. A file that cannot
        be read back as posts is moved to ``quarantine/`` (logged) and replay goes
        on; so is a batch in which the store refused some posts, for inspection.
        If another process is replaying the same spool, returns 0 at once.

        Raises ``StoreUnavailable`` at the first batch the store cannot take: that
        file and all later ones stay in place for the next replay (batches before
        it are stored and removed; their count is logged).
        """
        replayed = 0
        with self._replay_lock() as acquired:
            if not acquired:
                log.info("spool %s is being replayed by another process", self.directory)
                return 0
            for path in self.files():
                try:
                    posts = _read_batch(path)
                except FileNotFoundError:
                    continue
                except (ValueError, ValidationError, UnicodeDecodeError) as exc:
                    self._quarantine(path, f"unreadable spool file: {exc}")
                    continue
                try:
                    result = store.upsert(posts)
                except StoreUnavailable:
                    log.warning(
                        "spool replay stopped at %s after %d posts; %d files wait: store down",
                        path.name,
                        replayed,
                        len(self.files()),
                    )
                    raise
                replayed += result.inserted + result.updated
                if result.failed:
                    self._quarantine(
                        path, f"store refused {result.failed} posts: {'; '.join(result.errors)}"
                    )
                else:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
        if replayed:
            log.info("replayed %d spooled posts from %s", replayed, self.directory)
        return replayed

    def _quarantine(self, path: Path, reason: str) -> None:
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        target = self.quarantine_dir / path.name
        os.replace(path, target)
        log.error("quarantined spool file %s: %s", target, reason)

    @contextlib.contextmanager
    def _replay_lock(self) -> Iterator[bool]:
        if fcntl is None:
            yield True
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".replay.lock", "a+b") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _read_batch(path: Path) -> list[Post]:
    with open(path, encoding="utf-8") as fh:
        posts = [Post.model_validate_json(line) for line in fh if line.strip()]
    if not posts:
        raise ValueError("empty spool file")
    return posts


def _fsync_dir(directory: Path) -> None:
    # Make the rename itself durable; not possible on every platform.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
