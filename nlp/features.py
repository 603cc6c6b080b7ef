"""Features shared by training (``nlp.train``) and inference (``nlp.model``).

One function turns normalised text into sparse counts so that the shipped
model sees at run time exactly the features it was trained on:

* ``w:<word>``   jieba words (precise mode, bank dictionary loaded),
* ``c:<ngram>``  character 1–3-grams inside each run of CJK/letters/digits
  (robust to segmentation errors and unseen names),
* ``n:<word>``   a word inside the scope of a negator (不/没/未/毫无 …, up to
  three words, stopped by punctuation): "不耐心" must not count as "耐心",
* ``s:sarcasm``  a sarcasm marker (呵呵, 真是谢谢 …) in a post that also has a
  complaint cue: "真是太好了，排了三小时" is not praise,
* ``f:question`` / ``f:notice``  a question (？, 吗, 请问, 怎么 …) or an
  announcement (公告, 通知, 宣布 …): the usual shapes of *neutral* bank posts,
  which the public review data (positive/negative only) never shows,
* ``l:<topic>``  a topic-lexicon hit (topic model only, see ``lexicon_features``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

NEGATORS = frozenset(["不", "没", "没有", "无", "未", "别", "毫无", "并不", "从不", "从没", "不是"])
_NEGATION_SCOPE = 3
_SARCASM_MARKERS = (
    "呵呵",
    "真是谢谢",
    "谢谢你们",
    "真是太好了",
    "可真有你的",
    "真有你的",
    "真是佩服",
    "真厉害",
    "真是厉害",
    "太棒了",
    "效率真感人",
    "真感人",
    "好到让人想哭",
    "真是太贴心",
    "真贴心",
    "绝了",
)
_COMPLAINT_CUES = (
    "崩",
    "失败",
    "排了",
    "排队",
    "掉链子",
    "挂",
    "收费",
    "没人理",
    "费用",
    "一个小时",
    "小时",
    "又",
    "扣",
    "等",
)
_QUESTION = re.compile(
    r"[?？]|吗|请问|怎么|如何|多少|什么时候|有没有|是不是|能不能|可不可以|哪些|哪个|是什么"
)
_NOTICE = re.compile(r"公告|通知|宣布|发布|表示|回应|提示|提醒|将于|发言人|签约|签署|披露")
_RUN = re.compile(r"[\u4e00-\u9fffa-z0-9]+")
_PUNCT_BREAK = frozenset(",.!?;:，。！？；：、\n…~")


def name_remover(names: Iterable[str]) -> Callable[[str], str]:
    """A function that blanks the watched bank's own names out of normalised text.

    The models must not learn "澜海银行" itself: the hand-labelled bank set
    names the bank in most neutral posts while the public data never does,
    so the name would read as "neutral", and another deployment watches
    another bank. Training and the analyzer both blank the names.
    """
    cleaned = sorted({n.strip().lower() for n in names if n.strip()}, key=len, reverse=True)
    if not cleaned:
        return lambda text: text
    pattern = re.compile("|".join(re.escape(n) for n in cleaned))
    return lambda text: pattern.sub(" ", text)


def char_ngrams(text: str, n_max: int = 3) -> list[str]:
    """Character 1…``n_max``-grams inside runs of CJK characters, letters and digits."""
    grams: list[str] = []
    for run in _RUN.findall(text):
        grams.extend(run)
        for n in range(2, n_max + 1):
            grams.extend([run[i : i + n] for i in range(len(run) - n + 1)])
    return grams


def has_sarcasm(text: str) -> bool:
    """A cheap sarcasm cue: an ironic-praise marker together with a complaint cue."""
    return any(m in text for m in _SARCASM_MARKERS) and any(c in text for c in _COMPLAINT_CUES)


def text_features(text: str, words: list[str]) -> Counter[str]:
    """Raw feature counts of normalised ``text`` whose jieba words are ``words``."""
    feats: Counter[str] = Counter()
    scope = 0
    for word in words:
        word = word.strip()
        if not word:
            continue
        if word in _PUNCT_BREAK or all(ch in _PUNCT_BREAK for ch in word):
            scope = 0
            continue
        feats["w:" + word] += 1
        if word in NEGATORS:
            scope = _NEGATION_SCOPE
            continue
        if scope:
            feats["n:" + word] += 1
            scope -= 1
    # Counter over a generator runs its counting loop in C: the hot path of analyze().
    feats.update(["c:" + g for g in char_ngrams(text)])
    if _QUESTION.search(text):
        feats["f:question"] += 1
    if _NOTICE.search(text):
        feats["f:notice"] += 1
    if has_sarcasm(text):
        feats["s:sarcasm"] += 1
    return feats


def lexicon_features(text: str, topic_words: Mapping[str, Iterable[str]]) -> Counter[str]:
    """``l:<topic>`` counts of topic-lexicon words found in ``text`` (substring match)."""
    feats: Counter[str] = Counter()
    for topic, vocab in topic_words.items():
        hits = sum(1 for w in vocab if w in text)
        if hits:
            feats["l:" + topic] += hits
    return feats
