"""The content of a notification, built once and formatted by each channel.

:func:`build_message` turns an incident (plus the newest posts and, for an
alert, the match that fired) into a :class:`Message`: grade, why, trend
numbers, top posts with PII masked, and links. A Message is stored in the
outbox row as JSON (``Notification.payload``) so the text a channel sends is
fixed at enqueue time: a retry an hour later sends what was true then.

Each channel picks a format: :meth:`Message.text` (plain text: log, email
text part, webhook), :meth:`Message.markdown` (WeCom, DingTalk, Feishu) and
:meth:`Message.html` (email). All text is Chinese; times are shown in the
display time zone with their UTC offset.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, tzinfo
from typing import Any, Literal

from core.models import Incident, Notification, Post
from core.vocab import Grade
from nlp.pii import mask_pii

MessageKind = Literal["alert", "escalation", "resolved"]

KIND_ZH: dict[str, str] = {"alert": "舆情预警", "escalation": "升级上报", "resolved": "事件解除"}
AUDIENCE_ZH: dict[str, str] = {
    "branch": "支行/网点",
    "regional": "分行/区域",
    "head_office": "总行",
}
ACTION_ZH: dict[str, str] = {
    "acknowledge": "确认接收",
    "escalate": "升级上报",
    "resolve": "解除事件",
}
COLOR_HEX: dict[str, str] = {
    "blue": "#1f6feb",
    "yellow": "#d4a017",
    "orange": "#e8710a",
    "red": "#d93025",
}
MAX_POSTS = 5
EXCERPT_CHARS = 60


@dataclass(frozen=True)
class PostLine:
    """One evidence post as shown in a message (title and excerpt already PII-masked)."""

    source: str
    title: str
    excerpt: str
    url: str
    published: str
    sentiment: str | None = None


@dataclass(frozen=True)
class Message:
    """Everything a channel needs to say about one incident event. Immutable, JSON-able."""

    kind: MessageKind
    incident_id: int
    title: str
    grade: str
    at: str
    reasons: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    """Trend numbers as (label, value), in display order."""
    posts: list[PostLine] = field(default_factory=list)
    room_url: str = ""
    actions: dict[str, str] = field(default_factory=dict)
    """Signed one-click links by action (``acknowledge``/``escalate``/``resolve``)."""
    note: str = ""
    """A line about this event, e.g. why it was escalated."""

    # -- derived ----------------------------------------------------------------------

    @property
    def grade_enum(self) -> Grade:
        return Grade(self.grade)

    @property
    def color(self) -> str:
        """The grade colour name: blue (IV), yellow (III), orange (II), red (I)."""
        return self.grade_enum.color

    @property
    def subject(self) -> str:
        """``【重大·II级｜升级上报】title`` — the e-mail subject and robot title."""
        grade = self.grade_enum
        kind = "" if self.kind == "alert" else f"｜{KIND_ZH[self.kind]}"
        return f"【{grade.label_zh}·{grade.value}级{kind}】{self.title}"

    def with_actions(self, actions: Mapping[str, str]) -> Message:
        """A copy carrying these signed action links (they differ per channel)."""
        return replace(self, actions=dict(actions))

    # -- formats ----------------------------------------------------------------------

    def _head_lines(self) -> list[tuple[str, str]]:
        grade = self.grade_enum
        lines = [
            ("事件编号", f"#{self.incident_id}"),
            ("等级", f"{grade.value}级（{grade.label_zh}，{_COLOR_ZH[grade.color]}色）"),
            ("时间", self.at),
        ]
        return lines

    def text(self) -> str:
        """Plain text (log, e-mail text part, webhook ``text``)."""
        out = [f"{label}：{value}" for label, value in self._head_lines()]
        if self.note:
            out.append(f"说明：{self.note}")
        if self.reasons:
            out.append(f"原因：{self.reasons[0]}")
            out.extend(f"  此前：{r}" for r in self.reasons[1:])
        out.extend(f"{label}：{value}" for label, value in self.facts)
        if self.posts:
            out.append("代表帖子（已脱敏）：")
            out.extend(
                f"  - [{p.source} {p.published}] {p.title}：{p.excerpt} {p.url}" for p in self.posts
            )
        if self.room_url:
            out.append(f"事件室：{self.room_url}")
        out.extend(f"{ACTION_ZH.get(a, a)}：{url}" for a, url in self.actions.items())
        return "\n".join(out)

    def markdown(self, *, font_colors: bool = False) -> str:
        """Markdown for the robots. ``font_colors``: WeCom's ``<font color=…>`` extension."""
        grade = self.grade_enum
        badge = f"{grade.value}级 {grade.label_zh}"
        if font_colors:
            badge = f'<font color="{_WECOM_COLOR[grade.color]}">{badge}</font>'
        out = [f"### {_md(self.subject)}", f"> **等级：** {badge}"]
        # The grade line above replaces the plain "等级" of _head_lines.
        head = [(k, v) for k, v in self._head_lines() if k != "等级"]
        out.extend(f"> **{label}：** {_md(value)}" for label, value in head)
        if self.note:
            out.append(f"> **说明：** {_md(self.note)}")
        if self.reasons:
            out.append("")
            out.append("**原因**")
            out.extend(f"- {_md(r)}" for r in self.reasons)
        if self.facts:
            out.append("")
            out.append("**趋势**")
            out.extend(f"- {label}：{_md(value)}" for label, value in self.facts)
        if self.posts:
            out.append("")
            out.append("**代表帖子（已脱敏）**")
            out.extend(
                f"- [{_md(p.title)}]({p.url}) {_md(p.source)} {p.published}" for p in self.posts
            )
        links = []
        if self.room_url:
            links.append(f"[进入事件室]({self.room_url})")
        links.extend(f"[{ACTION_ZH.get(a, a)}]({url})" for a, url in self.actions.items())
        if links:
            out.append("")
            out.append(" | ".join(links))
        return "\n".join(out)

    def html(self) -> str:
        """A small self-contained HTML e-mail body (inline styles; mail clients drop CSS)."""
        e = html.escape
        colour = COLOR_HEX[self.color]
        rows = "".join(
            f"<tr><th align='left' style='padding:2px 8px'>{e(k)}</th>"
            f"<td style='padding:2px 8px'>{e(v)}</td></tr>"
            for k, v in [*self._head_lines(), *self.facts]
        )
        parts = [
            "<html><body style='font-family:sans-serif'>",
            f"<h2 style='color:{colour};border-left:6px solid {colour};padding-left:8px'>"
            f"{e(self.subject)}</h2>",
        ]
        if self.note:
            parts.append(f"<p><b>说明：</b>{e(self.note)}</p>")
        parts.append(f"<table>{rows}</table>")
        if self.reasons:
            parts.append("<h3>原因</h3><ul>")
            parts.extend(f"<li>{e(r)}</li>" for r in self.reasons)
            parts.append("</ul>")
        if self.posts:
            parts.append("<h3>代表帖子（已脱敏）</h3><ul>")
            parts.extend(
                f"<li><a href='{e(p.url, quote=True)}'>{e(p.title)}</a> "
                f"<small>{e(p.source)} {e(p.published)}</small><br>{e(p.excerpt)}</li>"
                for p in self.posts
            )
            parts.append("</ul>")
        links = []
        if self.room_url:
            links.append(f"<a href='{e(self.room_url, quote=True)}'>进入事件室</a>")
        links.extend(
            f"<a href='{e(url, quote=True)}'>{e(ACTION_ZH.get(a, a))}</a>"
            for a, url in self.actions.items()
        )
        if links:
            parts.append("<p>" + " &nbsp;|&nbsp; ".join(links) + "</p>")
        parts.append("</body></html>")
        return "".join(parts)

    # -- storage ----------------------------------------------------------------------

    def to_payload(self) -> dict[str, Any]:
        """A JSON-safe dict for ``Notification.payload``; :meth:`from_payload` reverses it."""
        data = asdict(self)
        data["facts"] = [list(f) for f in self.facts]
        return data

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Message:
        """Rebuild a message stored by :meth:`to_payload`. Raises ``KeyError``/``TypeError``
        for a payload that is not one."""
        values = dict(data)
        values["facts"] = [(str(k), str(v)) for k, v in values.get("facts", [])]
        values["posts"] = [PostLine(**p) for p in values.get("posts", [])]
        return cls(**values)

    def notification(self, channel: str, dedup_key: str, *, now: datetime) -> Notification:
        """The outbox entry that carries this message to ``channel``."""
        return Notification(
            channel=channel,
            dedup_key=dedup_key,
            subject=self.subject,
            body=self.text(),
            incident_id=self.incident_id,
            created_at=now,
            next_attempt_at=now,
            payload=self.to_payload(),
        )


