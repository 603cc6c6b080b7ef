import pytest

from core.settings import Branch, NamedEntity, Product, Watchlist
from core.vocab import Sentiment, Topic
from nlp.analyzer import Analyzer
from nlp.mentions import MentionMatcher
from nlp.normalize import clean_text
from nlp.pii import mask_pii
from nlp.segment import tokenize

WATCHLIST = Watchlist(
    bank=NamedEntity(name="澜海银行", aliases=["澜海"]),
    exclusions=["澜海公园", "澜海大道"],
    branches=[Branch(name="澜海银行滨江支行", aliases=["滨江支行"])],
    products=[Product(name="澜海稳盈3号", aliases=["稳盈3号"])],
)


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(WATCHLIST)


@pytest.mark.parametrize(
    ("text", "shown", "hidden"),
    [
        ("客户电话13812345678请回电", "138****5678", "13812345678"),
        ("联系 +86 139-1234-5678", "139****5678", "1234"),
        ("身份证号110101199003071234", "1101**********1234", "19900307"),
        ("身份证11010119900307123X", "1101**********123X", "19900307"),
        ("卡号6222021234567890扣款", "6222********7890", "021234567"),
        ("卡号 6222 0212 3456 7890 123", "6222 ****", "3456"),
        ("邮箱 zhang.san@example.com", "z***@example.com", "zhang.san"),
    ],
)
def test_pii_masking(text: str, shown: str, hidden: str) -> None:
    masked = mask_pii(text)
    assert shown in masked
    assert hidden not in masked


def test_pii_leaves_ordinary_numbers() -> None:
    text = "2026-11-23 14:05 收益率3.5%，金额100000元"
    assert mask_pii(text) == text


def test_mentions_respect_exclusions() -> None:
    matcher = MentionMatcher(WATCHLIST)
    assert matcher.match("今天去澜海公园散步，顺路走澜海大道") == []
    assert matcher.match("澜海公园旁边的澜海银行网点") == ["澜海银行"]
    assert matcher.match("稳盈3号亏了") == ["澜海银行", "澜海稳盈3号"]
    assert matcher.match("滨江支行排队两小时") == ["澜海银行", "澜海银行滨江支行"]
    assert matcher.match("隔壁银行理财也亏了") == []


def test_clean_text_drops_boilerplate() -> None:
    raw = "澜海银行理财亏损\n\n  已阅读5页，还剩13页未读  \n版权所有 © 2026 某某网\n客户  很生气"
    assert clean_text(raw) == "澜海银行理财亏损\n客户 很生气"


def test_tokenize_is_search_mode_and_drops_punctuation() -> None:
    tokens = tokenize("澜海银行，理财产品！")
    assert "澜海" in tokens or "澜海银行" in tokens
    assert "银行" in tokens
    assert "，" not in tokens and "！" not in tokens


def test_analyzer_crisis_post(analyzer: Analyzer) -> None:
    a = analyzer.analyze("澜海稳盈3号跌破净值，亏损20%，我们在滨江支行集体维权", title="")
    assert a.sentiment is Sentiment.NEGATIVE
    assert a.topic is Topic.WEALTH_MANAGEMENT
    assert "collective_action" in a.signal_names
    assert a.critical and a.risk_score >= 0.6
    assert a.entities == ["澜海银行", "澜海银行滨江支行", "澜海稳盈3号"]


def test_analyzer_bank_run_rumor(analyzer: Analyzer) -> None:
    a = analyzer.analyze("听说澜海银行要倒闭了，网点取不出钱，大家赶紧取钱")
    assert a.topic is Topic.LIQUIDITY_RUMOR
    bank_run = next(s for s in a.signals if s.name == "bank_run")
    assert "取不出钱" in bank_run.triggers and bank_run.critical


def test_configured_branches_and_products_reach_the_models_as_in_training(
    analyzer: Analyzer,
) -> None:
    # Training blanks only the bank's own names (its files name fictional
    # branches and products freely). Blanking a configured branch here too
    # once turned "…在滨江支行集体维权" into text unlike any training post and
    # dropped it below the confirm threshold; a watchlist with branches and
    # products must score a post exactly as one without them, entities apart.
    bare = Analyzer(Watchlist(bank=WATCHLIST.bank, exclusions=WATCHLIST.exclusions))
    for text in (
        "澜海稳盈3号跌破净值，亏损20%，我们在滨江支行集体维权",
        "滨江支行的客户经理很耐心，稳盈3号收益也不错",
    ):
        configured, plain = analyzer.analyze(text), bare.analyze(text)
        assert configured.entities != plain.entities
        assert (configured.sentiment_score, configured.topic_confidence, configured.risk_score) == (
            plain.sentiment_score,
            plain.topic_confidence,
            plain.risk_score,
        )
        assert configured.critical == plain.critical


def test_analyzer_praise_is_positive(analyzer: Analyzer) -> None:
    a = analyzer.analyze("澜海银行的客户经理很耐心，帮我解决了问题，点赞")
    assert a.sentiment is Sentiment.POSITIVE
    assert not a.critical and a.risk_score < 0.2


def test_analyzer_masks_and_is_deterministic(analyzer: Analyzer) -> None:
    text = "澜海银行信用卡被盗刷，我的电话13812345678"
    first, second = analyzer.analyze(text), analyzer.analyze(text)
    assert first == second
    assert "13812345678" not in first.masked_text
    assert analyzer.analyze_many([("", text)]) == [first]


def test_analyzer_handles_empty_text(analyzer: Analyzer) -> None:
    a = analyzer.analyze("")
    assert a.topic is Topic.OTHER and a.signals == [] and a.entities == []


def test_mentions_match_traditional_spelling_without_traditional_aliases() -> None:
    matcher = MentionMatcher(WATCHLIST)
    assert matcher.match("剛經過瀾海銀行濱江支行，門口排了很長的隊") == [
        "澜海银行",
        "澜海银行滨江支行",
    ]
    assert matcher.match("週末去瀾海公園散步") == []
