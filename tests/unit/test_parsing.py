"""Publish-time parsing (crawler.parsing.parse_published) against a fixed crawl time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crawler.parsing import parse_published

SHANGHAI = ZoneInfo("Asia/Shanghai")
TAIPEI = ZoneInfo("Asia/Taipei")
NOW = datetime(2026, 11, 23, 6, 30, tzinfo=UTC)  # 14:30 on 23 Nov in Shanghai
NEW_YEAR = datetime(2026, 12, 31, 17, 0, tzinfo=UTC)  # 01:00 on 1 Jan 2027 in Shanghai


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "now", "expected"),
    [
        # relative, counted from the crawl time
        ("刚刚", NOW, NOW),
        ("3分钟前", NOW, NOW - timedelta(minutes=3)),
        ("3 分钟前", NOW, NOW - timedelta(minutes=3)),
        ("30秒前", NOW, NOW - timedelta(seconds=30)),
        ("2小时前", NOW, NOW - timedelta(hours=2)),
        ("2天前", NOW, NOW - timedelta(days=2)),
        ("今天 09:15", NOW, utc(2026, 11, 23, 1, 15)),
        ("昨天 12:30", NOW, utc(2026, 11, 22, 4, 30)),
        ("昨天12:30", NOW, utc(2026, 11, 22, 4, 30)),
        ("前天 08:00", NOW, utc(2026, 11, 21, 0, 0)),
        # "yesterday" is the local day before: 01:00 on 1 Jan in Shanghai
        ("昨天 23:00", NEW_YEAR, utc(2026, 12, 31, 15, 0)),
        # month and day only: this year, or last year if that would be the future
        ("11-23 14:05", NOW, utc(2026, 11, 23, 6, 5)),
        ("11月23日 14:05", NOW, utc(2026, 11, 23, 6, 5)),
        ("12-31 23:00", NEW_YEAR, utc(2026, 12, 31, 15, 0)),
        ("12-30 08:00", NEW_YEAR, utc(2026, 12, 30, 0, 0)),
        # absolute local formats
        ("2026年11月23日 14:05", NOW, utc(2026, 11, 23, 6, 5)),
        ("2026/11/23", NOW, utc(2026, 11, 22, 16, 0)),
        ("2026-11-23 14:05:09", NOW, utc(2026, 11, 23, 6, 5, 9)),
        ("发布时间：2026-11-23 14:05", NOW, utc(2026, 11, 23, 6, 5)),
        # ISO 8601 and RFC 822 carry their own zone
        ("2026-11-23T14:05:00+08:00", NOW, utc(2026, 11, 23, 6, 5)),
        ("2026-11-23T06:05:00Z", NOW, utc(2026, 11, 23, 6, 5)),
        ("2026-11-23T01:05:00-05:00", NOW, utc(2026, 11, 23, 6, 5)),
        ("2026-11-23T14:05:00", NOW, utc(2026, 11, 23, 6, 5)),
        ("Mon, 23 Nov 2026 14:05:09 +0800", NOW, utc(2026, 11, 23, 6, 5, 9)),
        ("Mon, 23 Nov 2026 06:05:09 GMT", NOW, utc(2026, 11, 23, 6, 5, 9)),
        ("23 Nov 2026 06:05:09 +0000", NOW, utc(2026, 11, 23, 6, 5, 9)),
        # Unix timestamps, seconds and milliseconds, as text or numbers
        ("1795413900", NOW, utc(2026, 11, 23, 6, 5)),
        ("1795413900000", NOW, utc(2026, 11, 23, 6, 5)),
        (1795413900, NOW, utc(2026, 11, 23, 6, 5)),
        (1795413900000, NOW, utc(2026, 11, 23, 6, 5)),
        (1795413900.5, NOW, utc(2026, 11, 23, 6, 5) + timedelta(milliseconds=500)),
    ],
)
def test_publish_times_in_shanghai_are_stored_utc(
    raw: str | int | float, now: datetime, expected: datetime
) -> None:
    got = parse_published(raw, SHANGHAI, now)
    assert got == expected
    assert got is not None and got.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-23 14:05", utc(2026, 11, 23, 6, 5)),  # Taipei is UTC+8 too
        ("今天 09:15", utc(2026, 11, 23, 1, 15)),
    ],
)
def test_the_source_zone_is_used_for_local_times(raw: str, expected: datetime) -> None:
    assert parse_published(raw, TAIPEI, NOW) == expected
    tokyo = ZoneInfo("Asia/Tokyo")
    assert parse_published(raw, tokyo, NOW) == expected - timedelta(hours=1)


@pytest.mark.parametrize(
    "raw",
    [None, "", "   ", "很久以前", "2026-13-45 99:99", "13-45 10:00", "123456", True, "昨日黄花"],
)
def test_what_is_not_a_time_gives_none(raw: object) -> None:
    assert parse_published(raw, SHANGHAI, NOW) is None  # type: ignore[arg-type]
