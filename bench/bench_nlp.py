"""Benchmark of ``nlp``: our analyzer against SnowNLP, side by side on the same posts.

The posts are the held-out bank validation split,
``nlp/data/bank_validation.jsonl``: 122 short posts about the fictional
澜海银行, hand-written and hand-labelled (sentiment, topic, critical) by the
team, never used in training (``nlp.train`` reads only
``bank_labelled.jsonl`` and the public sets). It is small and written by the
same people as the training set, so the quality figures are optimistic for
real-world text; the detail of each figure gives the confusion matrix.

Figures:

* ``nlp_posts_per_s`` — full ``Analyzer.analyze()`` (normalise, segment,
  sentiment, topic, signals, keywords, entities, PII masking), one thread.
* ``snownlp_posts_per_s`` — ``SnowNLP(text).sentiments`` alone, one thread.
* ``nlp_speedup_vs_snownlp`` — the ratio of the two.
* ``sentiment_macro_f1`` — 3-class macro-F1 (negative/neutral/positive);
  ``snownlp_sentiment_macro_f1`` is SnowNLP on the same posts, mapped to
  3 classes with the baseline analyzer's thresholds (< 0.4 negative, > 0.62 positive).
* ``topic_accuracy`` — accuracy over the 12 topic keys.
* ``critical_recall`` / ``critical_precision`` — of the ``critical`` flag.
"""

from __future__ import annotations

import logging
import time

from bench.results import Result
from core.settings import Watchlist
from nlp.evaluate import ClassReport, class_report, evaluate, load_jsonl
from nlp.train import BANK_VALIDATION

log = logging.getLogger(__name__)

SPLIT = "nlp/data/bank_validation.jsonl (122 held-out bank posts)"


def _matrix(report: ClassReport) -> str:
    rows = []
    for label, row in zip(report.labels, report.matrix, strict=True):
        if report.per_class[label].support or any(row):
            rows.append(f"{label}:{row}")
    return "confusion (rows gold, cols " + "/".join(report.labels) + ") " + "; ".join(rows)


def _snownlp_label(score: float) -> str:
    if score < 0.4:
        return "negative"
    if score > 0.62:
        return "positive"
    return "neutral"


def run(quick: bool) -> list[Result]:
    """Time and score both on the validation split (``quick``: fewer timing rounds)."""
    from snownlp import SnowNLP  # type: ignore[import-untyped]

    from nlp.analyzer import Analyzer

    examples = load_jsonl(BANK_VALIDATION)
    texts = [e.text for e in examples]

    start = time.perf_counter()
    analyzer = Analyzer(Watchlist())
    load_s = time.perf_counter() - start
    analyzer.analyze(texts[0])  # warm caches (jieba's, the IDF table) outside the timing

    rounds = 2 if quick else 10
    start = time.perf_counter()
    for _ in range(rounds):
        for text in texts:
            analyzer.analyze(text)
    ours = rounds * len(texts) / (time.perf_counter() - start)

    SnowNLP("预热").sentiments  # noqa: B018 - loads SnowNLP's model before timing
    snow_rounds = 1 if quick else 3
    start = time.perf_counter()
    snow_scores: list[float] = []
    for _ in range(snow_rounds):
        snow_scores = [float(SnowNLP(t).sentiments) for t in texts]
    snow = snow_rounds * len(texts) / (time.perf_counter() - start)

    # The same comparison on longer posts (5 validation posts joined, ≈ 115
    # characters, nearer a forum post): SnowNLP's cost grows faster with length.
    longer = ["，".join(texts[i : i + 5]) for i in range(0, len(texts) - 4, 5)]
    start = time.perf_counter()
    for text in longer:
        analyzer.analyze(text)
    ours_long = len(longer) / (time.perf_counter() - start)
    start = time.perf_counter()
    for text in longer:
        SnowNLP(text).sentiments  # noqa: B018
    snow_long = len(longer) / (time.perf_counter() - start)

    result = evaluate(analyzer, examples)
    snow_report = class_report(
        [e.sentiment for e in examples],
        [_snownlp_label(s) for s in snow_scores],
        ["negative", "neutral", "positive"],
    )
    assert result.topic is not None and result.critical is not None
    for name, report in (
        ("ours: sentiment", result.sentiment),
        ("snownlp: sentiment", snow_report),
        ("ours: topic", result.topic),
        ("ours: critical", result.critical),
    ):
        print(f"   {name}: acc {report.accuracy:.3f} macro-F1 {report.macro_f1:.3f}")
        print(f"     {_matrix(report)}")
    crit = result.critical.per_class["critical"]
    return [
        Result(
            name="nlp_posts_per_s",
            value=round(ours, 1),
            unit="posts/s",
            goal=None,
            better="higher",
            detail=(
                f"full Analyzer.analyze() on {SPLIT}, {rounds} rounds, one thread; "
                f"model {analyzer.model_version} loaded in {load_s:.2f} s"
            ),
        ),
        Result(
            name="snownlp_posts_per_s",
            value=round(snow, 1),
            unit="posts/s",
            goal=None,
            better="higher",
            detail=f"SnowNLP(text).sentiments alone on the same posts, {snow_rounds} rounds",
        ),
        Result(
            name="nlp_speedup_vs_snownlp",
            value=round(ours / snow, 1),
            unit="x",
            goal=20,
            better="higher",
            detail=(
                "nlp_posts_per_s / snownlp_posts_per_s (whole analyze() vs sentiment only) on "
                f"posts of {sum(map(len, texts)) / len(texts):.0f} characters; on "
                f"{len(longer)} longer posts (≈ {sum(map(len, longer)) / len(longer):.0f} "
                f"characters): ours {ours_long:.0f}/s, SnowNLP {snow_long:.0f}/s, "
                f"{ours_long / snow_long:.1f}x"
            ),
        ),
        Result(
            name="sentiment_macro_f1",
            value=round(result.sentiment.macro_f1, 3),
            unit="",
            goal=0.85,
            better="higher",
            detail=(
                f"3 classes on {SPLIT}; accuracy {result.sentiment.accuracy:.3f}; "
                f"{_matrix(result.sentiment)}"
            ),
        ),
        Result(
            name="snownlp_sentiment_macro_f1",
            value=round(snow_report.macro_f1, 3),
            unit="",
            goal=None,
            better="higher",
            detail=(
                f"SnowNLP on the same posts, <0.4 negative, >0.62 positive; accuracy "
                f"{snow_report.accuracy:.3f}; {_matrix(snow_report)}"
            ),
        ),
        Result(
            name="topic_accuracy",
            value=round(result.topic.accuracy, 3),
            unit="",
            goal=0.85,
            better="higher",
            detail=f"12 topic keys on {SPLIT}; macro-F1 {result.topic.macro_f1:.3f}",
        ),
        Result(
            name="critical_recall",
            value=round(crit.recall, 3),
            unit="",
            goal=0.95,
            better="higher",
            detail=f"{crit.support} critical posts in {SPLIT}; {_matrix(result.critical)}",
        ),
        Result(
            name="critical_precision",
            value=round(crit.precision, 3),
            unit="",
            goal=0.7,
            better="higher",
            detail=f"lexicon signals minus denials; {_matrix(result.critical)}",
        ),
    ]
