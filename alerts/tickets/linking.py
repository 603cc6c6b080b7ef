"""Link an incident to the complaint tickets behind it, and a ticket to its posts.

The score is transparent on purpose: complaint teams must see *why* a ticket
is linked before they act on it. It is a weighted sum of five components,
each in [0, 1]:

=========  ======  ==========================================================
component  weight  meaning
=========  ======  ==========================================================
product    0.30    the ticket's product is a product the posts name
branch     0.20    the ticket's branch is a branch the posts name
topic      0.10    the ticket's topic (from its product/category) is the incident's
time       0.20    1 inside the incident window (± ``grace``), then halves every ``half_life``
text       0.20    TF-IDF cosine of the ticket summary and the posts (jieba tokens), ×2, capped
=========  ======  ==========================================================

Every component that contributes comes with a Chinese reason such as
"同一产品：澜海稳盈3号", "时间相差 12 分钟", "共同词：净值、赎回".

Everything here except :func:`link_incident` and :func:`posts_for_ticket`
is a pure function over already-loaded data.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.models import Incident, Post, PostQuery, Ticket
from core.ports import PostStore, StateStore
from core.settings import Watchlist
from core.vocab import TOPIC_LABELS_ZH, Topic
from nlp.segment import tokenize

WEIGHTS: dict[str, float] = {
    "product": 0.30,
    "branch": 0.20,
    "topic": 0.10,
    "time": 0.20,
    "text": 0.20,
}

# Words too common in complaints to be evidence of one case.
_STOP = frozenset(
    """
    客户 银行 澜海 澜海银行 要求 反映 表示 称 我们 他们 自己 一个 没有
    什么 这个 那个 已经 还是 就是 但是 因为 所以 如果 可以 不能
    现在 今天 昨天 问题 情况 进行 相关 处理 办理
    网友 记者 发帖 评论 工单 投诉
    """.split()  # noqa: SIM905 - a word list reads better as text
)

# Ticket product/category wording → topic. First match wins, so the more
# specific topics (rumours, fraud, privacy) come before the broad ones.
_TOPIC_WORDS: tuple[tuple[Topic, tuple[str, ...]], ...] = (
    (Topic.LIQUIDITY_RUMOR, ("倒闭", "挤兑", "破产", "取款困难", "集中取款")),
    (Topic.FRAUD_SECURITY, ("诈骗", "盗刷", "未授权", "资金安全", "ATM", "吞卡")),
    (Topic.PRIVACY_DATA, ("泄露", "个人信息", "隐私")),
    (Topic.REGULATORY_LEGAL, ("诉讼", "起诉", "处罚", "罚款")),
    (Topic.WEALTH_MANAGEMENT, ("理财", "基金", "净值", "代销", "销售误导", "稳盈")),
    (Topic.CREDIT_CARD, ("信用卡", "年费", "催收", "分期", "账单")),
    (Topic.LOANS, ("贷款", "房贷", "LPR", "还款", "安居贷")),
    (Topic.DIGITAL_CHANNELS, ("手机银行", "APP", "app", "网银", "转账失败", "系统故障")),
    (Topic.DEPOSITS_ACCOUNTS, ("存款", "取款", "账户", "冻结", "开户", "销户", "支取")),
    (Topic.SERVICE_QUALITY, ("服务态度", "排队", "等候", "客服", "推诿")),
    (Topic.MARKETING_BRAND, ("营销", "活动", "宣传")),
)


@dataclass(frozen=True, slots=True)
class TicketLink:
    """A ticket ranked for an incident: its total score in [0, 1] and why."""

    ticket_id: str
    score: float
    reasons: list[str]
    components: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PostLink:
    """A post ranked for a ticket: its total score in [0, 1] and why."""

    post_id: str
    score: float
    reasons: list[str]
    components: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LinkParams:
    """Tunables of the score. Defaults were set on the shipped labelled set."""

    grace: timedelta = timedelta(hours=2)
    half_life: timedelta = timedelta(hours=12)
    lookback: timedelta = timedelta(days=3)
    lookahead: timedelta = timedelta(days=2)
    min_score: float = 0.15
    weights: dict[str, float] = field(default_factory=lambda: dict(WEIGHTS))


@dataclass(frozen=True, slots=True)
class CaseProfile:
    """What an incident (or one post) is about: the evidence tickets are compared with."""

    start: datetime
    end: datetime
    times: tuple[datetime, ...]
    products: frozenset[str]
    branches: frozenset[str]
    topics: frozenset[Topic]
    text: str


# ---------------------------------------------------------------------- entities and topics


def _names(entities: Iterable[object]) -> list[tuple[str, list[str]]]:
    out = []
    for e in entities:
        name = getattr(e, "name")  # noqa: B009 - Branch and Product share the shape
        out.append((name, [a for a in getattr(e, "all_names") if a.strip()]))  # noqa: B009
    return out


def _find(text: str, named: list[tuple[str, list[str]]]) -> set[str]:
    return {name for name, aliases in named if any(a in text for a in aliases)}


def canonical(value: str, named: list[tuple[str, list[str]]]) -> str:
    """The watched name ``value`` is (exact name or alias, or containing one), else ``value``."""
    value = value.strip()
    for name, aliases in named:
        if value in aliases:
            return name
    for name, aliases in named:
        if any(a in value for a in aliases):
            return name
    return value


def _short(name: str, watchlist: Watchlist) -> str:
    """The branch name without the bank's name, as people say it (滨江支行)."""
    for bank in watchlist.bank.all_names:
        if name.startswith(bank) and len(name) > len(bank):
            return name[len(bank) :]
    return name


