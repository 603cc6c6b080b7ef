"""The analyzer: trained sentiment and topic models plus crisis-signal rules.

* Sentiment — a 3-class linear model (TF-IDF over jieba words, character
  1–3-grams, negation-scoped words and a sarcasm cue) trained by
  ``nlp.train`` on hand-labelled bank posts plus public review/Weibo data.
  ``sentiment_score`` is P(positive) + ½·P(neutral): 0 = surely negative,
  1 = surely positive, 0.5 = neutral or unsure.
* Topic — a linear model over the same features plus topic-lexicon hits,
  trained on the bank set; ``topic_confidence`` is its probability.
* Signals — named crisis signals from ``nlp/data/lexicon.yaml`` with the
  words that triggered them. ``critical`` means "escalate now": a critical
  signal fired and the post is not a denial/clarification ("…系谣言").
* Risk score — 1 − (1 − 0.35·P(negative)) · Π(1 − weight of each signal),
  at least 0.6 when critical: 0 for praise, → 1 for a bank-run rumour.

Everything runs on normalised text (``nlp.normalize.normalize_for_analysis``);
the masked text keeps what the author wrote. No scikit-learn at run time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from core.models import Analysis, Signal
from core.settings import Watchlist
from core.vocab import Sentiment, Topic
from nlp import segment
from nlp.features import lexicon_features, name_remover, text_features
from nlp.keywords import keywords_of_words
from nlp.lexicon import Lexicon, load_lexicon
from nlp.mentions import MentionMatcher
from nlp.model import JointScorer, LinearTextModel, load_model
from nlp.normalize import normalize_for_analysis
from nlp.pii import mask_pii

log = logging.getLogger(__name__)

# Below this probability the topic model's best guess is reported as `other`:
# a wrong specific topic misleads an analyst more than "other" does.
MIN_TOPIC_CONFIDENCE = 0.2
_NEGATIVITY_WEIGHT = 0.35
_CRITICAL_FLOOR = 0.6
# A denial ("…系谣言", a clarification notice) halves a signal's risk weight.
_DENIAL_DAMPING = 0.5


class Analyzer:
    """Turns a post's title and text into an :class:`~core.models.Analysis`.

    Deterministic for a given :attr:`model_version` and watchlist; thread-safe
    (models are read-only after loading). Loading takes well under 2 s.
    Raises ``FileNotFoundError`` when the models were never trained.
    """

    def __init__(self, watchlist: Watchlist, *, model_dir: Path | None = None) -> None:
        self._lex: Lexicon = load_lexicon()
        self._sentiment_model: LinearTextModel = load_model("sentiment", model_dir)
        self._topic_model: LinearTextModel = load_model("topic", model_dir)
        self._scorer = JointScorer([self._sentiment_model, self._topic_model])
        self._topic_words = {t.value: words for t, words in self._lex.topics.items()}
        self._weights = {s.name: s.weight for s in self._lex.signals}
        self._mentions = MentionMatcher(watchlist)
        self._own_names = frozenset(n.lower() for n in self._mentions.vocabulary)
        self._drop_names = name_remover(
            normalize_for_analysis(n) for n in self._mentions.vocabulary
        )
        segment.add_words(self._mentions.vocabulary)
        # Load lazily-built tables now, so "loading" is here and the first post is fast.
        segment.cut_for_analysis("预热")
        keywords_of_words(["预热"])
        log.debug("analyzer ready: %s", self.model_version)

    @property
    def model_version(self) -> str:
        """Identifies models and lexicon: ``sent-<version>.<file hash>+topic-….<hash>+lex-<n>``."""
        sent, topic = self._sentiment_model, self._topic_model
        return (
            f"sent-{sent.version}.{sent.digest}+topic-{topic.version}.{topic.digest}"
            f"+{self._lex.version}"
        )

    def entities(self, text: str) -> list[str]:
        """Watched entities in ``text`` (``[]`` when the bank is not mentioned)."""
        return self._mentions.match(text)

    def analyze(self, text: str, title: str = "") -> Analysis:
        """Analyse one post. Never raises on odd text: empty text is neutral, topic ``other``."""
        full = f"{title}\n{text}" if title else text
        norm = normalize_for_analysis(full)
        # The models and keywords never see the bank's own names (see name_remover).
        model_text = self._drop_names(norm)
        words = segment.cut_for_analysis(model_text)
        feats = text_features(model_text, words)
        feats.update(
            lexicon_features(model_text, self._topic_words)
        )  # only the topic model has l:*
        sentiment_proba, topic_proba = self._scorer.predict_proba(feats)
        sentiment, score, p_negative = self._sentiment(sentiment_proba, bool(norm))
        topic, confidence = self._topic(topic_proba, bool(norm))
        signals, denied = self._signals(norm)
        critical = any(s.critical for s in signals)
        calm = 1.0 - _NEGATIVITY_WEIGHT * p_negative
        for signal in signals:
            weight = self._weights[signal.name]
            calm *= 1.0 - (weight * _DENIAL_DAMPING if denied else weight)
        risk = 1.0 - calm
        if critical:
            risk = max(risk, _CRITICAL_FLOOR)
        return Analysis(
            sentiment=sentiment,
            sentiment_score=round(score, 4),
            topic=topic,
            topic_confidence=round(confidence, 4),
            signals=signals,
            risk_score=round(min(1.0, max(0.0, risk)), 4),
            critical=critical,
            keywords=[w for w, _ in keywords_of_words(words, 8, self._own_names)],
            entities=self._mentions.match(full),
            masked_text=mask_pii(text),
            model_version=self.model_version,
        )

    def analyze_many(self, items: Sequence[tuple[str, str]]) -> list[Analysis]:
        """Analyse ``(title, text)`` pairs, returning analyses in input order."""
        return [self.analyze(text, title) for title, text in items]

    def sentiment_proba(self, text: str) -> dict[str, float]:
        """Sentiment class probabilities of ``text`` (for evaluation and debugging)."""
        norm = self._drop_names(normalize_for_analysis(text))
        return self._sentiment_model.predict_proba(
            text_features(norm, segment.cut_for_analysis(norm))
        )

    # -- parts ---------------------------------------------------------------

    def _sentiment(self, proba: dict[str, float], has_text: bool) -> tuple[Sentiment, float, float]:
        if not has_text:
            return Sentiment.NEUTRAL, 0.5, 0.0
        # max over a fixed class order: ties resolve the same way every time.
        label = max(self._sentiment_model.classes, key=lambda c: proba[c])
        score = proba["positive"] + 0.5 * proba["neutral"]
        return Sentiment(label), score, proba["negative"]

    def _topic(self, proba: dict[str, float], has_text: bool) -> tuple[Topic, float]:
        if not has_text:
            return Topic.OTHER, 0.0
        best = max(self._topic_model.classes, key=lambda c: proba[c])
        if proba[best] < MIN_TOPIC_CONFIDENCE:
            return Topic.OTHER, proba[best]
        return Topic(best), proba[best]

    def _signals(self, norm: str) -> tuple[list[Signal], bool]:
        """Signals found in ``norm`` and whether the post reads as a denial.

        In a denial the signals are still reported (analysts want to see a
        rumour being answered) but none of them is critical.
        """
        denied = any(d in norm for d in self._lex.denials)
        found = []
        for spec in self._lex.signals:
            triggers = [w for w in spec.words if w in norm]
            if triggers:
                found.append(
                    Signal(name=spec.name, triggers=triggers, critical=spec.critical and not denied)
                )
        return found, denied
