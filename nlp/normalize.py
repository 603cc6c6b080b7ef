"""Text normalisation before analysis and storage.

Two different jobs live here:

* ``clean_text`` is for *storage*: it keeps what the author wrote (including
  traditional characters, URLs and @mentions) and removes only what the site
  added: runs of whitespace, and boilerplate or spam lines such as
  "已阅读5页，还剩13页未读" or copyright footers.
* ``normalize_for_analysis`` is for *models and rules*: traditional →
  simplified (OpenCC ``t2s``), full-width → half-width, lower case, and URLs,
  @mentions, ``#话题#`` marks and Weibo ``[表情]`` codes stripped, so that
  "澜海銀行" and "澜海银行", "ＡＰＰ" and "app" look the same to the models.
  Its output is never stored or shown.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from typing import Protocol

# Lines that a site or a content farm adds around an article, never the author.
_BOILERPLATE = [
    re.compile(p)
    for p in (
        r"已阅读\s*\d+\s*页",
        r"还剩\s*\d+\s*页未读",
        r"^(版权所有|copyright|©)",
        r"(?i)all rights reserved",
        r"^免责声明",
        r"扫码(关注|下载)",
        r"(点击|立即)下载\s*app",
        r"^(上一篇|下一篇)[:：]",
        r"^(相关推荐|猜你喜欢|热门文章)",
        r"^分享到[:：]?",
        r"(?i)^(加微信|加v|\+v|vx)[:：]?\s*\w+",
    )
]

_URL = re.compile(
    r"(?i)(?<![a-z0-9.])(?:https?://|www\.)[^\s\u3000-\u303f\uff00-\uffef\u4e00-\u9fff]+"
)
# @name up to whitespace or punctuation (Weibo names may contain CJK, letters, digits, _ and -).
_MENTION = re.compile(r"@[\w\-\u4e00-\u9fff]{1,30}")
# #话题# keeps its words (they are content), only the marks go.
_HASHTAG = re.compile(r"#([^#\n]{1,40})#")
# Weibo emoticon codes such as [哈哈] [doge] [二哈]: they leak labels in public
# data sets (see the data README) and say little about a bank.
_EMOTICON = re.compile(r"\[[\w\u4e00-\u9fff]{1,8}\]")
# Weibo topic/link markup {%…%}.
_WEIBO_MARKUP = re.compile(r"\{%(.*?)%\}")
# Every pattern above needs one of these: a URL scheme or www., @, #, [ or {%.
_MAY_HAVE_MARKUP = re.compile(r"(?i)https?://|www\.|[@#\[]|\{%")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
# What the line handling below would change: a line boundary of str.splitlines,
# or what _SPACES would change (a tab, NBSP, ideographic space, two spaces).
_LINES_OR_SPACES = re.compile(r"[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029\t\u00a0\u3000]|  ")


def is_boilerplate(line: str) -> bool:
    """True if ``line`` is site chrome or spam rather than the author's text."""
    stripped = line.strip()
    return any(p.search(stripped) for p in _BOILERPLATE)


def clean_text(text: str) -> str:
    """Normalise Unicode (NFC), collapse whitespace per line and drop boilerplate lines.

    Paragraph breaks are kept as single newlines; empty lines are removed. Returns
    ``""`` for text that is only boilerplate. Traditional characters, URLs and
    mentions are kept: this is the text that is stored and shown.
    """
    text = unicodedata.normalize("NFC", text).replace("\u00a0", " ").replace("\u3000", " ")
    lines = []
    for raw in text.splitlines():
        line = " ".join(raw.split())
        if line and not is_boilerplate(line):
            lines.append(line)
    return "\n".join(lines)


# Full-width ASCII (！…～) and the ideographic space → their NFKC forms. Chinese
# posts are full of ，！？（）: mapped first, most posts then pass NFKC's quick
# check and skip the full normalisation. NFKC(mapped) == NFKC(text), because the
# map applies NFKC's own single-character mappings.
_FULL_WIDTH_ASCII = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def fold_width(text: str) -> str:
    """NFKC: full-width ASCII letters, digits and punctuation → half-width (for matching)."""
    text = text.translate(_FULL_WIDTH_ASCII)
    # The quick check is ≈ 30× cheaper than normalising.
    if unicodedata.is_normalized("NFKC", text):
        return text
    return unicodedata.normalize("NFKC", text)


