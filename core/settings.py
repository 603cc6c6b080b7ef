"""Typed settings, checked at start-up.

Precedence (lowest → highest): field defaults < the YAML config file <
environment variables (``YUQING_`` prefix, ``__`` between nested keys, e.g.
``YUQING_STORAGE__POSTS_PATH``) < explicit keyword arguments.

The config file is ``$YUQING_CONFIG`` or the path given to :func:`load_settings`.
Secrets (``secret_key``, channel tokens) come only from the environment: the
YAML loader refuses them. Any invalid value raises :class:`ConfigError`
naming the file and the dotted key.
"""

from __future__ import annotations

import os
import re
import string
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from jsonpath_ng.ext import parse as jsonpath_parse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.errors import ConfigError
from core.vocab import Platform, SourceKind

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "dev-secret"})
SECRET_FIELDS = ("secret_key",)
# Secrets inside a section: (section, key).
NESTED_SECRET_FIELDS = (("storage", "es_api_key"), ("storage", "es_password"))


class _Strict(BaseModel):
    # Unknown keys are errors: a typo in the YAML must not be silently ignored.
    model_config = ConfigDict(extra="forbid")


class NamedEntity(_Strict):
    """A watched name with its aliases (a bank, a branch, a product)."""

    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)

    @property
    def all_names(self) -> list[str]:
        return [self.name, *self.aliases]


class Product(NamedEntity):
    kind: str = ""


class Branch(NamedEntity):
    region: str = ""


class Watchlist(_Strict):
    """Who we watch: the bank, what is *not* the bank, its branches and products."""

    bank: NamedEntity = NamedEntity(name="澜海银行", aliases=["澜海"])
    exclusions: list[str] = Field(
        default_factory=list, description="phrases that contain an alias but are not the bank"
    )
    branches: list[Branch] = Field(default_factory=list)
    products: list[Product] = Field(default_factory=list)


class ListSelectors(_Strict):
    """Selectors on a list page (CSS, or XPath when prefixed with ``xpath:``)."""

    item_links: str = Field(min_length=1)
    next_page: str | None = None


class ExtraField(_Strict):
    """A value kept in ``Post.extra``: where it is (a selector, or a JSONPath for
    ``json_api`` sources) and whether it is read as text or as a number ("1.2万" → 12000)."""

    query: str = Field(min_length=1)
    type: Literal["str", "int"] = "str"
    optional: bool = Field(
        default=False, description="only some items have it: a miss is not a selector miss"
    )


_EXTRA_KEY = r"^[a-z][a-z0-9_]*$"


def _check_extra_keys(extra: dict[str, Any]) -> dict[str, Any]:
    bad = sorted(k for k in extra if not re.match(_EXTRA_KEY, k))
    if bad:
        raise ValueError(f"extra keys must be lower_snake_case: {bad}")
    return extra


class DetailSelectors(_Strict):
    """Selectors on a detail page. ``text`` may match several nodes; they are joined.

    ``main_text: auto`` takes the article's main text with trafilatura instead
    of a ``text`` selector (navigation, related links, footers and ads are
    left out); ``title``/``author``/``published_at`` selectors, when given,
    still win over what trafilatura reads from the page's metadata. Leaving
    ``text`` out means ``main_text: auto``. ``extra`` keeps named values
    (a complaint id, a status) in ``Post.extra``.
    """

    title: str | None = Field(default=None, min_length=1)
    text: str | None = Field(default=None, min_length=1)
    main_text: Literal["selectors", "auto"] | None = None
    author: str | None = None
    published_at: str | None = None
    followers: str | None = None
    reposts: str | None = None
    comments: str | None = None
    likes: str | None = None
    extra: dict[str, str | ExtraField] = Field(default_factory=dict)

    _extra_keys = field_validator("extra")(_check_extra_keys)

    @model_validator(mode="after")
    def _text_or_auto(self) -> DetailSelectors:
        if self.main_text is None:
            self.main_text = "selectors" if self.text else "auto"
        if self.main_text == "auto" and self.text:
            raise ValueError("give either a 'text' selector or 'main_text: auto', not both")
        if self.main_text == "selectors" and not (self.text and self.title):
            raise ValueError("'text' and 'title' selectors are needed unless 'main_text: auto'")
        return self


class ReplySelectors(_Strict):
    """Replies on a thread page (forum floors, Tieba 楼层): one post per ``item`` node.

    The other selectors are relative to the node (XPath ones start with
    ``xpath:.//``). A reply's URL is the thread's URL with ``?<id_param>=<id>``
    (Tieba's ``?pid=``), so each reply is its own post; ``Post.extra`` links it
    to its thread (``thread_url``, ``thread_title``, ``floor``). On the first
    thread page the first node is the opening post (already the thread's post)
    and is skipped unless ``skip_first: false``. ``next_page`` pages through the
    thread up to ``max_pages``.
    """

    item: str = Field(min_length=1)
    text: str = Field(min_length=1)
    id: str = Field(min_length=1)
    id_param: str = Field(default="pid", pattern=r"^[A-Za-z0-9_]+$")
    author: str | None = None
    published_at: str | None = None
    floor: str | None = None
    followers: str | None = None
    likes: str | None = None
    next_page: str | None = None
    max_pages: int = Field(default=5, ge=1, description="thread pages followed per thread")
    skip_first: bool = True


