"""The shipped bank lexicon (``nlp/data/lexicon.yaml``): topic cues, crisis signals.

Words are matched against normalised text (simplified, half-width, lower
case), so the YAML lists simplified forms in lower case.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from core.vocab import Topic


@dataclass(frozen=True)
class SignalSpec:
    """A named crisis signal: trigger words, whether it escalates at once, its risk weight."""

    name: str
    critical: bool
    weight: float
    words: tuple[str, ...]


@dataclass(frozen=True)
class Lexicon:
    version: str
    topics: dict[Topic, tuple[str, ...]]
    signals: tuple[SignalSpec, ...]
    denials: tuple[str, ...]

    def cue_words(self) -> dict[str, tuple[str, ...]]:
        """The phrases the topic and crisis models read as ``l:<name>`` counts
        (:class:`nlp.features.TopicCues`): each topic's words under its key and
        each signal's triggers under its name (the names never coincide).

        The crisis model learns from data how far each signal's triggers are
        worth trusting, instead of seeing only the words around them.
        """
        cues = {topic.value: words for topic, words in self.topics.items()}
        cues.update((spec.name, spec.words) for spec in self.signals)
        return cues

    def critical_in(self, text: str) -> bool:
        """The lexicon's own verdict on normalised ``text``: a critical signal's phrase
        occurs and no denial does (substring matches, as the analyzer's scan).

        The analyzer then asks the crisis model to confirm it; training and the
        "lexicon alone" evaluation figure use this verdict as it stands.
        """
        if any(d in text for d in self.denials):
            return False
        return any(spec.critical and any(w in text for w in spec.words) for spec in self.signals)


@lru_cache(maxsize=1)
def load_lexicon() -> Lexicon:
    """Load the shipped lexicon once per process. Raises ``KeyError`` on a malformed file."""
    raw: dict[str, Any] = yaml.safe_load(
        (resources.files("nlp") / "data" / "lexicon.yaml").read_text(encoding="utf-8")
    )
    return Lexicon(
        version=str(raw["version"]),
        topics={Topic(k): tuple(str(w).lower() for w in v) for k, v in raw["topics"].items()},
        signals=tuple(
            SignalSpec(
                name=name,
                critical=bool(spec.get("critical", False)),
                weight=float(spec.get("weight", 0.3)),
                words=tuple(str(w).lower() for w in spec["words"]),
            )
            for name, spec in raw["signals"].items()
        ),
        denials=tuple(str(w) for w in raw.get("denials", [])),
    )
