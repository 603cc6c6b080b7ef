"""The shipped models: load fast, get the known cases right, are deterministic."""

import json
from pathlib import Path

import pytest

from core.settings import Watchlist
from core.vocab import Sentiment, Topic
from nlp.analyzer import Analyzer
from nlp.features import has_sarcasm, text_features
from nlp.model import JointScorer, LinearTextModel, load_model, model_dir, save_model


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(Watchlist())


def test_shipped_models_are_small_json() -> None:
    for name in ("sentiment", "topic"):
        path = model_dir() / f"{name}.json"
        assert path.stat().st_size < 4_000_000
        assert path.read_text(encoding="utf-8").startswith("{")


def test_model_version_identifies_the_models(analyzer: Analyzer) -> None:
    a = analyzer.analyze("澜海银行")
    assert a.model_version == analyzer.model_version
    assert a.model_version.startswith("sent-") and "+topic-" in a.model_version


@pytest.mark.parametrize(
    ("text", "sentiment"),
    [
        ("客户经理很耐心", Sentiment.POSITIVE),  # SnowNLP calls this negative
        ("澜海銀行的客戶經理很耐心，幫我解決了問題", Sentiment.POSITIVE),
        ("澜海银行的柜员态度太差了，排队两个小时", Sentiment.NEGATIVE),
        ("澜海手机银行又闪退了，转账失败", Sentiment.NEGATIVE),
        ("请问澜海银行周末营业吗", Sentiment.NEUTRAL),
        ("澜海银行发布公告，部分网点春节期间营业时间调整", Sentiment.NEUTRAL),
    ],
)
def test_known_cases(analyzer: Analyzer, text: str, sentiment: Sentiment) -> None:
    assert analyzer.analyze(text).sentiment is sentiment


def test_negation_flips_praise(analyzer: Analyzer) -> None:
    assert analyzer.analyze("客户经理很不耐心").sentiment is Sentiment.NEGATIVE
    feats = text_features("客户经理不耐心", ["客户经理", "不", "耐心"])
    # A negated word is its n: feature instead of its plain one: 不耐心 is not 耐心.
    assert feats["n:耐心"] == 1 and feats["w:耐心"] == 0
    assert feats["w:不"] == 1 and feats["w:客户经理"] == 1
    # A second negator in scope starts a new scope and stays a plain word.
    feats = text_features("不是不满意", ["不是", "不", "满意"])
    assert feats["w:不是"] == feats["w:不"] == feats["n:满意"] == 1
    assert feats["n:不"] == 0 and feats["w:满意"] == 0


def test_sarcasm_cue() -> None:
    assert has_sarcasm("呵呵，服务真是太好了，排了三小时")
    assert not has_sarcasm("服务真是太好了")
    # Praise in scare quotes is ironic on its own (ASCII, curly and corner quotes).
    assert has_sarcasm("真是太'好'了，排队三小时")
    assert has_sarcasm("这就是所谓的“优质”服务")
    assert has_sarcasm("「贴心」的服务")
    assert not has_sarcasm("他说“好的”就挂了")


@pytest.mark.parametrize(
    ("text", "sentiment"),
    [
        ("客户经理很耐心", Sentiment.POSITIVE),
        ("一点都不满意", Sentiment.NEGATIVE),
        ("柜员一点也不耐心，问两句就不耐烦", Sentiment.NEGATIVE),
        ("真是太'好'了，排队三小时", Sentiment.NEGATIVE),
        ("澜海银行的服务真是太“贴心”了，电话转了六次人工", Sentiment.NEGATIVE),
        ("不得不说，这次客服处理得很及时", Sentiment.POSITIVE),
    ],
)
def test_negation_and_sarcasm_on_bank_sentences(
    analyzer: Analyzer, text: str, sentiment: Sentiment
) -> None:
    assert analyzer.analyze(text).sentiment is sentiment


def test_negation_scope_stops_at_punctuation() -> None:
    feats = text_features("不满意，服务好", ["不", "满意", "，", "服务", "好"])
    assert feats["n:满意"] == 1
    assert feats["n:服务"] == 0 and feats["w:服务"] == 1


def test_sarcastic_praise_is_negative(analyzer: Analyzer) -> None:
    assert analyzer.analyze("呵呵，澜海银行的服务真是太好了，排了三小时").sentiment is (
        Sentiment.NEGATIVE
    )


def test_score_is_ordered(analyzer: Analyzer) -> None:
    good = analyzer.analyze("感谢澜海银行，服务很周到").sentiment_score
    bad = analyzer.analyze("澜海银行乱扣费，投诉无门").sentiment_score
    assert 0.0 <= bad < 0.5 < good <= 1.0


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("澜海信用卡年费乱扣", Topic.CREDIT_CARD),
        ("澜海的理财产品跌破净值了", Topic.WEALTH_MANAGEMENT),
        ("房贷LPR下调后月供没变", Topic.LOANS),
        ("手机银行登录不上", Topic.DIGITAL_CHANNELS),
    ],
)
def test_topics(analyzer: Analyzer, text: str, topic: Topic) -> None:
    a = analyzer.analyze(text)
    assert a.topic is topic
    assert 0.0 < a.topic_confidence <= 1.0


def test_deterministic_across_instances(analyzer: Analyzer) -> None:
    text = "澜海银行信用卡被盗刷，客服推诿，我要投诉"
    assert analyzer.analyze(text) == Analyzer(Watchlist()).analyze(text)


def test_model_json_round_trip(tmp_path: Path) -> None:
    model = load_model("topic")
    path = save_model(model, tmp_path)
    again = load_model("topic", tmp_path)
    feats = text_features("信用卡年费", ["信用卡", "年费"])
    assert again.predict_proba(feats) == model.predict_proba(feats)
    assert json.loads(path.read_text(encoding="utf-8"))["version"] == model.version


def test_load_rejects_other_formats() -> None:
    with pytest.raises(ValueError, match="format"):
        LinearTextModel.from_json({"format": "pickle"})


def test_joint_scorer_equals_each_model() -> None:
    sentiment, topic = load_model("sentiment"), load_model("topic")
    feats = text_features("澜海信用卡客服态度差", ["澜海", "信用卡", "客服", "态度", "差"])
    feats["l:credit_card"] = 1
    joint = JointScorer([sentiment, topic]).predict_proba(feats)
    for got, model in zip(joint, (sentiment, topic), strict=True):
        want = model.predict_proba(feats)
        assert got.keys() == want.keys()
        assert all(abs(got[k] - want[k]) < 1e-9 for k in want)


def test_package_level_analyze_and_analyze_many() -> None:
    import nlp

    one = nlp.analyze("澜海银行的客户经理很耐心")
    assert one.sentiment is Sentiment.POSITIVE
    assert nlp.analyze_many(["澜海银行的客户经理很耐心", ""]) == [one, nlp.analyze("")]


def test_empty_text_is_neutral_other(analyzer: Analyzer) -> None:
    a = analyzer.analyze("")
    assert a.sentiment is Sentiment.NEUTRAL and a.sentiment_score == 0.5
    assert a.topic is Topic.OTHER and a.topic_confidence == 0.0
    assert a.signals == [] and not a.critical and a.risk_score == 0.0
