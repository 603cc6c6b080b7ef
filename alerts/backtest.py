"""Backtest: replay a labelled scenario through the detectors on a simulated clock.

A scenario (YAML, see ``bench/scenarios/*.yaml``) describes a stream of
posts — a seeded random background with an hour-of-day and a weekday
profile, plus events (bursts with a shape, a sentiment mix, a topic, an
optional critical signal; source outages; ``level`` periods that scale the
background, e.g. a quiet holiday week) — and which events are *true
incidents*. A scenario may carry a ``calendar`` of known special periods
(given to every ``volume_spike`` rule without one). :func:`run_backtest`

1. generates the posts (deterministic for the scenario's ``seed``) into a
   throw-away :class:`~storage.local.LocalPostStore` and state database, and
   records a crawl run per source every ``crawl_minutes`` (failed during the
   source's outages, so the detectors see the gap: :mod:`alerts.health`);
2. runs :meth:`Detector.run_once` every ``step_minutes`` of simulated time
   (the rules only see posts published, and crawl runs started, before ``now``);
3. plays a simple analyst: an incident with no update for
   ``resolve_after_minutes`` is resolved, so later incidents can open;
4. scores the ``opened`` and ``joined`` alerts against the labelled windows
   (:func:`score`): a window is *found* when a rule opens or joins an
   incident within ``[start, end + grace)``; an incident *opened* anywhere
   else is a *false alarm* (per rule: any opening or joining elsewhere). The
   delay is counted in detection cycles from the window start and, for
   events with critical posts, in simulated minutes from the first of them.

Nothing here touches the configured stores or sends a message (no channels).
"""

from __future__ import annotations

import logging
import math
import random
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alerts.detector import Detector
from alerts.grading import Thresholds
from alerts.rules import build_rules
from core.errors import ConfigError
from core.ids import post_id_from_url
from core.models import Analysis, CrawlRun, Post, Signal
from core.settings import CalendarPeriod, RuleConfig, Settings, VolumeSpikeRule
from core.vocab import IncidentStatus, Platform, Sentiment, Topic

logger = logging.getLogger(__name__)

BANK = "澜海银行"
"""The (fictional) bank every generated post names (``Analysis.entities``)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Background(_Strict):
    """Everyday posts: a Poisson stream with an hour-of-day profile (local time)."""

    posts_per_hour: float = Field(default=6.0, ge=0)
    negative_share: float = Field(default=0.2, ge=0, le=1)
    hourly_profile: list[float] | None = Field(
        default=None, min_length=24, max_length=24, description="multiplier per local hour"
    )
    weekday_profile: list[float] | None = Field(
        default=None,
        min_length=7,
        max_length=7,
        description="multiplier per local weekday, Monday first",
    )
    topics: dict[Topic, float] = Field(default_factory=lambda: {Topic.SERVICE_QUALITY: 1.0})
    sources: list[str] = Field(default_factory=lambda: ["forum", "news", "complaint"])


class Event(_Strict):
    """In ``[start, start + minutes)``: a burst of posts, an outage of ``source`` (its
    background posts never arrive and its crawls fail), or a ``level`` period that
    multiplies the background by ``factor`` (a quiet holiday, a busy shopping day)."""

    name: str
    kind: Literal["burst", "outage", "level"] = "burst"
    factor: float = Field(default=1.0, ge=0, le=100, description="level: background multiplier")
    sources: list[str] | None = Field(
        default=None, description="level: the background sources it scales (default: all)"
    )
    start: datetime
    minutes: int = Field(ge=1)
    posts: int = Field(default=0, ge=0)
    shape: Literal["flat", "ramp"] = "flat"
    negative_share: float = Field(default=0.8, ge=0, le=1)
    topic: Topic = Topic.OTHER
    signal: str | None = None
    critical_share: float = Field(default=0.0, ge=0, le=1)
    followers: int | None = None
    entity: str | None = Field(default=None, description="a branch/product the burst names")
    source: str = "forum"
    platform: Platform = Platform.FORUM
    incident: bool = Field(default=True, description="a true incident the detectors must find")


class Scenario(_Strict):
    """A labelled scenario. Times are aware; ``days`` of simulated time from ``start``."""

    name: str
    description: str = ""
    start: datetime
    days: float = Field(gt=0, le=60)
    step_minutes: int = Field(default=5, ge=1)
    seed: int = 1
    utc_offset_hours: float = 8.0
    resolve_after_minutes: int = Field(default=120, ge=1)
    warmup_days: float = Field(
        default=7.0, ge=0, le=28, description="background generated before start (baselines)"
    )
    grace_minutes: int = Field(default=60, ge=0)
    background: Background = Background()
    events: list[Event] = Field(default_factory=list)
    rules: list[RuleConfig] | None = Field(
        default=None, description="rules to replay (default: those of the config)"
    )
    calendar: list[CalendarPeriod] = Field(
        default_factory=list,
        description="known special periods, given to every volume_spike rule without a calendar",
    )
    crawl_minutes: int = Field(default=10, ge=1, description="a crawl run per source this often")

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; raises ``ConfigError`` naming the file and key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read scenario: {exc}") from exc
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: invalid scenario:"]
        for err in exc.errors():
            lines.append(f"  - {'.'.join(str(p) for p in err['loc'])}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from exc


# -- generating the stream ----------------------------------------------------------------


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method: fine for the small per-minute rates used here.
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _post(
    n: int,
    at: datetime,
    *,
    source: str,
    platform: Platform,
    negative: bool,
    topic: Topic,
    signal: str | None = None,
    followers: int | None = None,
    entity: str | None = None,
) -> Post:
    url = f"https://backtest.example/{source}/{n}"
    analysis = Analysis(
        entities=[BANK, entity] if entity else [BANK],
        sentiment=Sentiment.NEGATIVE if negative else Sentiment.NEUTRAL,
        sentiment_score=0.1 if negative else 0.5,
        topic=topic,
        signals=[Signal(name=signal, critical=True)] if signal else [],
        critical=signal is not None,
    )
    return Post(
        id=post_id_from_url(url),
        url=url,
        source=source,
        platform=platform,
        text=f"澜海银行 模拟帖子 {n}",
        author=f"作者{n % 97}",
        author_followers=followers,
        published_at=at,
        analysis=analysis,
    )


def generate_posts(scenario: Scenario) -> list[Post]:
    """The scenario's posts, deterministic for its ``seed``."""
    return generate(scenario)[0]


