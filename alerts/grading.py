"""Incident grading: grade IV → I from what is known about an incident, with reasons in Chinese.

One pure function, :func:`grade`, over a :class:`GradeFactors` record (no
store, no clock). Rules grade their own numbers with it in ``decide``; the
detector grades again with the evidence it gathered (the incident's total
posts, reach, platforms and critical signals of the current window) and the
incident takes the higher grade (:func:`alerts.incidents.apply_match` never
lowers a grade, and a rise is announced as ``grade_raised``).

Scoring (why points: several moderate factors together are as serious as
one strong one; the thresholds are the bank's rule of thumb, see
:data:`THRESHOLDS`):

=========================== ===============================================
factor                      points
=========================== ===============================================
volume (posts of incident)  +1 at ``volume_high``, +2 at ``volume_very_high``
velocity (× rule threshold) +2 at ≥ 2× the rule's own threshold ratio
negativity (share)          +1 at ``negative_share`` with ≥ 10 posts
reach (largest single post) +1 at ``reach_high``, +2 at ``reach_very_high``
media involvement           +1 (a news-platform post, or a ``media_expose`` signal)
regulator involvement       +2 (a regulator-platform post, or a ``regulator`` signal)
several critical posts      +1
=========================== ===============================================

Points → grade: 0–1 IV, 2–3 III, 4–5 II, ≥ 6 I. Floors: any critical
signal → at least III; ``several`` critical posts → at least II.

Every cut-off (and the points of each grade) is configurable in the
``grading:`` settings block (:class:`core.settings.GradingConfig`, validated
at load); :meth:`Thresholds.from_config` turns it into :class:`Thresholds`.
The defaults are the values in the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from core.models import Post
from core.settings import GradingConfig
from core.vocab import Grade, Platform

SIGNAL_LABELS_ZH: dict[str, str] = {
    "bank_run": "出现挤兑传闻",
    "collective_action": "出现集体维权",
    "data_leak": "出现信息泄露",
    "fraud_many": "出现群体性诈骗/盗刷",
    "regulator": "涉及监管处罚",
    "media_expose": "媒体曝光",
    "violence": "出现极端/暴力言行",
}
"""Chinese wording of the lexicon's critical signals (``nlp/data/lexicon.yaml``)."""

MEDIA_SIGNAL = "media_expose"
REGULATOR_SIGNAL = "regulator"


@dataclass(frozen=True)
class Thresholds:
    """The cut-offs of :func:`grade` (module docstring)."""

    volume_high: int = 50
    volume_very_high: int = 200
    velocity_factor: float = 2.0
    negative_share: float = 0.6
    negative_min_posts: int = 10
    reach_high: int = 100_000
    reach_very_high: int = 1_000_000
    several_critical: int = 3
    points_iii: int = 2
    points_ii: int = 4
    points_i: int = 6

    @classmethod
    def from_config(cls, config: GradingConfig) -> Thresholds:
        """The thresholds of the ``grading:`` settings block (validated at load)."""
        return cls(**config.model_dump())


THRESHOLDS = Thresholds()
"""The defaults (``grading:`` unset); equal to ``Thresholds.from_config(GradingConfig())``."""


@dataclass(frozen=True)
class GradeFactors:
    """What is known about an incident (or one match). Unknown numbers stay ``None``/empty.

    ``velocity`` is the observed ratio divided by the rule's threshold ratio
    (1.0 = just matched); ``critical_signals`` the distinct critical signal
    names seen and ``critical_count`` how many critical posts.
    """

    count: int = 0
    window_minutes: int | None = None
    window_count: int | None = None
    velocity: float | None = None
    negative_share: float | None = None
    max_reach: int = 0
    critical_signals: Sequence[str] = ()
    critical_count: int = 0
    media: bool = False
    regulator: bool = False


@dataclass(frozen=True)
class Grading:
    """The outcome of :func:`grade`: the grade, its score and the reasons (Chinese)."""

    grade: Grade
    score: int
    reasons: list[str] = field(default_factory=list)

    @property
    def reason_text(self) -> str:
        """The reasons joined for a message line, e.g. ``出现挤兑传闻（bank_run）；媒体曝光``."""
        return "；".join(self.reasons)