JSON_FIELDS = (
    "id",
    "text",
    "title",
    "author",
    "author_followers",
    "reposts",
    "comments",
    "likes",
    "published_at",
    "url",
)
"""The fields a ``json_api`` source maps from each item with a JSONPath."""


class JsonFields(_Strict):
    """JSONPaths, relative to one item, of the post's fields (only ``text`` is required)."""

    text: str = Field(min_length=1)
    id: str | None = None
    title: str | None = None
    author: str | None = None
    author_followers: str | None = None
    reposts: str | None = None
    comments: str | None = None
    likes: str | None = None
    published_at: str | None = None
    url: str | None = None
    quoted_text: str | None = Field(
        default=None,
        description=(
            "the reposted original's text (Weibo: retweeted_status.text); when an item "
            "has it, the post reads '<comment>//@<quoted_author>: <original>', as the "
            "platform shows a repost, so a repost whose own comment does not name the "
            "bank still mentions it and is grouped under the original"
        ),
    )
    quoted_author: str | None = None


class JsonPagination(_Strict):
    """How a ``json_api`` source asks for the next page.

    Page numbers: ``param`` (a query parameter set to ``start``, ``start+step`` …),
    or ``{page}`` in the start URL. Cursor: ``cursor`` is the JSONPath (from the
    response root) of the next page's cursor, sent as ``param`` or put into
    ``{cursor}`` of the start URL; the first request goes without one.
    Paging stops at ``max_pages``, at a page without items, or without a cursor.
    """

    param: str | None = Field(default=None, min_length=1)
    start: int = 1
    step: int = Field(default=1, ge=1)
    cursor: str | None = Field(default=None, min_length=1)


class JsonLongText(_Strict):
    """Items whose text is cut short (Weibo ``isLongText``): fetch the full text.

    When ``flag`` (a JSONPath on the item) is true, ``url_template`` (with
    ``{field}`` placeholders of the mapped fields, e.g. ``{id}``) is fetched
    and ``text`` (a JSONPath from that response's root) replaces the item's text.
    """

    flag: str = Field(min_length=1)
    url_template: str = Field(min_length=1)
    text: str = Field(min_length=1)


class JsonApiConfig(_Strict):
    """A JSON API source: where the items are and a JSONPath field map (jsonpath-ng syntax).

    ``items`` is the JSONPath (from the response root) of the list of items,
    e.g. ``data.cards[*].mblog``. Each post needs a URL: ``fields.url`` or
    ``url_template`` built from mapped fields (``https://m.weibo.cn/detail/{id}``).
    ``text_html: true`` turns HTML in the text into plain text. ``extra`` keeps
    named values in ``Post.extra`` (an app review's ``rating`` and ``version``).
    """

    items: str = Field(min_length=1)
    fields: JsonFields
    url_template: str | None = None
    title_template: str | None = Field(
        default=None,
        description="the post title from mapped fields, e.g. '澜海手机银行评价：{title}' "
        "(app reviews rarely name the bank; the title says whose app it is)",
    )
    text_html: bool = False
    pagination: JsonPagination | None = None
    long_text: JsonLongText | None = None
    extra: dict[str, str | ExtraField] = Field(default_factory=dict)

    _extra_keys = field_validator("extra")(_check_extra_keys)

    def jsonpaths(self) -> dict[str, str]:
        """Every JSONPath of this config by its dotted key (``fields.author`` …)."""
        paths = {"items": self.items}
        for name in (*JSON_FIELDS, "quoted_text", "quoted_author"):
            value = getattr(self.fields, name)
            if value is not None:
                paths[f"fields.{name}"] = value
        if self.pagination is not None and self.pagination.cursor is not None:
            paths["pagination.cursor"] = self.pagination.cursor
        if self.long_text is not None:
            paths["long_text.flag"] = self.long_text.flag
            paths["long_text.text"] = self.long_text.text
        for key, spec in self.extra.items():
            paths[f"extra.{key}"] = spec if isinstance(spec, str) else spec.query
        return paths


def check_jsonpath(expr: str) -> None:
    """Raise ``ValueError`` if ``expr`` is not a JSONPath jsonpath-ng (ext) can parse."""
    try:
        jsonpath_parse(expr)
    except Exception as exc:  # jsonpath-ng raises several unrelated types for bad input
        raise ValueError(f"bad JSONPath {expr!r}: {exc}") from None


def _template_fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