_COLOR_ZH = {"blue": "蓝", "yellow": "黄", "orange": "橙", "red": "红"}
# WeCom markdown knows three font colours only.
_WECOM_COLOR = {"blue": "info", "yellow": "warning", "orange": "warning", "red": "warning"}


def _md(value: str) -> str:
    # Robot markdown has no escaping rules worth the name; neutralise the characters
    # that would turn a post title into a link or a heading.
    return value.replace("[", "［").replace("]", "］").replace("\n", " ").replace("#", "＃")


@dataclass(frozen=True)
class ReportMessage(Message):
    """A report notification (the daily brief): subject, plain text and Markdown are fixed
    by the report (``payload["kind"] == "report"``, Markdown in ``payload["markdown"]``),
    not built from an incident, so the robots post the report's own summary."""

    markdown_text: str = ""

    @property
    def subject(self) -> str:
        return self.title

    def text(self) -> str:
        return self.note

    def markdown(self, *, font_colors: bool = False) -> str:
        return self.markdown_text or self.note

    def html(self) -> str:
        body = html.escape(self.note).replace("\n", "<br>")
        return (
            "<html><body style='font-family:sans-serif'>"
            f"<h2>{html.escape(self.title)}</h2><p>{body}</p></body></html>"
        )


REPORT_KIND = "report"
"""``Notification.payload["kind"]`` of report notifications (see :class:`ReportMessage`)."""


