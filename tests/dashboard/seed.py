"""The dashboard tests' seed: a small, fully known set of fictional posts and incidents.

Small and known, so tests can assert exact numbers as well as "equals what
the store says". Every name, URL and phone number is fictional (澜海银行 is
the demo bank).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.models import Alert, Analysis, Incident, Post, Signal
from core.vocab import Grade, IncidentStatus, Platform, Sentiment, Topic
from storage.local import LocalPostStore
from storage.state import SqlStateStore

HOSTILE_TITLE = "<script>alert('x')</script> **加粗** 标题"
HOSTILE_TEXT = (
    "澜海银行 客服 **bold** [点我](javascript:alert(1)) <img src=x onerror=alert(1)> "
    ":red[红色] $x^2$ 联系电话 13812345678"
)
RAW_PHONE = "13812345678"
SEARCH_WORD = "理财"
LOSS_TEXT = "澜海银行理财产品亏损严重，到期不兑付，客户要求赔偿"
FILLER_COUNT = 23  # more than one feed page of 20, within the last 7 days


def _analysis(
    sentiment: Sentiment,
    topic: Topic,
    *,
    risk: float = 0.2,
    critical: bool = False,
    masked_text: str = "",
) -> Analysis:
    score = {Sentiment.NEGATIVE: 0.1, Sentiment.NEUTRAL: 0.5, Sentiment.POSITIVE: 0.9}[sentiment]
    signals = [Signal(name="bank_run_rumor", triggers=["挤兑"], critical=True)] if critical else []
    return Analysis(
        sentiment=sentiment,
        sentiment_score=score,
        topic=topic,
        risk_score=risk,
        critical=critical,
        signals=signals,
        masked_text=masked_text,
    )


def _post(
    n: int,
    at: datetime,
    *,
    text: str,
    title: str = "",
    source: str = "forum",
    url: str | None = None,
    analysis: Analysis | None = None,
) -> Post:
    return Post(
        id=f"dashpost{n:06d}",
        url=url or f"https://bbs.lanhai.example/t/{n}",
        source=source,
        platform=Platform.FORUM if source == "forum" else Platform.NEWS,
        title=title or f"帖子 {n}",
        text=text,
        published_at=at,
        analysis=analysis,
    )


@dataclass
class Seed:
    """What was written to the stores, for assertions."""

    now: datetime
    posts: list[Post]
    incident: Incident
    resolved: Incident
    loss_post: Post
    hostile_post: Post
    stores: tuple[LocalPostStore, SqlStateStore]

    @property
    def post_store(self) -> LocalPostStore:
        return self.stores[0]

    @property
    def state_store(self) -> SqlStateStore:
        return self.stores[1]


def seed_stores(post_store: LocalPostStore, state_store: SqlStateStore, now: datetime) -> Seed:
    """Write the fictional posts and incidents; return what was written."""
    h = timedelta(hours=1)
    d = timedelta(days=1)
    neg = Sentiment.NEGATIVE
    loss = _post(
        1,
        now - 1 * h,
        title="澜海银行理财亏损",
        text=LOSS_TEXT,
        analysis=_analysis(neg, Topic.WEALTH_MANAGEMENT, risk=0.8, masked_text=LOSS_TEXT),
    )
    hostile = _post(
        2,
        now - 2 * h,
        title=HOSTILE_TITLE,
        text=HOSTILE_TEXT,
        url="javascript:alert(1)",
        # No masked_text: the dashboard must mask the phone number itself.
        analysis=_analysis(neg, Topic.SERVICE_QUALITY, risk=0.4),
    )
    posts = [
        loss,
        hostile,
        _post(
            3,
            now - 3 * h,
            title="澜海银行挤兑传闻",
            text="网传澜海银行某支行出现挤兑，排队取款",
            source="news",
            analysis=_analysis(neg, Topic.LIQUIDITY_RUMOR, risk=0.95, critical=True),
        ),
        _post(
            4,
            now - 5 * h,
            text="澜海银行手机银行今天很顺畅",
            analysis=_analysis(Sentiment.POSITIVE, Topic.DIGITAL_CHANNELS, risk=0.0),
        ),
        _post(5, now - 6 * h, text="澜海银行网点营业时间调整", source="news"),  # not analysed
        _post(
            6,
            now - 3 * d,
            text="澜海银行信用卡年费说明",
            analysis=_analysis(Sentiment.NEUTRAL, Topic.CREDIT_CARD, risk=0.1),
        ),
        _post(
            7,
            now - 20 * d,
            text="澜海银行贷款利率调整",
            source="news",
            analysis=_analysis(Sentiment.NEUTRAL, Topic.LOANS, risk=0.1),
        ),
        _post(
            8,
            now - 40 * d,
            text="很久以前的澜海银行帖子",
            analysis=_analysis(Sentiment.NEGATIVE, Topic.OTHER, risk=0.1),
        ),
    ]
    for i in range(FILLER_COUNT):
        posts.append(
            _post(
                100 + i,
                now - 2 * d - i * h,
                text=f"澜海银行普通讨论 第{i}帖",
                source="complaints",
                analysis=_analysis(Sentiment.NEUTRAL, Topic.OTHER, risk=0.05),
            )
        )
    result = post_store.upsert(posts)
    assert result.failed == 0, result.errors

    incident = state_store.save_incident(
        Incident(
            rule="volume_spike",
            key="topic:wealth_management",
            title="澜海银行理财亏损讨论量激增",
            grade=Grade.II,
            opened_at=now - timedelta(minutes=50),
            updated_at=now - timedelta(minutes=10),
            first_seen=now - 3 * h,
            post_count=3,
            peak_count=3,
            post_ids=[loss.id, hostile.id, "dashpost-missing-9"],
            reasons=["30分钟内帖子数 3，基线均值 0.5，达到 6 倍"],
            topic=Topic.WEALTH_MANAGEMENT,
            sources=["forum", "news"],
        )
    )
    assert incident.id is not None
    state_store.add_alert(
        Alert(
            incident_id=incident.id,
            rule="volume_spike",
            grade=Grade.II,
            created_at=now - timedelta(minutes=50),
            summary="理财话题帖子数激增",
        )
    )
    resolved = state_store.save_incident(
        Incident(
            rule="volume_spike",
            key="all",
            title="旧事件",
            grade=Grade.IV,
            status=IncidentStatus.RESOLVED,
            opened_at=now - 10 * d,
            updated_at=now - 9 * d,
            resolved_at=now - 9 * d,
        )
    )
    return Seed(
        now=now,
        posts=posts,
        incident=incident,
        resolved=resolved,
        loss_post=loss,
        hostile_post=hostile,
        stores=(post_store, state_store),
    )
