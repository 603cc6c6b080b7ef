"""Features shared by training (``nlp.train``) and inference (``nlp.model``).

One function turns normalised text into sparse counts so that the shipped
model sees at run time exactly the features it was trained on:

* ``w:<word>``   jieba words (precise mode, bank dictionary loaded),
* ``c:<ngram>``  character 1–3-grams inside each run of CJK/letters/digits
  (robust to segmentation errors and unseen names),
* ``n:<word>``   a word inside the scope of a negator (不/没/未/毫无 …, up to
  three words, stopped by punctuation), *instead of* its ``w:`` feature:
  "不耐心" must not count as "耐心",
* ``s:sarcasm``  a sarcasm marker (呵呵, 真是谢谢 …) in a post that also has a
  complaint cue: "真是太好了，排了三小时" is not praise,
* ``f:question`` / ``f:notice``  a question (？, 吗, 请问, 怎么 …) or an
  announcement (公告, 通知, 宣布 …): the usual shapes of *neutral* bank posts,
  which the public review data (positive/negative only) never shows,
* ``l:<name>``  lexicon hits (topic and crisis models only, see :class:`TopicCues`):
  a topic's words under its key, a crisis signal's triggers under the signal's
  name (``Lexicon.cue_words``), so the crisis model learns how far each
  signal's triggers are worth trusting.
"""

from __future__ import annotations

import itertools
import operator
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
_QUESTION_WORDS = frozenset(
    [
        "?",
        "？",
        "吗",
        "请问",
        "怎么",
        "如何",
        "多少",
        "什么时候",
        "有没有",
        "是不是",
        "能不能",
        "可不可以",
        "哪些",
        "哪个",
        "是什么",
    ]
)
_NOTICE_WORDS = frozenset(
    [
        "公告",
        "通知",
        "宣布",
        "发布",
        "表示",
        "回应",
        "提示",
        "提醒",
        "将于",
        "发言人",
        "签约",
        "签署",
        "披露",
    ]
)
# Scare quotes around praise ("真是太'好'了", “贴心”的服务) read as irony on their
# own, with or without a complaint cue. Normalised text has ASCII quotes for
# full-width ones (NFKC); Chinese curly quotes and 「」 stay as they are.
_QUOTES = "'\"“”‘’「」『』"
_SCARE_QUOTED_PRAISE = re.compile(
    f"[{_QUOTES}]\\s*(?:好|棒|贴心|优质|高效|专业|周到|耐心|负责|靠谱|热情|方便|快|给力|厉害|"
    f"人性化|用心|满意|感人)\\s*[{_QUOTES}]"
)
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
    """Character 1…``n_max``-grams inside runs of CJK characters, letters and digits.

    Order: every 1-gram of a run, then its 2-grams, then its 3-grams, run after run.
    """
    grams: list[str] = []
    for run in _RUN.findall(text):
        grams.extend(run)
        # n-grams from (n-1)-grams by a C-level map instead of a slice per position.
        prev: list[str] = list(run)
        for n in range(2, min(n_max, len(run)) + 1):
            prev = list(map(operator.add, prev, run[n - 1 :]))
            grams.extend(prev)
    return grams


def has_sarcasm(text: str) -> bool:
    """A cheap sarcasm cue: ironic praise plus a complaint cue, or praise in scare quotes.

    "呵呵，服务真是太好了，排了三小时" and "真是太'好'了，排队三小时" are
    sarcastic; "服务真是太好了" is not.
    """
    return _sarcasm(_CUES.found(text), text)


def _sarcasm(cues: set[str], text: str) -> bool:
    if not cues.isdisjoint(_SARCASM_MARKERS) and not cues.isdisjoint(_COMPLAINT_CUES):
        return True
    return not cues.isdisjoint(_QUOTES) and _SCARE_QUOTED_PRAISE.search(text) is not None


def split_features(text: str, words: list[str]) -> tuple[Counter[str], Counter[str]]:
    """``text_features`` in two parts: (named features, character n-gram counts).

    The n-grams come without their ``c:`` prefix, so scoring looks them up
    without building a prefixed string per gram.
    """
    return Counter(_named(text, words)), Counter(char_ngrams(text))