class SourceConfig(_Strict):
    """One crawled source; ``name`` is its id in stats, job ids and post records."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    kind: SourceKind
    platform: Platform = Platform.OTHER
    enabled: bool = True
    start_urls: list[str] = Field(min_length=1)
    interval_minutes: float = Field(default=10, gt=0)
    max_pages: int = Field(default=5, ge=1, description="list pages followed per crawl")
    listing: ListSelectors | None = None
    detail: DetailSelectors | None = None
    replies: ReplySelectors | None = Field(
        default=None, description="html: replies on the detail (thread) page, one post each"
    )
    api: JsonApiConfig | None = Field(default=None, description="json_api: items and field map")
    cookies_env: str | None = Field(
        default=None,
        pattern=r"^[A-Z][A-Z0-9_]*$",
        description="env variable holding the Cookie header (e.g. YUQING_COOKIES__WEIBO)",
    )
    login_required: bool = Field(
        default=False, description="the site shows nothing without cookies: do not crawl without"
    )

    @model_validator(mode="after")
    def _html_needs_selectors(self) -> SourceConfig:
        if self.kind is SourceKind.HTML and (self.listing is None or self.detail is None):
            raise ValueError("an html source needs both 'listing' and 'detail' selectors")
        return self

    @model_validator(mode="after")
    def _kind_sections(self) -> SourceConfig:
        # Named in every message: the error's location is only "sources.<index>".
        where = f"source {self.name!r}"
        if self.replies is not None and self.kind is not SourceKind.HTML:
            raise ValueError(f"{where}: 'replies' is for html sources")
        if self.login_required and not self.cookies_env:
            raise ValueError(f"{where}: login_required needs cookies_env (the env variable)")
        if self.kind is not SourceKind.JSON_API:
            if self.api is not None:
                raise ValueError(f"{where}: 'api' is for json_api sources")
            return self
        if self.api is None:
            raise ValueError(f"{where}: a json_api source needs an 'api' section")
        api = self.api
        for key, expr in api.jsonpaths().items():
            try:
                check_jsonpath(expr)
            except ValueError as exc:
                raise ValueError(f"{where}: api.{key}: {exc}") from None
        mapped = {n for n in JSON_FIELDS if getattr(api.fields, n) is not None}
        if api.fields.url is None and api.url_template is None:
            raise ValueError(f"{where}: api needs fields.url or url_template (posts need a URL)")
        templates = {"api.url_template": api.url_template, "api.title_template": api.title_template}
        if api.long_text is not None:
            templates["api.long_text.url_template"] = api.long_text.url_template
        for key, template in templates.items():
            if template is None:
                continue
            try:
                unknown = sorted(_template_fields(template) - mapped)
            except ValueError as exc:
                raise ValueError(f"{where}: {key}: bad template {template!r}: {exc}") from None
            if unknown:
                raise ValueError(
                    f"{where}: {key} uses {unknown}, which are not mapped in api.fields"
                )
        paging = api.pagination
        if paging is not None:
            slot = "{cursor}" if paging.cursor else "{page}"
            in_url = all(slot in url for url in self.start_urls)
            if paging.param is None and not in_url:
                raise ValueError(
                    f"{where}: api.pagination needs 'param' or {slot} in every start URL"
                )
        return self

    @field_validator("start_urls")
    @classmethod
    def _http_only(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"start URL must be http(s): {url!r}")
        return urls


class CalendarPeriod(_Strict):
    """A known special period for the volume baseline (国庆/春节 quieter, 双11 busier).

    ``[start, end)`` with a time zone; ``factor`` multiplies the expected
    level while it is on (0.5 quieter, 3 = three times the usual volume).
    """

    name: str = Field(min_length=1)
    start: datetime
    end: datetime
    factor: float = Field(default=1.0, gt=0, le=100)

    @model_validator(mode="after")
    def _order(self) -> CalendarPeriod:
        for what, value in (("start", self.start), ("end", self.end)):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"calendar {self.name!r}: {what} needs a time zone (+08:00)")
        if self.end <= self.start:
            raise ValueError(f"calendar {self.name!r}: end must be after start")
        return self


class _RuleOptions(_Strict):
    """Options every rule type has: switched on, and whether matches are only logged."""

    enabled: bool = True
    dry_run: bool = Field(default=False, description="log matches; write and send nothing")


class VolumeSpikeRule(_RuleOptions):
    """Volume spike: posts in the current window vs the same-length windows before it."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")] = "volume_spike"
    type: Literal["volume_spike"] = "volume_spike"
    window_minutes: int = Field(default=30, ge=1)
    baseline_windows: int = Field(default=48, ge=2, description="past windows in the baseline")
    min_count: int = Field(default=8, ge=1, description="floor: fewer posts never spike")
    ratio: float = Field(default=3.0, gt=1.0, description="current / baseline level to match")
    negative_only: bool = False
    baseline_method: Literal["mean", "median_mad"] = Field(
        default="median_mad",
        description="baseline level: plain mean, or the median (robust to past spikes); "
        "median_mad also requires current >= median + mad_k x 1.4826 x MAD",
    )
    mad_k: float = Field(default=3.0, ge=0, description="robust z-score floor (median_mad)")
    seasonal_days: int = Field(
        default=0,
        ge=0,
        le=28,
        description="> 0: the baseline is the same clock window on each of the past N days "
        "(hour-of-day seasonality) instead of the windows just before",
    )
    seasonal_weeks: int = Field(
        default=0,
        ge=0,
        le=8,
        description="> 0: also the same clock window on the same weekday of each of the past "
        "N weeks (hour-of-day x weekday seasonality); with seasonal_days 0, only those",
    )
    calendar: list[CalendarPeriod] = Field(
        default_factory=list,
        description="known special periods (holidays, shopping festivals): left out of the "
        "baseline, and while one is on the expected level is multiplied by its factor",
    )


