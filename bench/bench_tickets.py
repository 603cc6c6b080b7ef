"""Incident → complaint-ticket linking quality on the shipped labelled set.

The set (``tests/fixtures/linking/linking_set.json``) holds a few incidents of
a fictional bank as sets of posts, ~110 tickets (the true ones plus hard
distractors: same branch and time but another product, same product a week
earlier, background noise) and the true links. For each incident the posts
are profiled and every ticket is ranked by :func:`alerts.tickets.linking.rank_tickets`.

Figures: ``ticket_link_precision_at_5`` (mean over incidents of the share of
the top 5 that are true links; goal ≥ 0.8) and ``ticket_link_recall_at_10``
(mean share of the true links found in the top 10). ``quick`` changes
nothing: the set is small.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from alerts.tickets.linking import WEIGHTS, LinkParams, profile_posts, rank_tickets
from bench.results import Result
from core.models import Analysis, Post, Ticket
from core.settings import Watchlist
from core.vocab import Sentiment, Topic

SET_PATH = (
    Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "linking" / "linking_set.json"
)


@dataclass(frozen=True)
class LinkingSet:
    watchlist: Watchlist
    incidents: dict[int, tuple[Topic, list[Post]]]
    tickets: list[Ticket]
    links: dict[int, set[str]]


def load_set(path: Path = SET_PATH) -> LinkingSet:
    """The labelled set at ``path`` as typed records."""
    data = json.loads(path.read_text(encoding="utf-8"))
    posts: dict[int, list[Post]] = {}
    for p in data["posts"]:
        post = Post(
            id=p["id"],
            url=f"https://demo.example/{p['id']}",
            source="linking_set",
            title=p["title"],
            text=p["text"],
            published_at=p["published_at"],
            analysis=Analysis(
                sentiment=Sentiment.NEGATIVE, sentiment_score=0.1, topic=Topic(p["topic"])
            ),
        )
        posts.setdefault(int(p["incident"]), []).append(post)
    incidents = {int(i["id"]): (Topic(i["topic"]), posts[int(i["id"])]) for i in data["incidents"]}
    return LinkingSet(
        watchlist=Watchlist.model_validate(data["watchlist"]),
        incidents=incidents,
        tickets=[Ticket.model_validate(t) for t in data["tickets"]],
        links={int(k): set(v) for k, v in data["links"].items()},
    )


def evaluate(data: LinkingSet, params: LinkParams | None = None) -> tuple[float, float, list[str]]:
    """``(precision@5, recall@10, per-incident notes)`` averaged over the incidents."""
    precisions, recalls, notes = [], [], []
    for iid, (topic, posts) in sorted(data.incidents.items()):
        case = profile_posts(posts, data.watchlist, topic=topic)
        links = rank_tickets(case, data.tickets, data.watchlist, params=params)
        ranked = [link.ticket_id for link in links]
        truth = data.links[iid]
        p5 = len(set(ranked[:5]) & truth) / 5
        r10 = len(set(ranked[:10]) & truth) / len(truth)
        precisions.append(p5)
        recalls.append(r10)
        notes.append(f"#{iid}: P@5={p5:.2f} R@10={r10:.2f}")
    return sum(precisions) / len(precisions), sum(recalls) / len(recalls), notes


def run(quick: bool) -> list[Result]:
    """The two linking figures (``quick`` is ignored: the set takes well under a second)."""
    data = load_set()
    p5, r10, notes = evaluate(data)
    # Each signal alone, to show what the combination buys on this set.
    alone = []
    for name in WEIGHTS:
        only = LinkParams(weights={name: 1.0}, min_score=0.0)
        alone.append(f"{name} only P@5={evaluate(data, only)[0]:.2f}")
    detail = (
        f"{len(data.incidents)} incidents, {len(data.tickets)} tickets, "
        f"{sum(len(v) for v in data.links.values())} true links; "
        + "; ".join(notes)
        + "; "
        + ", ".join(alone)
    )
    return [
        Result("ticket_link_precision_at_5", round(p5, 3), "ratio", 0.8, "higher", detail),
        Result("ticket_link_recall_at_10", round(r10, 3), "ratio", None, "higher", detail),
    ]