def _in(event: Event, t: datetime) -> bool:
    return event.start <= t < event.start + timedelta(minutes=event.minutes)


def generate(scenario: Scenario) -> tuple[list[Post], dict[str, datetime]]:
    """The scenario's posts and, per burst with critical posts, its first critical post's
    time (the reference of the delay in minutes). Deterministic for the ``seed``."""
    rng = random.Random(scenario.seed)
    bg = scenario.background
    outages = [e for e in scenario.events if e.kind == "outage"]
    levels = [e for e in scenario.events if e.kind == "level"]
    first_critical: dict[str, datetime] = {}
    topics = list(bg.topics)
    weights = [bg.topics[t] for t in topics]
    posts: list[Post] = []
    minute = timedelta(minutes=1)
    offset = timedelta(hours=scenario.utc_offset_hours)
    t = scenario.start - timedelta(days=scenario.warmup_days)
    while t < scenario.end:
        local = t.astimezone(UTC) + offset
        factor = bg.hourly_profile[local.hour] if bg.hourly_profile else 1.0
        if bg.weekday_profile:
            factor *= bg.weekday_profile[local.weekday()]
        # Each source gets its share of the stream, scaled by the level periods on now.
        for source in bg.sources:
            scaled = factor
            for level in levels:
                if _in(level, t) and (level.sources is None or source in level.sources):
                    scaled *= level.factor
            rate = bg.posts_per_hour * scaled / 60 / len(bg.sources)
            down = any(o.source == source and _in(o, t) for o in outages)
            for _ in range(_poisson(rng, rate)):
                at = t + timedelta(seconds=rng.randrange(60))
                negative = rng.random() < bg.negative_share
                topic = rng.choices(topics, weights)[0]
                if down:
                    continue  # the source is down: its posts never arrive
                posts.append(
                    _post(
                        len(posts),
                        at,
                        source=source,
                        platform=Platform.FORUM,
                        negative=negative,
                        topic=topic,
                    )
                )
        t += minute
    for event in scenario.events:
        if event.kind != "burst":
            continue
        span = event.minutes * 60
        for _ in range(event.posts):
            u = rng.random()
            # ramp: density grows linearly over the window (a slow burn)
            offset_s = span * (math.sqrt(u) if event.shape == "ramp" else u)
            at = event.start + timedelta(seconds=offset_s)
            signal = event.signal if rng.random() < event.critical_share else None
            posts.append(
                _post(
                    len(posts),
                    at,
                    source=event.source,
                    platform=event.platform,
                    negative=rng.random() < event.negative_share,
                    topic=event.topic,
                    signal=signal,
                    followers=event.followers,
                    entity=event.entity,
                )
            )
            if signal is not None and (
                event.name not in first_critical or at < first_critical[event.name]
            ):
                first_critical[event.name] = at
    return posts, first_critical


