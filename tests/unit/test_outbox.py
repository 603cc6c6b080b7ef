"""Outbox delivery: success, retry with backoff, permanent failure, unknown channel, dedup."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from alerts.notifiers import NOTIFIER_TYPES, LogNotifier, build_notifiers, register_notifier
from alerts.outbox import BACKOFF_CAP, backoff, deliver_due
from core.errors import ConfigError
from core.models import Notification
from core.settings import ChannelConfig
from tests.unit.fakes import (
    T0,
    FakeNotifier,
    FakeStateStore,
    minutes,
    outage,
    permanent,
    temporary,
)


def queue(state: FakeStateStore, channel: str = "fake", key: str = "incident:1:grade:IV") -> int:
    assert state.enqueue(
        Notification(
            channel=channel,
            dedup_key=key,
            subject="【一般·IV级】测试",
            body="正文",
            incident_id=1,
            created_at=T0,
            next_attempt_at=T0,
        )
    )
    return state.outbox[-1].id  # type: ignore[return-value]


def test_backoff_doubles_from_one_minute_and_caps_at_thirty() -> None:
    assert [backoff(n) for n in range(7)] == [
        minutes(1),
        minutes(2),
        minutes(4),
        minutes(8),
        minutes(16),
        minutes(30),
        minutes(30),
    ]
    assert backoff(10_000) == BACKOFF_CAP
    assert backoff(-1) == minutes(1)


def test_a_delivered_notification_is_marked_sent_and_not_sent_again() -> None:
    state, notifier = FakeStateStore(), FakeNotifier()
    nid = queue(state)
    report = deliver_due(state, {"fake": notifier}, T0)
    assert report.sent == [nid]
    assert state.notification(nid).sent_at == T0
    assert deliver_due(state, {"fake": notifier}, T0 + minutes(5)).attempted == 0
    assert len(notifier.sent) == 1


def test_duplicates_are_refused_at_enqueue_so_they_are_delivered_once() -> None:
    state, notifier = FakeStateStore(), FakeNotifier()
    queue(state)
    assert not state.enqueue(state.outbox[0].model_copy(update={"id": None}))
    deliver_due(state, {"fake": notifier}, T0)
    assert len(notifier.sent) == 1


def test_a_temporary_failure_is_retried_with_exponential_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = FakeStateStore()
    notifier = FakeNotifier(failures=[temporary(), temporary()])
    nid = queue(state)

    with caplog.at_level(logging.WARNING, logger="alerts.outbox"):
        report = deliver_due(state, {"fake": notifier}, T0)
    assert report.retrying == [nid]
    first = state.notification(nid)
    assert first.attempts == 1
    assert first.next_attempt_at == T0 + minutes(1)
    assert first.last_error == "503 from channel"
    assert "retry at" in caplog.text

    # Not due yet: nothing happens.
    assert deliver_due(state, {"fake": notifier}, T0 + timedelta(seconds=59)).attempted == 0

    deliver_due(state, {"fake": notifier}, T0 + minutes(1))
    second = state.notification(nid)
    assert second.attempts == 2
    assert second.next_attempt_at == T0 + minutes(1) + minutes(2)

    report = deliver_due(state, {"fake": notifier}, T0 + minutes(3))
    assert report.sent == [nid]
    assert [n.dedup_key for n in notifier.sent] == ["incident:1:grade:IV"]


def test_a_permanent_failure_gives_up_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    state = FakeStateStore()
    nid = queue(state)
    with caplog.at_level(logging.ERROR, logger="alerts.outbox"):
        report = deliver_due(state, {"fake": FakeNotifier(failures=[permanent()])}, T0)
    assert report.failed == [nid]
    assert nid in state.given_up
    assert state.notification(nid).last_error == "401 bad token"
    assert "giving up" in caplog.text
    assert deliver_due(state, {"fake": FakeNotifier()}, T0 + timedelta(days=1)).attempted == 0


def test_an_unexpected_exception_is_treated_as_temporary() -> None:
    state = FakeStateStore()
    nid = queue(state)
    report = deliver_due(state, {"fake": FakeNotifier(failures=[RuntimeError("boom")])}, T0)
    assert report.retrying == [nid]
    assert state.notification(nid).next_attempt_at == T0 + minutes(1)


def test_a_notification_for_an_unconfigured_channel_is_kept_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = FakeStateStore()
    nid = queue(state, channel="removed")
    with caplog.at_level(logging.ERROR, logger="alerts.outbox"):
        report = deliver_due(state, {"fake": FakeNotifier()}, T0)
    assert report.unknown_channel == [nid]
    assert nid not in state.given_up
    assert state.notification(nid).next_attempt_at == T0 + minutes(1)
    assert "'removed' is not configured" in caplog.text

    # The channel comes back (config fixed): the message is delivered.
    back = FakeNotifier(name="removed")
    assert deliver_due(state, {"removed": back}, T0 + minutes(1)).sent == [nid]
    assert len(back.sent) == 1


def test_a_state_store_outage_propagates() -> None:
    state = FakeStateStore()
    queue(state)
    state.fail_with = outage()
    with pytest.raises(Exception, match="fake outage"):
        deliver_due(state, {"fake": FakeNotifier()}, T0)


# -- notifier registry ---------------------------------------------------------------------


def test_build_notifiers_makes_the_log_channel_and_skips_disabled_ones() -> None:
    notifiers = build_notifiers(
        [
            ChannelConfig(name="ops_log", type="log"),
            ChannelConfig(name="x", type="log", enabled=False),
        ]
    )
    assert list(notifiers) == ["ops_log"]
    assert isinstance(notifiers["ops_log"], LogNotifier)
    assert notifiers["ops_log"].name == "ops_log"


def test_an_unimplemented_channel_type_fails_at_load_naming_the_channel() -> None:
    saved = NOTIFIER_TYPES.pop("wecom")
    try:
        with pytest.raises(ConfigError, match=r"channels\[1\] \('head_office'\).*'wecom'"):
            build_notifiers(
                [
                    ChannelConfig(name="log", type="log"),
                    ChannelConfig(name="head_office", type="wecom"),
                ]
            )
    finally:
        NOTIFIER_TYPES["wecom"] = saved


def test_a_plugin_refusing_its_config_fails_at_load_naming_the_channel() -> None:
    with pytest.raises(ConfigError, match=r"\('hook'\): url: a webhook channel needs"):
        build_notifiers([ChannelConfig(name="hook", type="webhook")])
    with pytest.raises(ConfigError, match=r"\('hq'\): token_env"):
        build_notifiers([ChannelConfig(name="hq", type="wecom")])


def test_registering_a_second_class_for_a_type_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @register_notifier("webhook")
        class Another:
            @classmethod
            def from_config(cls, channel: ChannelConfig) -> FakeNotifier:
                return FakeNotifier(channel.name)


def test_the_log_notifier_writes_to_the_alerts_logger(caplog: pytest.LogCaptureFixture) -> None:
    state = FakeStateStore()
    queue(state, channel="log")
    with caplog.at_level(logging.WARNING, logger="yuqing.alerts"):
        deliver_due(state, {"log": LogNotifier()}, T0)
    (record,) = [r for r in caplog.records if r.name == "yuqing.alerts"]
    assert record.levelno == logging.WARNING
    assert "【一般·IV级】测试" in record.getMessage()
    assert "正文" in record.getMessage()
    assert record.dedup_key == "incident:1:grade:IV"  # type: ignore[attr-defined]
