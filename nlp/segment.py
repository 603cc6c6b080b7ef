"""A typed wrapper around jieba with the bank-domain dictionary loaded once.

jieba ships no type hints and keeps a global tokenizer; this module owns it so
the dictionary is loaded exactly once per process and every caller (analysis,
the FTS index, the query side) segments text the same way.

There are two segmenters with the same bank dictionary: the search one
(``cut``, ``tokenize``) also learns the configured watchlist's names
(``add_words``); the one the models see (``cut_for_analysis``) never does, so
an analysis depends only on the text and the model version — not on which
watchlists this process happened to load — and matches what training saw.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from importlib import resources
from math import log

import jieba  # type: ignore[import-untyped]  # jieba ships no types; this module is the typed wrapper
from jieba import finalseg

_lock = threading.Lock()
_ready = False
_tokenizer = jieba.Tokenizer()
_analysis_tokenizer = jieba.Tokenizer()

_RE_HAN = jieba.re_han_default
_RE_SKIP = jieba.re_skip_default
_INF = float("inf")

# Tokens that carry no meaning for search or keywords.
_PUNCT = set(" \t\r\n，。！？、；：“”‘’（）《》【】…—·,.!?;:'\"()[]{}<>/\\|@#$%^&*_+=~`-")


def _ensure_loaded() -> None:
    global _ready
    if _ready:
        return
    with _lock:
        if _ready:
            return
        jieba.setLogLevel(logging.WARNING)
        _tokenizer.initialize()
        dict_file = resources.files("nlp") / "data" / "bank_dict.txt"
        with resources.as_file(dict_file) as path:
            _tokenizer.load_userdict(str(path))
        # A frozen copy of the dictionary (≈ 20 ms) instead of loading jieba twice.
        if ANALYSIS_MIN_FREQ > 1:
            freq, total = _pruned(_tokenizer.FREQ, ANALYSIS_MIN_FREQ)
        else:
            freq, total = dict(_tokenizer.FREQ), _tokenizer.total
        _analysis_tokenizer.FREQ = freq
        _analysis_tokenizer.total = total
        _analysis_tokenizer.user_word_tag_tab = dict(_tokenizer.user_word_tag_tab)
        _analysis_tokenizer.initialized = True
        # jieba's edge weight log(freq) - log(total), computed once per word
        # (the same float jieba computes per edge); prefix-only entries get
        # _PREFIX_ONLY, which no weight can equal (every weight is < 0).
        logtotal = log(total)
        _LOG_PROB.clear()
        _LOG_PROB.update((w, log(f) - logtotal if f else _PREFIX_ONLY) for w, f in freq.items())
        _ready = True


_LOG_PROB: dict[str, float] = {}
_PREFIX_ONLY = 1.0


def _pruned(freq: dict[str, int], min_freq: int) -> tuple[dict[str, int], int]:
    """Words of at least ``min_freq`` with all their prefixes (frequency 0), and their total."""
    kept = {w: f for w, f in freq.items() if f >= min_freq}
    for word in list(kept):
        for i in range(1, len(word)):
            kept.setdefault(word[:i], 0)
    return kept, sum(kept.values())


def add_words(words: Iterable[str]) -> None:
    """Teach the segmenter extra whole words (bank, branch and product names)."""
    _ensure_loaded()
    with _lock:
        for word in words:
            if word.strip():
                _tokenizer.add_word(word.strip(), freq=20000)


def cut(text: str) -> list[str]:
    """Segment ``text`` into words (precise mode), keeping punctuation tokens."""
    _ensure_loaded()
    return list(_tokenizer.cut(text))


# jieba's HMM (new-word discovery over runs of unknown single characters) for
# the models' words. Off: it cost ≈ 60% of segmentation time, and the models'
# character n-grams already see the words it would discover (see docs/nlp.md
# for the measured effect). YUQING_NLP_HMM=1 turns it on, for experiments only:
# the shipped models are trained with it off.
ANALYSIS_HMM = os.environ.get("YUQING_NLP_HMM", "0") == "1"
# The models' segmenter keeps only dictionary words of frequency ≥ this (and
# every bank-dictionary word, which all have ≥ 800): 179k dictionary entries
# instead of 498k, so its lookups stay in cache — ≈ 15% of analyze() time —
# at no cost in cross-validated accuracy (docs/nlp.md). Rarer words fall back
# to characters, which the models' character n-grams see anyway.
# YUQING_NLP_MIN_FREQ overrides it for experiments (retrain afterwards).
ANALYSIS_MIN_FREQ = int(os.environ.get("YUQING_NLP_MIN_FREQ", "5"))


def cut_for_analysis(text: str) -> list[str]:
    """Segment normalised text for the models: jieba precise mode, bank dictionary.

    Training (``nlp.train``) and the analyzer both call this, so the features
    match. Same words as ``jieba.Tokenizer.lcut(text, HMM=ANALYSIS_HMM)`` on the
    analysis dictionary (tests/unit/test_nlp_segment.py checks it on the bank
    and public corpora), computed by :func:`_dag_cut`.
    """
    _ensure_loaded()
    return _dag_cut(text, ANALYSIS_HMM)


def _dag_cut(text: str, hmm: bool) -> list[str]:
    """jieba's precise-mode cut (``Tokenizer.cut``), restated as one plain function.

    jieba builds a DAG of dictionary words, picks the most probable route,
    then (HMM) re-cuts runs of unknown single characters with its Viterbi
    model. This does the same steps with the same float expressions — so
    ties break the same way — but in one right-to-left pass without jieba's
    per-block generators, the DAG dictionary and a second lookup per edge;
    it is ≈ 2–3× faster without the HMM. The HMM step calls jieba's own
    ``finalseg.cut``.
    """
    get = _LOG_PROB.get
    logtotal = log(_analysis_tokenizer.total)
    out: list[str] = []
    append = out.append
    # With its capturing group, split() puts the matched (CJK/alnum) blocks at odd indices.
    for n, blk in enumerate(_RE_HAN.split(text)):
        if not blk:
            continue
        if not n % 2:
            if blk.isprintable() and " " not in blk:
                # No whitespace (only ASCII space is printable whitespace): what the
                # split below would give, without two regex calls.
                out.extend(blk)
                continue
            for piece in _RE_SKIP.split(blk):
                if _RE_SKIP.match(piece):
                    append(piece)
                else:
                    out.extend(piece)
            continue
        size = len(blk)
        # Right to left, so each start's edges meet the already-known best
        # score of the rest: jieba's get_DAG and calc in one pass, no DAG kept.
        score = [0.0] * (size + 1)
        end = [0] * (size + 1)
        for k in range(size - 1, -1, -1):
            best_s = -_INF
            best_x = k
            i = k
            weight = get(blk[k])
            while weight is not None:  # the dictionary holds every word prefix
                if weight != _PREFIX_ONLY:
                    s = weight + score[i + 1]
                    if s >= best_s:  # jieba takes max((score, end)): the later end wins a tie
                        best_s = s
                        best_x = i
                i += 1
                if i >= size:
                    break
                weight = get(blk[k : i + 1])
            if best_s == -_INF:  # no dictionary word starts here: the character alone
                best_s = 0.0 - logtotal + score[k + 1]  # jieba: log(FREQ.get(c) or 1)
                best_x = k
            score[k] = best_s
            end[k] = best_x
        x = 0
        buf = ""
        if hmm:
            while x < size:
                y = end[x] + 1
                if y - x == 1:
                    buf += blk[x]
                else:
                    if buf:
                        _flush_hmm(buf, _analysis_tokenizer.FREQ.get, out)
                        buf = ""
                    append(blk[x:y])
                x = y
            if buf:
                _flush_hmm(buf, _analysis_tokenizer.FREQ.get, out)
        else:
            while x < size:
                y = end[x] + 1
                word = blk[x:y]
                if y - x == 1 and word.isascii() and word.isalnum():  # jieba's re_eng
                    buf += word  # single letters/digits join up: "app", "2026"
                else:
                    if buf:
                        append(buf)
                        buf = ""
                    append(word)
                x = y
            if buf:
                append(buf)
    return out


def _flush_hmm(buf: str, get: Callable[[str], int | None], out: list[str]) -> None:
    if len(buf) == 1:
        out.append(buf)
    elif not get(buf):
        out.extend(finalseg.cut(buf))
    else:
        out.extend(buf)


def tokenize(text: str) -> list[str]:
    """Index/search tokens of ``text``: search-mode jieba words, lower-cased, no punctuation.

    Search mode also emits the shorter words inside long ones (澜海银行 → 澜海, 银行,
    澜海银行) so a query for a part of a compound still matches. The same
    function is used for indexing and for queries, in every store.
    """
    _ensure_loaded()
    out: list[str] = []
    for tok in _tokenizer.cut_for_search(text):
        tok = tok.strip().lower()
        if tok and not all(ch in _PUNCT for ch in tok):
            out.append(tok)
    return out
