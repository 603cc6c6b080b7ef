"""The demo web's scenario: a YAML file of posts and tickets on a relative clock.

A scenario is data, not code. It has three parts:

* ``background`` — generators for "ordinary days": per-site hourly rates with
  a day/night profile and text templates with slots (``{branch}``,
  ``{product}`` …), expanded deterministically from ``seed``;
* ``posts`` — scripted posts with an ``offset_minutes`` relative to the moment
  the demo web starts (negative = history, positive = appears while it runs);
* ``tickets`` — complaint tickets (background generator + scripted surges).

Time. ``t0`` is the start of the demo web. A post with offset ``o`` is
published at ``t0 + o`` minutes when ``o <= 0`` and at ``t0 + o / speed``
minutes when ``o > 0``: ``speed`` compresses only the scripted future, so the
history keeps its real spacing and the baseline density (posts per hour) is
the same at any speed. A post is served only once it is published.

:func:`load_scenario` raises :class:`ScenarioError` naming the file and the
field for any invalid value; :func:`expand` turns a scenario into a
:class:`World` (the same scenario and start always give the same world).
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Site = Literal["forum", "news", "complaint"]
SITES: tuple[Site, ...] = ("forum", "news", "complaint")

# Ids start high so URLs look like a real site's, and differ per site so a
# forum thread and a complaint are never confused in logs.
_FIRST_ID: dict[Site, int] = {"forum": 100001, "news": 50001, "complaint": 17000001}


_REDRAWS = 30  # attempts at a background text that is not already taken


class ScenarioError(ValueError):
    """The scenario file is invalid; the message names the file and the field."""


class _Strict(BaseModel):
    # A typo in a scenario must be an error, not a silently ignored key.
    model_config = ConfigDict(extra="forbid", frozen=True)


NonEmpty = Annotated[str, Field(min_length=1)]
Count = Annotated[int, Field(ge=0)]


class Complaint(_Strict):
    """The structured header of a complaint-platform post."""

    target: NonEmpty = Field(description="投诉对象")
    problem: NonEmpty = Field(description="投诉问题")
    demand: NonEmpty = Field(description="投诉要求")
    status: NonEmpty = Field(default="处理中", description="状态")
    collective_count: Count = Field(default=0, description="集体投诉人数; 0 = individual")
    amount: str | None = Field(default=None, description="涉诉金额, shown as written")


class ScriptedPost(_Strict):
    """One post at a fixed offset from the start of the demo web."""

    site: Site
    offset_minutes: float = Field(ge=-60 * 24 * 60, le=24 * 60)
    title: NonEmpty
    text: NonEmpty
    author: NonEmpty
    followers: Count | None = None
    reposts: Count = 0
    comments: Count = 0
    likes: Count = 0
    publisher: str | None = Field(default=None, description="news only: the 来源 line")
    complaint: Complaint | None = None

    @model_validator(mode="after")
    def _complaint_matches_site(self) -> ScriptedPost:
        if self.site == "complaint" and self.complaint is None:
            raise ValueError("a complaint post needs a 'complaint' block (target, problem, demand)")
        if self.site != "complaint" and self.complaint is not None:
            raise ValueError(f"'complaint' is only allowed on complaint posts, not on {self.site}")
        return self


class PostTemplate(_Strict):
    """A background post pattern; ``{slot}`` placeholders are filled from ``slots``."""

    site: Site
    weight: float = Field(default=1.0, gt=0)
    title: NonEmpty
    text: NonEmpty
    complaint: Complaint | None = None
    max_engagement: Count = Field(default=30, description="reposts/comments/likes drawn up to this")

    @model_validator(mode="after")
    def _complaint_matches_site(self) -> PostTemplate:
        if self.site == "complaint" and self.complaint is None:
            raise ValueError("a complaint template needs a 'complaint' block")
        if self.site != "complaint" and self.complaint is not None:
            raise ValueError(f"'complaint' is only allowed on complaint templates, not {self.site}")
        return self

    def slot_names(self) -> set[str]:
        texts = [self.title, self.text]
        if self.complaint is not None:
            texts += [self.complaint.target, self.complaint.problem, self.complaint.demand]
        return _slots_in(texts)


class Background(_Strict):
    """Generators for ordinary days before the start."""

    seed: int = 0
    days: float = Field(default=7, ge=0, le=60)
    rates_per_hour: dict[Site, Annotated[float, Field(ge=0, le=100)]] = Field(
        description="average posts per hour per site over a whole day"
    )
    hourly_profile: list[Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: [1.0] * 24,
        description="relative activity for each local hour 0..23 (normalised to mean 1)",
    )
    slots: dict[str, list[NonEmpty]] = Field(default_factory=dict)
    authors: dict[Site, list[NonEmpty]] = Field(default_factory=dict)
    publishers: list[NonEmpty] = Field(default_factory=lambda: ["江南财经网"])
    templates: list[PostTemplate] = Field(default_factory=list)

    @field_validator("hourly_profile")
    @classmethod
    def _profile_24(cls, value: list[float]) -> list[float]:
        if len(value) != 24:
            raise ValueError(f"needs exactly 24 values (one per local hour), got {len(value)}")
        if sum(value) <= 0:
            raise ValueError("needs at least one positive value")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Background:
        for site, rate in self.rates_per_hour.items():
            if rate <= 0:
                continue
            if not any(t.site == site for t in self.templates):
                raise ValueError(f"rates_per_hour.{site} > 0 but no template has site {site!r}")
            if not self.authors.get(site):
                raise ValueError(f"rates_per_hour.{site} > 0 but authors.{site} is empty")
        for i, template in enumerate(self.templates):
            missing = template.slot_names() - set(self.slots)
            if missing:
                raise ValueError(
                    f"templates.{i} uses undeclared slot(s) {sorted(missing)}; "
                    f"declared: {sorted(self.slots)}"
                )
            for slot in template.slot_names():
                if not self.slots[slot]:
                    raise ValueError(f"slots.{slot} is empty but templates.{i} uses it")
        return self


class TicketTemplate(_Strict):
    weight: float = Field(default=1.0, gt=0)
    channel: NonEmpty
    branch: NonEmpty
    product: NonEmpty
    category: NonEmpty
    priority: NonEmpty = "普通"
    summary: NonEmpty


class TicketBackground(_Strict):
    per_day: float = Field(ge=0, le=10_000)
    templates: list[TicketTemplate] = Field(min_length=1)


class ScriptedTicket(_Strict):
    """A ticket (or ``repeat`` similar tickets spread over ``spread_minutes``)."""

    offset_minutes: float = Field(ge=-60 * 24 * 60, le=24 * 60)
    channel: NonEmpty
    branch: NonEmpty
    product: NonEmpty
    category: NonEmpty
    priority: NonEmpty = "普通"
    status: NonEmpty = "待处理"
    summary: NonEmpty
    repeat: int = Field(default=1, ge=1, le=1000)
    spread_minutes: float = Field(default=0, ge=0)


class Tickets(_Strict):
    background: TicketBackground | None = None
    items: list[ScriptedTicket] = Field(default_factory=list)


class Scenario(_Strict):
    """A whole demo world, as loaded from YAML."""

    name: NonEmpty
    description: str = ""
    timezone: str = "Asia/Shanghai"
    page_size: int = Field(default=20, ge=1, le=200, description="posts per list page")
    rss_limit: int = Field(default=100, ge=1, le=1000, description="newest items in rss.xml")
    background: Background | None = None
    posts: list[ScriptedPost] = Field(default_factory=list)
    tickets: Tickets = Field(default_factory=Tickets)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _background_slots_for_tickets(self) -> Scenario:
        tb = self.tickets.background
        if tb is None:
            return self
        declared = set(self.background.slots) if self.background else set()
        for i, t in enumerate(tb.templates):
            missing = _slots_in([t.branch, t.product, t.summary, t.category]) - declared
            if missing:
                raise ValueError(
                    f"tickets.background.templates.{i} uses undeclared slot(s) "
                    f"{sorted(missing)} (declare them in background.slots)"
                )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _slots_in(texts: Iterable[str]) -> set[str]:
    names: set[str] = set()
    for text in texts:
        for _, name, _, _ in string.Formatter().parse(text):
            if name:
                names.add(name)
    return names


def default_scenario_path() -> Path:
    """The scenario shipped with yuqing (ordinary week → wealth-product crisis)."""
    return Path(__file__).resolve().parent / "scenarios" / "default.yaml"


def parse_scenario(data: Any, origin: str = "<scenario>") -> Scenario:
    """Validate a mapping as a :class:`Scenario`; raises :class:`ScenarioError` naming fields."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{origin}: the top level must be a mapping")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        lines = [f"invalid scenario {origin}:"]
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            value = err.get("input")
            shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
            lines.append(f"  - {key}: {err['msg']}{shown}")
        raise ScenarioError("\n".join(lines)) from exc


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate the scenario YAML at ``path``.

    Raises :class:`ScenarioError` if the file is missing, is not YAML, or any
    field is invalid (one line per bad field, with its dotted name).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from exc
    return parse_scenario(data, str(path))


