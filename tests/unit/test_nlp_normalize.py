"""Normalisation for analysis: traditional → simplified, full-width, markup; storage text kept."""

import pytest

from nlp.normalize import clean_text, normalize_for_analysis, strip_markup, to_simplified


def test_traditional_to_simplified() -> None:
    assert to_simplified("澜海銀行的客戶經理很耐心，幫我解決了問題") == (
        "澜海银行的客户经理很耐心，帮我解决了问题"
    )
    assert to_simplified("") == ""


def test_full_width_folded_and_lower_cased() -> None:
    assert normalize_for_analysis("ＡＰＰ閃退１２３次") == "app闪退123次"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("澜海银行太差 http://t.cn/AbC12?x=1 真的", "澜海银行太差 真的"),
        ("看这里www.example.com/a 好", "看这里 好"),
        ("@小王_01 澜海银行排队两小时", "澜海银行排队两小时"),
        ("#澜海银行维权# 我们要说法", "澜海银行维权 我们要说法"),
        ("澜海理财亏了[泪][怒]", "澜海理财亏了"),
        ("{%#静下心来听音乐#%} 好", "静下心来听音乐 好"),
    ],
)
def test_markup_stripped_for_analysis(raw: str, expected: str) -> None:
    assert normalize_for_analysis(raw) == expected


def test_hashtag_words_are_kept() -> None:
    assert "澜海银行" in strip_markup("#澜海银行#")


def test_stored_text_keeps_what_the_author_wrote() -> None:
    raw = "澜海銀行 http://t.cn/x @小王 #維權#"
    assert clean_text(raw) == raw


def test_newlines_survive_as_sentence_breaks() -> None:
    assert normalize_for_analysis("第一行\n\n  第二行 ") == "第一行\n第二行"
