"""The settings in force, as read-only tables for the 设置 page — with every secret hidden.

Pure functions over :class:`core.settings.Settings` (no Streamlit, no store).
What is a secret, and how it is shown:

* channel signing secrets, robot tokens and SMTP passwords live in environment
  variables (``secret_env``/``token_env``); only whether the variable is set is
  shown — ``已配置`` or ``未设置`` — never its value;
* a channel's URL keeps its scheme, host and plain path words; every query
  value and every token-like path segment (a Feishu hook id, a Slack-style
  key) becomes ``***``, and a password in the URL is dropped;
* database and Elasticsearch URLs show ``***`` for the password;
  ``es_password``/``es_api_key`` and ``secret_key`` are never shown;
* e-mail addresses (recipients, SMTP user and sender) are PII-masked.

Frames have Chinese column names: they are for display, and the tests read them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pandas as pd
from pydantic import BaseModel

from core.settings import ChannelConfig, Settings
from core.vocab import Grade
from nlp.pii import mask_pii

CONFIGURED = "已配置"
NOT_SET = "未设置"
MASK = "***"

AUDIENCE_LABELS_ZH: dict[str, str] = {
    "branch": "支行/网点",
    "regional": "分行/区域",
    "head_office": "总行",
}
"""The escalation ladder in Chinese (same words as the alert messages)."""

CHANNEL_TYPES_ZH: dict[str, str] = {
    "log": "日志",
    "webhook": "Webhook",
    "email": "邮件",
    "wecom": "企业微信机器人",
    "dingtalk": "钉钉机器人",
    "feishu": "飞书机器人",
}

# Rule fields shown in their own columns, not among the options.
_RULE_COMMON = {"name", "type", "enabled", "dry_run"}
# A path segment that is a plain word ("open-apis", "hook", "v2", "Services") is
# kept; one that looks like a key (long, mixed case, or letters with digits) is masked.
_PLAIN_SEGMENT = re.compile(r"^(?:[A-Za-z]?[a-z._-]{0,15}|v\d{1,2}|\d{1,4})$")
_SECRET_QUERY_KEYS = re.compile(r"(token|key|secret|sign|pass|auth|ticket|sig)", re.IGNORECASE)


@dataclass(frozen=True)
class SettingsView:
    """Every table of the settings page (Chinese column names, secrets hidden)."""

    general: pd.DataFrame
    """项目 / 值: environment, time zone, dashboard address and login mode."""
    watchlist: pd.DataFrame
    """类型 / 名称 / 别名 / 说明: the bank, its branches and its products."""
    exclusions: list[str]
    sources: pd.DataFrame
    rules: pd.DataFrame
    channels: pd.DataFrame
    escalation: pd.DataFrame
    """项目 / 值: start levels per grade, timings, notices, reporting deadlines."""
    silences: pd.DataFrame
    storage: pd.DataFrame
    """项目 / 值: backends and their addresses (passwords hidden)."""


def hide_password(url: str | None) -> str:
    """``url`` with the password of its ``user:password@`` part replaced by ``***``.

    ``None`` or blank gives ``"—"``. The rest of the URL is kept as written.
    """
    if not url or not url.strip():
        return "—"
    parts = urlsplit(url.strip())
    if parts.password is None:
        return url.strip()
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def mask_url(url: str | None, *, strict: bool = True) -> str:
    """A URL safe to show: no password, no token.

    The password is always dropped and so is the fragment. ``strict`` (for
    channel targets, where the URL itself is the credential): every query
    value and every path segment that looks like a key (long, or letters mixed
    with digits) becomes ``***``. Not strict (public pages such as a source's
    start URL): only query values whose name looks secret (token, key, sign …)
    are masked. ``None`` or blank gives ``"—"``.
    """
    if not url or not url.strip():
        return "—"
    parts = urlsplit(url.strip())
    host = parts.netloc.rpartition("@")[2]
    user = parts.username
    netloc = f"{user}@{host}" if user else host
    path = parts.path
    if strict:
        path = "/".join(
            seg if not seg or _PLAIN_SEGMENT.match(seg) else MASK for seg in path.split("/")
        )
    query = urlencode(
        [
            (k, MASK if strict or _SECRET_QUERY_KEYS.search(k) else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def env_status(name: str | None, env: Mapping[str, str]) -> str:
    """``已配置`` when the variable ``name`` is set (non-blank), ``未设置 (NAME)`` when not,
    ``—`` when no variable is named. Never the value."""
    if not name:
        return "—"
    return CONFIGURED if env.get(name, "").strip() else f"{NOT_SET}（环境变量 {name}）"


def _yes(flag: bool) -> str:
    return "是" if flag else "否"


def _options(model: BaseModel, skip: set[str]) -> str:
    values = model.model_dump(mode="json", exclude=skip)
    return "; ".join(f"{k}={v}" for k, v in values.items())


def _pairs(rows: list[tuple[str, object]]) -> pd.DataFrame:
    return pd.DataFrame([(k, str(v)) for k, v in rows], columns=["项目", "值"])


def _channel_target(channel: ChannelConfig) -> str:
    if channel.type == "log":
        return "本机日志"
    if channel.type == "email":
        recipients = "、".join(mask_pii(r) for r in channel.recipients) or "（无收件人）"
        if channel.smtp is None:
            return f"收件人：{recipients}"
        smtp = channel.smtp
        user = f"，账号 {mask_pii(smtp.user)}" if smtp.user else ""
        return (
            f"收件人：{recipients}；SMTP {smtp.host}:{smtp.port}（{smtp.security}{user}），"
            f"发件人 {mask_pii(smtp.sender)}"
        )
    return mask_url(channel.url) if channel.url else "（地址来自环境变量）"


def build_settings_view(settings: Settings, env: Mapping[str, str] | None = None) -> SettingsView:
    """The tables of the settings page for ``settings``; ``env`` (default: the process
    environment) is only asked whether each named secret variable is set."""
    env = os.environ if env is None else env
    wl = settings.watchlist
    general = _pairs(
        [
            ("运行环境", settings.env),
            ("显示时区", settings.timezone),
            ("仪表盘地址", mask_url(settings.dashboard.public_url, strict=False)),
            ("登录", "需要登录" if settings.dashboard.auth == "required" else "无需登录（仅开发）"),
            ("会话超时（分钟）", settings.dashboard.session_minutes),
            ("仪表盘用户数", len(settings.dashboard.users)),
        ]
    )
    watch_rows = [("银行", wl.bank.name, "、".join(wl.bank.aliases), "")]
    watch_rows += [("分支机构", b.name, "、".join(b.aliases), b.region) for b in wl.branches]
    watch_rows += [("产品", p.name, "、".join(p.aliases), p.kind) for p in wl.products]
    watchlist = pd.DataFrame(watch_rows, columns=["类型", "名称", "别名", "说明"])

    factor = settings.scheduler.crisis_factor
    sources = pd.DataFrame(
        [
            {
                "名称": s.name,
                "类型": str(s.kind),
                "平台": str(s.platform),
                "启用": _yes(s.enabled),
                "起始地址": "\n".join(mask_url(u, strict=False) for u in s.start_urls),
                "采集间隔（分钟）": s.interval_minutes,
                "危机模式间隔（分钟）": round(s.interval_minutes / factor, 2),
                "每次最多页数": s.max_pages,
            }
            for s in settings.sources
        ],
        columns=[
            "名称",
            "类型",
            "平台",
            "启用",
            "起始地址",
            "采集间隔（分钟）",
            "危机模式间隔（分钟）",
            "每次最多页数",
        ],
    )
    rules = pd.DataFrame(
        [
            {
                "名称": r.name,
                "类型": r.type,
                "启用": _yes(r.enabled),
                "试运行": _yes(r.dry_run),
                "参数": _options(r, _RULE_COMMON),
            }
            for r in settings.rules
        ],
        columns=["名称", "类型", "启用", "试运行", "参数"],
    )
    channels = pd.DataFrame(
        [
            {
                "名称": c.name,
                "类型": CHANNEL_TYPES_ZH.get(c.type, c.type),
                "启用": _yes(c.enabled),
                "最低等级": c.min_grade,
                "通报层级": AUDIENCE_LABELS_ZH[c.audience] if c.audience else "所有层级",
                "目标": _channel_target(c),
                "签名密钥/密码": env_status(c.secret_env, env),
                "令牌": env_status(c.token_env, env),
            }
            for c in settings.channels
        ],
        columns=["名称", "类型", "启用", "最低等级", "通报层级", "目标", "签名密钥/密码", "令牌"],
    )
    esc = settings.escalation
    esc_rows: list[tuple[str, object]] = [("自动升级", "启用" if esc.enabled else "关闭")]
    esc_rows += [
        (f"{Grade(g).value}级（{Grade(g).label_zh}）首次通报", AUDIENCE_LABELS_ZH[a])
        for g, a in sorted(esc.start.items(), key=lambda kv: Grade(kv[0]).severity)
    ]
    esc_rows += [
        ("未确认多久后升级（分钟）", esc.escalate_after_minutes),
        ("检查间隔（秒）", esc.check_interval_seconds),
        ("解除时通知", _yes(esc.resolved_notice)),
        ("同类事件重复告警间隔（分钟）", esc.realert_minutes),
        ("危机模式采集加速倍数", factor),
        ("危机模式起始等级", settings.scheduler.crisis_min_grade),
    ]
    esc_rows += [
        (f"{g}级报告时限（分钟）", minutes)
        for g, minutes in sorted(
            settings.reporting.deadlines_minutes.items(), key=lambda kv: Grade(kv[0]).severity
        )
    ]
    esc_rows.append(("报送对象", settings.reporting.report_to))
    silences = pd.DataFrame(
        [
            {
                "规则": s.rule,
                "对象": s.key or "全部",
                "静默至": s.until.isoformat(timespec="minutes"),
                "原因": s.reason,
            }
            for s in esc.silences
        ],
        columns=["规则", "对象", "静默至", "原因"],
    )
    st = settings.storage
    storage_rows: list[tuple[str, object]] = [("舆情库后端", st.posts_backend)]
    if st.posts_backend == "local":
        storage_rows.append(("舆情库文件", st.posts_path))
    else:
        storage_rows += [
            ("Elasticsearch 地址", hide_password(st.es_url)),
            ("索引前缀", st.es_index_prefix),
            ("用户名", st.es_username or "—"),
            ("密码", CONFIGURED if st.es_password is not None else NOT_SET),
            ("API Key", CONFIGURED if st.es_api_key is not None else NOT_SET),
            ("校验证书", _yes(st.es_verify_certs)),
        ]
    storage_rows += [
        ("状态库", hide_password(st.state_url)),
        ("暂存目录", st.spool_dir),
    ]
    return SettingsView(
        general=general,
        watchlist=watchlist,
        exclusions=list(wl.exclusions),
        sources=sources,
        rules=rules,
        channels=channels,
        escalation=_pairs(esc_rows),
        silences=silences,
        storage=_pairs(storage_rows),
    )
