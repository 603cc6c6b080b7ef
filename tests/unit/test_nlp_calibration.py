"""Calibrated sentiment probabilities: the ECE metric, the temperature fit, the shipped model."""

import math
import random
from collections import Counter
from collections.abc import Sequence

import pytest

from core.settings import Watchlist
from nlp.analyzer import Analyzer
from nlp.evaluate import expected_calibration_error
from nlp.model import load_model, softmax
from nlp.train import (
    TEMPERATURE_GRID,
    TRAIN_FILES,
    cross_fitted_logits,
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


class _Recorder:
    """A stand-in for a fitted model: scores a post by whether it was trained on."""

    def __init__(self, trained: set[int]) -> None:
        self.trained = trained

    def scores(self, counts: Counter[str]) -> list[float]:
        return [float(counts["id"] in self.trained)]


def test_cross_fitting_holds_out_each_source_file_whole() -> None:
    sources = ["a.jsonl", "b.jsonl", "a.jsonl", "c.jsonl", "b.jsonl"]
    feats = [Counter({"id": i}) for i in range(len(sources))]
    fitted: list[list[int]] = []

    def fit(indices: Sequence[int]) -> _Recorder:
        fitted.append(list(indices))
        return _Recorder(set(indices))

    logits = cross_fitted_logits(fit, feats, sources)  # type: ignore[arg-type]
    # One model per file, each trained on the other files' posts only ...
    assert fitted == [[1, 3, 4], [0, 2, 3], [0, 1, 2, 4]]
    # ... and no post is scored by a model that saw it.
    assert logits == [[0.0]] * len(sources)
    with pytest.raises(ValueError, match="two or more files"):
        cross_fitted_logits(fit, feats[:1], sources[:1])  # type: ignore[arg-type]


def test_shipped_models_carry_their_calibration() -> None:
    for name in ("sentiment", "topic"):
        model = load_model(name)
        report = model.meta["calibration"]
        assert report["temperature"] == model.temperature
        assert report["folds"] == len(TRAIN_FILES)
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
