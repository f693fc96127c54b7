"""A 30-second soak in CI (``make soak`` runs 10 minutes) and the cardinality bounds."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics

SOAK = Path(__file__).resolve().parent.parent / "benchmarks" / "soak.py"


def load_soak():
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_soak_30_seconds_loses_no_count_and_does_not_grow(redis_url, capsys):
    result = await load_soak().run_soak(30, redis_url, scrape_every=2, report_every=10)
    print(result)
    assert result["exceptions"] == [] and result["cache_errors"] == 0
    assert result["operations"] > 10_000
    assert result["prometheus_exact"], (result["issued"], result["prometheus_exported"])
    assert result["statsd_exact"], (result["issued_gets"], result["statsd_gets"])
    assert result["scrapes"] >= 10
    # memory is bounded: the recent-latency windows fill in the first seconds, then RSS is flat
    assert result["rss_end_mib"] - result["rss_start_mib"] < 40, result


async def test_100k_keys_and_10k_tags_make_a_bounded_number_of_series(telemetry):
    async with YokedCache(CacheConfig(meter_provider=telemetry.meter_provider, max_keys=20_000)) as cache:
        for i in range(100_000):
            await cache.set(f"user:{i}", i, tags=[f"tag:{i % 10_000}"])
            if i % 3 == 0:
                await cache.get(f"user:{i // 2}")
        for t in range(0, 10_000, 7):
            await cache.invalidate_tags(f"tag:{t}")
        series = sum(len(points) for points in telemetry.metrics().values())
    # operations x results x (a few) instruments, whatever the number of keys and tags
    assert series < 40, series


async def test_application_metric_tags_past_the_limit_fold_into_one_overflow_series(telemetry, caplog):
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    class InMemoryCollector:  # any object offering a metric reader plugs into CacheMetrics
        reader = InMemoryMetricReader()

        def metric_reader(self, **_: object) -> InMemoryMetricReader:
            return self.reader

    collector = InMemoryCollector()
    metrics = CacheMetrics([collector], max_tag_sets=100)
    reader = collector.reader
    with caplog.at_level(logging.WARNING, logger="yokedcache.monitoring"):
        for i in range(5_000):
            await metrics.increment("user.login", tags={"user": f"u{i}"})
    points = [p for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics
              for m in sm.metrics for p in m.data.data_points]  # fmt: skip
    assert len(points) == 101
    overflow = [p for p in points if dict(p.attributes) == {"otel.metric.overflow": "true"}]
    assert overflow[0].value == 4_900
    assert len([r for r in caplog.records if "overflow" in r.getMessage()]) == 1
    metrics.shutdown()
