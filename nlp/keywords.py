"""Keywords of one post or of a set of posts: TF-IDF over jieba words.

The IDF is jieba's own general-Chinese table (``jieba/analyse/idf.txt``,
shipped inside the jieba wheel, so nothing is downloaded): words that are
common everywhere (公司, 今天) weigh little, domain words (理财, 挤兑) a lot.
Words jieba's table does not know get the table's median IDF.
"""

from __future__ import annotations

import logging
import statistics
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources

from nlp import segment
from nlp.normalize import normalize_for_analysis

log = logging.getLogger(__name__)

# Never reported as keywords: function words, chat filler, and 银行 itself.
STOPWORDS = frozenset(
    line.strip()
    for line in (resources.files("nlp") / "data" / "stopwords.txt")
    .read_text(encoding="utf-8")
    .splitlines()
    if line.strip() and not line.startswith("#")
)


@lru_cache(maxsize=1)
def _idf() -> tuple[dict[str, float], float]:
    """jieba's IDF table and its median (for unknown words); loaded once (≈ 0.3 s)."""
    # resources.files("jieba.analyse") would import jieba.analyse, which imports
    # jieba.posseg and its HMM tables (≈ 0.5 s) only to locate this file.
    text = (resources.files("jieba") / "analyse" / "idf.txt").read_text(encoding="utf-8")
    lines = text.splitlines()
    tokens = text.split()
    if len(tokens) == 2 * len(lines):
        # Every line is "word idf": pair the tokens in C (≈ 4× faster than per line).
        table = dict(zip(tokens[::2], map(float, tokens[1::2]), strict=True))
    else:
        table = {}
        for line in lines:
            word, _, value = line.partition(" ")
            if value:
                table[word] = float(value)
    median = statistics.median(table.values()) if table else 10.0
    log.debug("loaded %d IDF entries", len(table))
    return table, median


_idf_lock = threading.Lock()


def _candidates(
    words: Iterable[str], exclude: frozenset[str], idf: dict[str, float], default: float
) -> list[str]:
    """The stripped words that may be keywords (:func:`_keyword_idf`), minus ``exclude``."""
    out = []
    for w in words:
        w = w.strip()
        if w not in exclude and _keyword_idf(w, idf, default) is not None:
            out.append(w)
    return out


def _keyword_idf(word: str, idf: dict[str, float], default: float) -> float | None:
    """IDF of a stripped word that may be a keyword; ``None`` for words that never are."""
    if len(word) < 2 or word in STOPWORDS:
        return None
    # str.isalpha() is one C call and true for most words (CJK counts as letters);
    # only words with a digit or a symbol need the per-character test.
    if not word.isalpha() and not any(ch.isalpha() for ch in word):
        return None  # numbers, 20%, 3.5
    return idf.get(word, default)


# word → _keyword_idf(word). The vocabulary of posts is small and Zipfian, so a
# post mostly pays one lookup per word instead of the candidate tests; the
# cache stops growing at _WORD_CACHE_MAX words (the rest are computed each time).
_WORD_CACHE: dict[str, float | None] = {}
_WORD_CACHE_MAX = 200_000
_MISSING = -1.0  # never an IDF (they are ≥ 0)
# _idf() once loaded, so the per-post path takes neither the lock nor the cache call.
_loaded: tuple[dict[str, float], float] | None = None


def _idf_table() -> tuple[dict[str, float], float]:
    """:func:`_idf`, loaded once under the lock, then read without it."""
    global _loaded
    if _loaded is None:
        with _idf_lock:
            _loaded = _idf()
    return _loaded


def clear_word_cache() -> None:
    """Forget the per-word keyword cache (benchmarks start each round cold with it)."""
    _WORD_CACHE.clear()


def keywords_of_words(
    words: Sequence[str], k: int = 8, exclude: Iterable[str] = ()
) -> list[tuple[str, float]]:
    """Top ``k`` keywords of one already-segmented post, by tf × idf (ties by word)."""
    return [(word, round(-score, 4)) for score, word in _ranked(words, exclude)[:k]]


def keyword_words(words: Sequence[str], k: int = 8, exclude: Iterable[str] = ()) -> list[str]:
    """The words of :func:`keywords_of_words`, without their scores (the analyzer's form)."""
    return [word for _, word in _ranked(words, exclude)[:k]]


def _ranked(words: Sequence[str], exclude: Iterable[str]) -> list[tuple[float, str]]:
    """(−tf × idf, word) of every candidate, best first, ties by word."""
    idf, default = _idf_table()
    banned = exclude if isinstance(exclude, frozenset) else frozenset(exclude)
    cached = _WORD_CACHE.get
    candidates = []
    total = 0
    for word, count in Counter(map(str.strip, words)).items():
        weight = cached(word, _MISSING)
        if weight == _MISSING:
            weight = _keyword_idf(word, idf, default)
            if len(_WORD_CACHE) < _WORD_CACHE_MAX:
                _WORD_CACHE[word] = weight
        if weight is None or word in banned:
            continue
        candidates.append((word, count, weight))
        total += count
    # (−score, word) tuples sort in C: highest tf × idf first, ties by word.
    return sorted((-(c / total * w), word) for word, c, w in candidates)


def top_keywords(
    texts: Iterable[str], k: int = 20, exclude: Iterable[str] = ()
) -> list[tuple[str, float]]:
    """The ``k`` words that best characterise a set of posts, with scores in (0, 1].

    A word's score is the sum over posts of its (length-normalised) tf × idf,
    divided by the best score, so the top keyword scores 1.0. Text is
    normalised first (traditional → simplified, markup stripped); stopwords,
    numbers, single characters and the words in ``exclude`` (e.g. the bank's
    own name) are skipped. Deterministic: ties are broken by the word.
    Returns ``[]`` for no texts or no candidate words.
    """
    idf, default = _idf_table()
    banned = frozenset(w.lower() for w in exclude)
    scores: dict[str, float] = {}
    for text in texts:
        words = _candidates(segment.cut(normalize_for_analysis(text)), banned, idf, default)
        if not words:
            continue
        counts = Counter(words)
        n = len(words)
        for w, c in counts.items():
            scores[w] = scores.get(w, 0.0) + c / n * idf.get(w, default)
    if not scores:
        return []
    best = max(scores.values())
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    return [(w, round(s / best, 4)) for w, s in ranked]