def mixed_features(text: str, words: list[str], extra: Iterable[str] = ()) -> Counter[str]:
    """Named features and *unprefixed* n-grams in one ``Counter`` (the analyzer's hot path).

    No clash is possible: every named feature has a ``x:`` prefix and no
    n-gram contains ``:``. ``extra`` adds more named occurrences (the topic
    cues, ``TopicCues.names_of_found``). ``nlp.model.JointScorer.predict_mixed``
    scores the result.
    """
    names = _named(text, words)
    names += char_ngrams(text)
    names.extend(extra)
    # Counter over a list runs its counting loop in C.
    return Counter(names)


def _named(text: str, words: list[str]) -> list[str]:
    """The named features (``w:``, ``n:``, ``f:``, ``s:``) of a post, one entry per occurrence."""
    names: list[str] = []
    scope = 0
    for word in words:
        if not word.isalnum():  # CJK and latin words skip this: strip/punctuation tests
            word = word.strip()
            if not word:
                continue
            if word in _PUNCT_BREAK or all(ch in _PUNCT_BREAK for ch in word):
                scope = 0
                continue
        if scope and word not in NEGATORS:
            # Only the negated form: with w:满意 too, 一点都不满意 read as praise.
            names.append("n:" + word)
            scope -= 1
            continue
        names.append("w:" + word)
        if word in NEGATORS:
            scope = _NEGATION_SCOPE
    cues = _CUES.found(text)  # one scan for every cue phrase below
    if not cues.isdisjoint(_QUESTION_WORDS):
        names.append("f:question")
    if not cues.isdisjoint(_NOTICE_WORDS):
        names.append("f:notice")
    if _sarcasm(cues, text):
        names.append("s:sarcasm")
    return names


def text_features(text: str, words: list[str]) -> Counter[str]:
    """Raw feature counts of normalised ``text`` whose jieba words are ``words``."""
    feats, grams = split_features(text, words)
    feats.update({"c:" + g: n for g, n in grams.items()})
    return feats


class PhraseSet:
    """Which of a fixed set of phrases occur in a text: ``{p for p in phrases if p in text}``.

    Phrases are grouped by their first character; only the groups whose first
    character occurs in the text are tested, so a post costs a set
    intersection and a few substring tests instead of one test per phrase.
    """

    def __init__(self, phrases: Iterable[str]) -> None:
        groups: dict[str, list[str]] = {}
        for phrase in sorted({p for p in phrases if p}):
            groups.setdefault(phrase[0], []).append(phrase)
        self._groups = {first: tuple(group) for first, group in groups.items()}
        self._firsts = frozenset(self._groups)

    def found(self, text: str) -> set[str]:
        """The phrases that occur in ``text`` (substring match, overlaps included)."""
        out: set[str] = set()
        contains = text.__contains__
        for first in self._firsts.intersection(text):
            out.update(filter(contains, self._groups[first]))
        return out


_CUES = PhraseSet([*_SARCASM_MARKERS, *_COMPLAINT_CUES, *_QUESTION_WORDS, *_NOTICE_WORDS, *_QUOTES])


class TopicCues:
    """``l:<name>`` features: how many distinct words of each named word list a text contains.

    The analyzer and training pass ``Lexicon.cue_words()``: the topics' words
    and the crisis signals' triggers.
    """

    def __init__(self, word_lists: Mapping[str, Iterable[str]]) -> None:
        self._topics_of: dict[str, list[str]] = {}
        for topic, vocab in word_lists.items():
            for word in vocab:
                self._topics_of.setdefault(word, []).append("l:" + topic)
        self._phrases = PhraseSet(self._topics_of)

    def counts(self, text: str) -> Counter[str]:
        """``l:<name>`` → number of that list's words found in ``text``."""
        return self.counts_of_found(self._phrases.found(text))

    @property
    def words(self) -> frozenset[str]:
        """Every topic-lexicon word (to scan for them together with other phrases)."""
        return frozenset(self._topics_of)

    def counts_of_found(self, found: Iterable[str]) -> Counter[str]:
        """:meth:`counts` from phrases already found in the text (others are ignored)."""
        return Counter(self.names_of_found(found))

    def names_of_found(self, found: Iterable[str]) -> list[str]:
        """One ``l:<name>`` per listed word among ``found``, as :meth:`counts_of_found` counts."""
        topics_of = self._topics_of
        return list(itertools.chain.from_iterable(topics_of[w] for w in found if w in topics_of))
