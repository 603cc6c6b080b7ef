"""Training: the data contract, determinism, and (slow) that the shipped model is reproducible."""

import json
from pathlib import Path

import pytest

from nlp.evaluate import class_report, load_jsonl
from nlp.lexicon import load_lexicon
from nlp.normalize import normalize_for_analysis
from nlp.train import (
    DEFAULT_DATA_DIR,
    SECOND_LABELS_DIR,
    TRAIN_FILES,
    VALIDATION_FILES,
    FeatureTable,
    calibrate,
    critical_flags,
    critical_thresholds,
    fit_linear,
    main,
)


def test_bank_sets_are_labelled_and_disjoint() -> None:
    files = [*TRAIN_FILES, *VALIDATION_FILES]
    sets = {path.name: load_jsonl(path) for path in files}
    assert len(sets) == 40 and all(len(examples) >= 100 for examples in sets.values())
    # Pairwise disjoint even after normalisation (a traditional-character or
    # full-width copy of a training post would be the same post to the model).
    owner: dict[str, str] = {}
    for name, examples in sets.items():
        for e in examples:
            key = normalize_for_analysis(e.text)
            assert owner.setdefault(key, name) == name, f"{e.text[:30]} in {owner[key]} and {name}"
    for examples in sets.values():
        assert {e.sentiment for e in examples} == {"negative", "neutral", "positive"}
        assert all(e.topic is not None and e.critical is not None for e in examples)
    # Every validation file measures crisis recall; a training file may hold
    # none (bank_labelled_tone.jsonl is about sentiment).
    for path in VALIDATION_FILES:
        assert any(e.critical for e in sets[path.name]), path.name
    # The crisis model learns which signal a critical training post is about.
    signals = {s.name for s in load_lexicon().signals if s.critical}
    for path in TRAIN_FILES:
        assert all(e.signal in signals for e in load_jsonl(path) if e.critical), path.name


def test_second_labels_cover_their_validation_files_text_for_text() -> None:
    # The bench compares them row by row: a second labeller's file must hold
    # the very texts of the validation file it relabels, in order, every
    # label given, and never be mistaken for a file of its own.
    second = sorted(SECOND_LABELS_DIR.glob("*.jsonl"))
    relabelled = ("blind", "chorus", "forum", "longform", "month", "sentinel")
    assert [p.name for p in second] == sorted(f"bank_validation_{n}.jsonl" for n in relabelled)
    validation = {p.name: p for p in VALIDATION_FILES}
    for path in second:
        gold, relabelled = load_jsonl(validation[path.name]), load_jsonl(path)
        assert [e.text for e in relabelled] == [e.text for e in gold], path.name
        assert all(e.topic is not None and e.critical is not None for e in relabelled)
        # Labelled independently: the two must differ somewhere, or the file is a copy.
        assert any(
            (e.sentiment, e.topic, e.critical) != (g.sentiment, g.topic, g.critical)
            for e, g in zip(relabelled, gold, strict=True)
        ), path.name


def test_critical_thresholds_reach_the_recall_target_most_precisely() -> None:
    # Gold: 2 critical of 5, no lexicon hit. Up to 0.6 both are found, with one
    # false alarm above 0.2 (P 2/3, R 1): the highest such threshold wins the tie;
    # at 0.85 one is found alone (P 1, R 0.5) — short of the target.
    no_lex = [False] * 5
    threshold, confirm, f2 = critical_thresholds(
        [0.9, 0.6, 0.7, 0.2, 0.1], [True, True, False, False, False], no_lex, no_lex
    )
    assert threshold == 0.6 and f2 == pytest.approx(10 / 11)
    assert confirm == 0.0  # nothing to confirm: the tie goes to the lowest
    # 20 critical posts, 18 of them sure (0.9), two not (0.3); ten harmless at 0.35.
    # At 0.9: R 0.9, P 1 (F2 0.918); at 0.3: R 1, P 2/3 (F2 0.909). F2 alone would
    # pick 0.9 and miss two crises; the recall target picks 0.3 ...
    p = [0.9] * 18 + [0.3] * 2 + [0.35] * 10 + [0.1] * 10
    gold = [True] * 20 + [False] * 20
    no_lex = [False] * 40
    assert critical_thresholds(p, gold, no_lex, no_lex)[:2] == (0.3, 0.0)
    # ... and a bank that asks for less recall gets the F2 choice back.
    assert critical_thresholds(p, gold, no_lex, no_lex, recall_target=0.9)[:2] == (0.9, 0.0)
    # No rule reaches the target (two critical posts at 0.01): the best F2.
    p[18] = p[19] = 0.01
    assert critical_thresholds(p, gold, no_lex, no_lex)[0] == 0.9
    assert critical_thresholds([0.4, 0.3], [False, False], [False] * 2, [False] * 2) == (
        0.5,
        0.0,
        0.0,
    )


