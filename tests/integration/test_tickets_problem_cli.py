"""``yuqing tickets posts`` and ``yuqing tickets problem …`` over real SQLite stores.

The posts and tickets are the shipped labelled linking set (incident 1: the
澜海稳盈3号 wealth-product storm and its eight true tickets).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bench.bench_tickets import LinkingSet, load_set
from core.models import Incident
from core.vocab import Topic
from nlp.segment import tokenize
from storage.local import LocalPostStore
from storage.state import SqlStateStore
from yuqing.cli_tickets import app

runner = CliRunner()
DATA: LinkingSet = load_set()
WEALTH = DATA.incidents[1][1]
TRUE_TICKETS = DATA.links[1]


@dataclass
class Env:
    config: Path
    tmp: Path

    def state(self) -> SqlStateStore:
        return SqlStateStore(f"sqlite:///{self.tmp / 'state.db'}")

    def run(self, *args: str) -> tuple[int, str]:
        # Wide enough that rich never folds a table cell across lines.
        result = runner.invoke(app, [*args, "--config", str(self.config)], env={"COLUMNS": "250"})
        return result.exit_code, result.output


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    for key in ("YUQING_CONFIG", "YUQING_ENV", "YUQING_SECRET_KEY"):
        monkeypatch.delenv(key, raising=False)
    settings = {
        "storage": {
            "posts_path": str(tmp_path / "posts.db"),
            "state_url": f"sqlite:///{tmp_path / 'state.db'}",
            "spool_dir": str(tmp_path / "spool"),
        },
        "watchlist": DATA.watchlist.model_dump(),
    }
    config = tmp_path / "yuqing.yaml"
    config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    posts = LocalPostStore(tmp_path / "posts.db", tokenizer=tokenize)
    try:
        posts.upsert([p for _topic, ps in DATA.incidents.values() for p in ps])
    finally:
        posts.close()
    yield Env(config, tmp_path)


def _incident(env: Env, *, links: list[str] | None = None, with_posts: bool = True) -> int:
    state = env.state()
    try:
        state.upsert_tickets(DATA.tickets)
        saved = state.save_incident(
            Incident(
                rule="volume_spike",
                key="entity:澜海稳盈3号",
                title="澜海稳盈3号 舆情量突增",
                topic=Topic.WEALTH_MANAGEMENT,
                post_ids=[p.id for p in WEALTH] if with_posts else [],
                ticket_links=[
                    {"ticket_id": t, "score": 0.9, "reasons": ["同一产品：澜海稳盈3号"]}
                    for t in links or []
                ],
            )
        )
    finally:
        state.close()
    assert saved.id is not None
    return saved.id


def test_posts_of_a_ticket_with_reasons(env: Env) -> None:
    _incident(env)
    ticket = sorted(TRUE_TICKETS)[0]
    code, out = env.run("posts", ticket, "-n", "5")
    assert code == 0, out
    wealth_ids = {p.id for p in WEALTH}
    shown = [pid for pid in wealth_ids if pid in out]
    assert len(shown) == 5  # the five best are all posts of the same storm
    assert "同一产品：澜海稳盈3号" in out and "时间相差" in out


def test_posts_of_an_unknown_ticket_is_a_clear_error(env: Env) -> None:
    code, out = env.run("posts", "NO-SUCH-TICKET")
    assert code == 1 and "no ticket 'NO-SUCH-TICKET'" in out


def test_promote_list_and_set_status(env: Env) -> None:
    incident_id = _incident(env, links=["LT0001", "LT0002"])
    code, out = env.run("problem", "promote", str(incident_id), "--owner", "li", "--user", "ana")
    assert code == 0, out
    assert "problem 1 created" in out and "stored links" in out and "LT0001, LT0002" in out

    code, out = env.run("problem", "list")
    assert code == 0, out
    assert f"#{incident_id}" in out and "投诉处理组/li" in out and "2 (2)" in out

    code, out = env.run("problem", "set-status", "1", "investigating", "--user", "li")
    assert code == 0 and "open → investigating" in out
    code, out = env.run("problem", "set-status", "1", "investigating", "--user", "li")
    assert code == 0 and "already is investigating" in out
    state = env.state()
    try:
        actions = [e.action for e in state.list_audit(target="problem:1")]
        promoted = [e.action for e in state.list_audit(target=f"incident:{incident_id}")]
    finally:
        state.close()
    assert actions == ["problem_status", "problem_promote"]
    assert promoted == ["promote"]

    code, out = env.run("problem", "list", "--status", "open")
    assert code == 0 and f"#{incident_id}" not in out


def test_promoting_twice_keeps_one_problem(env: Env) -> None:
    incident_id = _incident(env, links=["LT0001"])
    assert env.run("problem", "promote", str(incident_id), "--user", "ana")[0] == 0
    code, out = env.run("problem", "promote", str(incident_id), "--user", "ana")
    assert code == 0 and "already is problem 1; no new tickets" in out
    state = env.state()
    try:
        assert len(state.list_problems()) == 1
    finally:
        state.close()


def test_promote_links_live_when_the_incident_has_no_stored_links(env: Env) -> None:
    incident_id = _incident(env, links=[])
    code, out = env.run("problem", "promote", str(incident_id), "--user", "ana")
    assert code == 0, out
    assert "linked now" in out
    state = env.state()
    try:
        [problem] = state.list_problems()
    finally:
        state.close()
    assert problem.ticket_ids and set(problem.ticket_ids) <= TRUE_TICKETS


def test_promote_bad_input_is_a_clear_error(env: Env) -> None:
    code, out = env.run("problem", "promote", "999", "--user", "ana")
    assert code == 1 and "no incident 999" in out
    # An incident whose posts are gone and that has no stored links: nothing to promote.
    lonely = _incident(env, links=[], with_posts=False)
    code, out = env.run("problem", "promote", str(lonely), "--user", "ana")
    assert code == 1 and "has no linked complaint tickets" in out and "nothing to promote" in out
    state = env.state()
    try:
        assert state.list_problems() == []
    finally:
        state.close()


def test_set_status_bad_input(env: Env) -> None:
    incident_id = _incident(env, links=["LT0001"])
    assert env.run("problem", "promote", str(incident_id), "--user", "ana")[0] == 0
    code, out = env.run("problem", "set-status", "1", "done", "--user", "li")
    assert code == 2 and "unknown status 'done'" in out and "investigating" in out
    code, out = env.run("problem", "set-status", "42", "closed", "--user", "li")
    assert code == 1 and "no problem 42" in out
    code, out = env.run("problem", "list", "--status", "later")
    assert code == 2 and "unknown status 'later'" in out
    code, out = env.run("problem", "set-status", "1", "closed")
    assert code == 2 and "--user" in out  # who acts is required: it goes to the audit log


def test_reimport_closing_every_ticket_shows_on_the_problem(env: Env) -> None:
    incident_id = _incident(env, links=["LT0001", "LT0002"])
    assert env.run("problem", "promote", str(incident_id), "--user", "ana")[0] == 0
    export = env.tmp / "closed.csv"
    export.write_text(
        "工单号,创建时间,状态\nLT0001,2026-11-12 11:35,已办结\nLT0002,2026-11-12 11:40,已办结\n",
        encoding="utf-8",
    )
    code, out = env.run("import", str(export))
    assert code == 0, out
    code, out = env.run("problem", "list")
    assert code == 0 and "工单已全部办结" in out and "建议置为已解决" in out and "2 (0)" in out
    state = env.state()
    try:
        [entry, *_] = state.list_audit(target="problem:1")
    finally:
        state.close()
    assert entry.action == "problem_ticket_status" and entry.actor == "import closed.csv"
    assert "LT0001: 待处理 → 已办结" in entry.detail and "工单已全部办结" in entry.detail