def ticket_topic(ticket: Ticket, watchlist: Watchlist) -> Topic | None:
    """The topic a ticket is about: the watched product's ``kind``, else its wording."""
    product = canonical(ticket.product, _names(watchlist.products))
    for p in watchlist.products:
        if p.name == product and p.kind in Topic.__members__.values():
            return Topic(p.kind)
    # The category is the complaint system's own classification: trust it
    # before the product ("个人存款" + "服务态度" is a service complaint).
    for words in (ticket.category, f"{ticket.product} {ticket.summary}"):
        for topic, markers in _TOPIC_WORDS:
            if any(m in words for m in markers):
                return topic
    return None


def profile_posts(
    posts: Sequence[Post], watchlist: Watchlist, *, topic: Topic | None = None
) -> CaseProfile:
    """The evidence of a set of posts (an incident's posts, or one post).

    Products and branches are watched names found in the posts' entities or
    text; topics are ``topic`` plus every post topic that covers at least a
    fifth of the posts. Raises ``ValueError`` for no posts.
    """
    if not posts:
        raise ValueError("a case needs at least one post")
    products_named, branches_named = _names(watchlist.products), _names(watchlist.branches)
    products: set[str] = set()
    branches: set[str] = set()
    topic_counts: Counter[Topic] = Counter()
    texts = []
    for post in posts:
        body = f"{post.title}\n{post.text}"
        texts.append(body)
        entities = set(post.matched_entities)
        if post.analysis is not None:
            entities.update(post.analysis.entities)
            topic_counts[post.analysis.topic] += 1
        products |= _find(body, products_named) | (entities & {n for n, _ in products_named})
        branches |= _find(body, branches_named) | (entities & {n for n, _ in branches_named})
    topics: set[Topic] = {
        t for t, n in topic_counts.items() if n * 5 >= len(posts) and t is not Topic.OTHER
    }
    if topic is not None:
        topics.add(topic)
    times = tuple(sorted(p.published_at for p in posts))
    return CaseProfile(
        start=times[0],
        end=times[-1],
        times=times,
        products=frozenset(products),
        branches=frozenset(branches),
        topics=frozenset(topics),
        text="\n".join(texts),
    )


# ---------------------------------------------------------------------- text similarity


def _terms(text: str) -> Counter[str]:
    return Counter(t for t in tokenize(text) if len(t) >= 2 and t not in _STOP and not t.isdigit())