def message_of(notification: Notification) -> Message:
    """The structured message of ``notification``; a plain-text one (no payload, or an
    unreadable one) becomes a message whose only content is its subject and body."""
    if notification.payload.get("kind") == REPORT_KIND:
        return ReportMessage(
            kind="alert",
            incident_id=notification.incident_id or 0,
            title=notification.subject,
            grade="IV",
            at="",
            note=notification.body,
            markdown_text=str(notification.payload.get("markdown") or ""),
        )
    if notification.payload:
        try:
            return Message.from_payload(notification.payload)
        except (KeyError, TypeError, ValueError):
            pass
    return Message(
        kind="alert",
        incident_id=notification.incident_id or 0,
        title=notification.subject,
        grade="IV",
        at="",
        note=notification.body,
    )


def incident_room_url(public_url: str, incident_id: int) -> str:
    """The dashboard link of the incident room: ``<public_url>/incidents?incident=<id>``."""
    return f"{public_url.rstrip('/')}/incidents?incident={incident_id}"


def post_line(post: Post, tz: tzinfo) -> PostLine:
    """A post as shown in messages: title and excerpt with phone numbers, ID numbers,
    card numbers… masked (``Analysis.masked_text`` when the analyzer made one)."""
    masked = post.analysis.masked_text if post.analysis and post.analysis.masked_text else ""
    excerpt = masked or mask_pii(post.text)
    excerpt = " ".join(excerpt.split())
    if len(excerpt) > EXCERPT_CHARS:
        excerpt = excerpt[:EXCERPT_CHARS] + "…"
    title = mask_pii(post.title) if post.title else excerpt[:30]
    return PostLine(
        source=post.source,
        title=title,
        excerpt=excerpt,
        url=post.url,
        published=post.published_at.astimezone(tz).strftime("%m-%d %H:%M"),
        sentiment=post.analysis.sentiment.value if post.analysis else None,
    )


def build_message(
    incident: Incident,
    *,
    kind: MessageKind,
    now: datetime,
    tz: tzinfo,
    public_url: str,
    top_posts: Sequence[Post] = (),
    reason: str | None = None,
    window: tuple[datetime | None, datetime | None] = (None, None),
    note: str = "",
    max_posts: int = MAX_POSTS,
    extra_facts: Sequence[tuple[str, str]] = (),
) -> Message:
    """The message about ``incident`` for one event ``kind``.

    ``reason`` is the current match's reason (shown first; the incident's
    older reasons follow, newest first, up to 5). ``window`` is the match's
    current window, shown as a trend fact; ``extra_facts`` are appended
    (e.g. the reporting deadline). Raises ``ValueError`` for an
    incident without an id (its links and dedup keys would not be stable).
    """
    if incident.id is None:
        raise ValueError("save the incident before building its message")
    reasons: list[str] = []
    for r in [reason, *reversed(incident.reasons)]:
        if r and r not in reasons:
            reasons.append(r)
    facts: list[tuple[str, str]] = [
        ("累计帖子", f"{incident.post_count} 条"),
        ("峰值窗口", f"{incident.peak_count} 条"),
    ]
    start, end = window
    if start and end:
        s, e = start.astimezone(tz), end.astimezone(tz)
        facts.append(("时间窗口", f"{s:%m-%d %H:%M} — {e:%H:%M} (UTC{s:%z})"))
    first = incident.first_seen or incident.opened_at
    facts.append(("首次发现", f"{first.astimezone(tz):%Y-%m-%d %H:%M}"))
    if incident.sources:
        facts.append(("来源", "、".join(incident.sources)))
    if kind == "resolved" and incident.resolved_at:
        duration = incident.resolved_at - incident.opened_at
        hours = duration.total_seconds() / 3600
        facts.append(("持续时间", f"{hours:.1f} 小时"))
    facts.extend(extra_facts)
    local_now = now.astimezone(tz)
    return Message(
        kind=kind,
        incident_id=incident.id,
        title=incident.title,
        grade=incident.grade.value,
        at=f"{local_now:%Y-%m-%d %H:%M} (UTC{local_now:%z})",
        reasons=reasons[:5],
        facts=facts,
        posts=[post_line(p, tz) for p in list(top_posts)[:max_posts]],
        room_url=incident_room_url(public_url, incident.id),
        note=note,
    )


def sample_message(*, now: datetime, tz: tzinfo, public_url: str) -> Message:
    """A clearly labelled test message (``yuqing channels test``): checks a channel's
    credentials and formatting without an incident."""
    local_now = now.astimezone(tz)
    return Message(
        kind="alert",
        incident_id=0,
        title="【测试】舆情监测通道连通性测试",
        grade="IV",
        at=f"{local_now:%Y-%m-%d %H:%M} (UTC{local_now:%z})",
        reasons=["这是一条测试消息，无需处理。"],
        facts=[("累计帖子", "0 条")],
        room_url=incident_room_url(public_url, 0),
        note="通道配置正确时，本消息会出现在目标群/邮箱中。",
    )