class NegativeShareRule(_RuleOptions):
    """Negative share: the share of negative posts in the window vs its baseline share."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")] = "negative_share"
    type: Literal["negative_share"] = "negative_share"
    window_minutes: int = Field(default=60, ge=1)
    baseline_hours: int = Field(default=24 * 7, ge=1, description="window of the baseline share")
    min_count: int = Field(default=20, ge=1, description="floor: posts in the window")
    min_negative: int = Field(default=8, ge=1, description="floor: negative posts in the window")
    min_share: float = Field(default=0.5, gt=0, le=1, description="share that can match at all")
    rise: float = Field(
        default=0.2, gt=0, le=1, description="share must exceed the baseline share by this"
    )


class CriticalSignalRule(_RuleOptions):
    """Critical signals: posts the analyzer marked critical, one incident per signal name."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")] = "critical_signal"
    type: Literal["critical_signal"] = "critical_signal"
    window_minutes: int = Field(default=60, ge=1)
    min_count: int = Field(default=1, ge=1, description="critical posts needed to match")
    several: int = Field(
        default=3, ge=2, description="this many critical posts in the window raise the grade"
    )
    signals: list[str] | None = Field(
        default=None, description="signal names watched (default: every critical signal)"
    )


class InfluentialAuthorRule(_RuleOptions):
    """Influential author: a negative post whose author or reposts reach many people."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")] = "influential_author"
    type: Literal["influential_author"] = "influential_author"
    window_minutes: int = Field(default=60, ge=1)
    min_followers: int = Field(default=100_000, ge=1)
    min_reposts: int = Field(default=500, ge=1)
    scan_limit: int = Field(
        default=500, ge=10, le=5000, description="negative posts of the window examined"
    )


class TopicBurstRule(_RuleOptions):
    """Topic burst: a topic that was rare in the baseline becomes frequent."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")] = "topic_burst"
    type: Literal["topic_burst"] = "topic_burst"
    window_minutes: int = Field(default=60, ge=1)
    baseline_hours: int = Field(default=24 * 7, ge=1)
    min_count: int = Field(default=10, ge=1, description="floor: posts of the topic in the window")
    ratio: float = Field(
        default=4.0, gt=1, description="window share of the topic / baseline share to match"
    )
    max_baseline_share: float = Field(
        default=0.1, gt=0, le=1, description="only topics rarer than this in the baseline burst"
    )
    ignore_topics: list[str] = Field(default_factory=lambda: ["other"])


class TicketSurgeRule(_RuleOptions):
    """Complaint-ticket surge: tickets of one product/branch in the window vs its baseline."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")] = "ticket_surge"
    type: Literal["ticket_surge"] = "ticket_surge"
    window_minutes: int = Field(default=120, ge=1)
    baseline_windows: int = Field(
        default=12, ge=1, description="same-length windows just before the current one"
    )
    baseline_days: int = Field(
        default=0,
        ge=0,
        le=28,
        description="> 0: the baseline is the same clock window on each of the past N days "
        "instead of the windows just before",
    )
    min_count: int = Field(default=5, ge=1, description="floor: tickets of one group in the window")
    ratio: float = Field(
        default=3.0, gt=1, description="window tickets / baseline mean (floored at 1) to match"
    )
    group_by: Literal["product", "branch", "both"] = "both"
    max_tickets: int = Field(
        default=5000, ge=10, description="tickets read per query (window, baseline)"
    )


RuleConfig = Annotated[
    VolumeSpikeRule
    | NegativeShareRule
    | CriticalSignalRule
    | InfluentialAuthorRule
    | TopicBurstRule
    | TicketSurgeRule,
    Field(discriminator="type"),
]


def _default_rules() -> list[RuleConfig]:
    return [VolumeSpikeRule()]


Audience = Literal["branch", "regional", "head_office"]
"""Who a channel reaches, lowest first: branch PR → regional office → head office (总行)."""

AUDIENCE_ORDER: tuple[Audience, ...] = ("branch", "regional", "head_office")


class SmtpConfig(_Strict):
    """How the ``email`` channel reaches its SMTP server. The password comes from the
    channel's ``secret_env`` variable, never from this file."""

    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    user: str | None = None
    sender: str = Field(min_length=3, description="From: address")
    timeout_seconds: float = Field(default=15, gt=0)