class _Tfidf:
    """TF-IDF over a small corpus (the candidate documents plus the case)."""

    def __init__(self, docs: Sequence[Counter[str]]) -> None:
        df: Counter[str] = Counter()
        for d in docs:
            df.update(d.keys())
        n = len(docs)
        self.idf = {t: math.log((1 + n) / (1 + c)) + 1.0 for t, c in df.items()}

    def vector(self, doc: Counter[str]) -> dict[str, float]:
        vec = {t: (1 + math.log(c)) * self.idf.get(t, 1.0) for t, c in doc.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        return {t: v / norm for t, v in vec.items()}


def _cosine(a: dict[str, float], b: dict[str, float]) -> tuple[float, list[str]]:
    """Cosine of two unit vectors and the shared terms, biggest contribution first."""
    shared = {t: a[t] * b[t] for t in a.keys() & b.keys()}
    ranked = sorted(shared, key=lambda t: (-shared[t], t))
    return sum(shared.values()), ranked


# ---------------------------------------------------------------------- scoring


def _distinct(words: Sequence[str], n: int) -> list[str]:
    """The first ``n`` words, skipping parts of longer ones already taken and vice versa.

    Search-mode tokens overlap (手机, 手机银行): showing both says nothing more.
    """
    out: list[str] = []
    for word in words:
        if any(word in w for w in out):
            continue
        inside = [i for i, w in enumerate(out) if w in word]
        if inside:  # keep the longer word in the place of the first part it covers
            out[inside[0]] = word
            out = [w for i, w in enumerate(out) if i not in inside[1:]]
            continue
        out.append(word)
        if len(out) == n:
            break
    return out


def _gap_text(gap: timedelta) -> str:
    minutes = abs(gap.total_seconds()) / 60
    if minutes < 1:
        return "时间相差不到 1 分钟"
    if minutes < 90:
        return f"时间相差 {round(minutes)} 分钟"
    if minutes < 48 * 60:
        return f"时间相差 {minutes / 60:.1f} 小时"
    return f"时间相差 {minutes / 1440:.1f} 天"


def _nearest_gap(when: datetime, times: Sequence[datetime]) -> timedelta:
    return min((abs(when - t) for t in times), default=timedelta(0))


def _score(
    *,
    product: str,
    branch: str,
    topic: Topic | None,
    when: datetime,
    case: CaseProfile,
    watchlist: Watchlist,
    similarity: float,
    shared: list[str],
    params: LinkParams,
) -> tuple[float, list[str], dict[str, float]]:
    parts: dict[str, float] = {}
    reasons: list[str] = []
    if product and product in case.products:
        parts["product"] = 1.0
        reasons.append(f"同一产品：{product}")
    if branch and branch in case.branches:
        parts["branch"] = 1.0
        reasons.append(f"同一网点：{_short(branch, watchlist)}")
    if topic is not None and topic in case.topics:
        parts["topic"] = 1.0
        reasons.append(f"同一主题：{TOPIC_LABELS_ZH[topic]}")
    outside = max(case.start - when, when - case.end, timedelta(0))
    if outside <= params.grace:
        parts["time"] = 1.0
    else:
        parts["time"] = 0.5 ** ((outside - params.grace) / params.half_life)
    if parts["time"] >= 0.25:
        reasons.append(_gap_text(_nearest_gap(when, case.times)))
    if similarity > 0:
        parts["text"] = min(1.0, 2.0 * similarity)
        shown = _distinct(shared, 4)
        if shown:
            reasons.append("共同词：" + "、".join(shown))
    score = sum(params.weights.get(k, 0.0) * v for k, v in parts.items())
    return round(score, 4), reasons, {k: round(v, 4) for k, v in parts.items()}


def rank_tickets(
    case: CaseProfile,
    tickets: Sequence[Ticket],
    watchlist: Watchlist,
    *,
    params: LinkParams | None = None,
    limit: int = 10,
) -> list[TicketLink]:
    """The ``limit`` best tickets for ``case``, best first (ties by ticket id).

    Tickets scoring below ``params.min_score`` are left out, so an incident
    with no related complaints gets an empty list rather than noise.
    """
    params = params or LinkParams()
    products_named, branches_named = _names(watchlist.products), _names(watchlist.branches)
    docs = [_terms(f"{t.category} {t.product} {t.summary}") for t in tickets]
    case_doc = _terms(case.text)
    tfidf = _Tfidf([*docs, case_doc])
    case_vec = tfidf.vector(case_doc)
    links = []
    for ticket, doc in zip(tickets, docs, strict=True):
        similarity, shared = _cosine(tfidf.vector(doc), case_vec)
        score, reasons, parts = _score(
            product=canonical(ticket.product, products_named),
            branch=canonical(ticket.branch, branches_named),
            topic=ticket_topic(ticket, watchlist),
            when=ticket.created_at,
            case=case,
            watchlist=watchlist,
            similarity=similarity,
            shared=shared,
            params=params,
        )
        if score >= params.min_score:
            links.append(TicketLink(ticket.ticket_id, score, reasons, parts))
    links.sort(key=lambda link: (-link.score, link.ticket_id))
    return links[:limit]


def rank_posts(
    ticket: Ticket,
    posts: Sequence[Post],
    watchlist: Watchlist,
    *,
    params: LinkParams | None = None,
    limit: int = 10,
) -> list[PostLink]:
    """The ``limit`` posts most likely about the same case as ``ticket``, best first."""
    params = params or LinkParams()
    products_named, branches_named = _names(watchlist.products), _names(watchlist.branches)
    ticket_doc = _terms(f"{ticket.category} {ticket.product} {ticket.summary}")
    docs = [_terms(f"{p.title}\n{p.text}") for p in posts]
    tfidf = _Tfidf([*docs, ticket_doc])
    ticket_vec = tfidf.vector(ticket_doc)
    product = canonical(ticket.product, products_named)
    branch = canonical(ticket.branch, branches_named)
    topic = ticket_topic(ticket, watchlist)
    links = []
    for post, doc in zip(posts, docs, strict=True):
        similarity, shared = _cosine(tfidf.vector(doc), ticket_vec)
        score, reasons, parts = _score(
            product=product,
            branch=branch,
            topic=topic,
            when=ticket.created_at,
            case=profile_posts([post], watchlist),
            watchlist=watchlist,
            similarity=similarity,
            shared=shared,
            params=params,
        )
        if score >= params.min_score:
            links.append(PostLink(post.id, score, reasons, parts))
    links.sort(key=lambda link: (-link.score, link.post_id))
    return links[:limit]


# ---------------------------------------------------------------------- loading from the stores


def link_incident(
    incident_id: int,
    posts: PostStore,
    state: StateStore,
    watchlist: Watchlist,
    *,
    params: LinkParams | None = None,
    limit: int = 10,
    max_posts: int = 500,
    max_tickets: int = 5000,
) -> list[TicketLink]:
    """Rank the stored tickets for stored incident ``incident_id``.

    Reads up to ``max_posts`` of the incident's posts and the tickets created
    from ``lookback`` before its first post to ``lookahead`` after its last.
    Raises ``KeyError`` for an unknown incident; an incident whose posts are
    all gone links to nothing (``[]``). Store errors propagate.
    """
    params = params or LinkParams()
    incident = state.get_incident(incident_id)
    if incident is None:
        raise KeyError(f"no incident {incident_id}")
    loaded = [p for p in (posts.get(pid) for pid in incident.post_ids[:max_posts]) if p]
    if not loaded:
        return []
    case = incident_profile(incident, loaded, watchlist)
    tickets = state.list_tickets(
        since=case.start - params.lookback, until=case.end + params.lookahead, limit=max_tickets
    )
    return rank_tickets(case, tickets, watchlist, params=params, limit=limit)


def incident_profile(
    incident: Incident, posts: Sequence[Post], watchlist: Watchlist
) -> CaseProfile:
    """:func:`profile_posts` of the incident's posts, with the incident's topic and entity added."""
    case = profile_posts(posts, watchlist, topic=incident.topic)
    if not incident.entity:
        return case
    products = case.products | _find(incident.entity, _names(watchlist.products))
    branches = case.branches | _find(incident.entity, _names(watchlist.branches))
    return CaseProfile(
        case.start,
        case.end,
        case.times,
        frozenset(products),
        frozenset(branches),
        case.topics,
        case.text,
    )


def posts_for_ticket(
    ticket: Ticket,
    posts: PostStore,
    watchlist: Watchlist,
    *,
    window: timedelta = timedelta(days=3),
    params: LinkParams | None = None,
    limit: int = 10,
    per_query: int = 100,
) -> list[PostLink]:
    """The stored posts most likely about ``ticket``'s case, best first.

    Candidates are posts within ``window`` of the ticket that mention its
    product or branch (every watched alias is searched as words), then
    rescored by :func:`rank_posts`. Store errors propagate.
    """
    words: list[str] = []
    for value, entities in (
        (ticket.product, watchlist.products),
        (ticket.branch, watchlist.branches),
    ):
        if not value.strip():
            continue
        name = canonical(value, _names(entities))
        matched = [e for e in entities if e.name == name]
        words.extend(matched[0].all_names if matched else [value.strip()])
    found: dict[str, Post] = {}
    for word in dict.fromkeys(w for w in words if w.strip()):
        page = posts.search(
            PostQuery(
                text=word, since=ticket.created_at - window, until=ticket.created_at + window
            ),
            sort="newest",
            limit=per_query,
        )
        for hit in page.hits:
            found.setdefault(hit.post.id, hit.post)
    return rank_posts(ticket, list(found.values()), watchlist, params=params, limit=limit)
