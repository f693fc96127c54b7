"""Health checks and statistics: truthful, side-effect free, bounded in time."""

from __future__ import annotations

import ast
import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from yokedcache import CacheConfig, YokedCache, health
from yokedcache.health import HealthSource

from .redis_server import free_port


async def test_fresh_idle_cache_is_healthy(make_cache):
    cache = make_cache()
    assert await cache.health() is True
    assert await cache.health_check() is True
    report = await cache.detailed_health_check()
    assert report["status"] == "healthy", report["reasons"]
    assert report["performance_metrics"]["total_operations"] == 0
    for key in ("redis_connected", "connection_pool", "circuit_breaker", "performance_metrics", "backend",
                "checked_at", "ping_latency_seconds"):  # fmt: skip
        assert key in report


async def test_redis_health_reports_pool_and_breaker_without_writing(redis_url):
    async with YokedCache(CacheConfig(redis_url=redis_url)) as cache:
        await cache.set("k", 1)
        # the background statistics share one sample key: let the first refresh write it first
        deadline = time.monotonic() + 5
        while cache._usage is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        observer = redis.Redis.from_url(redis_url)
        keys_before = observer.dbsize()
        stats_before = await cache.get_stats()
        report = await cache.detailed_health_check()
        stats_after = await cache.get_stats()
        assert observer.dbsize() == keys_before
        observer.close()
    assert report["status"] == "healthy"
    assert report["redis_connected"] is True
    assert report["ping_latency_seconds"] > 0
    pool = report["connection_pool"]
    assert pool["max_connections"] == 50 and pool["created"] >= 1 and pool["in_use"] + pool["idle"] == pool["created"]
    assert report["circuit_breaker"]["state"] == "closed"
    assert stats_before.operations == stats_after.operations


async def test_dead_redis_is_unhealthy_quickly():
    url = f"redis://:sentinel-pw@127.0.0.1:{free_port()}/0"
    async with YokedCache(CacheConfig(redis_url=url)) as cache:
        started = time.monotonic()
        assert await cache.health() is False
        report = await cache.detailed_health_check()
        elapsed = time.monotonic() - started
    assert report["status"] == "unhealthy"
    assert report["redis_connected"] is False
    assert elapsed < 2.0
    assert "sentinel-pw" not in repr(report)


async def test_hung_redis_answers_within_the_timeout():
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)  # accepts connections (kernel backlog), never answers
    url = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"
    try:
        async with YokedCache(CacheConfig(redis_url=url, health_check_timeout=0.5, operation_timeout=5)) as cache:
            started = time.monotonic()
            report = await cache.detailed_health_check()
            elapsed = time.monotonic() - started
    finally:
        hung.close()
    assert report["status"] == "unhealthy"
    assert "timed out" in report["reasons"][0]
    assert elapsed < 1.0


async def test_get_stats_counts_and_sizes(make_cache):
    cache = make_cache()
    await cache.set_many({"a": "x" * 50, "b": 1})
    await cache.get("a")
    await cache.get("zz")
    await cache.refresh_usage()
    stats = await cache.get_stats()
    assert stats.hit_rate == 0.5
    assert (stats.hits, stats.misses, stats.sets) == (1, 1, 2)
    assert stats.total_keys == 2 and stats.total_memory_bytes >= 50
    assert stats.uptime_seconds > 0
    assert stats.operations == {"set_many": 1, "get": 2}


async def test_comprehensive_metrics_are_synchronous_and_on_the_documented_scales(make_cache):
    cache = make_cache()
    for i in range(10):
        await cache.set(f"k{i}", i)
    for i in range(20):
        await cache.get(f"k{i}")
    m = cache.get_comprehensive_metrics()
    assert m.hit_rate == 0.5
    assert m.total_operations == 30
    assert m.error_rate == 0.0
    assert 0 < m.p50_response_time <= m.p95_response_time <= m.p99_response_time < 1
    assert 0 < m.avg_response_time < 1
    assert m.operations_per_second > 0


async def test_error_rate_uses_the_same_counters_as_exporters():
    url = f"redis://127.0.0.1:{free_port()}/0"
    async with YokedCache(CacheConfig(redis_url=url, retry_attempts=0)) as cache:
        for _ in range(4):
            await cache.get("k")
        m = cache.get_comprehensive_metrics()
        assert m.error_rate == 1.0
        assert sum(cache.telemetry.counters.errors.values()) == 4