def test_confirm_threshold_overrules_the_lexicon_only_where_the_data_demands() -> None:
    # The lexicon fires on three posts: two critical (P(critical) 0.3 and 0.08) and
    # a harmless one (0.02, "曝光" in a post about a new logo). Confirming at
    # 0.03–0.08 keeps both critical posts and drops the false alarm; the tie goes
    # to the lowest such value.
    p = [0.3, 0.08, 0.02, 0.01]
    gold = [True, True, False, False]
    lexicon = [True, True, True, False]
    threshold, confirm, f2 = critical_thresholds(p, gold, lexicon, [False] * 4)
    assert confirm == 0.03 and f2 == pytest.approx(1.0)
    assert critical_flags(p, lexicon, [False] * 4, threshold, confirm) == gold
    # A blocked post (a denial, or praise) is raised by the lexicon path only.
    assert critical_flags([0.9], [False], [True], 0.5, 0.1) == [False]
    assert critical_flags([0.9], [True], [True], 0.5, 0.1) == [True]


def test_calibration_keeps_a_temperature_only_if_ece_improves() -> None:
    # Over-confident logits (P 0.98), right 3 times in 4: a temperature > 1
    # lowers both log-loss and ECE, so it is kept.
    logits = [[4.0, 0.0]] * 4
    temperature, report = calibrate(logits, ["a", "a", "a", "b"], ["a", "b"], folds=2)
    assert temperature > 1.0 and report["ece_after"] < report["ece_before"]
    # Here least log-loss softens (T = 1.64) but the top-label ECE gets worse
    # (0.180 → 0.203): the model ships at temperature 1.
    logits = [[3.0, 0.0], [3.0, 0.0], [2.0, 0.0], [3.0, 0.0]]
    logits += [[2.0, 0.0], [0.5, 0.0], [4.0, 0.0], [4.0, 0.0]]
    labels = ["a", "b", "a", "a", "a", "a", "a", "a"]
    temperature, report = calibrate(logits, labels, ["a", "b"], folds=2)
    assert report["fitted_temperature"] == pytest.approx(1.64)
    assert report["ece_fitted"] > report["ece_before"]
    assert temperature == 1.0 == report["temperature"]
    assert report["nll_after"] == report["nll_before"]


def test_fit_is_deterministic() -> None:
    from collections import Counter

    feats = [Counter({"w:好": 1}), Counter({"w:差": 1}), Counter({"w:好": 1, "w:差": 1})] * 2
    labels = ["positive", "negative", "neutral"] * 2
    args = dict(c=1.0, classes=["negative", "neutral", "positive"], meta={})
    table = FeatureTable(feats)
    first = fit_linear("m", table, range(6), labels, [1.0] * 6, **args)  # type: ignore[arg-type]
    second = fit_linear("m", table, range(6), labels, [1.0] * 6, **args)  # type: ignore[arg-type]
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
    assert opened == list(TRAIN_FILES)
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
# A full training: ≈ 3.5 min on the 2-core CI machine and over 5 min on a busy one
# (it hit the suite's 300 s default, which is there to stop a hung test).
@pytest.mark.timeout(900)
@pytest.mark.skipif(not DEFAULT_DATA_DIR.is_dir(), reason="public data ../shared/data absent")
def test_shipped_models_match_a_fresh_training(tmp_path: Path) -> None:
    from nlp.model import model_dir

    assert main(["--out-dir", str(tmp_path)]) == 0
    for name in ("sentiment", "topic", "crisis"):
        fresh = json.loads((tmp_path / f"{name}.json").read_text(encoding="utf-8"))
        shipped = json.loads((model_dir() / f"{name}.json").read_text(encoding="utf-8"))
        assert fresh == shipped, (
            f"{name}.json is stale: run python -m nlp.train (shipped trained with "
            f"{shipped['meta'].get('trained_with')}, this run {fresh['meta']['trained_with']})"
        )
