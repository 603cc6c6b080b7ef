"""The rule plugin seam: a :class:`Rule` declares its options and decides in one pure function.

A rule type is a subclass of :class:`Rule` that

* names its ``type`` (the ``type:`` key in the YAML ``rules:`` list) and its
  ``options`` model (the pydantic class in :mod:`core.settings` that validates
  that YAML at load time),
* gathers the numbers it needs from the :class:`~core.ports.PostStore` in
  :meth:`Rule.evaluate` (the only place it touches I/O), and
* hands them to a pure ``decide(...)`` that returns a :class:`Match` or ``None``
  and is unit-tested without a store or a clock.

Register a new type with :func:`register_rule`; :func:`build_rules` turns the
validated config into rule instances and refuses a ``type`` with no class.

Rules over complaint tickets (not posts) subclass :class:`TicketRule` and
implement :meth:`TicketRule.evaluate_tickets` over a :class:`TicketSource`
(the StateStore). Callers run any rule with :func:`evaluate_rule`, which hands
each rule what it reads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from alerts.grading import THRESHOLDS, Thresholds
from core.errors import ConfigError, YuqingError
from core.models import PostQuery, Ticket
from core.ports import PostStore
from core.vocab import Grade

OptionsT = TypeVar("OptionsT", bound=BaseModel)

Window = tuple[datetime, datetime]
"""A time range ``[start, end)``."""


def overlaps(start: datetime, end: datetime, windows: Sequence[Window]) -> bool:
    """True when ``[start, end)`` intersects any of ``windows``."""
    return any(w_start < end and start < w_end for w_start, w_end in windows)


@dataclass(frozen=True)
class Match:
    """One rule firing: the numbers behind it and why, in Chinese and English.

    ``decide`` fills the decision fields; ``evaluate`` adds where it looked
    (``window_start``/``window_end`` and the ``query`` selecting the posts in
    that window) so the detector can attach evidence to the incident.
    """

    rule: str
    """The configured rule name (``rules[].name``)."""
    rule_type: str
    grade: Grade
    """The grade this match alone justifies; an incident's grade never goes down."""
    title: str
    """A short Chinese incident title, used when the match opens an incident."""
    reason: str
    """Human reason, e.g. ``30分钟内 24 条，基线均值 2.1 条 (11.4×) / 24 posts in 30 min …``."""
    key: str = "all"
    """What the match is about (``all``, later ``topic:loans``, ``branch:…``)."""
    count: int = 0
    """Posts in the current window behind the match (drives the incident's peak)."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """The numbers (JSON-serialisable) that led to the decision."""
    window_start: datetime | None = None
    window_end: datetime | None = None
    query: PostQuery | None = None
    """Selects the posts of the current window; ``None`` when the rule has no posts to show."""
    evidence_ids: tuple[str, ...] = ()
    """Ids of the posts behind the match when no ``query`` can select exactly them
    (e.g. one author's posts); the detector attaches them as evidence."""
    ticket_ids: tuple[str, ...] = ()
    """Complaint tickets behind the match (ticket rules); the incident starts linked to them."""
    ticket_reasons: tuple[str, ...] = ()
    """Why each of ``ticket_ids`` is linked (Chinese), shared by all of them."""
    topic: str | None = None
    """What the match is about when the rule knows it (``topic_burst``); otherwise the
    detector derives it from the evidence posts (grouping, :mod:`alerts.incidents`)."""
    entities: tuple[str, ...] = ()
    """Watched branches/products the match is about when the rule knows them
    (``ticket_surge``); otherwise derived from the evidence posts."""


class Rule(ABC, Generic[OptionsT]):
    """Base class of detection rules.

    Subclasses set the class attributes ``type`` and ``options`` and implement
    :meth:`evaluate`. The options model must have ``name``, ``enabled`` and
    ``dry_run`` fields (every rule can be switched off or run in dry-run mode).
    """

    # ``options`` first: below the ``type`` attribute the name ``type`` means it.
    options: ClassVar[type[BaseModel]]
    type: ClassVar[str]

    def __init__(self, config: OptionsT, *, thresholds: Thresholds = THRESHOLDS) -> None:
        if not isinstance(config, self.options):
            raise ConfigError(
                f"rule {getattr(config, 'name', '?')!r}: {type(self).__name__} needs "
                f"{self.options.__name__} options, got {type(config).__name__}"
            )
        self.config: OptionsT = config
        # The grading cut-offs (settings ``grading:``) every decide() grades with.
        self.thresholds = thresholds

    @property
    def name(self) -> str:
        return str(getattr(self.config, "name"))  # noqa: B009 - declared by every options model

    @property
    def enabled(self) -> bool:
        return bool(getattr(self.config, "enabled", True))

    @property
    def dry_run(self) -> bool:
        return bool(getattr(self.config, "dry_run", False))

    @abstractmethod
    def evaluate(
        self, posts: PostStore, now: datetime, *, exclude: Sequence[Window] = ()
    ) -> Match | None:
        """Read what the rule needs from ``posts`` as of ``now`` and decide.

        ``exclude`` are time ranges ``[start, end)`` of past incidents of this
        rule: a rule with a baseline leaves them out of it, so one crisis does
        not raise the bar for the next. Rules without a baseline ignore it.

        Returns the match or ``None`` when the data is quiet. Store errors
        (``StoreUnavailable`` …) propagate: a rule must never turn "could not
        read" into "no match".
        """

    def evaluate_all(
        self, posts: PostStore, now: datetime, *, exclude: Sequence[Window] = ()
    ) -> list[Match]:
        """Every match of this cycle; rules keyed per subject (signal, author, topic)
        return one per key. The default wraps :meth:`evaluate`. Same error contract."""
        match = self.evaluate(posts, now, exclude=exclude)
        return [] if match is None else [match]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class TicketSource(Protocol):
    """What a ticket rule reads: the StateStore's tickets (``[since, until)``, newest first)."""

    def list_tickets(
        self, *, since: datetime | None = None, until: datetime | None = None, limit: int = 500
    ) -> list[Ticket]: ...


class TicketsNotGiven(YuqingError):
    """A ticket rule was evaluated without a :class:`TicketSource` (use :func:`evaluate_rule`)."""


class TicketRule(Rule[OptionsT]):
    """A rule that decides over complaint tickets instead of posts.

    Implement :meth:`evaluate_tickets`. Evaluating it over posts alone raises
    :class:`TicketsNotGiven` (never "no match"): run it with :func:`evaluate_rule`.
    """

    @abstractmethod
    def evaluate_tickets(
        self, tickets: TicketSource, now: datetime, *, exclude: Sequence[Window] = ()
    ) -> list[Match]:
        """Every match of this cycle from the tickets as of ``now``; store errors propagate."""

    def evaluate(
        self, posts: PostStore, now: datetime, *, exclude: Sequence[Window] = ()
    ) -> Match | None:
        raise TicketsNotGiven(f"rule {self.name!r} reads complaint tickets: use evaluate_rule()")

    def evaluate_all(
        self, posts: PostStore, now: datetime, *, exclude: Sequence[Window] = ()
    ) -> list[Match]:
        raise TicketsNotGiven(f"rule {self.name!r} reads complaint tickets: use evaluate_rule()")


@runtime_checkable
class SourceAware(Protocol):
    """A post rule that can leave out the sources that are down now (``volume_spike``)."""

    def evaluate_sources(
        self,
        posts: PostStore,
        now: datetime,
        *,
        exclude: Sequence[Window] = (),
        down_sources: Collection[str] = (),
    ) -> list[Match]: ...


class CopyCounter(Protocol):
    """Copies (reposts) grouped under stored posts, by time: the crawl does not store a
    copy as a post (docs/dedup.md), so a rule that counts "how loud" adds them.

    A copy's time is its published time (else when the crawl saw it), on the
    clock of ``Post.published_at``. Implemented by
    :class:`storage.dedup_index.DedupIndex`; errors (``StoreUnavailable``) propagate.
    """

    def count_copies(
        self, since: datetime, until: datetime, *, exclude_sources: Collection[str] = ()
    ) -> int:
        """Copies in ``[since, until)``, those from ``exclude_sources`` left out."""
        ...

    def copy_histogram(
        self,
        since: datetime,
        until: datetime,
        *,
        bucket_seconds: int,
        exclude_sources: Collection[str] = (),
    ) -> dict[datetime, int]:
        """Copies in ``[since, until)`` by epoch-aligned bucket start (empty buckets absent)."""
        ...


@runtime_checkable
class CopyAware(Protocol):
    """A post rule that counts grouped copies too when given a :class:`CopyCounter`."""

    def evaluate_copies(
        self,
        posts: PostStore,
        now: datetime,
        *,
        copies: CopyCounter,
        exclude: Sequence[Window] = (),
        down_sources: Collection[str] = (),
    ) -> list[Match]: ...


def evaluate_rule(
    rule: Rule[Any],
    posts: PostStore,
    now: datetime,
    *,
    exclude: Sequence[Window] = (),
    tickets: TicketSource | None = None,
    down_sources: Collection[str] = (),
    copies: CopyCounter | None = None,
) -> list[Match]:
    """Every match of ``rule`` now: a :class:`TicketRule` reads ``tickets``, others ``posts``.

    ``down_sources`` (no successful crawl now, :mod:`alerts.health`) are left
    out of the counts of a :class:`SourceAware` rule; other rules ignore them.
    ``copies`` (the crawl's repost groups) are counted by a :class:`CopyAware`
    rule; without it (unit tests, backtests) every rule counts stored posts only.
    Raises :class:`TicketsNotGiven` for a ticket rule without ``tickets``.
    """
    if isinstance(rule, TicketRule):
        if tickets is None:
            raise TicketsNotGiven(f"rule {rule.name!r} reads complaint tickets: none given")
        return rule.evaluate_tickets(tickets, now, exclude=exclude)
    if copies is not None and isinstance(rule, CopyAware):
        return rule.evaluate_copies(
            posts, now, copies=copies, exclude=exclude, down_sources=down_sources
        )
    if down_sources and isinstance(rule, SourceAware):
        return rule.evaluate_sources(posts, now, exclude=exclude, down_sources=down_sources)
    return rule.evaluate_all(posts, now, exclude=exclude)


RULE_TYPES: dict[str, type[Rule[Any]]] = {}
"""Registered rule classes by their ``type`` key."""

RuleT = TypeVar("RuleT", bound=type[Rule[Any]])


def register_rule(cls: RuleT) -> RuleT:
    """Class decorator: make ``cls`` the implementation of rules with ``type: cls.type``.

    Raises ``ValueError`` if another class already claims that type (two
    plugins silently shadowing each other would be worse).
    """
    existing = RULE_TYPES.get(cls.type)
    if existing is not None and existing is not cls:
        raise ValueError(f"rule type {cls.type!r} is already registered by {existing.__name__}")
    RULE_TYPES[cls.type] = cls
    return cls


def build_rules(
    configs: Sequence[BaseModel], *, thresholds: Thresholds = THRESHOLDS
) -> list[Rule[Any]]:
    """Instantiate one rule per config entry, in order (disabled ones included), each
    grading with ``thresholds`` (``Thresholds.from_config(settings.grading)``).

    Raises ``ConfigError`` naming the rule when its ``type`` has no registered
    class, so a typo or a not-yet-implemented type fails at start-up, not at
    the first detection cycle.
    """
    rules: list[Rule[Any]] = []
    for index, config in enumerate(configs):
        type_key = getattr(config, "type", None)
        name = getattr(config, "name", f"#{index}")
        cls = RULE_TYPES.get(str(type_key))
        if cls is None:
            known = ", ".join(sorted(RULE_TYPES)) or "(none)"
            raise ConfigError(
                f"rules[{index}] ({name!r}): unknown rule type {type_key!r}; known types: {known}"
            )
        rules.append(cls(config, thresholds=thresholds))
    return rules
