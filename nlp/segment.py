"""Typed wrappers around jieba with the bank-domain dictionary loaded once.

jieba ships no type hints and keeps a global tokenizer; this module owns it so
the dictionary is loaded exactly once per process and every caller (analysis,
the FTS index, the query side) segments text the same way.

There are two segmenters with the same bank dictionary: the search one
(``cut``, ``tokenize``: jieba) also learns the configured watchlist's names
(``add_words``); the one the models see (``cut_for_analysis``: jieba-rs on
jieba's dictionary, same words) never does, so an analysis depends only on
the text and the model version — not on which watchlists this process
happened to load — and matches what training saw. Each loads on first use:
a process that only analyses never builds jieba's own tokenizer (≈ 0.7 s).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from importlib import resources

import jieba  # type: ignore[import-untyped]  # jieba ships no types; this module is the typed wrapper
import rjieba  # type: ignore[import-untyped]

_lock = threading.Lock()
_BANK_DICT = "bank_dict.txt"
# Watchlist names waiting for the search segmenter's first use.
_pending_words: list[str] = []
_search_ready = False
_tokenizer = jieba.Tokenizer()
_analysis_rs: rjieba.Jieba | None = None
_analysis_freq: dict[str, int] = {}
_analysis_jieba: jieba.Tokenizer | None = None

# Tokens that carry no meaning for search or keywords.
_PUNCT = set(" \t\r\n，。！？、；：“”‘’（）《》【】…—·,.!?;:'\"()[]{}<>/\\|@#$%^&*_+=~`-")

# jieba's HMM (new-word discovery over runs of unknown single characters) for
# the models' words. Off: it cost ≈ 60% of segmentation time, and the models'
# character n-grams already see the words it would discover (see docs/nlp.md
# for the measured effect). YUQING_NLP_HMM=1 turns it on, for experiments only:
# the shipped models are trained with it off.
ANALYSIS_HMM = os.environ.get("YUQING_NLP_HMM", "0") == "1"
# The models' segmenter keeps only dictionary words of frequency ≥ this (and
# every bank-dictionary word, which all have ≥ 800): 137k words instead of
# 349k, at no cost in cross-validated accuracy (docs/nlp.md). Rarer words fall
# back to characters, which the models' character n-grams see anyway.
# YUQING_NLP_MIN_FREQ overrides it for experiments (retrain afterwards).
ANALYSIS_MIN_FREQ = int(os.environ.get("YUQING_NLP_MIN_FREQ", "5"))


def _read_dictionary(package: str, name: str) -> dict[str, int]:
    """Word frequencies of a jieba-format dictionary file (``word freq [tag]`` per line).

    Raises ``ValueError`` naming the file and line of an entry that is not
    ``word freq [tag]`` (a word with a space in it, or no frequency: jieba would
    guess one from the dictionary it is added to, which would make the analysis
    dictionary depend on load order).
    """
    text = (resources.files(package) / name).read_text(encoding="utf-8")
    freq: dict[str, int] = {}
    for lineno, line in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        word, _, rest = line.strip().partition(" ")
        count = rest.partition(" ")[0]
        if count.isdigit():
            freq[word] = int(count)
        elif word:
            raise ValueError(
                f"{package}/{name}:{lineno}: expected 'word frequency [tag]', got {line!r}"
            )
    return freq


def analysis_dictionary() -> dict[str, int]:
    """The models' dictionary: jieba's ``dict.txt`` with ``nlp/data/bank_dict.txt``
    over it (a bank word replaces jieba's frequency, as ``load_userdict`` does),
    only words of frequency ≥ :data:`ANALYSIS_MIN_FREQ`. Built once; do not mutate."""
    _ensure_analysis_loaded()
    return _analysis_freq


def _ensure_analysis_loaded() -> None:
    global _analysis_rs
    if _analysis_rs is not None:
        return
    with _lock:
        if _analysis_rs is not None:
            return
        freq = _read_dictionary("jieba", "dict.txt")
        freq.update(_read_dictionary("nlp", f"data/{_BANK_DICT}"))
        _analysis_freq.update((w, f) for w, f in freq.items() if f >= ANALYSIS_MIN_FREQ)
        # jieba-rs weighs a route by log(f) − log(total) as jieba does, with the
        # total of the frequencies added: the same words as jieba on this dictionary.
        tokenizer = rjieba.Jieba.empty()
        for word, f in _analysis_freq.items():
            tokenizer.add_word(word, f, "")
        _analysis_rs = tokenizer


def _analysis_reference() -> jieba.Tokenizer:
    """jieba's own tokenizer on the analysis dictionary: what ``cut_for_analysis``
    must equal (tests), and the HMM-on cut (experiments). Built on first use."""
    global _analysis_jieba
    freq = analysis_dictionary()
    with _lock:
        if _analysis_jieba is None:
            reference = jieba.Tokenizer()
            table = dict(freq)
            for word in freq:  # jieba's DAG walk needs every prefix (frequency 0)
                for i in range(1, len(word)):
                    table.setdefault(word[:i], 0)
            reference.FREQ = table
            reference.total = sum(freq.values())
            reference.initialized = True
            _analysis_jieba = reference
        return _analysis_jieba


def _ensure_search_loaded() -> None:
    global _search_ready
    if _search_ready:
        return
    with _lock:
        if _search_ready:
            return
        jieba.setLogLevel(logging.WARNING)
        _tokenizer.initialize()
        with resources.as_file(resources.files("nlp") / "data" / _BANK_DICT) as path:
            _tokenizer.load_userdict(str(path))
        for word in _pending_words:
            _tokenizer.add_word(word, freq=20000)
        _pending_words.clear()
        _search_ready = True


def add_words(words: Iterable[str]) -> None:
    """Teach the search segmenter extra whole words (bank, branch and product names).

    Takes effect before the next ``cut``/``tokenize``; the models' segmenter
    never learns them (see the module docstring)."""
    cleaned = [w.strip() for w in words if w.strip()]
    with _lock:
        if _search_ready:
            for word in cleaned:
                _tokenizer.add_word(word, freq=20000)
        else:
            _pending_words.extend(cleaned)


def cut(text: str) -> list[str]:
    """Segment ``text`` into words (precise mode), keeping punctuation tokens."""
    _ensure_search_loaded()
    return list(_tokenizer.cut(text))


def cut_for_analysis(text: str) -> list[str]:
    """Segment normalised text for the models: jieba precise mode, bank dictionary.

    Training (``nlp.train``) and the analyzer both call this, so the features
    match. The words are exactly ``jieba.Tokenizer.lcut(text, HMM=ANALYSIS_HMM)``
    on the analysis dictionary (tests/unit/test_nlp_fastpath.py checks it on
    every shipped post and edge cases). With the HMM off (the shipped setting)
    jieba-rs computes them: the same dictionary walk and route, ≈ 8× faster
    than jieba in Python and with a far smaller dictionary in memory
    (a double-array trie instead of a dict of 180k strings); with it on
    (experiments only) jieba itself does, because jieba-rs's HMM step splits
    some mixed alphanumeric runs differently.
    """
    if ANALYSIS_HMM:
        return _analysis_reference().lcut(text, HMM=True)  # type: ignore[no-any-return]
    _ensure_analysis_loaded()
    return _analysis_rs.cut(text, False)  # type: ignore[no-any-return,union-attr]


def tokenize(text: str) -> list[str]:
    """Index/search tokens of ``text``: search-mode jieba words, lower-cased, no punctuation.

    Search mode also emits the shorter words inside long ones (澜海银行 → 澜海, 银行,
    澜海银行) so a query for a part of a compound still matches. The same
    function is used for indexing and for queries, in every store.
    """
    _ensure_search_loaded()
    out: list[str] = []
    for tok in _tokenizer.cut_for_search(text):
        tok = tok.strip().lower()
        if tok and not all(ch in _PUNCT for ch in tok):
            out.append(tok)
    return out
