"""The trained crisis model beside the lexicon: when it raises a signal, what it says, and
what stops it (denials, praise, a lexicon signal of the same name, its threshold).

The mechanics are tested with a tiny hand-made crisis model next to the shipped
sentiment and topic models, so they do not depend on what the shipped crisis
model happens to learn; the shipped model gets a few known cases of its own.
"""

import shutil
from pathlib import Path

import pytest

from core.settings import Watchlist
from nlp.analyzer import Analyzer
from nlp.lexicon import load_lexicon
from nlp.model import LinearTextModel, load_model, model_dir, save_model

SIGNALS = tuple(s.name for s in load_lexicon().signals if s.critical)


def _tiny_crisis(threshold: float, confirm: float = 0.0) -> LinearTextModel:
    """Votes bank_run on the characters 取款机 / 空了 / 限额, nothing else.

    Without them P(critical) is its prior, e^0·7 / (e^2 + 7) ≈ 0.486.
    """
    run = SIGNALS.index("bank_run") + 1
    row = [0.0] * (len(SIGNALS) + 1)
    row[run] = 6.0
    return LinearTextModel(
        name="crisis",
        version="test",
        classes=("none", *SIGNALS),
        weights={
            "c:取款机": (1.0, tuple(row)),
            "c:空了": (1.0, tuple(row)),
            "w:限额": (1.0, tuple(row)),
        },
        intercept=(2.0, *([0.0] * len(SIGNALS))),
        meta={"critical_threshold": threshold, "confirm_threshold": confirm},
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    for name in ("sentiment", "topic"):
        shutil.copy(model_dir() / f"{name}.json", directory / f"{name}.json")
    save_model(_tiny_crisis(0.5), directory)
    return directory


@pytest.fixture(scope="module")
def analyzer(models: Path) -> Analyzer:
    return Analyzer(Watchlist(), model_dir=models)


@pytest.fixture(scope="module")
def shipped() -> Analyzer:
    return Analyzer(Watchlist())


# No lexicon trigger in it (checked below): only the model can see the run.
RUN = "澜海那边的取款机全都空了，柜台说每天限额两千，门口全是人"


def test_model_raises_a_critical_signal_the_lexicon_misses(analyzer: Analyzer) -> None:
    a = analyzer.analyze(RUN)
    assert [s.source for s in a.signals] == ["model"]
    (signal,) = a.signals
    assert signal.name == "bank_run" and signal.critical and a.critical
    # Its explanation: the n-grams that pushed it, longest distinct ones, no fragments.
    assert signal.triggers and set(signal.triggers) <= {"取款机", "空了", "限额"}
    assert a.risk_score >= 0.6
    assert "bank_run" in a.signal_names


def test_a_denial_keeps_the_signal_but_not_the_escalation(analyzer: Analyzer) -> None:
    a = analyzer.analyze("澜海回应：取款机都空了的说法不实")
    model = [s for s in a.signals if s.source == "model"]
    assert model and not any(s.critical for s in model) and not a.critical


def test_praise_raises_no_model_signal(analyzer: Analyzer) -> None:
    a = analyzer.analyze("澜海的取款机从来没空过，服务太好了，非常满意，点赞")
    assert a.sentiment.value == "positive"
    assert not [s for s in a.signals if s.source == "model"]


def test_no_second_signal_when_the_lexicon_named_it(analyzer: Analyzer) -> None:
    a = analyzer.analyze("澜海取款机都空了，挤兑了，大家快去")
    assert [(s.name, s.source) for s in a.signals if s.name == "bank_run"] == [
        ("bank_run", "lexicon")
    ]


def _analyzer_with(
    crisis: LinearTextModel, models: Path, directory: Path, **kwargs: float
) -> Analyzer:
    """An analyzer of the shipped sentiment and topic models and ``crisis``."""
    for name in ("sentiment", "topic"):
        shutil.copy(models / f"{name}.json", directory / f"{name}.json")
    save_model(crisis, directory)
    return Analyzer(Watchlist(), model_dir=directory, **kwargs)


def test_threshold_comes_from_the_model_file(models: Path, tmp_path: Path) -> None:
    # P(critical) of RUN: ≈ 0.9998
    strict = _analyzer_with(_tiny_crisis(0.9999), models, tmp_path)
    assert not strict.analyze(RUN).signals
    assert "+crisis-test." in strict.model_version


def test_lexicon_signal_escalates_only_when_the_model_confirms_it(
    models: Path, tmp_path: Path
) -> None:
    # Confirm at 0.6: a bare 挤兑 (P(critical) ≈ 0.49, the prior) is reported, not
    # escalated, and weighs half in the risk score; with the run's words
    # (≈ 0.9998) the same lexicon signal escalates.
    analyzer = _analyzer_with(_tiny_crisis(0.99995, confirm=0.6), models, tmp_path)
    weak = analyzer.analyze("澜海挤兑了，大家快去")
    assert [(s.name, s.source, s.critical) for s in weak.signals] == [
        ("bank_run", "lexicon", False)
    ]
    assert "挤兑" in weak.signals[0].triggers and not weak.critical and weak.risk_score < 0.6
    strong = analyzer.analyze("澜海取款机都空了，挤兑了，大家快去")
    assert [(s.name, s.source, s.critical) for s in strong.signals] == [
        ("bank_run", "lexicon", True)
    ]
    assert strong.critical and strong.risk_score >= 0.6
    # A configured threshold below the trained confirm threshold lowers it too:
    # confirming the lexicon never asks more than raising a signal alone.
    lenient = Analyzer(Watchlist(), model_dir=tmp_path, critical_threshold=0.3)
    assert lenient.analyze("澜海挤兑了，大家快去").critical


def test_lexicon_verdict_is_the_analyzers_without_the_model(models: Path, tmp_path: Path) -> None:
    """Lexicon.critical_in (training, "lexicon alone") agrees with the analyzer's
    lexicon path when the model confirms everything and raises nothing."""
    from nlp.evaluate import load_jsonl
    from nlp.normalize import normalize_for_analysis
    from nlp.train import BANK_TRAIN_HARD

    analyzer = _analyzer_with(_tiny_crisis(1.0, confirm=0.0), models, tmp_path)
    lexicon = load_lexicon()
    examples = load_jsonl(BANK_TRAIN_HARD)
    verdicts = [lexicon.critical_in(normalize_for_analysis(e.text)) for e in examples]
    assert any(verdicts) and not all(verdicts)
    for e, verdict in zip(examples, verdicts, strict=True):
        assert analyzer.analyze(e.text).critical == verdict, e.text


def test_shipped_crisis_model_has_thresholds_chosen_at_train_time() -> None:
    model = load_model("crisis")
    assert model.classes == ("none", *SIGNALS)
    threshold = model.meta["critical_threshold"]
    confirm = model.meta["confirm_threshold"]
    chosen = model.meta["calibration"]["critical_threshold"]
    assert 0.05 <= threshold <= 0.95 and chosen["threshold"] == threshold
    assert 0.0 <= confirm <= threshold and chosen["confirm_threshold"] == confirm
    recall, _ = chosen["cv_recall_precision"]  # cross-fitted on the training posts
    assert recall >= 0.9


@pytest.mark.parametrize(
    "text",
    [
        # Written for this test, none in any data file; no lexicon trigger in any.
        "澜海的ATM全停了，柜台一天只让取两千，群里说明天可能连两千都没有",
        "澜海银行好几百个客户的身份证照片和手机号在网上打包卖，一份才几十块",
        "我们四十多个澜海的储户明天早上八点在总行楼下集合，统一穿白衣服",
    ],
)
def test_shipped_model_catches_paraphrased_crises(shipped: Analyzer, text: str) -> None:
    a = shipped.analyze(text)
    assert not [s for s in a.signals if s.source == "lexicon" and s.critical]
    assert a.critical, [(s.name, s.source, s.triggers) for s in a.signals]


def test_pushes_equal_the_model_weights(shipped: Analyzer) -> None:
    """JointScorer.pushes (the explanation's fast path) against the plain arithmetic."""
    import math

    from nlp.model import GRAM_PREFIX

    crisis = load_model("crisis")
    run = crisis.classes.index("bank_run")
    for text in (RUN, "澜海澜海，取款机取款机空了空了", ""):
        features = shipped._prepare(text, "").features
        pushes = shipped._scorer.pushes(features, 2, run, 0)
        assert len(pushes) == len(features)
        for (feat, count), push in zip(features.items(), pushes, strict=True):
            entry = crisis.weights.get(feat if ":" in feat else GRAM_PREFIX + feat)
            expected = 0.0
            if entry is not None:
                idf, coef = entry
                expected = (1 + math.log(count)) * idf * (coef[run] - coef[0])
            assert push == pytest.approx(expected, abs=1e-9)


def test_a_configured_threshold_overrides_the_trained_one(models: Path) -> None:
    strict = Analyzer(Watchlist(), model_dir=models, critical_threshold=0.9999)
    assert not strict.analyze(RUN).signals  # P(critical) ≈ 0.9998 < 0.9999
    # Analyses made under another threshold say so in their version.
    assert strict.model_version.endswith("+crit0.9999")
    default = Analyzer(Watchlist(), model_dir=models)
    assert "+crit" not in default.model_version and default.analyze(RUN).critical


def test_nlp_settings_reach_the_analyzer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.errors import ConfigError
    from core.settings import load_settings
    from yuqing.bootstrap import build_analyzer

    config = tmp_path / "yuqing.yaml"
    config.write_text("nlp:\n  critical_threshold: 0.3\n", encoding="utf-8")
    assert build_analyzer(load_settings(config)).model_version.endswith("+crit0.3")
    config.write_text("nlp:\n  critical_threshold: 1.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="critical_threshold"):
        load_settings(config)
    monkeypatch.setenv("YUQING_NLP__CRITICAL_THRESHOLD", "0.25")
    assert load_settings().nlp.critical_threshold == 0.25
