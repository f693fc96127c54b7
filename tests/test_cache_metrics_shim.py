"""CacheMetrics: the documented collector API on one OTel MeterProvider."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.metrics import NoOpMeterProvider

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics, NoOpCollector


class RecordingCollector:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float, dict]] = []

    async def increment(self, metric, value=1, tags=None):
        self.calls.append(("increment", metric, value, tags or {}))

    async def gauge(self, metric, value, tags=None):
        self.calls.append(("gauge", metric, value, tags or {}))

    async def histogram(self, metric, value, tags=None):
        self.calls.append(("histogram", metric, value, tags or {}))

    async def timing(self, metric, value, tags=None):
        self.calls.append(("timing", metric, value, tags or {}))

    def total(self, kind: str, metric: str, cache_name: str = "memory", **tags) -> float:
        """Sum of ``metric`` with exactly ``tags`` (plus ``cache.name`` on the cache's own metrics)."""
        want = {**tags, "cache.name": cache_name} if metric.startswith("cache.") else tags
        return sum(v for k, m, v, t in self.calls if k == kind and m == metric and t == want)


class BrokenCollector(RecordingCollector):
    async def increment(self, metric, value=1, tags=None):
        raise RuntimeError("webhook down")


def test_default_and_noop_use_the_api_noop_provider():
    assert isinstance(CacheMetrics().meter_provider, NoOpMeterProvider)
    assert isinstance(CacheMetrics([NoOpCollector()]).meter_provider, NoOpMeterProvider)


async def test_user_collector_receives_cache_and_application_metrics():
    collector = RecordingCollector()
    metrics = CacheMetrics([collector], export_interval=60)
    cache = YokedCache(CacheConfig(metrics=metrics))
    await cache.set("k", 1)
    for _ in range(3):
        await cache.get("k")
    await cache.get("nope")
    await metrics.increment("user.login", tags={"source": "api"})
    await metrics.gauge("active_sessions", 12, tags={"server": "web-01"})
    timer = metrics.start_timer("request_processing")
    elapsed = await metrics.end_timer(timer, "request_processing", {"endpoint": "/api/users"})
    metrics.force_flush()
    assert collector.total("increment", "cache.gets", result="hit") == 3
    assert collector.total("increment", "cache.gets", result="miss") == 1
    assert collector.total("increment", "cache.sets") == 1
    assert collector.total("gauge", "cache.hit_rate") == 0.75
    assert collector.total("increment", "user.login", source="api") == 1
    assert collector.total("gauge", "active_sessions", server="web-01") == 12
    ((_, _, value, _),) = [c for c in collector.calls if c[0] == "timing"]
    assert value == pytest.approx(elapsed)
    assert any(c[0] == "histogram" and c[1] == "cache.operation_duration" for c in collector.calls)
    # a second flush sends only what changed: counters are deltas
    await cache.get("k")
    collector.calls.clear()
    metrics.force_flush()
    assert collector.total("increment", "cache.gets", result="hit") == 1
    await cache.close()
    metrics.shutdown()


async def test_a_failing_collector_is_isolated_counted_and_logged(caplog):
    good, bad = RecordingCollector(), BrokenCollector()
    metrics = CacheMetrics([bad, good], export_interval=60)
    cache = YokedCache(CacheConfig(metrics=metrics))
    await cache.get("k")
    with caplog.at_level(logging.WARNING, logger="yokedcache.exporters"):
        metrics.force_flush()
    assert good.total("increment", "cache.gets", result="miss") == 1
    assert bad.total("gauge", "cache.hit_rate") == 0  # gauges still delivered to the broken one
    assert any("BrokenCollector" in r.getMessage() for r in caplog.records)
    assert await cache.get("k") is None  # the cache is unaffected
    await cache.close()
    metrics.shutdown()


async def test_tag_sets_beyond_the_bound_fold_into_overflow(caplog):
    collector = RecordingCollector()
    metrics = CacheMetrics([collector], export_interval=60, max_tag_sets=5)
    with caplog.at_level(logging.WARNING, logger="yokedcache.monitoring"):
        for i in range(50):
            await metrics.increment("requests", tags={"user": str(i)})
    metrics.force_flush()
    series = {tuple(sorted(t.items())) for k, m, v, t in collector.calls if m == "requests"}
    assert len(series) == 6
    assert collector.total("increment", "requests", **{"otel.metric.overflow": "true"}) == 45
    assert sum("requests" in r.getMessage() for r in caplog.records) == 1
    metrics.shutdown()


async def test_timers_never_ended_do_not_leak():
    metrics = CacheMetrics(max_timers=100)
    for i in range(10_000):
        metrics.start_timer(f"t{i}")
    assert len(metrics._timers) == 100
    assert await metrics.end_timer("t0:1") is None


@pytest.mark.parametrize("name", ["", "1abc", "has space", "x" * 300, None])
async def test_invalid_metric_names_raise_value_error(name):
    with pytest.raises(ValueError, match="metric"):
        await CacheMetrics().increment(name)


async def test_bad_values_raise():
    metrics = CacheMetrics()
    with pytest.raises(TypeError, match="value"):
        await metrics.gauge("g", "1")
    with pytest.raises(ValueError, match="value"):
        await metrics.increment("c", -1)


def test_objects_that_are_not_collectors_are_rejected():
    with pytest.raises(TypeError, match="collectors"):
        CacheMetrics([object()])
