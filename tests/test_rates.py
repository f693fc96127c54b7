"""``operations_per_second`` is a true rate over the window, wherever it is read.

The clock of the cache's :class:`~yokedcache.window.CounterWindow` is replaced by one the test
advances, so a "driven rate" is exact: ``rate`` real operations per simulated second. The old
figure (a 2,048-entry sample buffer divided by min(60 s, uptime)) fails every case here above
2,048 operations per window, and could never exceed 34 ops/s after a minute of uptime.
"""

from __future__ import annotations

import asyncio

import pytest

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import AlertManager
from yokedcache.window import CounterWindow


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _cache_with_clock(**config: object) -> tuple[YokedCache, Clock]:
    clock = Clock()
    cache = YokedCache(CacheConfig(enable_metrics=False, **config))  # type: ignore[arg-type]
    cache.rates = CounterWindow(cache._totals, clock=clock)
    return cache, clock


async def _drive(cache: YokedCache, clock: Clock, rate: int, seconds: int, *, read_each_second: bool = True) -> None:
    """``rate`` gets per simulated second for ``seconds`` seconds (a reader polls each second)."""
    get = cache.get
    for _ in range(seconds):
        for _ in range(rate):
            await get("k")
        clock.now += 1.0
        if read_each_second:
            cache.get_comprehensive_metrics()  # what a scrape, /readyz or an alert rule does


def _close_to(measured: float, expected: float) -> bool:
    return abs(measured - expected) <= 0.05 * expected


@pytest.mark.parametrize("rate", [100, 5_000, 50_000], ids=["100/s", "5k/s", "50k/s"])
async def test_operations_per_second_matches_a_driven_rate_before_and_after_a_minute(rate):
    cache, clock = _cache_with_clock()
    async with cache:
        await _drive(cache, clock, rate, 30, read_each_second=False)
        before = cache.get_comprehensive_metrics()  # 30 s of uptime, 60 s window: since start
        assert _close_to(before.operations_per_second, rate), (before.operations_per_second, rate)
        await _drive(cache, clock, rate, 60)
        after = cache.get_comprehensive_metrics()  # 90 s of uptime: the last 60 s
        assert _close_to(after.operations_per_second, rate), (after.operations_per_second, rate)


async def test_the_window_forgets_older_traffic():
    """A quiet first minute, then 5,000/s: the last minute reads 5,000, not an average since start."""
    cache, clock = _cache_with_clock()
    async with cache:
        await _drive(cache, clock, 10, 70)
        await _drive(cache, clock, 5_000, 60)
        assert _close_to(cache.get_comprehensive_metrics().operations_per_second, 5_000)
        assert _close_to(cache.get_comprehensive_metrics(window=10).operations_per_second, 5_000)
        clock.now += 120  # then silence
        assert cache.get_comprehensive_metrics().operations_per_second == 0.0


async def test_health_report_and_alert_rules_read_the_same_rate():
    """``detailed_health_check`` (what /readyz serves) and AlertManager use the windowed rate."""
    cache, clock = _cache_with_clock()
    async with cache:
        await _drive(cache, clock, 10, 70)
        await _drive(cache, clock, 5_000, 60)
        report = await cache.detailed_health_check()
        assert _close_to(report["performance_metrics"]["operations_per_second"], 5_000)
        alerts = AlertManager(cache, window=60)
        alerts.add_alert("busy", "operations_per_second", 4_000, ">")
        alerts.add_alert("idle", "operations_per_second", 100, "<")
        transitions = await asyncio.to_thread(alerts.evaluate)
        assert [t["alert"] for t in transitions] == ["busy"]
        assert _close_to(transitions[0]["value"], 5_000)


async def test_rate_counts_failed_operations_too():
    """An outage does not read as silence: failed calls are operations in the rate."""
    cache, clock = _cache_with_clock(redis_url="redis://127.0.0.1:1/0", retry_attempts=0,
                                     circuit_breaker_enabled=False, connect_timeout=0.2)  # fmt: skip
    async with cache:
        await _drive(cache, clock, 20, 5)
        m = cache.get_comprehensive_metrics()
        assert _close_to(m.operations_per_second, 20) and m.error_rate == 1.0