class ChannelConfig(_Strict):
    """A notification channel. Tokens and passwords are read from the named env variable.

    ``secret_env`` names the variable with the channel's *signing* secret
    (DingTalk/Feishu robot secret, webhook HMAC key) or the SMTP password;
    ``token_env`` the one with the token that goes into the robot URL (WeCom
    ``key``, DingTalk ``access_token``; a Feishu hook id is appended to ``url``).
    ``audience`` places the channel on the escalation ladder; ``None`` means
    "every level" (the channel hears about every incident its ``min_grade`` accepts).
    """

    name: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    type: Literal["log", "webhook", "email", "wecom", "dingtalk", "feishu"]
    enabled: bool = True
    min_grade: Literal["IV", "III", "II", "I"] = "IV"
    audience: Audience | None = None
    url: str | None = None
    recipients: list[str] = Field(default_factory=list)
    secret_env: str | None = Field(default=None, description="env variable holding the secret")
    token_env: str | None = Field(
        default=None, description="env variable holding the token that goes into the URL"
    )
    timeout_seconds: float = Field(default=10, gt=0, description="HTTP/SMTP timeout")
    smtp: SmtpConfig | None = None


class Silence(_Strict):
    """Hold notifications of ``rule`` (optionally only about ``key``) until ``until``.

    Incidents and alerts are still recorded; messages are queued when the
    silence ends if the incident is then still active.
    """

    rule: str = Field(min_length=1)
    key: str | None = None
    until: datetime
    reason: str = ""
    include_grade_i: bool = Field(
        default=False, description="also hold grade I (特别重大) incidents (never by default)"
    )

    @field_validator("until")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("'until' needs a time zone, e.g. 2026-11-24T08:00:00+08:00")
        return value


GradeName = Literal["IV", "III", "II", "I"]


def _default_start() -> dict[GradeName, Audience]:
    return {"IV": "branch", "III": "regional", "II": "head_office", "I": "head_office"}


def _default_deadlines() -> dict[GradeName, int]:
    return {"II": 240, "I": 60}


class EscalationConfig(_Strict):
    """Who hears about which grade, and when an unacknowledged incident climbs a level.

    ``start`` maps each grade to the audience level its first message reaches
    (every channel of that level *and below*). An incident that stays open
    (not acknowledged, not resolved) for ``escalate_after_minutes`` at one
    level is escalated to the next, up to ``head_office``.
    """

    enabled: bool = True
    start: dict[GradeName, Audience] = Field(default_factory=_default_start)
    escalate_after_minutes: float = Field(default=30, gt=0)
    check_interval_seconds: int = Field(default=60, ge=5)
    resolved_notice: bool = True
    realert_minutes: float = Field(
        default=60,
        ge=0,
        description="a new incident of the same rule and key within this time after the "
        "previous one was resolved is recorded but not re-announced at the same grade",
    )
    silences: list[Silence] = Field(default_factory=list)


class ReportingConfig(_Strict):
    """The bank's internal reporting clock for serious incidents (声誉事件报告时限).

    ``deadlines_minutes`` maps a grade to the minutes head office has, from the
    moment an incident first reached that grade (or a more severe one), to
    report it to ``report_to``. Grades without an entry have no clock.
    """

    deadlines_minutes: dict[GradeName, int] = Field(default_factory=_default_deadlines)
    report_to: str = "总行声誉风险管理部门及监管机构"


