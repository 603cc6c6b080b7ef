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
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")


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


def fold_width(text: str) -> str:
    """Full-width ASCII letters, digits and punctuation → half-width (for matching)."""
    return unicodedata.normalize("NFKC", text)


class _Converter(Protocol):
    def convert(self, text: str) -> str: ...


_opencc_lock = threading.Lock()


@lru_cache(maxsize=1)
def _t2s() -> _Converter:
    # The `opencc` wheel (C++ core with its dictionaries inside the wheel) works
    # offline and converts a post in a few µs; the pure-Python
    # opencc-python-reimplemented measured ≈ 35× slower here.
    import opencc

    converter: _Converter = opencc.OpenCC("t2s")
    return converter


def to_simplified(text: str) -> str:
    """Traditional Chinese → simplified (OpenCC ``t2s``); other characters are unchanged."""
    if not text:
        return text
    converter = _t2s()
    with _opencc_lock:  # the binding gives no thread-safety promise; a convert is µs
        return converter.convert(text)


def strip_markup(text: str) -> str:
    """Remove URLs, @mentions, Weibo emoticon codes and ``{%…%}``; keep hashtag words.

    ``"#澜海银行# 太差 @小王 http://t.cn/x"`` → ``"澜海银行 太差"`` (modulo spaces).
    """
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
    text = to_simplified(fold_width(text))
    text = strip_markup(text).lower()
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)
