"""Training: the data contract, determinism, and (slow) that the shipped model is reproducible."""

import json
from pathlib import Path

import pytest

from nlp.evaluate import class_report, load_jsonl
from nlp.train import BANK_TRAIN, BANK_VALIDATION, DEFAULT_DATA_DIR, fit_linear, main


def test_bank_sets_are_labelled_and_disjoint() -> None:
    train, validation = load_jsonl(BANK_TRAIN), load_jsonl(BANK_VALIDATION)
    assert len(train) >= 300 and len(validation) >= 100
    assert not {e.text for e in train} & {e.text for e in validation}
    for examples in (train, validation):
        assert {e.sentiment for e in examples} == {"negative", "neutral", "positive"}
        assert all(e.topic is not None and e.critical is not None for e in examples)
        assert any(e.critical for e in examples)


def test_fit_is_deterministic() -> None:
    from collections import Counter

    feats = [Counter({"w:好": 1}), Counter({"w:差": 1}), Counter({"w:好": 1, "w:差": 1})] * 2
    labels = ["positive", "negative", "neutral"] * 2
    args = dict(c=1.0, classes=["negative", "neutral", "positive"], meta={})
    first = fit_linear("m", feats, labels, [1.0] * 6, **args)  # type: ignore[arg-type]
    second = fit_linear("m", feats, labels, [1.0] * 6, **args)  # type: ignore[arg-type]
    assert first.to_json() == second.to_json()
    assert max(first.predict_proba({"w:好": 1}).items(), key=lambda kv: kv[1])[0] == "positive"


def test_missing_data_dir_exits_2(tmp_path: Path) -> None:
    assert main(["--data-dir", str(tmp_path / "nope"), "--out-dir", str(tmp_path)]) == 2


def test_class_report_counts() -> None:
    report = class_report(["a", "a", "b"], ["a", "b", "b"], ["a", "b"])
    assert report.matrix == [[1, 1], [0, 1]]
    assert report.per_class["a"].precision == 1.0 and report.per_class["a"].recall == 0.5
    assert report.accuracy == pytest.approx(2 / 3)


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_DATA_DIR.is_dir(), reason="public data ../shared/data absent")
def test_shipped_models_match_a_fresh_training(tmp_path: Path) -> None:
    from nlp.model import model_dir

    assert main(["--out-dir", str(tmp_path)]) == 0
    for name in ("sentiment", "topic"):
        fresh = json.loads((tmp_path / f"{name}.json").read_text(encoding="utf-8"))
        shipped = json.loads((model_dir() / f"{name}.json").read_text(encoding="utf-8"))
        assert fresh == shipped, f"{name}.json is stale: run python -m nlp.train"
