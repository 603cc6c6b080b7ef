"""DashboardData speed-ups: the source picker list is kept a few minutes; KPIs from the volume."""

from __future__ import annotations

from datetime import timedelta

import pytest

import dashboard.data as data_module
from dashboard.data import DashboardData
from tests.dashboard.fakes import DownPostStore
from tests.dashboard.seed import Seed, _post


def test_sources_are_cached_then_refreshed(seed: Seed, monkeypatch: pytest.MonkeyPatch) -> None:
    data = DashboardData(seed.post_store, seed.state_store)
    assert data.sources() == ["complaints", "forum", "news"]
    seed.post_store.upsert([_post(900, seed.now, text="澜海银行 新来源", source="weibo")])
    assert data.sources() == ["complaints", "forum", "news"]  # within the TTL: the kept list
    monkeypatch.setattr(data_module, "SOURCES_TTL_SECONDS", 0)
    assert data.sources() == ["complaints", "forum", "news", "weibo"]


def test_an_outage_is_not_hidden_by_an_empty_cache(seed: Seed) -> None:
    data = DashboardData(DownPostStore(), seed.state_store)
    with pytest.raises(data_module.DataUnavailable):
        data.sources()


def test_kpis_from_the_volume_frame_equal_the_counted_ones(seed: Seed) -> None:
    # The overview passes its volume histogram to kpis() to save two counts.
    data = DashboardData(seed.post_store, seed.state_store)
    for hours, bucket in ((24, 3600), (24 * 7, 6 * 3600), (24 * 30, 86400), (24 * 60, 86400)):
        since = seed.now - timedelta(hours=hours)
        volume = data.volume_over_time(since, seed.now, bucket)
        assert data.kpis(since, seed.now, volume=volume) == data.kpis(since, seed.now)
    assert data.kpis(seed.now - timedelta(hours=24), seed.now).total_posts == 5  # not all zero
