"""The analyzer: trained sentiment, topic and crisis models plus crisis-signal rules.

* Sentiment — a 3-class linear model (TF-IDF over jieba words, character
  1–3-grams, negation-scoped words and a sarcasm cue) trained by
  ``nlp.train`` on hand-labelled bank posts plus public review/Weibo data.
  ``sentiment_score`` is P(positive) + ½·P(neutral) of the
  temperature-calibrated probabilities: 0 = surely negative, 1 = surely
  positive, 0.5 = neutral or unsure.
* Topic — a linear model over the same features plus topic-lexicon hits,
  trained on the bank set; ``topic_confidence`` is its calibrated probability.
* Signals — named crisis signals from ``nlp/data/lexicon.yaml`` with the
  words that triggered them, plus the trained crisis model's signal when it
  is sure enough and the lexicon did not name it (``source="model"``, with
  the words that weighed most; never on a post read as praise).
  ``critical`` means "escalate now": a critical signal fired, the post is
  not a denial/clarification ("…系谣言"), and a lexicon signal is confirmed
  by the crisis model (P(critical) at least its confirm threshold; trigger
  words such as 曝光 or 倒闭 also occur in posts about a logo or a milk-tea
  shop). An unconfirmed or denied signal is still reported, not critical.
* Risk score — 1 − (1 − 0.35·P(negative)) · Π(1 − weight of each signal,
  halved for a signal that is not critical), at least 0.6 when critical:
  0 for praise, → 1 for a bank-run rumour.

Everything runs on normalised text (``nlp.normalize.normalize_for_analysis``);
the masked text keeps what the author wrote. No scikit-learn at run time.
The hot path is tuned for speed (one fold, one lexicon scan, joint scoring;
see docs/nlp.md); tests/unit/test_nlp_fastpath.py holds each shortcut to the
plain form it replaces.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from core.models import Analysis, Signal
from core.settings import Watchlist
from core.vocab import Sentiment, Topic
from nlp import segment
from nlp.features import PhraseSet, TopicCues, mixed_features, name_remover, text_features
from nlp.keywords import keyword_words
from nlp.lexicon import Lexicon, load_lexicon
from nlp.mentions import MentionMatcher
from nlp.model import JointScorer, LinearTextModel, load_model
from nlp.normalize import normalize_folded, normalize_for_analysis, simplify_and_fold
from nlp.pii import mask_pii

log = logging.getLogger(__name__)

# Below this probability the topic model's best guess is reported as `other`:
# a wrong specific topic misleads an analyst more than "other" does.
MIN_TOPIC_CONFIDENCE = 0.2
_NEGATIVITY_WEIGHT = 0.35
_CRITICAL_FLOOR = 0.6
# A signal that is not critical (denied, "…系谣言", or not confirmed by the
# crisis model) weighs half in the risk score.
_NOT_CRITICAL_DAMPING = 0.5
# The models' order in the analyzer's JointScorer.
_SENTIMENT, _TOPIC, _CRISIS = 0, 1, 2


def _argmax(values: Sequence[float]) -> int:
    """Index of the largest value; the first of equal maxima, so ties follow class order."""
    return values.index(max(values))


class _Prepared(NamedTuple):
    """A post between :meth:`Analyzer._prepare` and :meth:`Analyzer._finish`."""

    text: str  # as written (PII is masked from this)
    folded: str  # simplified and width-folded, for entity matching
    has_text: bool  # False when nothing is left after normalisation
    words: list[str]  # jieba words of the model text
    found: set[str]  # lexicon phrases in the normalised text
    features: Counter[str]  # nlp.features.mixed_features output


class Analyzer:
    """Turns a post's title and text into an :class:`~core.models.Analysis`.

    Deterministic for a given :attr:`model_version` and watchlist; thread-safe
    (models are read-only after loading). Loading takes well under 2 s.
    Raises ``FileNotFoundError`` when the models were never trained.
    """

    def __init__(
        self,
        watchlist: Watchlist,
        *,
        model_dir: Path | None = None,
        critical_threshold: float | None = None,
    ) -> None:
        self._lex: Lexicon = load_lexicon()
        self._sentiment_model: LinearTextModel = load_model("sentiment", model_dir)
        self._topic_model: LinearTextModel = load_model("topic", model_dir)
        self._crisis_model: LinearTextModel = load_model("crisis", model_dir)
        # Topic and crisis models read the same features, so one scorer serves all three.
        self._scorer = JointScorer([self._sentiment_model, self._topic_model, self._crisis_model])
        trained = float(self._crisis_model.meta["critical_threshold"])
        self._crisis_threshold = trained if critical_threshold is None else critical_threshold
        # Confirming the lexicon never asks more than raising a signal alone does.
        self._confirm_threshold = min(
            float(self._crisis_model.meta["confirm_threshold"]), self._crisis_threshold
        )
        self._crisis_labels = self._crisis_model.classes
        self._topic_cues = TopicCues(self._lex.cue_words())
        self._weights = {s.name: s.weight for s in self._lex.signals}
        # One phrase scan finds every topic cue, signal trigger and denial;
        # each signal then lists its triggers in lexicon order.
        self._phrases = PhraseSet(
            [w for spec in self._lex.signals for w in spec.words]
            + list(self._lex.denials)
            + sorted(self._topic_cues.words)
        )
        self._denials = frozenset(self._lex.denials)
        self._signal_words = [(spec, frozenset(spec.words)) for spec in self._lex.signals]
        sent_classes = self._sentiment_model.classes
        self._i_neg = sent_classes.index(Sentiment.NEGATIVE.value)
        self._i_neu = sent_classes.index(Sentiment.NEUTRAL.value)
        self._i_pos = sent_classes.index(Sentiment.POSITIVE.value)
        self._sent_labels = [Sentiment(c) for c in sent_classes]
        self._topic_labels = [Topic(c) for c in self._topic_model.classes]
        self._mentions = MentionMatcher(watchlist)
        self._own_names = frozenset(n.lower() for n in self._mentions.vocabulary)
        # Only the bank's own names are blanked, as training blanks them: branch
        # and product names keep their generic part (支行, 理财…), which the models
        # learned from posts naming fictional branches; blanking them here too
        # fed the models text unlike any they were trained on (a configured
        # "滨江支行" dropped "…在滨江支行集体维权" below the confirm threshold).
        self._drop_names = name_remover(
            normalize_for_analysis(n) for n in self._mentions.bank_names
        )
        segment.add_words(self._mentions.vocabulary)
        sent, topic, crisis = self._sentiment_model, self._topic_model, self._crisis_model
        self._version = (
            f"sent-{sent.version}.{sent.digest}+topic-{topic.version}.{topic.digest}"
            f"+crisis-{crisis.version}.{crisis.digest}+{self._lex.version}"
        )
        if self._crisis_threshold != trained:
            # Another threshold gives other analyses: stored ones must say so.
            self._version += f"+crit{self._crisis_threshold:g}"
        # Load lazily-built tables now, so "loading" is here and the first post is fast.
        self.analyze("预热 繁體")
        log.debug("analyzer ready: %s", self.model_version)

    @property
    def model_version(self) -> str:
        """Identifies models and lexicon:
        ``sent-<version>.<file hash>+topic-….<hash>+crisis-….<hash>+lex-<n>``."""
        return self._version

    def entities(self, text: str) -> list[str]:
        """Watched entities in ``text`` (``[]`` when the bank is not mentioned)."""
        return self._mentions.match(text)

    def analyze(self, text: str, title: str = "") -> Analysis:
        """Analyse one post. Never raises on odd text: empty text is neutral, topic ``other``."""
        prepared = self._prepare(text, title)
        return self._finish(prepared, self._scorer.predict_mixed(prepared.features))

    def analyze_many(self, items: Sequence[tuple[str, str]], *, chunk: int = 512) -> list[Analysis]:
        """Analyse ``(title, text)`` pairs, returning analyses in input order.

        The same analyses as ``[analyze(text, title) for title, text in items]``
        (the model probabilities agree to float rounding), but the models score
        ``chunk`` posts at a time in one numpy pass
        (:meth:`~nlp.model.JointScorer.predict_mixed_many`); ``chunk`` bounds
        the memory that pass takes.
        """
        out: list[Analysis] = []
        for start in range(0, len(items), chunk):
            prepared = [self._prepare(text, title) for title, text in items[start : start + chunk]]
            probas = self._scorer.predict_mixed_many([p.features for p in prepared])
            out.extend(map(self._finish, prepared, probas))
        return out

    def sentiment_proba(self, text: str, *, temperature: float | None = None) -> dict[str, float]:
        """Sentiment class probabilities of ``text`` (for evaluation and debugging).

        ``temperature=1.0`` gives the uncalibrated model's probabilities.
        """
        norm = self._drop_names(normalize_for_analysis(text))
        return self._sentiment_model.predict_proba(
            text_features(norm, segment.cut_for_analysis(norm)), temperature=temperature
        )

    def topic_proba(self, text: str, *, temperature: float | None = None) -> dict[str, float]:
        """Topic probabilities of ``text`` before the ``other`` fallback (for evaluation).

        ``temperature=1.0`` gives the uncalibrated model's probabilities.
        """
        norm = normalize_for_analysis(text)
        model_text = self._drop_names(norm)
        feats = text_features(model_text, segment.cut_for_analysis(model_text))
        feats.update(self._topic_cues.counts(norm))
        return self._topic_model.predict_proba(feats, temperature=temperature)

    @property
    def topic_calibration(self) -> dict[str, Any]:
        """The topic model's temperature and its train-time calibration report."""
        meta = self._topic_model.meta.get("calibration") or {}
        return {"temperature": self._topic_model.temperature, **meta}

    @property
    def sentiment_calibration(self) -> dict[str, Any]:
        """The sentiment model's temperature and its train-time calibration report."""
        meta = self._sentiment_model.meta.get("calibration") or {}
        return {"temperature": self._sentiment_model.temperature, **meta}

    # -- parts ---------------------------------------------------------------

    def _prepare(self, text: str, title: str) -> _Prepared:
        """Everything about a post that comes before the models score it."""
        full = f"{title}\n{text}" if title else text
        # Fold once (NFKC + traditional → simplified) for the models and the name matcher.
        folded = simplify_and_fold(full)
        norm = normalize_folded(folded)
        # The models and keywords never see the bank's own names (see name_remover).
        model_text = self._drop_names(norm)
        words = segment.cut_for_analysis(model_text)
        found = self._phrases.found(norm)
        # l:* (topic and signal cues) weigh in the topic and crisis models only.
        feats = mixed_features(model_text, words, self._topic_cues.names_of_found(found))
        return _Prepared(text, folded, bool(norm), words, found, feats)

    def _finish(self, post: _Prepared, probas: Sequence[Sequence[float]]) -> Analysis:
        """The :class:`Analysis` of a prepared post from the models' class probabilities
        (:class:`~nlp.model.JointScorer` output, in the scorer's model order)."""
        sentiment_proba, topic_proba, crisis_proba = (
            probas[_SENTIMENT],
            probas[_TOPIC],
            probas[_CRISIS],
        )
        if post.has_text:
            p_negative = sentiment_proba[self._i_neg]
            sentiment = self._sent_labels[_argmax(sentiment_proba)]
            score = sentiment_proba[self._i_pos] + 0.5 * sentiment_proba[self._i_neu]
            best = _argmax(topic_proba)
            confidence = topic_proba[best]
            topic = self._topic_labels[best] if confidence >= MIN_TOPIC_CONFIDENCE else Topic.OTHER
        else:
            sentiment, score, p_negative = Sentiment.NEUTRAL, 0.5, 0.0
            topic, confidence = Topic.OTHER, 0.0
        p_critical = 1.0 - crisis_proba[0]
        signals, denied = self._signals(post.found, p_critical >= self._confirm_threshold)
        # Almost no hand-labelled critical post praises the bank (3 of 1,621: two
        # acts of violence staff stopped, one defence of the bank beside a queue
        # to withdraw; the lexicon can still raise those); a praising
        # post the crisis model flags is about a crisis theme, not a crisis.
        if post.has_text and sentiment is not Sentiment.POSITIVE:
            signals += self._model_signals(post.features, crisis_proba, signals, denied)
        critical = any(s.critical for s in signals)
        calm = 1.0 - _NEGATIVITY_WEIGHT * p_negative
        for signal in signals:
            weight = self._weights[signal.name]
            calm *= 1.0 - (weight if signal.critical else weight * _NOT_CRITICAL_DAMPING)
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
            keywords=keyword_words(post.words, 8, self._own_names),
            entities=self._mentions.match_folded(post.folded),
            masked_text=mask_pii(post.text),
            model_version=self._version,
        )

    def _model_signals(
        self,
        features: Counter[str],
        crisis_proba: Sequence[float],
        lexicon_signals: Sequence[Signal],
        denied: bool,
    ) -> list[Signal]:
        """The crisis model's signal, when it is sure enough and the lexicon missed it.

        P(critical) = 1 − P(none) must reach the threshold (the one chosen at
        train time, ``meta.critical_threshold``, unless the analyzer was given
        another); the signal is the most probable one. A denial makes it
        non-critical, as it does lexicon signals.
        """
        if 1.0 - crisis_proba[0] < self._crisis_threshold:
            return []
        best = 1 + _argmax(crisis_proba[1:])
        name = self._crisis_labels[best]
        if any(s.name == name for s in lexicon_signals):
            return []
        return [
            Signal(
                name=name,
                triggers=self._crisis_words(features, best),
                critical=not denied,
                source="model",
            )
        ]

    def _crisis_words(self, features: Counter[str], label: int, n: int = 3) -> list[str]:
        """The ``n`` words or character n-grams that pushed the crisis model most
        towards class ``label`` rather than ``none`` (the explanation analysts see).

        A candidate inside one already chosen (or containing it) is skipped, so
        "取不出" is not followed by "取不"; single characters and cue flags
        (``n:``/``l:``/``f:``/``s:``) explain nothing to a reader and are left out.
        """
        pushes = self._scorer.pushes(features, _CRISIS, label, 0)
        ranked = sorted(
            (-push, feat[2:] if feat.startswith("w:") else feat)
            for feat, push in zip(features, pushes, strict=True)
            if push > 0 and (":" not in feat or feat.startswith("w:"))
        )
        chosen: list[str] = []
        for _, word in ranked:
            if len(word) < 2 or any(word in c or c in word for c in chosen):
                continue
            chosen.append(word)
            if len(chosen) == n:
                break
        return chosen

    def _signals(self, found: set[str], confirmed: bool) -> tuple[list[Signal], bool]:
        """Signals among the lexicon phrases ``found`` in a post, and whether it is a denial.

        A signal is critical only when its spec says so, the post is no denial
        and the crisis model ``confirmed`` it (``Lexicon.critical_in`` is the
        same verdict without the model). Otherwise it is still reported:
        analysts want to see a rumour being answered, or a trigger word the
        model read as harmless.
        """
        denied = not self._denials.isdisjoint(found)
        escalates = confirmed and not denied
        signals = []
        for spec, words in self._signal_words:
            if found.isdisjoint(words):
                continue
            triggers = [w for w in spec.words if w in found]
            signals.append(
                Signal(name=spec.name, triggers=triggers, critical=spec.critical and escalates)
            )
        return signals, denied