class AckLinkConfig(_Strict):
    """The one-click acknowledge/escalate/resolve endpoint of the service.

    Links are signed with ``secret_key`` (HMAC-SHA256) and expire after
    ``ttl_hours``. ``public_url`` is how people reach the endpoint (behind
    the bank's reverse proxy); the server binds ``host``:``port``.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8788, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8788"
    ttl_hours: float = Field(default=72, gt=0)


class StorageConfig(_Strict):
    posts_backend: Literal["local", "elasticsearch"] = "local"
    posts_path: Path = Path("var/posts.db")
    state_url: str = "sqlite:///var/state.db"
    spool_dir: Path = Path("var/spool")
    es_url: str | None = None
    es_index_prefix: str = "yuqing-posts"
    # Elasticsearch credentials: an API key, or a user and password. Secrets
    # come from the environment (YUQING_STORAGE__ES_API_KEY / __ES_PASSWORD).
    es_api_key: SecretStr | None = None
    es_username: str | None = None
    es_password: SecretStr | None = None
    es_ca_certs: Path | None = Field(default=None, description="CA bundle of the cluster (PEM)")
    es_verify_certs: bool = True
    es_request_timeout_seconds: float = Field(default=30.0, gt=0)


class SchedulerConfig(_Strict):
    detect_interval_seconds: int = Field(default=60, ge=5)
    misfire_grace_seconds: int = Field(default=120, ge=1)
    crawl_timeout_seconds: int = Field(default=900, ge=10)
    crisis_factor: float = Field(
        default=3.0,
        ge=1.0,
        description="crisis mode: sources of an open incident of crisis_min_grade or above "
        "are crawled this many times as often (1 = off)",
    )
    crisis_min_grade: Literal["IV", "III", "II", "I"] = "III"


class GradingConfig(_Strict):
    """Cut-offs of incident grading (:mod:`alerts.grading`); the defaults are the bank's
    rule of thumb. Points: volume +1/+2, velocity +2, negativity +1, reach +1/+2, media +1,
    regulator +2, several critical posts +1; points → grade by ``points_*``."""

    volume_high: int = Field(default=50, ge=1, description="incident posts for +1")
    volume_very_high: int = Field(default=200, ge=1, description="incident posts for +2")
    velocity_factor: float = Field(
        default=2.0, gt=0, description="x the rule's own threshold ratio for +2"
    )
    negative_share: float = Field(default=0.6, gt=0, le=1, description="negative share for +1")
    negative_min_posts: int = Field(default=10, ge=1, description="…with at least this many posts")
    reach_high: int = Field(default=100_000, ge=1, description="largest single post reach for +1")
    reach_very_high: int = Field(default=1_000_000, ge=1, description="…for +2")
    several_critical: int = Field(
        default=3, ge=2, description="critical posts for +1 and at least grade II"
    )
    points_iii: int = Field(default=2, ge=1, description="points for grade III (较大)")
    points_ii: int = Field(default=4, ge=1, description="points for grade II (重大)")
    points_i: int = Field(default=6, ge=1, description="points for grade I (特别重大)")

    @model_validator(mode="after")
    def _ordered(self) -> GradingConfig:
        pairs = (
            ("volume_very_high", self.volume_very_high, "volume_high", self.volume_high),
            ("reach_very_high", self.reach_very_high, "reach_high", self.reach_high),
            ("points_ii", self.points_ii, "points_iii", self.points_iii),
            ("points_i", self.points_i, "points_ii", self.points_ii),
        )
        for key, value, lower_key, lower in pairs:
            if value <= lower:
                raise ValueError(
                    f"grading.{key} ({value}) must be greater than grading.{lower_key} ({lower})"
                )
        return self


class GroupingConfig(_Strict):
    """Matches of different rules about the same topic/entity join one incident
    (:mod:`alerts.incidents`)."""

    enabled: bool = True
    join_minutes: float = Field(
        default=120,
        gt=0,
        description="an active incident updated within this time can absorb a match "
        "about the same entity (and topic)",
    )
    entity_share: float = Field(
        default=0.3, gt=0, le=1, description="share of a match's posts naming a branch/product"
    )
    topic_share: float = Field(
        default=0.5, gt=0, le=1, description="share of a match's posts of its majority topic"
    )


DEMO_PASSWORD_HASHES = frozenset(
    {
        # config/demo.yaml's users (passwords documented there): refused in prod.
        "scrypt$16384$8$1$U5bPamNSZKI4itw6l88Hcw$iGMPfR4grkWSnYOfBAZYNXNDXcOiwdaOJMlOTA5j2Lc",
        "scrypt$16384$8$1$pbMHBMRwgH8DNBjQjE6qOQ$JriDkKmrUy8vhx5BDFD3r43nySkC20iUgslLMmkeZp0",
        "scrypt$16384$8$1$5XXOmgY4Z-MRtonaPqdCWA$3TP2ht8_OyDiWRaIuMkhu2x6CyTbuK1iPkIE3l7Za_0",
    }
)


class DashboardUser(_Strict):
    """A dashboard login. Only the password *hash* is stored (``yuqing users hash-password``)."""

    username: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.@-]+$")
    display_name: str = ""
    role: Literal["analyst", "head_office", "admin"]
    password_hash: str = Field(description="scrypt$n$r$p$salt$hash, never a plain password")

    @field_validator("password_hash")
    @classmethod
    def _looks_hashed(cls, value: str) -> str:
        if not value.startswith("scrypt$") or value.count("$") != 5:
            raise ValueError(
                "expected a hash scrypt$n$r$p$salt$hash from `yuqing users hash-password`, "
                "never a plain password"
            )
        return value


class DashboardConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8501, ge=1, le=65535)
    public_url: str = "http://127.0.0.1:8501"
    auth: Literal["required", "none"] = Field(
        default="required", description="`none` (no login) is allowed only with env: dev"
    )
    session_minutes: int = Field(
        default=480, ge=1, le=7 * 24 * 60, description="log out after this much inactivity"
    )
    users: list[DashboardUser] = Field(default_factory=list)

    @field_validator("users")
    @classmethod
    def _unique_users(cls, users: list[DashboardUser]) -> list[DashboardUser]:
        names = [u.username for u in users]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate user names {dup}")
        return users


class CrawlConfig(_Strict):
    user_agent: str = (
        "yuqing-monitor/0.1 (+reputational-risk monitoring; contact: it-ops@example.com)"
    )
    obey_robots: bool = True
    autothrottle: bool = True
    download_delay: float = Field(default=0.5, ge=0)
    concurrent_per_domain: int = Field(default=2, ge=1)
    retry_times: int = Field(default=3, ge=0)
    timeout_seconds: int = Field(default=30, ge=1)
    store_batch_size: int = Field(
        default=50, ge=1, description="posts per store write (a failed batch is spooled whole)"
    )
    incremental: bool = Field(
        default=True, description="do not fetch again the item pages of posts already stored"
    )


def _cols(*names: str) -> list[str]:
    return list(names)


class TicketColumns(_Strict):
    """Header names accepted for each ticket field, matched case-insensitively.

    The first header of a file that matches one of the names is used. Extra
    columns in a file are ignored; a missing required column is an error
    before anything is written.
    """

    ticket_id: list[str] = Field(
        default_factory=lambda: _cols("ticket_id", "工单号", "工单编号", "id")
    )
    created_at: list[str] = Field(
        default_factory=lambda: _cols("created_at", "创建时间", "受理时间", "投诉时间")
    )
    updated_at: list[str] = Field(
        default_factory=lambda: _cols("updated_at", "更新时间", "最后更新时间")
    )
    channel: list[str] = Field(default_factory=lambda: _cols("channel", "渠道", "投诉渠道"))
    branch: list[str] = Field(default_factory=lambda: _cols("branch", "网点", "机构", "支行"))
    product: list[str] = Field(default_factory=lambda: _cols("product", "产品", "产品名称"))
    category: list[str] = Field(default_factory=lambda: _cols("category", "类别", "投诉类别"))
    priority: list[str] = Field(default_factory=lambda: _cols("priority", "优先级", "紧急程度"))
    status: list[str] = Field(default_factory=lambda: _cols("status", "状态", "处理状态"))
    summary: list[str] = Field(default_factory=lambda: _cols("summary", "摘要", "投诉内容", "内容"))
    customer_ref: list[str] = Field(
        default_factory=lambda: _cols("customer_ref", "客户号", "客户编号", "客户")
    )


DEFAULT_CLOSED_TICKET_STATUSES = (
    "已办结", "办结", "已完结", "已结案", "结案", "已关闭", "关闭", "已解决",
    "closed", "resolved", "done",
)  # fmt: skip


_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class ReportsConfig(_Strict):
    """The scheduled daily brief (舆情日报) of ``yuqing run``.

    At ``daily_brief_time`` (local ``HH:MM`` in the top-level ``timezone``)
    the service builds yesterday's brief and queues it once per day: e-mail
    channels get the PDF attached, the others a Markdown summary with a link.
    ``daily_brief_channels`` names the channels; by default every enabled
    channel whose ``audience`` is ``head_office`` or unset (head office, per
    the escalation ladder).
    """

    daily_brief_enabled: bool = True
    daily_brief_time: str = "08:30"
    daily_brief_channels: list[str] | None = None

    @field_validator("daily_brief_time")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        if not _HHMM.match(value.strip()):
            raise ValueError("expected a local time HH:MM (00:00–23:59), e.g. '08:30'")
        return value.strip()

    @property
    def daily_brief_hour_minute(self) -> tuple[int, int]:
        hour, minute = self.daily_brief_time.split(":")
        return int(hour), int(minute)


class TicketsConfig(_Strict):
    """How complaint-ticket exports are read (``yuqing tickets import``).

    ``required`` names the fields whose column must be present in every file.
    Naive times in a file are read in ``timezone`` (default: the top-level
    ``timezone``). ``batch_size`` tickets are written per transaction.

    ``push_*`` configure ``yuqing tickets serve``, the endpoint the complaint
    system pushes tickets to; its bearer token is read from the environment
    variable named by ``push_token_env`` (never from this file).
    """

    columns: TicketColumns = TicketColumns()
    required: list[str] = Field(default_factory=lambda: ["ticket_id", "created_at"])
    timezone: str | None = None
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    push_host: str = "127.0.0.1"
    push_port: int = Field(default=8789, ge=0, le=65535)
    push_token_env: str = "YUQING_TICKETS_PUSH_TOKEN"
    push_max_bytes: int = Field(default=5_000_000, ge=1024)
    closed_statuses: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CLOSED_TICKET_STATUSES),
        description="ticket statuses that mean the complaint is closed (case-insensitive); "
        "a problem record shows when all its tickets are closed",
    )

    @field_validator("required")
    @classmethod
    def _known_fields(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(TicketColumns.model_fields))
        if unknown:
            raise ValueError(f"unknown ticket fields {unknown}")
        return value


class NlpConfig(_Strict):
    """How the analyzer decides; empty means the shipped models' own choices."""

    critical_threshold: float | None = Field(
        default=None,
        ge=0.05,
        le=0.95,
        description=(
            "P(critical) at which the trained crisis model raises a critical signal; "
            "default: the threshold chosen at train time (in the model file). Higher: "
            "fewer false alarms, more missed crises (see docs/nlp.md for the trade-off). "
            "A lexicon signal escalates when P(critical) reaches the trained confirm "
            "threshold or this one, whichever is lower."
        ),
    )


