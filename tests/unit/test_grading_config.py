"""Grading thresholds from the ``grading:`` block: validated at load, defaults unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.detector import Detector
from alerts.grading import THRESHOLDS, GradeFactors, Thresholds, grade
from alerts.rules import CriticalSignal, VolumeSpike, build_rules
from core.errors import ConfigError
from core.settings import (
    CriticalSignalRule,
    GradingConfig,
    Settings,
    VolumeSpikeRule,
    load_settings,
)
from core.vocab import Grade
from tests.unit.fakes import T0, FakePostStore, FakeStateStore, make_post, minutes


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "yuqing.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_defaults_are_the_documented_constants() -> None:
    assert Thresholds.from_config(GradingConfig()) == THRESHOLDS
    assert (THRESHOLDS.volume_high, THRESHOLDS.reach_very_high, THRESHOLDS.points_i) == (
        50,
        1_000_000,
        6,
    )


@pytest.mark.parametrize(
    ("block", "named"),
    [
        ("grading:\n  volume_high: 300\n", "grading.volume_very_high"),
        ("grading:\n  reach_high: -5\n", "grading.reach_high"),
        ("grading:\n  points_i: 3\n", "grading.points_i"),
        ("grading:\n  negative_share: 1.5\n", "grading.negative_share"),
        ("grading:\n  velocity: 2\n", "grading.velocity"),
    ],
)
def test_a_bad_threshold_names_its_key(tmp_path: Path, block: str, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, block))
    assert named in str(err.value)


def test_configured_thresholds_change_the_grade(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, "grading:\n  volume_high: 20\n  volume_very_high: 40\n  points_iii: 1\n")
    )
    strict = Thresholds.from_config(settings.grading)
    factors = GradeFactors(count=45)
    assert grade(factors).grade is Grade.IV  # 45 posts earn nothing by default
    graded = grade(factors, strict)
    assert (graded.grade, graded.score) == (Grade.III, 2)
    assert "累计 45 条" in graded.reasons


def test_rules_and_the_detector_grade_with_the_configured_thresholds() -> None:
    settings = Settings(
        rules=[VolumeSpikeRule(window_minutes=30, baseline_windows=4, min_count=8)],
        grading=GradingConfig(volume_high=10, volume_very_high=11),
    )
    rules = build_rules(settings.rules, thresholds=Thresholds.from_config(settings.grading))
    (spike,) = rules
    assert isinstance(spike, VolumeSpike)
    # 12 posts over a silent baseline: velocity +2; with these settings also volume +2.
    assert spike.decide(12, [0, 0, 0, 0]).grade is Grade.II  # type: ignore[union-attr]
    assert VolumeSpike(spike.config).decide(12, [0, 0, 0, 0]).grade is Grade.III  # type: ignore[union-attr]

    posts, state = (
        FakePostStore([make_post(i, T0 - minutes(1 + i)) for i in range(12)]),
        FakeStateStore(),
    )
    Detector.from_settings(settings, posts, state, clock=lambda: T0).run_once(T0)
    (incident,) = state.incidents.values()
    assert incident.grade is Grade.II


def test_critical_signal_keeps_its_own_several_on_top_of_the_configured_thresholds() -> None:
    rule = CriticalSignal(
        CriticalSignalRule(several=5), thresholds=Thresholds(points_iii=3, points_ii=5, points_i=7)
    )
    assert rule.decide("bank_run", 4).grade is Grade.III  # type: ignore[union-attr]
    assert rule.decide("bank_run", 5).grade is Grade.II  # type: ignore[union-attr]
