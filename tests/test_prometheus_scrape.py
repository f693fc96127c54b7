"""The OTel Prometheus exporter renders exactly the documented series."""

from __future__ import annotations

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

DOCUMENTED = {
    "yokedcache_cache_gets": "counter",
    "yokedcache_cache_sets": "counter",
    "yokedcache_cache_deletes": "counter",
    "yokedcache_cache_hits": "counter",
    "yokedcache_cache_misses": "counter",
    "yokedcache_cache_invalidations": "counter",
    "yokedcache_cache_hit_rate": "gauge",
    "yokedcache_cache_size_bytes": "gauge",
    "yokedcache_cache_keys_count": "gauge",
    "yokedcache_cache_operation_duration_seconds": "histogram",
}


async def test_exposition_has_the_documented_families(make_cache):
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    cache = make_cache(meter_provider=provider)
    for i in range(8):
        await cache.set(f"k{i}", i)
    for i in range(10):
        await cache.get(f"k{i}")  # 8 hits, 2 misses
    await cache.delete("k0")
    await cache.invalidate_pattern("k1*")
    await cache.refresh_usage()

    text = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, kind in DOCUMENTED.items():
        assert families[name].type == kind, name

    def samples(name: str) -> list:
        return families[name].samples

    gets = {s.labels["result"]: s.value for s in samples("yokedcache_cache_gets") if s.name.endswith("_total")}
    assert gets == {"hit": 8.0, "miss": 2.0}
    (rate,) = samples("yokedcache_cache_hit_rate")
    assert rate.value == 0.8
    buckets = [
        s for s in samples("yokedcache_cache_operation_duration_seconds")
        if s.name.endswith("_bucket") and s.labels["operation"] == "get"
    ]  # fmt: skip
    les = {s.labels["le"] for s in buckets}
    assert {"0.001", "0.01", "+Inf"} <= les
    assert max(s.value for s in buckets) == 10.0
    provider.shutdown()
