"""What the crawl pipelines need from the rest of yuqing, handed over in one object.

``yuqing.bootstrap`` (or a test) builds a :class:`CrawlServices` and
:func:`crawler.runner.run_crawl` puts it into the Scrapy settings under
:data:`SERVICES_KEY`; each pipeline takes what it needs in ``from_crawler``.
The small protocols below say exactly which methods are used, so unit tests
can pass hand-written fakes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from core.models import Analysis, Post
from core.ports import PostStore, StateStore
from nlp.normalize import clean_text
from storage.dedup_index import DedupIndex

log = logging.getLogger(__name__)

SERVICES_KEY = "YUQING_SERVICES"
"""The Scrapy setting that holds the :class:`CrawlServices` of a crawl."""


class TextAnalyzer(Protocol):
    def analyze(self, text: str, title: str = "") -> Analysis:
        """Sentiment, topic, signals, entities … of one post."""
        ...


class EntityMatcher(Protocol):
    def match(self, text: str) -> list[str]:
        """Watched entity names in ``text``; ``[]`` when the bank is not mentioned."""
        ...


class PostSpool(Protocol):
    def append(self, posts: Sequence[Post]) -> Any:
        """Keep ``posts`` on disk until the store is back; raises ``OSError`` if it cannot."""
        ...

    def replay(self, store: PostStore) -> int:
        """Upsert spooled batches into ``store``; returns how many posts were replayed.

        Raises ``StoreUnavailable`` (keeping what is not replayed) if the store is still down.
        """
        ...

    def pending(self) -> int:
        """How many posts wait in the spool."""
        ...


@dataclass(eq=False)
class CrawlServices:
    """The adapters one crawl uses.

    ``post_store`` receives the posts; ``spool`` keeps batches the store
    refused (StoreUnavailable) and is replayed when the next crawl starts;
    ``analyzer`` and ``mention_matcher`` come from ``nlp``; ``state_store``,
    when given, records the :class:`core.models.CrawlRun`; ``clean_text``
    removes site chrome and spam lines. ``dedup_index``, when given, lets the
    dedup stage find near-duplicates across crawls and group reposts under
    their original (``docs/dedup.md``); without it exact copies are dropped
    ungrouped and near-copies are kept.
    """

    post_store: PostStore
    spool: PostSpool
    analyzer: TextAnalyzer
    mention_matcher: EntityMatcher
    state_store: StateStore | None = None
    clean_text: Callable[[str], str] = clean_text
    dedup_index: DedupIndex | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> CrawlServices:
        # Scrapy deep-copies its settings for each crawler; live connections
        # cannot be copied and must be shared, so the copy is this object.
        return self

    def close(self) -> None:
        """Close the stores. Safe to call twice (the stores' own ``close`` is)."""
        self.post_store.close()
        if self.state_store is not None:
            self.state_store.close()
        if self.dedup_index is not None:
            self.dedup_index.close()
