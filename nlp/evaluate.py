"""Evaluation of the analyzer on labelled JSONL (``text``, ``sentiment``, ``topic``, ``critical``).

Metrics are computed here in plain Python (no scikit-learn at run time) and
used by ``yuqing nlp eval`` and ``bench/bench_nlp.py``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from core.models import Analysis
from core.vocab import Sentiment, Topic
from nlp.lexicon import load_lexicon
from nlp.normalize import normalize_for_analysis


@dataclass(frozen=True)
class Example:
    """One labelled post. ``topic``/``critical``/``signal`` are ``None`` when the file
    does not give them. ``signal`` names the crisis signal of a critical post (a
    lexicon signal name; checked where it is used, by ``nlp.train``).
    ``source`` is the name of the file it was read from: each bank file has its
    own author, and training cross-fits by it (``nlp.train.cross_fitted_logits``)."""

    text: str
    sentiment: str
    topic: str | None = None
    critical: bool | None = None
    signal: str | None = None
    source: str = ""


def load_jsonl(path: Path) -> list[Example]:
    """Read labelled JSONL. Raises ``ValueError`` naming ``path:line`` for a bad row."""
    out = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                topic = row.get("topic")
                critical = row.get("critical")
                signal = row.get("signal")
                out.append(
                    Example(
                        text=str(row["text"]),
                        sentiment=Sentiment(row["sentiment"]).value,
                        topic=None if topic is None else Topic(topic).value,
                        critical=None if critical is None else bool(critical),
                        signal=None if signal is None else str(signal),
                        source=path.name,
                    )
                )
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                raise ValueError(f"{path}:{lineno}: bad row: {exc}") from exc
    return out


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassReport:
    """Per-class scores and the confusion matrix (rows = gold, columns = predicted)."""

    labels: tuple[str, ...]
    per_class: dict[str, ClassScores]
    matrix: list[list[int]]
    accuracy: float

    @property
    def macro_f1(self) -> float:
        """Mean F1 over the classes that occur in gold or predictions."""
        used = [
            s.f1
            for label, s in self.per_class.items()
            if s.support or any(row[self.labels.index(label)] for row in self.matrix)
        ]
        return sum(used) / len(used) if used else 0.0


def class_report(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> ClassReport:
    """Precision/recall/F1 per label, accuracy and the confusion matrix."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, pred, strict=True):
        matrix[index[g]][index[p]] += 1
    per_class = {}
    for label, i in index.items():
        tp = matrix[i][i]
        predicted = sum(row[i] for row in matrix)
        support = sum(matrix[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = ClassScores(precision, recall, f1, support)
    correct = sum(matrix[i][i] for i in range(len(labels)))
    return ClassReport(tuple(labels), per_class, matrix, correct / len(gold) if gold else 0.0)


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> float:
    """Top-label expected calibration error with ``bins`` equal-width confidence bins.

    ``confidences[i]`` is the probability the model gave its predicted class,
    ``correct[i]`` whether that prediction was right. ECE is the
    post-weighted mean, over bins, of |accuracy − mean confidence|: 0 means a
    stated 80% is right 80% of the time. Returns 0.0 for no posts.
    """
    if len(confidences) != len(correct):
        raise ValueError(f"{len(confidences)} confidences but {len(correct)} outcomes")
    if not confidences:
        return 0.0
    totals = [[0, 0.0, 0] for _ in range(bins)]  # posts, sum of confidence, right
    for conf, right in zip(confidences, correct, strict=True):
        # Bins are (lo, hi]; a confidence of exactly 0 joins the first.
        b = min(bins - 1, max(0, math.ceil(conf * bins) - 1))
        totals[b][0] += 1
        totals[b][1] += conf
        totals[b][2] += int(right)
    n = len(confidences)
    return sum(abs(r / k - c / k) * k / n for k, c, r in totals if k)


class _Analyzes(Protocol):
    def analyze(self, text: str, title: str = "") -> Analysis: ...


@dataclass
class EvalResult:
    """The three reports of one evaluation run (``topic``/``critical`` may be ``None``)."""

    n: int
    sentiment: ClassReport
    topic: ClassReport | None
    critical: ClassReport | None
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    # The critical flag from the lexicon's verdict alone (Lexicon.critical_in; the
    # crisis model neither adds signals nor confirms the lexicon's):
    # what the trained model adds, and what it costs in false alarms.
    critical_lexicon: ClassReport | None = None

    @property
    def critical_recall(self) -> float:
        return self.critical.per_class["critical"].recall if self.critical else 0.0

    @property
    def critical_precision(self) -> float:
        return self.critical.per_class["critical"].precision if self.critical else 0.0


def evaluate(analyzer: _Analyzes, examples: Sequence[Example]) -> EvalResult:
    """Run ``analyzer`` over ``examples`` and score sentiment, topic and the critical flag.

    ``errors`` lists ``(kind, gold, text)`` of sentiment and critical mistakes, for review.
    """
    analyses = [analyzer.analyze(e.text) for e in examples]
    sentiment = class_report(
        [e.sentiment for e in examples],
        [a.sentiment.value for a in analyses],
        [s.value for s in Sentiment],
    )
    with_topic = [(e, a) for e, a in zip(examples, analyses, strict=True) if e.topic is not None]
    topic = (
        class_report(
            [str(e.topic) for e, _ in with_topic],
            [a.topic.value for _, a in with_topic],
            [t.value for t in Topic],
        )
        if with_topic
        else None
    )
    with_crit = [(e, a) for e, a in zip(examples, analyses, strict=True) if e.critical is not None]
    critical = critical_lexicon = None
    if with_crit:
        gold = ["critical" if e.critical else "not_critical" for e, _ in with_crit]
        labels = ["critical", "not_critical"]
        critical = class_report(
            gold, ["critical" if a.critical else "not_critical" for _, a in with_crit], labels
        )
        lexicon = load_lexicon()
        by_lexicon = [lexicon.critical_in(normalize_for_analysis(e.text)) for e, _ in with_crit]
        critical_lexicon = class_report(
            gold, ["critical" if f else "not_critical" for f in by_lexicon], labels
        )
    errors = [
        ("sentiment", f"{e.sentiment}→{a.sentiment.value}", e.text)
        for e, a in zip(examples, analyses, strict=True)
        if e.sentiment != a.sentiment.value
    ]
    errors += [
        ("critical", f"{e.critical}→{a.critical}", e.text)
        for e, a in with_crit
        if e.critical != a.critical
    ]
    return EvalResult(len(examples), sentiment, topic, critical, errors, critical_lexicon)
