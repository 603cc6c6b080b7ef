"""The main text of an article page, with trafilatura (``detail.main_text: auto``).

trafilatura finds the article body by its structure and text density, so
navigation, "相关阅读" link lists, sidebars, footers with copyright lines and
ad blocks are left out without a selector per site. It also reads the title,
author and publish time from the page's metadata (``<meta>``, JSON-LD,
Open Graph) and markup. What it keeps of the body is then cleaned of the
lines content farms inject *inside* articles ("已阅读5页，还剩13页未读",
"加微信 … 领红包") with :func:`nlp.normalize.is_boilerplate` — the same rule
the clean stage applies to every post.

Pages larger than :data:`MAX_HTML_CHARS` are cut before extraction: the
article is near the top, and trafilatura's time grows with the tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import trafilatura

from nlp.normalize import is_boilerplate

MAX_HTML_CHARS = 600_000
"""Characters of HTML given to trafilatura; a longer page is cut (counted by the spider)."""

_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# A date with a time of day as pages show it ("2026-11-22 09:15", "2026年11月22日 09:15").
_DATE_TIME_SHOWN = re.compile(
    r"(?P<y>\d{4})\s*[-/.年]\s*(?P<mo>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?\s*"
    r"(?P<h>\d{1,2})\s*[:：]\s*(?P<mi>\d{2})(?:\s*[:：]\s*(?P<s>\d{2}))?"
)


@dataclass(frozen=True)
class MainText:
    """What trafilatura read from a page; fields it could not find are empty/``None``."""

    text: str
    title: str = ""
    author: str | None = None
    published_at: str | None = None
    """Local time as "YYYY-MM-DD HH:MM:SS" (the validate stage reads it in the site's zone)."""


def extract_main_text(html: str, url: str) -> MainText | None:
    """The article of ``html`` (found at ``url``), or ``None`` if trafilatura finds none.

    Never fetches anything (``url`` is only used to resolve metadata). Lines
    that are boilerplate or spam are removed; a first line that repeats the
    title is dropped.
    """
    if not html.strip():
        return None
    doc = trafilatura.bare_extraction(
        html[:MAX_HTML_CHARS],
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=False,
        include_images=False,
        favor_precision=True,
        date_extraction_params={
            "outputformat": _DATE_FORMAT,
            "original_date": True,
            "extensive_search": True,
        },
    )
    if doc is None:
        return None
    title = " ".join((getattr(doc, "title", None) or "").split())
    lines = [" ".join(line.split()) for line in (getattr(doc, "text", None) or "").splitlines()]
    lines = [line for line in lines if line and not is_boilerplate(line)]
    if lines and title and lines[0] == title:
        lines = lines[1:]
    text = "\n".join(lines)
    if not text:
        return None
    author = " ".join((getattr(doc, "author", None) or "").split()) or None
    published = _with_time_of_day(getattr(doc, "date", None), html)
    return MainText(text=text, title=title, author=author, published_at=published)


def _with_time_of_day(date: str | None, html: str) -> str | None:
    """trafilatura's date, with the time of day the page shows when it only found the day.

    htmldate keeps times from metadata but gives midnight for a date read
    from the page's text; news pages show "2026-11-22 09:15" next to the
    title, and the hour matters for a monitor.
    """
    if not date or not date.endswith("00:00:00"):
        return date
    day = date[:10]
    for m in _DATE_TIME_SHOWN.finditer(html[:200_000]):
        if f"{int(m['y']):04d}-{int(m['mo']):02d}-{int(m['d']):02d}" == day:
            return f"{day} {int(m['h']):02d}:{m['mi']}:{m['s'] or '00'}"
    return date