def crawl_runs(scenario: Scenario) -> list[CrawlRun]:
    """One crawl run per source every ``crawl_minutes`` from the warm-up to the end; a run
    started during an outage of its source failed (``ok=False``)."""
    sources = sorted(
        {*scenario.background.sources, *(e.source for e in scenario.events if e.kind != "level")}
    )
    outages = [e for e in scenario.events if e.kind == "outage"]
    step = timedelta(minutes=scenario.crawl_minutes)
    runs: list[CrawlRun] = []
    t = scenario.start - timedelta(days=scenario.warmup_days)
    while t < scenario.end:
        for source in sources:
            down = any(o.source == source and _in(o, t) for o in outages)
            runs.append(
                CrawlRun(
                    source=source,
                    started_at=t,
                    finished_at=t + timedelta(seconds=30),
                    ok=not down,
                    message="simulated outage" if down else "",
                )
            )
        t += step
    return runs


def with_calendar(rules: Sequence[RuleConfig], calendar: Sequence[CalendarPeriod]) -> list[Any]:
    """``rules`` with the scenario's ``calendar`` given to each ``volume_spike`` rule that
    has none of its own."""
    if not calendar:
        return list(rules)
    return [
        r.model_copy(update={"calendar": list(calendar)})
        if isinstance(r, VolumeSpikeRule) and not r.calendar
        else r
        for r in rules
    ]


# -- replay and scoring ---------------------------------------------------------------------


@dataclass(frozen=True)
class Opening:
    """A rule opening an incident (``event="opened"``) or joining one (``"joined"``)."""

    rule: str
    key: str
    at: datetime
    event: str = "opened"


@dataclass
class RuleScore:
    """Per rule (or ``overall``): found/missed true incidents, false alarms, delays."""

    found: int = 0
    missed: int = 0
    false_alarms: int = 0
    delays_cycles: list[float] = field(default_factory=list)
    delays_minutes: list[float] = field(default_factory=list)
    """Minutes from the event's first critical post, for events with critical posts only
    (the others are measured in cycles from their start)."""

    @property
    def median_delay_cycles(self) -> float | None:
        return statistics.median(self.delays_cycles) if self.delays_cycles else None

    @property
    def median_delay_minutes(self) -> float | None:
        return statistics.median(self.delays_minutes) if self.delays_minutes else None


