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
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
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


class DetailSelectors(_Strict):
    """Selectors on a detail page. ``text`` may match several nodes; they are joined."""

    title: str = Field(min_length=1)
    text: str = Field(min_length=1)
    author: str | None = None
    published_at: str | None = None
    followers: str | None = None
    reposts: str | None = None
    comments: str | None = None
    likes: str | None = None


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

    @model_validator(mode="after")
    def _html_needs_selectors(self) -> SourceConfig:
        if self.kind is SourceKind.HTML and (self.listing is None or self.detail is None):
            raise ValueError("an html source needs both 'listing' and 'detail' selectors")
        return self

    @field_validator("start_urls")
    @classmethod
    def _http_only(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"start URL must be http(s): {url!r}")
        return urls


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

    @field_validator("required")
    @classmethod
    def _known_fields(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(TicketColumns.model_fields))
        if unknown:
            raise ValueError(f"unknown ticket fields {unknown}")
        return value


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
