"""Crisis signals with their triggers, the critical flag, risk, entities and PII."""

import pytest

from core.settings import Branch, NamedEntity, Product, Watchlist
from nlp.analyzer import Analyzer
from nlp.lexicon import load_lexicon
from nlp.pii import mask_pii

WATCHLIST = Watchlist(
    bank=NamedEntity(name="澜海银行", aliases=["澜海"]),
    exclusions=["澜海公园"],
    branches=[Branch(name="澜海银行滨江支行", aliases=["滨江支行"])],
    products=[Product(name="澜海稳盈3号", aliases=["稳盈3号"])],
)


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(WATCHLIST)


def test_lexicon_names_every_signal_of_the_issue() -> None:
    names = {s.name for s in load_lexicon().signals}
    assert names == {
        "bank_run",
        "collective_action",
        "data_leak",
        "fraud_many",
        "regulator",
        "media_expose",
        "violence",
    }


def test_cue_words_are_the_topics_and_the_signals_under_distinct_names() -> None:
    lex = load_lexicon()
    cues = lex.cue_words()
    topics = {t.value: words for t, words in lex.topics.items()}
    signals = {s.name: s.words for s in lex.signals}
    assert not topics.keys() & signals.keys()  # one l:<name> never means two lists
    assert cues == {**topics, **signals}


@pytest.mark.parametrize(
    ("text", "signal", "trigger"),
    [
        ("听说澜海银行要倒闭了，赶紧取钱", "bank_run", "倒闭"),
        ("我们三十个人约好一起去总行拉横幅", "collective_action", "拉横幅"),
        ("澜海银行客户信息泄露，天天接骚扰电话", "data_leak", "信息泄露"),
        ("冒充澜海客服，多人被骗", "fraud_many", "多人被骗"),
        ("澜海银行被金融监管总局罚款三百万", "regulator", "罚款"),
        ("央视曝光澜海银行违规收费", "media_expose", "曝光"),
        ("再不赔钱我就去网点跳楼", "violence", "跳楼"),
        ("聽說澜海銀行要倒閉了，趕緊取錢", "bank_run", "倒闭"),  # traditional script
    ],
)
def test_signal_and_its_trigger(analyzer: Analyzer, text: str, signal: str, trigger: str) -> None:
    a = analyzer.analyze(text)
    found = {s.name: s for s in a.signals}
    assert signal in found
    assert trigger in found[signal].triggers
    assert a.critical and a.risk_score >= 0.6


def test_a_trigger_word_the_model_reads_as_harmless_is_reported_not_escalated(
    analyzer: Analyzer,
) -> None:
    # 曝光 is also "unveiled": the shipped crisis model does not confirm the lexicon here.
    a = analyzer.analyze("澜海银行新logo曝光，蓝色波浪换成了海鸥")
    assert [(s.name, s.source, s.critical) for s in a.signals] == [
        ("media_expose", "lexicon", False)
    ]
    assert not a.critical and a.risk_score < 0.6


def test_denial_reports_signal_but_is_not_critical(analyzer: Analyzer) -> None:
    a = analyzer.analyze("澜海银行发布澄清公告：近期挤兑传闻系谣言，经营一切正常")
    assert "bank_run" in a.signal_names
    assert not a.critical
    assert all(not s.critical for s in a.signals)


def test_risk_orders_posts(analyzer: Analyzer) -> None:
    praise = analyzer.analyze("澜海银行客户经理很专业，点赞").risk_score
    complaint = analyzer.analyze("澜海银行乱收年费，客服推诿").risk_score
    run = analyzer.analyze("澜海银行要倒闭了，大家赶紧取钱，已经有人拉横幅").risk_score
    assert 0.0 <= praise < 0.2 < complaint < run <= 1.0


def test_entities_and_exclusions(analyzer: Analyzer) -> None:
    a = analyzer.analyze("稳盈3号亏了，滨江支行不管", title="澜海公园旁")
    assert a.entities == ["澜海银行", "澜海银行滨江支行", "澜海稳盈3号"]
    assert analyzer.analyze("去澜海公园散步").entities == []


def test_keywords_skip_the_bank_name(analyzer: Analyzer) -> None:
    a = analyzer.analyze("澜海银行理财产品跌破净值，理财经理失联")
    assert "澜海银行" not in a.keywords and "澜海" not in a.keywords
    assert "跌破净值" in a.keywords


def test_masked_text_is_the_original_masked(analyzer: Analyzer) -> None:
    a = analyzer.analyze("澜海銀行 電話13812345678")
    assert a.masked_text == "澜海銀行 電話138****5678"


@pytest.mark.parametrize(
    ("text", "shown", "hidden"),
    [
        ("电话１３８１２３４５６７８，好", "138****5678，好", "12345678"),
        ("座机010-62345678转分机", "010-****5678", "6234"),
        ("办公室 0755 87654321", "0755-****4321", "8765"),
        ("邮箱ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ", "z***@example.com", "hang"),
        ("身份证１１０１０１１９９００３０７１２３４", "1101**********1234", "19900307"),
    ],
)
def test_pii_gaps_closed(text: str, shown: str, hidden: str) -> None:
    masked = mask_pii(text)
    assert shown in masked
    assert hidden not in masked


def test_pii_keeps_dates_and_amounts() -> None:
    text = "2026-11-23 收益率3.5%，金额100000元，订单尾号1234"
    assert mask_pii(text) == text