def test_start_metrics_collection_works_before_an_event_loop_exists():
    cache = YokedCache(CacheConfig(enable_metrics=True, metrics_retention_days=7))
    cache.start_metrics_collection(interval=0.05)
    assert cache.metrics_history is not None
    assert cache.metrics_history.snapshots.maxlen == int(7 * 86400 / 0.05)

    async def main() -> None:
        await cache.get("k")  # the first operation starts the sampler
        deadline = time.monotonic() + 5
        while len(cache.metrics_history.snapshots) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await cache.close()

    asyncio.run(main())
    assert cache.metrics_history.snapshots[-1].total_operations == 1


async def test_history_keeps_its_own_interval_beside_the_usage_refresh(redis_url):
    cache = YokedCache(CacheConfig(redis_url=redis_url, stats_refresh_interval=0.01))
    await cache.get("k")  # starts the usage refresher first
    cache.start_metrics_collection(interval=0.3)
    deadline = time.monotonic() + 5
    while len(cache.metrics_history.snapshots) < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    first, second = list(cache.metrics_history.snapshots)[:2]
    await cache.close()
    # snapshots follow the history interval, not the much faster usage refresh
    assert second.timestamp - first.timestamp >= 0.25


@pytest.mark.parametrize("days", [1, 7])
def test_history_is_bounded(days):
    from yokedcache.health import MetricsHistory

    assert MetricsHistory(days).snapshots.maxlen == days * 1440


class SeamOnly:
    """A cache seen only through ``health.HealthSource``: touching anything else fails the test."""

    MEMBERS = frozenset(HealthSource.__annotations__) | {n for n in vars(HealthSource) if not n.startswith("_")}

    def __init__(self, cache: YokedCache) -> None:
        object.__setattr__(self, "_cache", cache)

    def __getattr__(self, name: str) -> Any:
        if name not in self.MEMBERS:
            raise AttributeError(f"health.py used {name!r}, which HealthSource does not declare")
        return getattr(object.__getattribute__(self, "_cache"), name)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"health.py set {name!r}: a check must change the cache only through its methods")


def test_health_imports_no_cache_module_not_even_for_type_checking():
    tree = ast.parse(Path(health.__file__).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
            imported.update(f"{node.module or ''}.{alias.name}".lstrip(".") for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert not [name for name in imported if "cache" in name.split(".")], imported


async def test_every_check_needs_nothing_but_the_declared_seam(make_cache):
    cache = make_cache()
    seen = SeamOnly(cache)
    assert await health.is_healthy(seen) is True
    report = await health.detailed_health_check(seen)
    assert report["status"] == "healthy", report["reasons"]
    assert health.current_health(seen) == ("healthy", [])
    assert health.comprehensive_metrics(seen).total_operations == 0
    assert cache.event_loop is asyncio.get_running_loop()  # the probe adopted it, as an operation would
    await cache.close()
    assert health.current_health(seen) == ("unhealthy", ["cache is closed"])
    closed = await health.detailed_health_check(seen)
    assert (closed["status"], closed["reasons"]) == ("unhealthy", ["backend ping failed: cache is closed"])


def test_readiness_before_the_first_operation_needs_nothing_but_the_seam(redis_url):
    cache = YokedCache(CacheConfig(redis_url=redis_url))
    report = health.readiness_report(SeamOnly(cache), 5.0)
    assert report["status"] == "healthy" and "one-off" in report["checked_on"]
    assert cache.event_loop is None  # the twin's throwaway loop never became the cache's
    asyncio.run(cache.close())


async def test_readiness_from_another_thread_runs_on_the_caches_loop_through_the_seam(make_cache):
    cache = make_cache()
    await cache.set("k", 1)  # the cache now belongs to this loop
    report = await asyncio.to_thread(health.readiness_report, SeamOnly(cache), 5.0)
    assert report["status"] == "healthy" and "checked_on" not in report
    assert (await cache.get_stats()).operations == {"set": 1}  # the check counted nothing


async def test_cache_stats_reads_as_a_mapping_too():
    """``stats["hit_rate"]`` as ``detailed_health_check()["status"]`` reads: both spellings work."""
    async with YokedCache() as cache:
        await cache.set("k", 1)
        await cache.get("k")
        stats = await cache.get_stats()
    assert stats["hit_rate"] == stats.hit_rate == 1.0
    assert dict(stats) == stats.to_dict() and list(stats) == list(stats.to_dict())
    assert "total_keys" in stats and "nope" not in stats and stats.get("nope") is None
    with pytest.raises(KeyError):
        stats["nope"]