@dataclass
class BacktestReport:
    """What :func:`run_backtest` measured."""

    scenario: str
    weeks: float
    cycles: int
    true_incidents: int
    openings: list[Opening]
    by_rule: dict[str, RuleScore]
    overall: RuleScore

    @property
    def found_ratio(self) -> float:
        return self.overall.found / self.true_incidents if self.true_incidents else 1.0

    @property
    def false_alarms_per_week(self) -> float:
        return self.overall.false_alarms / self.weeks if self.weeks else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (figure names as in ``bench/results.json``)."""
        return {
            "scenario": self.scenario,
            "backtest_incidents_found_ratio": round(self.found_ratio, 3),
            "backtest_false_alarms_per_week": round(self.false_alarms_per_week, 3),
            "backtest_median_delay_cycles": self.overall.median_delay_cycles,
            "backtest_median_delay_minutes": self.overall.median_delay_minutes,
            "by_rule": {
                name: {
                    "found": s.found,
                    "missed": s.missed,
                    "false_alarms": s.false_alarms,
                    "median_delay_cycles": s.median_delay_cycles,
                    "median_delay_minutes": s.median_delay_minutes,
                }
                for name, s in self.by_rule.items()
            },
        }


def score(
    scenario: Scenario,
    openings: Sequence[Opening],
    rule_names: Sequence[str],
    first_critical: dict[str, datetime] | None = None,
) -> tuple[dict[str, RuleScore], RuleScore]:
    """Score ``openings`` against the scenario's true incident windows (pure).

    A window is found by the first opening *or joining* in it. Overall, only
    incidents *opened* outside every window are false alarms (a rule joining an
    incident adds no new alarm); per rule, any of its openings or joinings
    outside the windows is. ``first_critical`` maps an event name to its first
    critical post: the delay in minutes is measured from it, for those events only.
    """
    step = scenario.step_minutes * 60
    grace = timedelta(minutes=scenario.grace_minutes)
    first_critical = first_critical or {}
    windows = [
        (e.start, e.start + timedelta(minutes=e.minutes) + grace, first_critical.get(e.name))
        for e in scenario.events
        if e.kind == "burst" and e.incident
    ]

    def in_window(o: Opening, w: tuple[datetime, datetime, datetime | None]) -> bool:
        return w[0] <= o.at < w[1]

    def tally(selected: Sequence[Opening], *, alarms_on_join: bool) -> RuleScore:
        result = RuleScore()
        for w in windows:
            hits = [o for o in selected if in_window(o, w)]
            if hits:
                result.found += 1
                first = min(o.at for o in hits)
                result.delays_cycles.append(math.ceil((first - w[0]).total_seconds() / step))
                if w[2] is not None:
                    result.delays_minutes.append(round((first - w[2]).total_seconds() / 60, 2))
            else:
                result.missed += 1
        result.false_alarms = sum(
            1
            for o in selected
            if (alarms_on_join or o.event == "opened") and not any(in_window(o, w) for w in windows)
        )
        return result

    by_rule = {
        name: tally([o for o in openings if o.rule == name], alarms_on_join=True)
        for name in rule_names
    }
    return by_rule, tally(openings, alarms_on_join=False)


def run_backtest(
    scenario: Scenario,
    settings: Settings,
    workdir: Path | None = None,
    *,
    record_crawls: bool = True,
) -> BacktestReport:
    """Replay ``scenario`` through the rules (the scenario's, else ``settings.rules``).

    Uses throw-away stores in ``workdir`` (default: a temporary directory).
    ``record_crawls=False`` leaves the crawl runs out, so the detectors cannot
    tell an outage from silence (to measure what source health is worth).
    Raises ``ConfigError`` for a rule type with no implementation.
    """
    from storage.local import LocalPostStore
    from storage.state import SqlStateStore

    configs = scenario.rules if scenario.rules is not None else settings.rules
    thresholds = Thresholds.from_config(settings.grading)
    rules = build_rules(with_calendar(configs, scenario.calendar), thresholds=thresholds)
    with tempfile.TemporaryDirectory(prefix="yuqing-backtest-") as tmp:
        base = workdir or Path(tmp)
        posts = LocalPostStore(base / "posts.db", tokenizer=lambda s: s.split())
        state = SqlStateStore(f"sqlite:///{base / 'state.db'}")
        try:
            generated, first_critical = generate(scenario)
            posts.upsert(generated)
            for run in crawl_runs(scenario) if record_crawls else []:
                state.record_crawl_run(run)
            logger.info("backtest %s: %d posts generated", scenario.name, len(generated))
            detector = Detector(
                rules,
                posts,
                state,
                [],
                watchlist=settings.watchlist,
                grouping=settings.grouping,
                thresholds=thresholds,
            )
            openings: list[Opening] = []
            step = timedelta(minutes=scenario.step_minutes)
            resolve_after = timedelta(minutes=scenario.resolve_after_minutes)
            now = scenario.start + step
            cycles = 0
            while now <= scenario.end:
                cycles += 1
                for alert in detector.run_once(now):
                    event = alert.details.get("event")
                    if event in ("opened", "joined"):
                        key = str(alert.details.get("key"))
                        openings.append(Opening(alert.rule, key, now, str(event)))
                for incident in state.list_incidents(
                    status=[IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED], limit=1000
                ):
                    if incident.id is not None and incident.updated_at <= now - resolve_after:
                        resolved = state.resolve(incident.id, user="backtest", note="quiet")
                        # resolve() stamps the wall clock; the baselines need simulated time.
                        state.save_incident(resolved.model_copy(update={"resolved_at": now}))
                now += step
        finally:
            posts.close()
            state.close()
    by_rule, overall = score(
        scenario, openings, [r.name for r in rules if r.enabled], first_critical
    )
    return BacktestReport(
        scenario=scenario.name,
        weeks=scenario.days / 7,
        cycles=cycles,
        true_incidents=sum(1 for e in scenario.events if e.kind == "burst" and e.incident),
        openings=openings,
        by_rule=by_rule,
        overall=overall,
    )