def _fmt_reach(reach: int) -> str:
    return f"{reach / 10_000:.0f}万" if reach >= 10_000 else str(reach)


def grade(factors: GradeFactors, thresholds: Thresholds = THRESHOLDS) -> Grading:
    """Grade ``factors`` (pure). Returns the grade, the score and every reason that counted.

    The window volume (``30分钟内 40 条``) is always listed first when known,
    as context, even when it earns no points.
    """
    t = thresholds
    score = 0
    reasons: list[str] = []
    if factors.window_minutes is not None and factors.window_count is not None:
        reasons.append(f"{factors.window_minutes}分钟内 {factors.window_count} 条")
    if factors.count >= t.volume_very_high:
        score += 2
        reasons.append(f"累计 {factors.count} 条")
    elif factors.count >= t.volume_high:
        score += 1
        reasons.append(f"累计 {factors.count} 条")
    if factors.velocity is not None and factors.velocity >= t.velocity_factor:
        score += 2
        reasons.append(f"增速达阈值的 {factors.velocity:.1f} 倍")
    if (
        factors.negative_share is not None
        and factors.count >= t.negative_min_posts
        and factors.negative_share >= t.negative_share
    ):
        score += 1
        reasons.append(f"负面占比 {factors.negative_share:.0%}")
    if factors.max_reach >= t.reach_very_high:
        score += 2
        reasons.append(f"单帖影响 {_fmt_reach(factors.max_reach)}")
    elif factors.max_reach >= t.reach_high:
        score += 1
        reasons.append(f"单帖影响 {_fmt_reach(factors.max_reach)}")
    signals = list(dict.fromkeys(factors.critical_signals))
    for name in signals:
        if name not in (MEDIA_SIGNAL, REGULATOR_SIGNAL):
            reasons.append(f"{SIGNAL_LABELS_ZH.get(name, '出现高危信号')}（{name}）")
    if factors.media or MEDIA_SIGNAL in signals:
        score += 1
        reasons.append("媒体曝光")
    if factors.regulator or REGULATOR_SIGNAL in signals:
        score += 2
        reasons.append("监管介入")
    several = factors.critical_count >= t.several_critical
    if several:
        score += 1
        reasons.append(f"高危帖子 {factors.critical_count} 条")

    result = Grade.IV
    for points, g in ((t.points_i, Grade.I), (t.points_ii, Grade.II), (t.points_iii, Grade.III)):
        if score >= points:
            result = g
            break
    if signals or factors.critical_count > 0:
        result = max_grade(result, Grade.III)
    if several:
        result = max_grade(result, Grade.II)
    return Grading(result, score, reasons)


def max_grade(*grades: Grade) -> Grade:
    """The most severe of ``grades`` (at least one)."""
    return max(grades, key=lambda g: g.severity)


def factors_from_posts(
    posts: Sequence[Post],
    *,
    count: int,
    window_minutes: int | None = None,
    window_count: int | None = None,
) -> GradeFactors:
    """Grade factors from evidence posts (the newest of the window) and the incident's ``count``.

    Reach is the largest :attr:`Post.reach`; media/regulator involvement is a
    post from a news or regulator platform (or the matching signal);
    negativity is the negative share among the analysed ``posts``.
    """
    analysed = [p for p in posts if p.analysis is not None]
    negative = sum(1 for p in analysed if p.analysis and p.analysis.sentiment == "negative")
    critical = [p for p in analysed if p.analysis and p.analysis.critical]
    signals = [s.name for p in critical if p.analysis for s in p.analysis.signals if s.critical]
    return GradeFactors(
        count=count,
        window_minutes=window_minutes,
        window_count=window_count,
        negative_share=(negative / len(analysed)) if analysed else None,
        max_reach=max((p.reach for p in posts), default=0),
        critical_signals=signals,
        critical_count=len(critical),
        # A neutral news item that mentions the bank is not an exposé: only negative ones count.
        media=any(
            p.platform is Platform.NEWS
            and p.analysis is not None
            and p.analysis.sentiment == "negative"
            for p in posts
        ),
        regulator=any(p.platform is Platform.REGULATOR for p in posts),
    )
