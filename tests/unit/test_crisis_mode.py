"""Crisis mode's pure part: which crawl interval each source should have now."""

from __future__ import annotations

from alerts.service import crawl_intervals
from core.models import Incident
from core.settings import SchedulerConfig, Settings, SourceConfig
from core.vocab import Grade, IncidentStatus


def settings(**scheduler: object) -> Settings:
    return Settings(
        sources=[
            SourceConfig(name=n, kind="rss", start_urls=["https://x.example/"], interval_minutes=30)
            for n in ("forum", "news", "blog")
        ],
        scheduler=SchedulerConfig(**scheduler),  # type: ignore[arg-type]
    )


def incident(
    grade: Grade, sources: list[str], status: IncidentStatus = IncidentStatus.OPEN
) -> Incident:
    return Incident(rule="r", key="k", title="t", grade=grade, sources=sources, status=status)


def test_only_sources_of_active_incidents_at_the_crisis_grade_speed_up() -> None:
    s = settings(crisis_factor=3.0)
    got = crawl_intervals(
        s,
        [
            incident(Grade.III, ["forum"]),
            incident(Grade.IV, ["news"]),
            incident(Grade.I, ["news"], IncidentStatus.RESOLVED),
        ],
    )
    assert got == {"forum": 600, "news": 1800, "blog": 1800}


def test_acknowledged_incidents_still_count_and_the_min_grade_is_configurable() -> None:
    s = settings(crisis_factor=2.0, crisis_min_grade="II")
    assert crawl_intervals(s, [incident(Grade.III, ["forum"])])["forum"] == 1800
    ack = incident(Grade.II, ["forum"], IncidentStatus.ACKNOWLEDGED)
    assert crawl_intervals(s, [ack])["forum"] == 900


def test_factor_one_switches_crisis_mode_off() -> None:
    assert (
        crawl_intervals(settings(crisis_factor=1.0), [incident(Grade.I, ["forum"])])["forum"]
        == 1800
    )
