"""The scheduled daily brief: build yesterday's 舆情日报 and queue it for head office.

:func:`queue_daily_brief` runs from the service's ``daily_brief`` cron job
(``reports.daily_brief_time``, local time). It writes the brief into
``<data_dir>/reports/`` — ``daily-brief-<date>.pdf`` plus a JSON sidecar with
the texts — and queues one notification per channel under the dedup key
``daily-brief:<date>``:

* ``email`` channels: the plain-text summary, with the PDF attached (a file
  reference in the payload, see :mod:`alerts.attachments`, so every retry
  attaches the same file);
* every other channel: the Markdown summary and a link to the dashboard's
  reports page (:class:`alerts.messages.ReportMessage`).

Restart safety: the outbox refuses a second ``(channel, daily-brief:<date>)``,
so a restart, a catch-up run and the 08:30 run together send each channel one
brief. The files are written once per date (atomically: temp file, then
rename) and reused, so a retry or a catch-up sends the brief as first built.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from alerts.attachments import attachment_ref
from alerts.messages import REPORT_KIND
from core.models import Notification
from core.ports import PostStore, StateStore
from core.settings import ChannelConfig, Settings
from reports.brief import gather_daily_brief, previous_day
from reports.render import CONTENT_TYPES, render_daily_brief
from reports.render_md import daily_brief_summary, daily_brief_text

logger = logging.getLogger(__name__)

REPORTS_SUBDIR = "reports"


@dataclass
class BriefOutcome:
    """What one run did: the day, the PDF, and which channels got a new notification."""

    day: date
    pdf: Path | None = None
    queued: list[str] = field(default_factory=list)
    already_queued: list[str] = field(default_factory=list)
    reused_files: bool = False


def dedup_key(day: date) -> str:
    """``daily-brief:2026-11-22`` — one brief per channel and day, whatever restarts."""
    return f"daily-brief:{day.isoformat()}"


def brief_channels(settings: Settings) -> list[ChannelConfig]:
    """The enabled channels that get the brief: ``reports.daily_brief_channels`` if set,
    else those whose audience is head office or unset (they hear every level)."""
    names = settings.reports.daily_brief_channels
    return [
        c
        for c in settings.channels
        if c.enabled
        and (c.name in names if names is not None else c.audience in (None, "head_office"))
    ]


def reports_dir(settings: Settings) -> Path:
    """``<data_dir>/reports`` (absolute): where scheduled briefs are kept."""
    return (settings.data_dir / REPORTS_SUBDIR).resolve()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _build_files(
    settings: Settings, posts: PostStore, state: StateStore, day: date, now: datetime
) -> tuple[Path, dict[str, str], bool]:
    """(PDF path, texts, reused): the day's files, built now unless both already exist."""
    directory = reports_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    pdf = directory / f"daily-brief-{day.isoformat()}.pdf"
    sidecar = directory / f"daily-brief-{day.isoformat()}.json"
    if pdf.is_file() and sidecar.is_file():
        try:
            texts = json.loads(sidecar.read_text(encoding="utf-8"))
            if isinstance(texts, dict) and {"subject", "text", "markdown"} <= texts.keys():
                return pdf, {k: str(v) for k, v in texts.items()}, True
        except (OSError, ValueError):
            logger.warning("daily brief %s: unreadable %s, building it again", day, sidecar)
    bank = settings.watchlist.bank
    brief = gather_daily_brief(
        posts,
        state,
        day,
        now=now,
        tz=settings.timezone,
        bank=bank.name,
        exclude_words=bank.all_names,
        link=f"{settings.dashboard.public_url.rstrip('/')}/reports?date={day.isoformat()}",
    )
    texts = {
        "subject": brief.title,
        "text": daily_brief_text(brief),
        "markdown": daily_brief_summary(brief),
        "link": brief.link or "",
    }
    _write_atomic(pdf, render_daily_brief(brief, "pdf", now=now))
    # The sidecar last: its presence says the PDF beside it is complete.
    _write_atomic(sidecar, json.dumps(texts, ensure_ascii=False, indent=1).encode("utf-8"))
    return pdf, texts, False


def queue_daily_brief(
    settings: Settings,
    posts: PostStore,
    state: StateStore,
    *,
    now: datetime,
    day: date | None = None,
) -> BriefOutcome:
    """Build the brief of ``day`` (default: yesterday in ``settings.timezone``) and queue it.

    Returns what was queued; channels that already have this day's brief are
    listed in ``already_queued``. Store errors propagate (the job fails and
    the next run, or the catch-up at the next start, tries again).
    """
    chosen = day or previous_day(now, ZoneInfo(settings.timezone))
    outcome = BriefOutcome(day=chosen)
    channels = brief_channels(settings)
    if not channels:
        logger.warning(
            "daily brief %s: no channel for head office is enabled; nothing queued", chosen
        )
        return outcome
    pdf, texts, reused = _build_files(settings, posts, state, chosen, now)
    outcome.pdf, outcome.reused_files = pdf, reused
    key = dedup_key(chosen)
    for channel in channels:
        payload: dict[str, Any] = {
            "kind": REPORT_KIND,
            "report": "daily_brief",
            "date": chosen.isoformat(),
            "markdown": texts["markdown"],
            "link": texts.get("link", ""),
        }
        if channel.type == "email":
            payload["attachments"] = [
                attachment_ref(pdf, filename=pdf.name, content_type=CONTENT_TYPES["pdf"])
            ]
        notification = Notification(
            channel=channel.name,
            dedup_key=key,
            subject=texts["subject"],
            body=texts["text"],
            created_at=now,
            next_attempt_at=now,
            payload=payload,
        )
        if state.enqueue(notification):
            outcome.queued.append(channel.name)
        else:
            outcome.already_queued.append(channel.name)
    logger.info(
        "daily brief %s: queued for %s; already queued for %s (%s)",
        chosen,
        outcome.queued or "-",
        outcome.already_queued or "-",
        pdf,
    )
    return outcome
