"""The fixed vocabulary of DESIGN.md: sentiment labels, topic keys, incident grades.

These keys are stored, indexed and sent to head office; never rename them.
"""

from __future__ import annotations

from enum import StrEnum


class Sentiment(StrEnum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


class Topic(StrEnum):
    WEALTH_MANAGEMENT = "wealth_management"
    CREDIT_CARD = "credit_card"
    LOANS = "loans"
    DEPOSITS_ACCOUNTS = "deposits_accounts"
    DIGITAL_CHANNELS = "digital_channels"
    SERVICE_QUALITY = "service_quality"
    FRAUD_SECURITY = "fraud_security"
    PRIVACY_DATA = "privacy_data"
    LIQUIDITY_RUMOR = "liquidity_rumor"
    REGULATORY_LEGAL = "regulatory_legal"
    MARKETING_BRAND = "marketing_brand"
    OTHER = "other"


TOPIC_LABELS_ZH: dict[Topic, str] = {
    Topic.WEALTH_MANAGEMENT: "理财/基金/代销",
    Topic.CREDIT_CARD: "信用卡",
    Topic.LOANS: "贷款/房贷",
    Topic.DEPOSITS_ACCOUNTS: "存款与账户",
    Topic.DIGITAL_CHANNELS: "手机银行/线上渠道",
    Topic.SERVICE_QUALITY: "网点与客服",
    Topic.FRAUD_SECURITY: "诈骗与资金安全",
    Topic.PRIVACY_DATA: "隐私与个人信息",
    Topic.LIQUIDITY_RUMOR: "挤兑与经营风险传闻",
    Topic.REGULATORY_LEGAL: "监管与诉讼",
    Topic.MARKETING_BRAND: "品牌与营销",
    Topic.OTHER: "其他",
}


class Grade(StrEnum):
    """Incident grades, from least (IV, 一般) to most severe (I, 特别重大)."""

    IV = "IV"
    III = "III"
    II = "II"
    I = "I"  # noqa: E741 - the grade's official name

    @property
    def label_zh(self) -> str:
        return _GRADE_ZH[self]

    @property
    def color(self) -> str:
        return _GRADE_COLOR[self]

    @property
    def severity(self) -> int:
        """1 (IV) … 4 (I); use it to compare grades."""
        return _GRADE_ORDER.index(self) + 1

    def raised(self, steps: int = 1) -> Grade:
        """The grade ``steps`` levels more severe, capped at I."""
        idx = min(len(_GRADE_ORDER) - 1, _GRADE_ORDER.index(self) + steps)
        return _GRADE_ORDER[idx]


_GRADE_ORDER = [Grade.IV, Grade.III, Grade.II, Grade.I]
_GRADE_ZH = {Grade.IV: "一般", Grade.III: "较大", Grade.II: "重大", Grade.I: "特别重大"}
_GRADE_COLOR = {Grade.IV: "blue", Grade.III: "yellow", Grade.II: "orange", Grade.I: "red"}


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class SourceKind(StrEnum):
    """How a source is crawled (which spider)."""

    RSS = "rss"
    HTML = "html"
    JSON_API = "json_api"


class Platform(StrEnum):
    """What kind of place a post comes from; detectors weigh them differently."""

    NEWS = "news"
    FORUM = "forum"
    COMPLAINT = "complaint"
    WEIBO = "weibo"
    APP_REVIEW = "app_review"
    REGULATOR = "regulator"
    OTHER = "other"
