"""The report documents as plain data: what the gatherers build and the renderers read.

Every string in here is ready to show: PII already masked, control characters
removed, long post text cut. It is *not* escaped for any format; each
renderer escapes for its own (Markdown escapes post text, DOCX and PDF write
plain runs). Times are local (the report's time zone), already formatted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class Table:
    """A table of a report: a header and rows of plain (unescaped) text cells."""

    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Share:
    """One slice of a mix: a key, its Chinese label, a count and its share of the whole."""

    key: str
    label: str
    count: int
    share: float | None
    """count / whole, ``None`` when the whole is 0."""


@dataclass(frozen=True)
class HourPoint:
    """Posts in one local hour of the day (label ``"08:00"``)."""

    label: str
    total: int
    negative: int

    @property
    def negative_share(self) -> float | None:
        return self.negative / self.total if self.total else None


@dataclass(frozen=True)
class PostItem:
    """A post as a report shows it: masked, cut, with a safe (http/https) link or none."""

    id: str
    title: str
    excerpt: str
    source: str
    published: str
    sentiment: str
    topic: str
    risk: float | None
    reach: int
    signals: list[str]
    url: str | None

    @property
    def meta_line(self) -> str:
        """``source · time · sentiment · topic · 风险 0.80 · 传播 1200``."""
        risk = "—" if self.risk is None else f"{self.risk:.2f}"
        return (
            f"{self.source} · {self.published} · {self.sentiment} · {self.topic} · "
            f"风险 {risk} · 传播 {self.reach}"
        )


@dataclass(frozen=True)
class IncidentLine:
    """An incident in the daily brief."""

    id: int
    title: str
    grade: str
    grade_label: str
    """``"II 重大"``."""
    status: str
    """Chinese status at generation time (待处理 / 已确认 / 已解决)."""
    opened: str
    opened_today: bool
    post_count: int
    ticket_count: int


@dataclass(frozen=True)
class DailyBrief:
    """舆情日报: one local day of posts and incidents."""

    day: date
    timezone: str
    bank: str
    generated_at: str
    total_posts: int
    negative_posts: int
    critical_posts: int
    previous_total: int
    previous_negative: int
    sentiment_mix: list[Share]
    topic_mix: list[Share]
    top_sources: list[Share]
    keywords: list[tuple[str, float]]
    keywords_sample: int
    """How many of the day's posts the keywords were computed from."""
    incidents_opened: list[IncidentLine]
    incidents_active: list[IncidentLine]
    """Active at some time during the day and opened before it (not in ``incidents_opened``)."""
    tickets_linked: int
    """Distinct complaint tickets linked to the incidents above."""
    tickets_created: int
    """Complaint tickets created during the day."""
    top_negative: list[PostItem]
    top_influential: list[PostItem]
    hourly: list[HourPoint]
    link: str | None = None

    @property
    def negative_share(self) -> float | None:
        return self.negative_posts / self.total_posts if self.total_posts else None

    @property
    def previous_negative_share(self) -> float | None:
        return self.previous_negative / self.previous_total if self.previous_total else None

    @property
    def title(self) -> str:
        return f"{self.bank}舆情日报（{self.day:%Y年%m月%d日}）"

    @property
    def period_line(self) -> str:
        return (
            f"统计时段：{self.day:%Y-%m-%d} 00:00–24:00（{self.timezone}）　"
            f"生成时间：{self.generated_at}"
        )


@dataclass(frozen=True)
class TimelineEvent:
    """One dated event of an incident (opened, alert, acknowledge, escalate, notice …)."""

    at: str
    event: str
    actor: str
    detail: str


@dataclass(frozen=True)
class SignalLine:
    """A risk signal among the incident's posts, with the words that triggered it.

    ``model_posts`` of the ``posts`` had it raised by the trained crisis model
    rather than the lexicon (its "triggers" are then the words that weighed most).
    """

    name: str
    posts: int
    triggers: list[str]
    critical: bool
    model_posts: int = 0


@dataclass(frozen=True)
class TicketLine:
    """A complaint ticket linked to the incident (summary masked)."""

    ticket_id: str
    score: float | None
    reasons: list[str]
    branch: str = ""
    product: str = ""
    status: str = ""
    created: str = ""
    summary: str = ""
    found: bool = True
    """False when the state store no longer has the ticket (only the link is known)."""


@dataclass(frozen=True)
class IncidentReport:
    """Per-incident report: what happened, grade, timeline, scope, posts, tickets, draft."""

    id: int
    title: str
    bank: str
    timezone: str
    generated_at: str
    grade: str
    grade_label: str
    status: str
    rule: str
    key: str
    opened: str
    first_seen: str
    resolved: str | None
    reasons: list[str]
    timeline: list[TimelineEvent]
    post_count: int
    peak_count: int
    posts_found: int
    posts_missing: int
    posts_not_loaded: int
    reach_total: int
    sources: list[Share]
    sentiment_mix: list[Share]
    signals: list[SignalLine]
    top_posts: list[PostItem]
    tickets: list[TicketLine]
    hourly: list[HourPoint] = field(default_factory=list)
    """Posts of the incident per local hour, from the first to the last loaded post."""
    topic: str | None = None
    entity: str | None = None
    draft: str | None = None
    link: str | None = None

    @property
    def scope_line(self) -> str:
        return (
            f"累计帖子 {self.post_count} 条，峰值窗口 {self.peak_count} 条；"
            f"已载入 {self.posts_found} 条，已不在库中 {self.posts_missing} 条，"
            f"未载入 {self.posts_not_loaded} 条；传播量合计（粉丝+转评赞）{self.reach_total}。"
        )

    @property
    def document_title(self) -> str:
        return f"{self.bank}声誉事件报告：#{self.id} {self.title}"

    # The report's tables, as plain text: every renderer (Markdown, DOCX, PDF)
    # draws the same rows and escapes them as its format needs.

    def overview_table(self) -> Table:
        """一、事件概况: one 项目/内容 row per fact."""
        return Table(
            ["项目", "内容"],
            [
                ["事件编号", f"#{self.id}"],
                ["等级", self.grade_label],
                ["状态", self.status],
                ["规则", self.rule],
                ["对象", self.key],
                ["首次发现", self.first_seen],
                ["开启时间", self.opened],
                ["解除时间", self.resolved or "—"],
                ["涉及业务", self.topic or "—"],
                ["涉及机构/产品", self.entity or "—"],
            ],
        )

    def timeline_table(self) -> Table:
        """三、时间线, oldest first."""
        return Table(
            ["时间", "事件", "操作人/来源", "说明"],
            [[e.at, e.event, e.actor, e.detail] for e in self.timeline],
        )

    def signals_table(self) -> Table:
        """风险信号及触发词 (empty rows when no signal was seen)."""
        return Table(
            ["信号", "帖子数", "其中模型判断", "高危", "触发词"],
            [
                [
                    s.name,
                    str(s.posts),
                    str(s.model_posts),
                    "是" if s.critical else "否",
                    "、".join(s.triggers),
                ]
                for s in self.signals
            ],
        )

    def tickets_table(self) -> Table:
        """六、关联投诉工单 with the reasons for each link."""
        return Table(
            ["工单号", "关联度", "网点", "产品", "状态", "创建时间", "摘要", "关联依据"],
            [
                [
                    t.ticket_id,
                    "—" if t.score is None else f"{t.score:.2f}",
                    t.branch,
                    t.product,
                    t.status,
                    t.created,
                    t.summary if t.found else "（工单已不在库中）",
                    "；".join(t.reasons),
                ]
                for t in self.tickets
            ],
        )
