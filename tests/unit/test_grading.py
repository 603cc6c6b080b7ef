"""The grader: pure, grades only from the factors, reasons in Chinese."""

from __future__ import annotations

from alerts.grading import GradeFactors, factors_from_posts, grade, max_grade
from core.models import Analysis, Post, Signal
from core.vocab import Grade, Platform, Sentiment
from tests.unit.fakes import T0


def test_nothing_notable_is_grade_iv_with_the_window_as_context() -> None:
    g = grade(GradeFactors(count=12, window_minutes=30, window_count=12))
    assert g.grade is Grade.IV
    assert g.reasons == ["30分钟内 12 条"]


def test_any_critical_signal_is_at_least_iii() -> None:
    g = grade(GradeFactors(count=1, critical_signals=["bank_run"], critical_count=1))
    assert g.grade is Grade.III
    assert "出现挤兑传闻（bank_run）" in g.reasons


def test_points_add_up_to_higher_grades() -> None:
    assert grade(GradeFactors(count=60, velocity=2.5)).grade is Grade.III  # 1 + 2
    assert grade(GradeFactors(count=250, velocity=3)).grade is Grade.II  # 2 + 2
    worst = grade(
        GradeFactors(
            count=300,
            velocity=5,
            max_reach=2_000_000,
            regulator=True,
            critical_signals=["bank_run"],
            critical_count=5,
        )
    )
    assert worst.grade is Grade.I
    assert "监管介入" in worst.reasons
    assert "高危帖子 5 条" in worst.reasons


def test_media_involvement_and_negativity_are_reasons() -> None:
    g = grade(GradeFactors(count=20, negative_share=0.8, media=True))
    assert g.grade is Grade.III
    assert g.reasons == ["负面占比 80%", "媒体曝光"]


def test_factors_from_posts() -> None:
    def p(n: int, **kw: object) -> Post:
        return Post(
            id=f"post{n:08d}",
            url=f"https://x.example/{n}",
            source="news",
            text="澜海银行",
            published_at=T0,
            **kw,  # type: ignore[arg-type]
        )

    bad = Analysis(sentiment=Sentiment.NEGATIVE, sentiment_score=0.1)
    crit = Analysis(
        sentiment=Sentiment.NEGATIVE,
        sentiment_score=0.1,
        critical=True,
        signals=[Signal(name="data_leak", critical=True)],
    )
    ok = Analysis(sentiment=Sentiment.NEUTRAL, sentiment_score=0.5)
    posts = [
        p(1, analysis=bad, platform=Platform.NEWS, author_followers=200_000),
        p(2, analysis=crit),
        p(3, analysis=ok, platform=Platform.REGULATOR),
        p(4, analysis=ok, platform=Platform.NEWS),
    ]
    f = factors_from_posts(posts, count=4)
    assert f.negative_share == 0.5
    assert f.max_reach == 200_000
    assert f.critical_signals == ["data_leak"]
    assert f.media and f.regulator


def test_max_grade() -> None:
    assert max_grade(Grade.IV, Grade.II, Grade.III) is Grade.II