class _Converter(Protocol):
    def convert(self, text: str) -> str: ...


_opencc_lock = threading.Lock()


# Characters that OpenCC t2s changes only inside a phrase (回覆 → 回复, 藉口 → 借口)
# while leaving them alone on their own. Found by dumping TSPhrases.ocd2 with
# the wheel's ``opencc_dict`` tool (tests/unit/test_nlp_fastpath.py re-checks
# this when the tool is present); every other character t2s changes is found
# by converting it alone, at load.
_T2S_PHRASE_CHARS = frozenset("么俱哩坏彷沈甦瞭藉衹覆")
# CJK blocks in which OpenCC's t2s dictionaries have keys (extension A, the
# basic block, compatibility ideographs, extensions B–H).
_CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x323AF))


@lru_cache(maxsize=1)
def _t2s() -> tuple[_Converter, frozenset[str]]:
    """The converter and every character whose presence can make t2s change a text."""
    # The `opencc` wheel (C++ core with its dictionaries inside the wheel) works
    # offline and converts a post in a few µs; the pure-Python
    # opencc-python-reimplemented measured ≈ 35× slower here.
    import opencc

    converter: _Converter = opencc.OpenCC("t2s")
    chars = [chr(c) for low, high in _CJK_RANGES for c in range(low, high + 1)]
    # One convert of every character on its own line (≈ 40 ms, once per process).
    converted = converter.convert("\n".join(chars)).split("\n")
    if len(converted) != len(chars):  # a line break was merged away: trust no shortcut
        return converter, frozenset(chars)
    changing = frozenset(c for c, out in zip(chars, converted, strict=True) if c != out)
    return converter, changing | _T2S_PHRASE_CHARS


def to_simplified(text: str) -> str:
    """Traditional Chinese → simplified (OpenCC ``t2s``); other characters are unchanged."""
    if not text:
        return text
    converter, triggers = _t2s()
    # Most posts are written in simplified Chinese: skip the conversion when no
    # character of the text can change (same result, a set test instead of a convert).
    if triggers.isdisjoint(text):
        return text
    with _opencc_lock:  # the binding gives no thread-safety promise; a convert is µs
        return converter.convert(text)


def simplify_and_fold(text: str) -> str:
    """Half-width (NFKC) and simplified: the shared first step of analysis and name matching."""
    return to_simplified(fold_width(text))


def strip_markup(text: str) -> str:
    """Remove URLs, @mentions, Weibo emoticon codes and ``{%…%}``; keep hashtag words.

    ``"#澜海银行# 太差 @小王 http://t.cn/x"`` → ``"澜海银行 太差"`` (modulo spaces).
    """
    if not _MAY_HAVE_MARKUP.search(text):  # most posts: one search instead of five subs
        return text
    text = _URL.sub(" ", text)
    text = _MENTION.sub(" ", text)
    text = _WEIBO_MARKUP.sub(r" \1 ", text)
    text = _HASHTAG.sub(r" \1 ", text)
    return _EMOTICON.sub(" ", text)


def normalize_for_analysis(text: str) -> str:
    """The form of ``text`` that models and rules see (never stored or shown).

    NFKC (full-width → half-width), OpenCC traditional → simplified, URLs,
    @mentions, emoticon codes and hashtag marks removed, ASCII lower-cased,
    runs of spaces collapsed. Newlines are kept as sentence breaks.
    Deterministic; ``""`` stays ``""``.
    """
    if not text:
        return ""
    return normalize_folded(simplify_and_fold(text))


def normalize_folded(folded: str) -> str:
    """:func:`normalize_for_analysis` of text already passed through :func:`simplify_and_fold`.

    Lets the analyzer fold a post once for both the models and name matching.
    """
    text = strip_markup(folded).lower()
    if not _LINES_OR_SPACES.search(text):
        return text.strip()  # one line, no run of spaces (most posts): nothing to collapse
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)
