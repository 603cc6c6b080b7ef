"""One entry point per report to render any format: what the CLI, dashboard and service call."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from reports.model import DailyBrief, IncidentReport

Format = Literal["md", "docx", "pdf"]
FORMATS: tuple[Format, ...] = get_args(Format)
CONTENT_TYPES: dict[Format, str] = {
    "md": "text/markdown; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
}


def check_format(value: str) -> Format:
    """``value`` as a :data:`Format`; raises ``ValueError`` naming the accepted ones."""
    if value not in FORMATS:
        raise ValueError(f"unknown report format {value!r}; use one of: {', '.join(FORMATS)}")
    return value  # type: ignore[return-value]


def daily_brief_filename(brief: DailyBrief, fmt: Format) -> str:
    """``daily-brief-2026-11-22.pdf`` (ASCII: safe in every mail client and file system)."""
    return f"daily-brief-{brief.day:%Y-%m-%d}.{fmt}"


def incident_report_filename(report: IncidentReport, fmt: Format) -> str:
    """``incident-7-report.docx``."""
    return f"incident-{report.id}-report.{fmt}"


def render_daily_brief(brief: DailyBrief, fmt: Format, *, now: datetime) -> bytes:
    """The brief in ``fmt`` as bytes (Markdown as UTF-8). Same inputs → same bytes."""
    if fmt == "md":
        from reports.render_md import daily_brief_markdown

        return daily_brief_markdown(brief).encode("utf-8")
    if fmt == "docx":
        from reports.render_docx import daily_brief_docx

        return daily_brief_docx(brief, now=now)
    from reports.render_pdf import daily_brief_pdf

    return daily_brief_pdf(brief, now=now)


def render_incident_report(report: IncidentReport, fmt: Format, *, now: datetime) -> bytes:
    """The incident report in ``fmt`` as bytes (Markdown as UTF-8). Same inputs → same bytes."""
    if fmt == "md":
        from reports.render_md import incident_report_markdown

        return incident_report_markdown(report).encode("utf-8")
    if fmt == "docx":
        from reports.render_docx import incident_report_docx

        return incident_report_docx(report, now=now)
    from reports.render_pdf import incident_report_pdf

    return incident_report_pdf(report, now=now)
