"""Silences: stored in the real SQLite state database, honoured by the escalation policy
(the step that fills the outbox), set from the CLI, visible on the incident, audited."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from typer.testing import CliRunner

from alerts.escalation import EscalationPolicy, EscalationStore
from core.errors import QueryError
from core.models import Incident
from core.settings import ChannelConfig, EscalationConfig, Silence
from core.vocab import Grade, IncidentStatus, Topic
from storage.silences import SilenceRule, incident_silence, matches, silence_rows
from storage.state import SqlStateStore
from yuqing.cli_rules import app

T0 = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
CHANNELS = [ChannelConfig(name="log", type="log"), ChannelConfig(name="hook", type="webhook")]
runner = CliRunner()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[SqlStateStore]:
    store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}", clock=lambda: T0)
    yield store
    store.close()


def esc(store: SqlStateStore) -> EscalationStore:
    # SqlStateStore has the escalation methods; its return types are concrete lists.
    return cast(EscalationStore, store)


def policy(**config: Any) -> EscalationPolicy:
    return EscalationPolicy(
        EscalationConfig(**config), CHANNELS, public_url="http://dash.example", tz=UTC
    )


def incident(state: SqlStateStore, grade: Grade = Grade.III, **update: Any) -> Incident:
    values: dict[str, Any] = {
        "rule": "volume_spike",
        "key": "all",
        "title": "测试事件",
        "grade": grade,
        "opened_at": T0,
        "updated_at": T0,
        "entity": "澜海银行滨江支行",
        "topic": Topic.WEALTH_MANAGEMENT,
        "sources": ["forum"],
        "rules": ["volume_spike", "critical_signal"],
        "members": ["volume_spike:all", "critical_signal:signal:collective_action"],
    }
    return state.save_incident(Incident(**{**values, **update}))


def add(state: SqlStateStore, **matcher: Any) -> int:
    entry = state.add_silence(
        starts_at=T0 - timedelta(minutes=5),
        ends_at=T0 + timedelta(hours=2),
        created_by="analyst",
        reason="演练",
        **matcher,
    )
    return entry.id


def test_a_stored_silence_holds_messages_and_is_audited(state: SqlStateStore) -> None:
    silence_id = add(state, entity="澜海银行滨江支行")
    inc = incident(state)
    p = policy()

    assert p.sync(esc(state), inc, T0) == 0
    assert state.list_notifications(incident_id=inc.id) == []
    # The escalation job neither escalates nor notifies it, and marks it silenced.
    p.run_due(esc(state), T0 + timedelta(hours=1))
    assert state.list_notifications(incident_id=inc.id) == []
    assert state.get_incident(inc.id).silenced_by == silence_id  # type: ignore[arg-type, union-attr]
    assert [(a.action, a.target) for a in state.list_audit(target=f"silence:{silence_id}")] == [
        ("silence_add", f"silence:{silence_id}")
    ]


def test_messages_go_out_when_the_silence_is_removed(state: SqlStateStore) -> None:
    silence_id = add(state, rule="critical_signal")  # a rule that joined the incident
    inc = incident(state)
    p = policy()
    assert p.sync(esc(state), inc, T0) == 0

    state.remove_silence(silence_id, user="lead", note="演练结束")
    p.run_due(esc(state), T0 + timedelta(minutes=1))

    assert sorted(n.channel for n in state.list_notifications(incident_id=inc.id)) == [
        "hook",
        "log",
    ]
    assert state.get_incident(inc.id).silenced_by is None  # type: ignore[arg-type, union-attr]
    assert state.list_silences() == []
    assert state.list_silences(include_removed=True)[0].removed_by == "lead"
    actions = [a.action for a in state.list_audit(target=f"silence:{silence_id}")]
    assert sorted(actions) == ["silence_add", "silence_remove"]


def test_grade_i_is_notified_unless_the_silence_includes_it(state: SqlStateStore) -> None:
    add(state, topic="wealth_management")
    severe = incident(state, Grade.I)
    assert policy().sync(esc(state), severe, T0) == 2

    other = incident(state, Grade.I, key="signal:bank_run")
    add(state, key="signal:bank_run", include_grade_i=True)
    assert policy().sync(esc(state), other, T0) == 0


def test_a_silence_of_another_subject_or_not_yet_started_holds_nothing(
    state: SqlStateStore,
) -> None:
    add(state, entity="澜海银行城西支行")
    state.add_silence(
        starts_at=T0 + timedelta(hours=1),
        ends_at=T0 + timedelta(hours=3),
        created_by="analyst",
        reason="夜间维护",
        source="forum",
    )
    inc = incident(state)
    assert policy().sync(esc(state), inc, T0) == 2
    rows = silence_rows(state, T0)
    assert sorted(r["状态"] for r in rows) == ["未开始", "生效中"]


def test_bad_silences_are_refused_naming_the_problem(state: SqlStateStore) -> None:
    with pytest.raises(QueryError, match="at least one"):
        state.add_silence(starts_at=T0, ends_at=T0 + timedelta(hours=1), created_by="a", reason="r")
    with pytest.raises(QueryError, match="after"):
        state.add_silence(starts_at=T0, ends_at=T0, created_by="a", reason="r", rule="x")
    with pytest.raises(QueryError, match="reason"):
        state.add_silence(
            starts_at=T0, ends_at=T0 + timedelta(hours=1), created_by="a", reason=" ", rule="x"
        )
    with pytest.raises(QueryError, match="silence"):
        state.remove_silence(999, user="a")


def test_matcher_rules() -> None:
    base = Incident(
        rule="volume_spike",
        key="all",
        title="t",
        grade=Grade.II,
        entity="澜海稳盈3号",
        topic=Topic.WEALTH_MANAGEMENT,
        sources=["weibo"],
        members=["volume_spike:all", "critical_signal:signal:bank_run"],
        rules=["volume_spike", "critical_signal"],
    )
    end = T0 + timedelta(hours=1)

    def silence(**kw: Any) -> SilenceRule:
        return SilenceRule(id=1, starts_at=T0, ends_at=end, **kw)

    assert matches(silence(key="signal:bank_run"), base, T0)
    assert matches(silence(rule="volume_spike", source="weibo"), base, T0)
    assert not matches(silence(rule="volume_spike", source="forum"), base, T0)
    assert not matches(silence(topic="loans"), base, T0)
    assert not matches(silence(), base, T0)  # no matcher: holds nothing
    assert not matches(silence(rule="volume_spike"), base, end)
    assert not matches(silence(rule="volume_spike", removed_at=T0), base, T0)
    resolved = base.model_copy(update={"status": IncidentStatus.RESOLVED})
    assert matches(silence(rule="volume_spike"), resolved, T0)
    # Config silences follow the same rules (and the same grade I exception).
    config = Silence(rule="volume_spike", until=end, reason="调参")
    assert matches(SilenceRule.from_config(config), base, T0)
    grade_i = base.model_copy(update={"grade": Grade.I})
    assert not matches(SilenceRule.from_config(config), grade_i, T0)


def test_incident_silence_for_the_incident_room(state: SqlStateStore) -> None:
    silence_id = add(state, rule="volume_spike")
    inc = incident(state)
    shown = incident_silence(state, inc, T0)
    assert shown is not None
    assert (shown["id"], shown["by"], shown["reason"]) == (silence_id, "analyst", "演练")
    assert incident_silence(state, inc, T0 + timedelta(hours=3)) is None


# -- the CLI ------------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in ("YUQING_CONFIG", "YUQING_ENV", "YUQING_SECRET_KEY"):
        monkeypatch.delenv(key, raising=False)
    data = {
        "rules": [
            {"name": "spike", "type": "volume_spike"},
            {"name": "crit", "type": "critical_signal"},
        ],
        "escalation": {
            "silences": [
                {"rule": "spike", "until": "2099-01-01T00:00:00+08:00", "reason": "配置静默"}
            ]
        },
        "storage": {
            "posts_path": str(tmp_path / "posts.db"),
            "state_url": f"sqlite:///{tmp_path / 'state.db'}",
            "spool_dir": str(tmp_path / "spool"),
        },
    }
    path = tmp_path / "yuqing.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_cli_add_list_remove(config: Path, tmp_path: Path) -> None:
    added = runner.invoke(
        app,
        [
            "silence", "add", "--rule", "crit", "--entity", "澜海银行滨江支行",
            "--hours", "2", "--by", "analyst", "--reason", "演练", "--config", str(config),
        ],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "silence #1 stored" in added.output
    assert "grade I is still notified" in added.output

    listed = runner.invoke(app, ["silence", "list", "--config", str(config)])
    assert listed.exit_code == 0, listed.output
    assert "rule=crit entity=澜海银行滨江支行" in listed.output
    assert "配置静默" in listed.output

    removed = runner.invoke(
        app, ["silence", "remove", "1", "--by", "lead", "--config", str(config)]
    )
    assert removed.exit_code == 0, removed.output
    store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert store.list_silences() == []
        actions = [a.action for a in store.list_audit(target="silence:1")]
        assert sorted(actions) == ["silence_add", "silence_remove"]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--rule", "nope", "--hours", "1"], "no rule named 'nope'"),
        (["--topic", "weather", "--hours", "1"], "unknown topic"),
        (["--hours", "1"], "at least one"),
        (["--rule", "crit"], "exactly one of --until and --hours"),
        (["--rule", "crit", "--hours", "1000"], "at most 30 days"),
        (["--rule", "crit", "--until", "tomorrow"], "not an ISO time"),
    ],
)
def test_cli_refuses_a_bad_silence(config: Path, args: list[str], problem: str) -> None:
    result = runner.invoke(
        app,
        ["silence", "add", *args, "--by", "a", "--reason", "r", "--config", str(config)],
    )
    assert result.exit_code == 2, result.output
    assert problem in " ".join(result.output.split())


def test_cli_remove_unknown_silence(config: Path) -> None:
    result = runner.invoke(app, ["silence", "remove", "7", "--by", "a", "--config", str(config)])
    assert result.exit_code == 2
    assert "#7" in result.output


def test_an_older_database_gets_the_new_columns_and_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    SqlStateStore(url).close()
    with sqlite3.connect(tmp_path / "old.db") as conn:
        # As a database from before grouping and stored silences looked.
        for column in ("rules", "members", "silenced_by"):
            conn.execute(f"ALTER TABLE incidents DROP COLUMN {column}")
        conn.execute("DROP TABLE silences")
    store = SqlStateStore(url, clock=lambda: T0)
    try:
        saved = incident(store)
        assert store.get_incident(saved.id).rules == ["volume_spike", "critical_signal"]  # type: ignore[arg-type, union-attr]
        assert add(store, rule="volume_spike") == 1
    finally:
        store.close()
