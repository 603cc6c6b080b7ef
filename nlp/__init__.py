"""Chinese NLP for yuqing: pure functions over text, offline and deterministic.

``analyze(text)`` / ``analyze_many(texts)`` use a default :class:`Analyzer`
built for the default watchlist; services build their own ``Analyzer`` from
settings so entities follow the configured watchlist.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from core.models import Analysis
from core.settings import Watchlist

if TYPE_CHECKING:  # the real import is deferred: jieba and the models load on first use
    from nlp.analyzer import Analyzer


@lru_cache(maxsize=1)
def _default_analyzer() -> Analyzer:
    from nlp.analyzer import Analyzer

    return Analyzer(Watchlist())


def analyze(text: str, title: str = "") -> Analysis:
    """Analyse one post with the default watchlist. See :meth:`nlp.analyzer.Analyzer.analyze`."""
    return _default_analyzer().analyze(text, title)


def analyze_many(texts: Sequence[str]) -> list[Analysis]:
    """Analyse many texts (no titles) with the default watchlist, in input order."""
    return _default_analyzer().analyze_many([("", t) for t in texts])
