"""Pure parsers for what pages show: publish times and counts.

Chinese sites show times in many shapes and almost never with a zone; we
read them as local time of the configured zone (Asia/Shanghai by default)
and return UTC. Counts come as "1.2万", "1,234", "回复 12" or "--".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime

_DATE_TIME = re.compile(
    r"(?P<y>\d{4})\s*[-/.年]\s*(?P<mo>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?"
    r"(?:[\sT]*(?P<h>\d{1,2})\s*[:：时]\s*(?P<mi>\d{2})(?:\s*[:：分]\s*(?P<s>\d{2}))?)?"
)
_MONTH_DAY = re.compile(
    r"(?<![\d/.-])(?P<mo>\d{1,2})\s*[-/月]\s*(?P<d>\d{1,2})\s*日?"
    r"(?:\s*(?P<h>\d{1,2})\s*[:：]\s*(?P<mi>\d{2})(?:\s*[:：]\s*(?P<s>\d{2}))?)?(?![\d/-])"
)
_RELATIVE = re.compile(r"(?P<n>\d+)\s*(?P<unit>秒|分钟|分|小时|天)\s*前")
_DAY_WORD = re.compile(r"(?P<word>今天|昨天|前天)(?:\s*(?P<h>\d{1,2})\s*[:：]\s*(?P<mi>\d{2}))?")
_EPOCH = re.compile(r"^\d{10}(?:\d{3})?(?:\.\d+)?$")
# Weibo's API (and Twitter's): "Mon Nov 23 14:05:09 +0800 2026".
_CTIME_ZONE = re.compile(r"^[A-Za-z]{3} [A-Za-z]{3} \d{1,2} \d{2}:\d{2}:\d{2} [+-]\d{4} \d{4}$")
_COUNT = re.compile(r"(?P<n>\d+(?:[.,]\d+)*)\s*(?P<unit>万|w|W|亿|k|K|千)?")


def parse_published(
    raw: str | int | float | datetime | None, zone: tzinfo, now: datetime
) -> datetime | None:
    """The UTC publish time that ``raw`` describes, or ``None`` if it describes none.

    Accepts an aware or naive ``datetime``; ISO 8601 ("2026-11-23T14:05:00+08:00");
    RFC 822 ("Mon, 23 Nov 2026 14:05:09 +0800"); Weibo's API form
    ("Mon Nov 23 14:05:09 +0800 2026"); local formats found on Chinese
    sites ("2026-11-23 14:05", "2026/11/23 14:05:09", "2026年11月23日 14:05",
    "2026/11/23", embedded in text such as "发表于 …"); a month and day without
    a year ("11-23 14:05", "11月23日") in the year of ``now`` (the year before
    if that would lie in the future); Unix timestamps in seconds or
    milliseconds (10 or 13 digits, as a number or a string); and relative
    ones ("刚刚", "5分钟前", "2小时前", "今天 09:15", "昨天 14:05", "前天 08:00")
    counted from ``now`` in ``zone``. Anything without an offset is local time
    in ``zone``. Never raises for bad input: unparseable text gives ``None``.
    """
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, datetime):
        return _to_utc(raw, zone)
    if isinstance(raw, int | float):
        return _from_epoch(float(raw))
    text = " ".join(str(raw).split())
    if not text:
        return None
    if _EPOCH.match(text):
        return _from_epoch(float(text))
    # ISO 8601 first: it is exact and carries its own offset when it has one.
    try:
        return _to_utc(datetime.fromisoformat(text.replace("Z", "+00:00")), zone)
    except ValueError:
        pass
    if _CTIME_ZONE.match(text):
        try:
            return _to_utc(datetime.strptime(text, "%a %b %d %H:%M:%S %z %Y"), zone)
        except ValueError:
            pass
    if re.match(r"^[A-Za-z]{3},?\s+\d", text) or re.match(r"^\d{1,2}\s+[A-Za-z]{3}\s+\d{4}", text):
        try:
            return _to_utc(parsedate_to_datetime(text), zone)
        except (TypeError, ValueError, IndexError):
            pass
    m = _DATE_TIME.search(text)
    if m:
        try:
            local = datetime(
                int(m["y"]),
                int(m["mo"]),
                int(m["d"]),
                int(m["h"] or 0),
                int(m["mi"] or 0),
                int(m["s"] or 0),
            )
        except ValueError:
            return None
        return _to_utc(local, zone)
    relative = _parse_relative(text, zone, now)
    if relative is not None:
        return relative
    return _parse_month_day(text, zone, now)


def _from_epoch(value: float) -> datetime | None:
    """A Unix timestamp in seconds, or in milliseconds when it is too large for seconds."""
    if value >= 1e11:  # later than the year 5138 in seconds: milliseconds
        value /= 1000
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _parse_month_day(text: str, zone: tzinfo, now: datetime) -> datetime | None:
    m = _MONTH_DAY.search(text)
    if not m:
        return None
    local_now = now.astimezone(zone)
    fields = (int(m["mo"]), int(m["d"]), int(m["h"] or 0), int(m["mi"] or 0), int(m["s"] or 0))
    try:
        local = datetime(local_now.year, *fields)
        if local.replace(tzinfo=zone) > local_now + timedelta(days=1):
            # "12-31 23:00" read on 1 January is last year's.
            local = datetime(local_now.year - 1, *fields)
    except ValueError:
        return None
    return _to_utc(local, zone)


def _parse_relative(text: str, zone: tzinfo, now: datetime) -> datetime | None:
    if "刚刚" in text:
        return now.astimezone(UTC)
    m = _RELATIVE.search(text)
    if m:
        n = int(m["n"])
        unit = {"秒": "seconds", "分钟": "minutes", "分": "minutes", "小时": "hours", "天": "days"}[
            m["unit"]
        ]
        return (now - timedelta(**{unit: n})).astimezone(UTC)
    m = _DAY_WORD.search(text)
    if m:
        days_back = {"今天": 0, "昨天": 1, "前天": 2}[m["word"]]
        local_now = now.astimezone(zone)
        day = local_now.date() - timedelta(days=days_back)
        local = datetime(day.year, day.month, day.day, int(m["h"] or 0), int(m["mi"] or 0))
        try:
            return _to_utc(local, zone)
        except ValueError:
            return None
    return None


def _to_utc(value: datetime, zone: tzinfo) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def parse_count(raw: str | int | None) -> int | None:
    """The number in ``raw``: "1.2万" → 12000, "1,234" → 1234, "回复 12" → 12.

    ``None`` when there is no number ("--", "", None). Never negative.
    """
    if raw is None:
        return None
    if isinstance(raw, bool):  # bool is an int; a flag is never a count
        return None
    if isinstance(raw, int):
        return max(raw, 0)
    m = _COUNT.search(str(raw))
    if not m:
        return None
    digits = m["n"]
    # "1,234" is a thousands separator; "1.2" a decimal point.
    number = float(digits.replace(",", "")) if "," in digits else float(digits)
    factor = {
        "万": 10_000,
        "w": 10_000,
        "W": 10_000,
        "亿": 100_000_000,
        "k": 1000,
        "K": 1000,
        "千": 1000,
    }.get(m["unit"] or "", 1)
    return round(number * factor)
