"""Training: the data contract, determinism, and (slow) that the shipped model is reproducible."""

import json
from pathlib import Path

import pytest

from nlp.evaluate import class_report, load_jsonl
from nlp.normalize import normalize_for_analysis
from nlp.train import (
    BANK_TRAIN,
    BANK_VALIDATION,
    BANK_VALIDATION_INDEPENDENT,
    DEFAULT_DATA_DIR,
    fit_linear,
    main,
)


def test_bank_sets_are_labelled_and_disjoint() -> None:
    train, validation = load_jsonl(BANK_TRAIN), load_jsonl(BANK_VALIDATION)
    independent = load_jsonl(BANK_VALIDATION_INDEPENDENT)
    assert len(train) >= 300 and len(validation) >= 100 and len(independent) >= 100
    # Disjoint even after normalisation (a traditional-character or full-width
    # copy of a training post would be the same post to the model).
    seen = {normalize_for_analysis(e.text) for e in train}
    for held_out in (validation, independent):
        assert not seen & {normalize_for_analysis(e.text) for e in held_out}
    assert not {e.text for e in validation} & {e.text for e in independent}
    for examples in (train, validation, independent):
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


def test_training_reads_only_the_training_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real (small) training run: which labelled files it opens, and what it writes."""
    import nlp.train

    data = tmp_path / "data"
    data.mkdir()
    rows = ["text,label"] + [f"第{i}次来，服务很好,1" for i in range(30)]
    rows += [f"第{i}次来，态度很差,0" for i in range(30)]
    (data / "waimai_10k.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    opened: list[Path] = []
    real_load = nlp.train.load_jsonl

    def recording_load(path: Path) -> list:  # type: ignore[type-arg]
        opened.append(path)
        return real_load(path)

    monkeypatch.setattr(nlp.train, "load_jsonl", recording_load)
    paths = nlp.train.train_all(data, tmp_path / "out")
    assert opened == [BANK_TRAIN]
    for path in paths:
        raw = json.loads(path.read_text(encoding="utf-8"))
        assert raw["meta"]["calibration"]["temperature"] == raw["temperature"]


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
