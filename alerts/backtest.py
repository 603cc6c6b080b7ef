"""Backtest: replay a labelled scenario through the detectors on a simulated clock.

A scenario (YAML, see ``scenarios/backtest/*.yaml``) describes a stream of
posts — a seeded random background with an hour-of-day profile, plus events
(bursts with a shape, a sentiment mix, a topic, an optional critical signal;
or source outages) — and which events are *true incidents*. :func:`run_backtest`

1. generates the posts (deterministic for the scenario's ``seed``) into a
   throw-away :class:`~storage.local.LocalPostStore` and state database;
2. runs :meth:`Detector.run_once` every ``step_minutes`` of simulated time
   (the rules only see posts published before ``now``);
3. plays a simple analyst: an incident with no update for
   ``resolve_after_minutes`` is resolved, so later incidents can open;
4. scores the ``opened`` alerts against the labelled windows: a window is
   *found* when an incident opens within ``[start, end + grace)``; any other
   opening is a *false alarm*; the delay is counted in detection cycles from
   the window start.

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
from alerts.rules import build_rules
from core.errors import ConfigError
from core.ids import post_id_from_url
from core.models import Analysis, Post, Signal
from core.settings import RuleConfig, Settings
from core.vocab import IncidentStatus, Platform, Sentiment, Topic

logger = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Background(_Strict):
    """Everyday posts: a Poisson stream with an hour-of-day profile (local time)."""

    posts_per_hour: float = Field(default=6.0, ge=0)
    negative_share: float = Field(default=0.2, ge=0, le=1)
    hourly_profile: list[float] | None = Field(
        default=None, min_length=24, max_length=24, description="multiplier per local hour"
    )
    topics: dict[Topic, float] = Field(default_factory=lambda: {Topic.SERVICE_QUALITY: 1.0})
    sources: list[str] = Field(default_factory=lambda: ["forum", "news", "complaint"])


class Event(_Strict):
    """A burst of posts (or an outage of a source) in ``[start, start + minutes)``."""

    name: str
    kind: Literal["burst", "outage"] = "burst"
    start: datetime
    minutes: int = Field(ge=1)
    posts: int = Field(default=0, ge=0)
    shape: Literal["flat", "ramp"] = "flat"
    negative_share: float = Field(default=0.8, ge=0, le=1)
    topic: Topic = Topic.OTHER
    signal: str | None = None
    critical_share: float = Field(default=0.0, ge=0, le=1)
    followers: int | None = None
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
) -> Post:
    url = f"https://backtest.example/{source}/{n}"
    analysis = Analysis(
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
    rng = random.Random(scenario.seed)
    bg = scenario.background
    outages = [e for e in scenario.events if e.kind == "outage"]
    topics = list(bg.topics)
    weights = [bg.topics[t] for t in topics]
    posts: list[Post] = []
    minute = timedelta(minutes=1)
    offset = timedelta(hours=scenario.utc_offset_hours)
    t = scenario.start - timedelta(days=scenario.warmup_days)
    while t < scenario.end:
        hour = (t.astimezone(UTC) + offset).hour
        factor = bg.hourly_profile[hour] if bg.hourly_profile else 1.0
        for _ in range(_poisson(rng, bg.posts_per_hour * factor / 60)):
            source = rng.choice(bg.sources)
            if any(
                o.source == source and o.start <= t < o.start + timedelta(minutes=o.minutes)
                for o in outages
            ):
                continue  # the source is down: its posts never arrive
            at = t + timedelta(seconds=rng.randrange(60))
            posts.append(
                _post(
                    len(posts),
                    at,
                    source=source,
                    platform=Platform.FORUM,
                    negative=rng.random() < bg.negative_share,
                    topic=rng.choices(topics, weights)[0],
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
            posts.append(
                _post(
                    len(posts),
                    event.start + timedelta(seconds=offset_s),
                    source=event.source,
                    platform=event.platform,
                    negative=rng.random() < event.negative_share,
                    topic=event.topic,
                    signal=event.signal if rng.random() < event.critical_share else None,
                    followers=event.followers,
                )
            )
    return posts


# -- replay and scoring ---------------------------------------------------------------------


@dataclass(frozen=True)
class Opening:
    """An incident opened during the replay."""

    rule: str
    key: str
    at: datetime


@dataclass
class RuleScore:
    """Per rule (or ``overall``): found/missed true incidents, false alarms, delays."""

    found: int = 0
    missed: int = 0
    false_alarms: int = 0
    delays_cycles: list[float] = field(default_factory=list)

    @property
    def median_delay_cycles(self) -> float | None:
        return statistics.median(self.delays_cycles) if self.delays_cycles else None


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
            "by_rule": {
                name: {
                    "found": s.found,
                    "missed": s.missed,
                    "false_alarms": s.false_alarms,
                    "median_delay_cycles": s.median_delay_cycles,
                }
                for name, s in self.by_rule.items()
            },
        }


def score(
    scenario: Scenario, openings: Sequence[Opening], rule_names: Sequence[str]
) -> tuple[dict[str, RuleScore], RuleScore]:
    """Score ``openings`` against the scenario's true incident windows (pure)."""
    step = scenario.step_minutes * 60
    grace = timedelta(minutes=scenario.grace_minutes)
    windows = [
        (e.start, e.start + timedelta(minutes=e.minutes) + grace)
        for e in scenario.events
        if e.kind == "burst" and e.incident
    ]

    def in_window(o: Opening, w: tuple[datetime, datetime]) -> bool:
        return w[0] <= o.at < w[1]

    def tally(selected: Sequence[Opening]) -> RuleScore:
        result = RuleScore()
        for w in windows:
            hits = [o for o in selected if in_window(o, w)]
            if hits:
                result.found += 1
                first = min(o.at for o in hits)
                result.delays_cycles.append(math.ceil((first - w[0]).total_seconds() / step))
            else:
                result.missed += 1
        result.false_alarms = sum(1 for o in selected if not any(in_window(o, w) for w in windows))
        return result

    by_rule = {name: tally([o for o in openings if o.rule == name]) for name in rule_names}
    return by_rule, tally(openings)


