"""Keywords of a set of posts."""

from nlp.keywords import keywords_of_words, top_keywords

POSTS = [
    "澜海银行理财产品跌破净值，理财经理不接电话",
    "澜海的理财产品亏了，跌破净值还收管理费",
    "理财产品跌破净值，要求澜海银行赔偿",
    "澜海信用卡年费乱收",
]


def test_top_keywords_finds_the_shared_theme() -> None:
    got = top_keywords(POSTS, 5, exclude=["澜海银行", "澜海"])
    words = [w for w, _ in got]
    assert words[0] in {"跌破净值", "理财产品"}
    assert "跌破净值" in words and "理财产品" in words
    assert got[0][1] == 1.0
    assert all(0 < s <= 1 for _, s in got)
    assert "澜海" not in words and "澜海银行" not in words


def test_top_keywords_drops_stopwords_numbers_and_single_chars() -> None:
    words = [w for w, _ in top_keywords(["我们的 2026 年 100% 了 啊 银行 亏损"], 10)]
    assert words == ["亏损"]


def test_top_keywords_deterministic_and_empty() -> None:
    assert top_keywords(POSTS, 8) == top_keywords(list(POSTS), 8)
    assert top_keywords([], 5) == []
    assert top_keywords(["的了是"], 5) == []


def test_top_keywords_normalises_traditional() -> None:
    words = [w for w, _ in top_keywords(["澜海銀行理財產品跌破淨值"], 3, exclude=["澜海银行"])]
    assert "跌破净值" in words


def test_keywords_of_words_limit() -> None:
    assert len(keywords_of_words(["信用卡", "年费", "催收", "额度"], k=2)) == 2


def test_keyword_words_are_the_keywords_without_scores() -> None:
    from nlp.keywords import clear_word_cache, keyword_words
    from nlp.segment import cut_for_analysis

    for text in POSTS:
        words = cut_for_analysis(text)
        want = [w for w, _ in keywords_of_words(words, 5, exclude=["澜海"])]
        clear_word_cache()  # the cache must not change the answer
        assert keyword_words(words, 5, exclude=["澜海"]) == want
        assert "澜海" not in want
