"""The baseline analyzer: jieba + SnowNLP + keyword rules.

Good enough to drive the spine end to end; the NLP issue replaces sentiment
and topic with trained, measured models behind the same interface.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from core.models import Analysis, Signal
from core.settings import Watchlist
from core.vocab import Sentiment, Topic
from nlp import segment
from nlp.mentions import MentionMatcher
from nlp.normalize import fold_width
from nlp.pii import mask_pii

# SnowNLP is slow (≈ 10 ms a post); only the head of a long text is scored.
_SNOW_MAX_CHARS = 240
_STOPWORDS = frozenset(
    [
        "的",
        "了",
        "是",
        "在",
        "我",
        "你",
        "他",
        "她",
        "它",
        "们",
        "和",
        "与",
        "及",
        "也",
        "都",
        "就",
        "而",
        "又",
        "还",
        "吗",
        "呢",
        "吧",
        "啊",
        "呀",
        "这",
        "那",
        "一个",
        "没有",
        "什么",
        "怎么",
        "自己",
        "已经",
        "因为",
        "所以",
        "但是",
        "如果",
        "可以",
        "不是",
        "我们",
        "他们",
        "大家",
        "今天",
        "现在",
        "一下",
        "这个",
        "那个",
        "还是",
        "就是",
        "还有",
        "银行",
        "有",
        "人",
        "说",
        "去",
        "到",
        "被",
        "让",
        "给",
        "对",
        "从",
        "要",
        "会",
        "能",
        "很",
        "不",
        "没",
        "个",
    ]
)


@dataclass(frozen=True)
class _Lexicon:
    version: str
    negative: frozenset[str]
    positive: frozenset[str]
    negators: tuple[str, ...]
    topics: dict[Topic, tuple[str, ...]]
    signals: dict[str, tuple[bool, tuple[str, ...]]]


@lru_cache(maxsize=1)
def load_lexicon() -> _Lexicon:
    """Load the shipped lexicon (``nlp/data/lexicon.yaml``) once per process."""
    raw: dict[str, Any] = yaml.safe_load(
        (resources.files("nlp") / "data" / "lexicon.yaml").read_text(encoding="utf-8")
    )
    sent = raw["sentiment"]
    return _Lexicon(
        version=str(raw["version"]),
        negative=frozenset(sent["negative"]),
        positive=frozenset(sent["positive"]),
        negators=tuple(sent["negators"]),
        topics={Topic(k): tuple(map(str, v)) for k, v in raw["topics"].items()},
        signals={
            name: (bool(spec.get("critical", False)), tuple(map(str, spec["words"])))
            for name, spec in raw["signals"].items()
        },
    )


_snow_lock = threading.Lock()


def _snownlp_score(text: str) -> float:
    from snownlp import SnowNLP

    if not text.strip():
        return 0.5
    # SnowNLP's classifier keeps module-level state; serialise to stay deterministic.
    with _snow_lock:
        return float(SnowNLP(text[:_SNOW_MAX_CHARS]).sentiments)


class Analyzer:
    """Turns a post's title and text into an :class:`~core.models.Analysis`.

    Deterministic for a given lexicon version and watchlist; thread-safe.
    """

    def __init__(self, watchlist: Watchlist, *, use_snownlp: bool = True) -> None:
        self._lex = load_lexicon()
        self._mentions = MentionMatcher(watchlist)
        self._use_snownlp = use_snownlp
        segment.add_words(self._mentions.vocabulary)

    @property
    def model_version(self) -> str:
        return f"{self._lex.version}{'+snownlp' if self._use_snownlp else ''}"

    def entities(self, text: str) -> list[str]:
        """Watched entities in ``text`` (``[]`` when the bank is not mentioned)."""
        return self._mentions.match(text)

    def analyze(self, text: str, title: str = "") -> Analysis:
        """Analyse one post. Never raises on odd text: empty text is neutral with no topic."""
        full = f"{title}\n{text}" if title else text
        folded = fold_width(full)
        words = segment.cut(folded)
        sentiment, score = self._sentiment(folded, words)
        topic, confidence = self._topic(folded)
        signals = self._signals(folded)
        critical = any(s.critical for s in signals)
        negativity = 1.0 - score
        risk = min(
            1.0,
            0.45 * negativity * (1.0 if sentiment is Sentiment.NEGATIVE else 0.5)
            + 0.2 * min(len(signals), 2)
            + (0.25 if critical else 0.0),
        )
        return Analysis(
            sentiment=sentiment,
            sentiment_score=round(score, 4),
            topic=topic,
            topic_confidence=round(confidence, 4),
            signals=signals,
            risk_score=round(risk, 4),
            critical=critical,
            keywords=self._keywords(words),
            entities=self._mentions.match(full),
            masked_text=mask_pii(text),
            model_version=self.model_version,
        )

    def analyze_many(self, items: Sequence[tuple[str, str]]) -> list[Analysis]:
        """Analyse ``(title, text)`` pairs, returning analyses in input order."""
        return [self.analyze(text, title) for title, text in items]

    # -- parts ---------------------------------------------------------------

    def _sentiment(self, text: str, words: list[str]) -> tuple[Sentiment, float]:
        neg = pos = 0
        for i, word in enumerate(words):
            negated = i > 0 and words[i - 1] in self._lex.negators
            if word in self._lex.negative:
                pos, neg = (pos + 1, neg) if negated else (pos, neg + 1)
            elif word in self._lex.positive:
                pos, neg = (pos, neg + 1) if negated else (pos + 1, neg)
        # Substring cues catch words jieba splits differently (e.g. 取不出钱).
        neg += sum(1 for w in self._lex.negative if len(w) >= 3 and w in text and w not in words)
        lexical = 0.5 if neg == pos == 0 else (pos + 0.5) / (pos + neg + 1.0)
        snow = _snownlp_score(text) if self._use_snownlp else 0.5
        # SnowNLP is trained on product reviews and misreads bank text; the
        # domain lexicon leads when it has evidence.
        score = 0.75 * lexical + 0.25 * snow if neg + pos else 0.4 * lexical + 0.6 * snow
        if score < 0.4:
            return Sentiment.NEGATIVE, score
        if score > 0.62:
            return Sentiment.POSITIVE, score
        return Sentiment.NEUTRAL, score

    def _topic(self, text: str) -> tuple[Topic, float]:
        scores: Counter[Topic] = Counter()
        for topic, words in self._lex.topics.items():
            for word in words:
                if word in text:
                    scores[topic] += 1 + 0.25 * (len(word) - 2)
        if not scores:
            return Topic.OTHER, 0.0
        (best, top), *_ = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0].value))
        return best, top / sum(scores.values())

    def _signals(self, text: str) -> list[Signal]:
        found = []
        for name, (critical, words) in self._lex.signals.items():
            triggers = [w for w in words if w in text]
            if triggers:
                found.append(Signal(name=name, triggers=triggers, critical=critical))
        return found

    def _keywords(self, words: list[str], k: int = 8) -> list[str]:
        counts = Counter(
            w
            for w in words
            if len(w) >= 2 and w not in _STOPWORDS and not w.isdigit() and w.strip()
        )
        return [w for w, _ in counts.most_common(k)]