class Settings(BaseSettings):
    """All of yuqing's settings. Build with :func:`load_settings` (it names bad keys)."""

    model_config = SettingsConfigDict(
        env_prefix="YUQING_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    env: Literal["dev", "test", "prod"] = "dev"
    timezone: str = "Asia/Shanghai"
    secret_key: SecretStr = SecretStr("change-me")
    data_dir: Path = Path("var")
    watchlist: Watchlist = Watchlist()
    sources: list[SourceConfig] = Field(default_factory=list)
    rules: list[RuleConfig] = Field(default_factory=_default_rules)
    channels: list[ChannelConfig] = Field(
        default_factory=lambda: [ChannelConfig(name="log", type="log")]
    )
    storage: StorageConfig = StorageConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    dashboard: DashboardConfig = DashboardConfig()
    crawl: CrawlConfig = CrawlConfig()
    escalation: EscalationConfig = EscalationConfig()
    ack_links: AckLinkConfig = AckLinkConfig()
    reporting: ReportingConfig = ReportingConfig()
    tickets: TicketsConfig = TicketsConfig()
    reports: ReportsConfig = ReportsConfig()
    grading: GradingConfig = GradingConfig()
    grouping: GroupingConfig = GroupingConfig()
    nlp: NlpConfig = NlpConfig()

    @model_validator(mode="after")
    def _checks(self) -> Settings:
        if self.env == "prod" and self.secret_key.get_secret_value() in PLACEHOLDER_SECRETS:
            raise ValueError(
                "secret_key: set YUQING_SECRET_KEY to a real secret; "
                "placeholders are refused in prod"
            )
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"sources: duplicate source names {dup}")
        if self.dashboard.auth == "none" and self.env != "dev":
            raise ValueError("dashboard.auth: `none` (no login) is allowed only with env: dev")
        if self.env == "prod":
            demo = [
                u.username for u in self.dashboard.users if u.password_hash in DEMO_PASSWORD_HASHES
            ]
            if demo:
                raise ValueError(
                    f"dashboard.users: {demo} use a demo password; set real password hashes "
                    "(`yuqing users hash-password`) — demo passwords are refused in prod"
                )
        rule_names = [r.name for r in self.rules]
        dup = sorted({n for n in rule_names if rule_names.count(n) > 1})
        if dup:
            raise ValueError(f"rules: duplicate rule names {dup}")
        channel_names = [c.name for c in self.channels]
        dup = sorted({n for n in channel_names if channel_names.count(n) > 1})
        if dup:
            raise ValueError(f"channels: duplicate channel names {dup}")
        unknown = sorted(set(self.reports.daily_brief_channels or ()) - set(channel_names))
        if unknown:
            raise ValueError(
                f"reports.daily_brief_channels: unknown channels {unknown}; "
                f"configured channels: {channel_names}"
            )
        return self

    def source(self, name: str) -> SourceConfig:
        """The source called ``name``; raises ``ConfigError`` listing the known ones."""
        for src in self.sources:
            if src.name == name:
                return src
        known = ", ".join(s.name for s in self.sources) or "(none)"
        raise ConfigError(f"unknown source {name!r}; configured sources: {known}")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init kwargs (the YAML file, passed by load_settings, and test overrides)
        # < environment: the documented precedence is defaults < file < env.
        return (env_settings, init_settings)


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse the YAML config at ``path`` into a mapping.

    Raises ``ConfigError`` if it is missing, not YAML, not a mapping, or holds a secret.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    for key in SECRET_FIELDS:
        if key in data:
            raise ConfigError(
                f"{path}: '{key}' must not be written in a config file; "
                f"set YUQING_{key.upper()} in the environment"
            )
    for section, key in NESTED_SECRET_FIELDS:
        if isinstance(data.get(section), dict) and key in data[section]:
            raise ConfigError(
                f"{path}: '{section}.{key}' must not be written in a config file; "
                f"set YUQING_{section.upper()}__{key.upper()} in the environment"
            )
    return data