# -- the expanded world ----------------------------------------------------------


@dataclass(frozen=True)
class DemoPost:
    """A post of the expanded world; ``id`` is its number on its site."""

    site: Site
    id: int
    offset_minutes: float
    title: str
    text: str
    author: str
    followers: int | None = None
    reposts: int = 0
    comments: int = 0
    likes: int = 0
    publisher: str | None = None
    complaint: Complaint | None = None
    scripted: bool = False


@dataclass(frozen=True)
class DemoTicket:
    ticket_id: str
    offset_minutes: float
    channel: str
    branch: str
    product: str
    category: str
    priority: str
    status: str
    summary: str
    customer_ref: str


@dataclass(frozen=True)
class ScenarioClock:
    """Maps scenario offsets to wall-clock times (see the module docstring)."""

    start: datetime
    speed: float = 1.0

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("ScenarioClock.start must be timezone-aware")
        if not self.speed > 0:
            raise ValueError(f"speed must be > 0, got {self.speed}")

    def published_at(self, offset_minutes: float) -> datetime:
        """When a post with this offset is (or was) published, as an aware datetime."""
        real = offset_minutes if offset_minutes <= 0 else offset_minutes / self.speed
        return self.start + timedelta(minutes=real)

    def is_published(self, offset_minutes: float, now: datetime) -> bool:
        return self.published_at(offset_minutes) <= now


