"""The regulatory clock and the draft report for grade II/I incidents. Pure functions.

《银行保险机构声誉风险管理办法（试行）》 asks banks to report serious
reputational events to their superior office and the regulator promptly; each
bank sets its own internal deadline per grade (``settings.reporting``).

* :func:`reporting_deadline` — when the report is due: the moment the
  incident first reached a graded-with-a-deadline level (from its alerts; the
  ``opened`` alert counts), plus that grade's minutes. The most severe grade
  reached sets the clock, so a II that becomes I gets the shorter I deadline
  counted from when it became I — or the II deadline, whichever is earlier.
* :func:`draft_report` — a Chinese draft (what happened, scope, actions taken,
  next steps) for head office to edit, built only from what yuqing recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from alerts.messages import post_line
from core.models import Alert, Incident, Post
from core.settings import ReportingConfig
from core.vocab import Grade, IncidentStatus

_NEXT_STEPS: dict[Grade, list[str]] = {
    Grade.II: [
        "总行声誉风险管理部门牵头，协调涉事分支机构统一口径、及时回应",
        "提高相关来源监测频率，每2小时更新一次舆情动态",
        "梳理相关投诉工单，逐一回访客户并跟踪处理结果",
        "评估是否需要向当地监管机构报告",
    ],
    Grade.I: [
        "启动声誉风险应急预案，由高级管理层统一指挥",
        "立即向监管机构报告，并按要求持续报送进展",
        "统一对外发布权威信息，必要时召开媒体沟通会",
        "做好网点现场秩序与流动性应对准备",
        "实时监测舆情动态，每小时更新一次",
    ],
}


@dataclass(frozen=True)
class Deadline:
    """A reporting deadline: which grade set it, since when, and when it is due."""

    grade: Grade
    started_at: datetime
    due_at: datetime

    def remaining(self, now: datetime) -> timedelta:
        """Time left (negative once overdue)."""
        return self.due_at - now


def reporting_deadline(
    incident: Incident, alerts: Sequence[Alert], config: ReportingConfig
) -> Deadline | None:
    """The earliest due reporting deadline of ``incident``, or ``None`` if no grade it
    reached has one. ``alerts`` are the incident's alerts (any order)."""
    candidates: list[Deadline] = []
    for grade_value, minutes in config.deadlines_minutes.items():
        grade = Grade(grade_value)
        if incident.grade.severity < grade.severity:
            continue
        reached = [a.created_at for a in alerts if a.grade.severity >= grade.severity]
        started = min(reached) if reached else incident.opened_at
        candidates.append(Deadline(grade, started, started + timedelta(minutes=minutes)))
    return min(candidates, key=lambda d: d.due_at) if candidates else None


def draft_report(
    incident: Incident,
    *,
    bank: str,
    alerts: Sequence[Alert] = (),
    posts: Sequence[Post] = (),
    actions: Sequence[tuple[datetime, str, str, str]] = (),
    config: ReportingConfig | None = None,
    tz: tzinfo,
    now: datetime,
) -> str:
    """A draft report for head office, in Chinese, as plain text.

    ``actions`` are audit entries of the incident as ``(at, actor, action, detail)``
    (acknowledge, escalate, resolve …). Post excerpts are PII-masked. The
    draft says what is not known instead of inventing it.
    """
    config = config or ReportingConfig()

    def local(value: datetime) -> str:
        return value.astimezone(tz).strftime("%Y-%m-%d %H:%M")

    grade = incident.grade
    first = incident.first_seen or incident.opened_at
    lines = [
        f"关于{bank}“{incident.title}”声誉事件的报告（草稿）",
        "",
        f"报送对象：{config.report_to}",
        f"事件编号：#{incident.id}    事件等级：{grade.value}级（{grade.label_zh}）",
    ]
    deadline = reporting_deadline(incident, alerts, config)
    if deadline is not None:
        left = deadline.remaining(now)
        state = (
            f"剩余 {int(left.total_seconds() // 60)} 分钟"
            if left.total_seconds() > 0
            else f"已超时 {int(-left.total_seconds() // 60)} 分钟"
        )
        lines.append(
            f"报告时限：{local(deadline.due_at)}（自达到{deadline.grade.value}级"
            f"的 {local(deadline.started_at)} 起算，{state}）"
        )
    lines += [
        "",
        "一、事件概况",
        f"{local(first)} 起，监测发现涉及{bank}的相关舆情集中出现。"
        f"触发原因：{'；'.join(incident.reasons[-3:]) or '（无记录）'}。",
    ]
    if posts:
        lines.append("代表性内容（已脱敏）：")
        for post in posts[:5]:
            line = post_line(post, tz)
            lines.append(f"  - [{line.source} {line.published}] {line.title}：{line.excerpt}")
    lines += [
        "",
        "二、影响范围",
        f"累计相关帖子 {incident.post_count} 条，单一时间窗口峰值 {incident.peak_count} 条；"
        f"涉及来源：{'、'.join(incident.sources) or '（无记录）'}。",
    ]
    if incident.topic is not None:
        lines.append(f"涉及业务：{incident.topic.value}")
    if incident.entity:
        lines.append(f"涉及机构/产品：{incident.entity}")
    status = {
        IncidentStatus.OPEN: "处置中（尚未确认）",
        IncidentStatus.ACKNOWLEDGED: "处置中（已确认）",
        IncidentStatus.RESOLVED: f"已于 {local(incident.resolved_at or now)} 解除",
    }[incident.status]
    lines += ["", "三、已采取的措施", f"当前状态：{status}。"]
    if actions:
        for at, actor, action, detail in sorted(actions):
            lines.append(f"  - {local(at)} {actor}：{action} {detail}".rstrip())
    else:
        lines.append("  - （系统中尚无处置记录，请补充）")
    lines += ["", "四、下一步工作"]
    steps = _NEXT_STEPS.get(grade, ["持续监测相关舆情，必要时升级处置"])
    lines += [f"  {i}. {step}" for i, step in enumerate(steps, 1)]
    lines += ["", f"（本草稿由舆情监测系统于 {local(now)} 生成，请核实并补充后报送。）"]
    return "\n".join(lines)