def _format_validation_error(exc: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration ({origin}):"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        value = err.get("input")
        shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
        message = err["msg"]
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # A rule (or channel) whose ``type`` is unknown or missing: say which
            # entry by its name and list the types that exist, not pydantic's jargon.
            ctx = err.get("ctx") or {}
            name = value.get("name") if isinstance(value, dict) else None
            if name:
                key = f"{key} ({name!r})"
            expected = ctx.get("expected_tags", "")
            if err["type"] == "union_tag_invalid":
                message = f"unknown type {ctx.get('tag')!r}; known types: {expected}"
            else:
                message = "missing 'type'" + (f"; known types: {expected}" if expected else "")
            shown = ""
        lines.append(f"  - {key}: {message}{shown}")
    return "\n".join(lines)


def load_settings(config_path: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from the config file and the environment.

    ``config_path`` defaults to ``$YUQING_CONFIG``; with neither, only defaults
    and the environment apply. Raises ``ConfigError`` with one line per bad key.
    """
    path_str = config_path if config_path is not None else os.environ.get("YUQING_CONFIG")
    data: dict[str, Any] = {}
    origin = "defaults and environment"
    if path_str:
        path = Path(path_str)
        data = read_config_file(path)
        origin = f"{path} and environment"
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, origin)) from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached). Tests call ``get_settings.cache_clear()``."""
    return load_settings()