@dataclass
class World:
    """Every post and ticket of a scenario, with ids, sorted by offset (oldest first)."""

    scenario: Scenario
    posts: list[DemoPost]
    tickets: list[DemoTicket]
    _by_key: dict[tuple[str, int], DemoPost] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_key = {(p.site, p.id): p for p in self.posts}

    def get(self, site: Site, post_id: int) -> DemoPost | None:
        return self._by_key.get((site, post_id))

    @cached_property
    def by_site(self) -> dict[Site, list[DemoPost]]:
        out: dict[Site, list[DemoPost]] = {s: [] for s in SITES}
        for post in self.posts:
            out[post.site].append(post)
        return out


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method: fine for the small hourly rates of a demo.
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _fill(text: str, values: dict[str, str]) -> str:
    return text.format_map(values) if "{" in text else text


def _background_posts(scenario: Scenario, start: datetime) -> Iterator[dict[str, Any]]:
    bg = scenario.background
    if bg is None or bg.days <= 0:
        return
    rng = random.Random(bg.seed)
    mean = sum(bg.hourly_profile) / 24
    zone = scenario.zone
    hours = math.ceil(bg.days * 24)
    by_site = {s: [t for t in bg.templates if t.site == s] for s in SITES}
    seen_texts: set[str] = set()
    for site in SITES:  # fixed order: the random stream must not depend on dict order
        rate = bg.rates_per_hour.get(site, 0.0)
        templates = by_site[site]
        if rate <= 0 or not templates:
            continue
        weights = [t.weight for t in templates]
        for h in range(hours, 0, -1):
            hour_start = -h * 60.0
            local_hour = (start + timedelta(minutes=hour_start + 30)).astimezone(zone).hour
            lam = rate * bg.hourly_profile[local_hour] / mean
            for _ in range(_poisson(rng, lam)):
                # Re-draw a text that already exists: exact duplicates in the
                # background would be dropped by the crawler's dedup and thin
                # out the baseline; the scenario adds its reposts on purpose.
                for _attempt in range(_REDRAWS):
                    template = rng.choices(templates, weights)[0]
                    values = {name: rng.choice(options) for name, options in bg.slots.items()}
                    text = _fill(template.text, values)
                    if text not in seen_texts:
                        break
                seen_texts.add(text)
                complaint = None
                if template.complaint is not None:
                    c = template.complaint
                    complaint = c.model_copy(
                        update={
                            "target": _fill(c.target, values),
                            "problem": _fill(c.problem, values),
                            "demand": _fill(c.demand, values),
                            "status": rng.choice(["已回复", "已完成", "处理中"])
                            if h > 24
                            else c.status,
                        }
                    )
                top = template.max_engagement
                yield {
                    "site": site,
                    # strictly before the start: background never appears "later"
                    "offset_minutes": round(hour_start + rng.uniform(0.0, 59.5), 3),
                    "title": _fill(template.title, values),
                    "text": text,
                    "author": rng.choice(bg.authors[site]),
                    "followers": rng.randint(0, 3000),
                    "reposts": rng.randint(0, top // 3) if top else 0,
                    "comments": rng.randint(0, top),
                    "likes": rng.randint(0, top),
                    "publisher": rng.choice(bg.publishers) if site == "news" else None,
                    "complaint": complaint,
                    "scripted": False,
                }


def _tickets(scenario: Scenario) -> list[DemoTicket]:
    raw: list[dict[str, Any]] = []
    seed = scenario.background.seed if scenario.background else 0
    rng = random.Random(seed + 7919)  # a separate stream: adding tickets keeps posts unchanged
    tb = scenario.tickets.background
    days = scenario.background.days if scenario.background else 0
    if tb is not None and tb.per_day > 0 and days > 0:
        slots = scenario.background.slots if scenario.background else {}
        weights = [t.weight for t in tb.templates]
        count = _poisson(rng, tb.per_day * days)
        for _ in range(count):
            t = rng.choices(tb.templates, weights)[0]
            values = {name: rng.choice(options) for name, options in slots.items()}
            offset = -rng.uniform(1.0, days * 24 * 60)
            age_days = -offset / 1440
            status = "已办结" if age_days > 2 else rng.choice(["处理中", "已办结", "待处理"])
            raw.append(
                {
                    "offset_minutes": round(offset, 3),
                    "channel": t.channel,
                    "branch": _fill(t.branch, values),
                    "product": _fill(t.product, values),
                    "category": _fill(t.category, values),
                    "priority": t.priority,
                    "status": status,
                    "summary": _fill(t.summary, values),
                }
            )
    for item in scenario.tickets.items:
        step = item.spread_minutes / (item.repeat - 1) if item.repeat > 1 else 0.0
        for k in range(item.repeat):
            raw.append(
                {
                    "offset_minutes": round(item.offset_minutes + k * step, 3),
                    "channel": item.channel,
                    "branch": item.branch,
                    "product": item.product,
                    "category": item.category,
                    "priority": item.priority,
                    "status": item.status,
                    "summary": item.summary,
                }
            )
    raw.sort(key=lambda r: r["offset_minutes"])
    tickets = []
    for n, r in enumerate(raw, start=1):
        ref = f"C{rng.randint(10, 99)}****{rng.randint(1000, 9999)}"  # masked: never a real id
        tickets.append(DemoTicket(ticket_id=f"TK{n:06d}", customer_ref=ref, **r))
    return tickets


def expand(scenario: Scenario, start: datetime) -> World:
    """Expand background generators and scripted items into a :class:`World`.

    Deterministic: the same scenario (seed) and the same ``start`` give the
    same posts, ids and tickets. ``start`` matters only for the day/night
    profile (which local hour each past hour was). Ids are numbered per site
    in publish order, like a real site's.
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    raw = list(_background_posts(scenario, start))
    for post in scenario.posts:
        raw.append({**post.model_dump(exclude={"complaint"}), "complaint": post.complaint})
        raw[-1]["scripted"] = True
    # Stable sort: scripted posts at the same offset keep their file order.
    raw.sort(key=lambda r: r["offset_minutes"])
    next_id = dict(_FIRST_ID)
    posts: list[DemoPost] = []
    for r in raw:
        site: Site = r["site"]
        posts.append(DemoPost(id=next_id[site], **r))
        next_id[site] += 1
    return World(scenario=scenario, posts=posts, tickets=_tickets(scenario))