def run_backtest(
    scenario: Scenario, settings: Settings, workdir: Path | None = None
) -> BacktestReport:
    """Replay ``scenario`` through the rules (the scenario's, else ``settings.rules``).

    Uses throw-away stores in ``workdir`` (default: a temporary directory).
    Raises ``ConfigError`` for a rule type with no implementation.
    """
    from storage.local import LocalPostStore
    from storage.state import SqlStateStore

    rules = build_rules(scenario.rules if scenario.rules is not None else settings.rules)
    with tempfile.TemporaryDirectory(prefix="yuqing-backtest-") as tmp:
        base = workdir or Path(tmp)
        posts = LocalPostStore(base / "posts.db", tokenizer=lambda s: s.split())
        state = SqlStateStore(f"sqlite:///{base / 'state.db'}")
        try:
            generated = generate_posts(scenario)
            posts.upsert(generated)
            logger.info("backtest %s: %d posts generated", scenario.name, len(generated))
            detector = Detector(rules, posts, state, [])
            openings: list[Opening] = []
            step = timedelta(minutes=scenario.step_minutes)
            resolve_after = timedelta(minutes=scenario.resolve_after_minutes)
            now = scenario.start + step
            cycles = 0
            while now <= scenario.end:
                cycles += 1
                for alert in detector.run_once(now):
                    if alert.details.get("event") == "opened":
                        openings.append(Opening(alert.rule, str(alert.details.get("key")), now))
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
    by_rule, overall = score(scenario, openings, [r.name for r in rules if r.enabled])
    return BacktestReport(
        scenario=scenario.name,
        weeks=scenario.days / 7,
        cycles=cycles,
        true_incidents=sum(1 for e in scenario.events if e.kind == "burst" and e.incident),
        openings=openings,
        by_rule=by_rule,
        overall=overall,
    )
