"""Calibrated sentiment probabilities: the ECE metric, the temperature fit, the shipped model."""

import math
import random

import pytest

from core.settings import Watchlist
from nlp.analyzer import Analyzer
from nlp.evaluate import expected_calibration_error
from nlp.model import load_model, softmax
from nlp.train import (
    CALIBRATION_FOLDS,
    TEMPERATURE_GRID,
    calibration_fold,
    fit_temperature,
)


def test_ece_is_zero_when_confidence_matches_accuracy() -> None:
    # 10 posts at 0.8 confidence, 8 right: perfectly calibrated.
    assert expected_calibration_error([0.8] * 10, [True] * 8 + [False] * 2) == pytest.approx(0.0)


def test_ece_of_an_overconfident_model() -> None:
    # Claims 0.9, is right half the time: off by 0.4.
    assert expected_calibration_error([0.9] * 4, [True, False, True, False]) == pytest.approx(0.4)


def test_ece_weights_bins_by_posts() -> None:
    conf = [0.95] * 3 + [0.55]
    right = [True, True, True, False]
    # bin (0.9, 1]: |1 - 0.95| · 3/4; bin (0.5, 0.6]: |0 - 0.55| · 1/4
    assert expected_calibration_error(conf, right) == pytest.approx(0.05 * 0.75 + 0.55 * 0.25)
    assert expected_calibration_error([], []) == 0.0
    with pytest.raises(ValueError, match="confidences"):
        expected_calibration_error([0.5], [])


def test_fit_temperature_recovers_a_known_temperature() -> None:
    rng = random.Random(7)
    true_t = 2.5
    logits, gold = [], []
    for _ in range(3000):
        row = [rng.gauss(0, 4) for _ in range(3)]
        proba = softmax(row, true_t)
        gold.append(rng.choices(range(3), weights=proba)[0])
        logits.append(row)
    fitted = fit_temperature(logits, gold)
    assert fitted in TEMPERATURE_GRID
    assert abs(fitted - true_t) < 0.3
    assert fit_temperature([], []) == 1.0


def test_calibration_folds_are_stable_and_spread() -> None:
    texts = [f"澜海银行第{i}条" for i in range(200)]
    folds = [calibration_fold(t) for t in texts]
    assert folds == [calibration_fold(t) for t in texts]
    assert set(folds) == set(range(CALIBRATION_FOLDS))


def test_shipped_models_carry_their_calibration() -> None:
    for name in ("sentiment", "topic"):
        model = load_model(name)
        report = model.meta["calibration"]
        assert report["temperature"] == model.temperature
        assert report["folds"] == CALIBRATION_FOLDS
        # Fitted by least log-loss, so it cannot be worse than temperature 1 there.
        assert report["nll_after"] <= report["nll_before"]


def test_temperature_changes_confidence_not_the_label() -> None:
    analyzer = Analyzer(Watchlist())
    text = "澜海银行的客服态度太差了，排队两个小时"
    raw = analyzer.sentiment_proba(text, temperature=1.0)
    calibrated = analyzer.sentiment_proba(text)
    assert max(raw, key=raw.__getitem__) == max(calibrated, key=calibrated.__getitem__)
    assert math.isclose(sum(calibrated.values()), 1.0)
    if analyzer.sentiment_calibration["temperature"] != 1.0:
        assert max(raw.values()) != pytest.approx(max(calibrated.values()))
