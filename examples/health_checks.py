"""docs/monitoring.md, 'Health Checks' and 'Metrics Collection', runnable.

    python examples/health_checks.py
Environment: YOKEDCACHE_REDIS_URL (unset: the in-memory backend).

One cache throughout, so the detailed health check's performance figures and the metrics
snapshot below it describe the same 150 operations and agree.
"""

import asyncio

from yokedcache import CacheConfig, YokedCache


async def main() -> None:
    # Enabling metrics: a bounded, down-sampled history kept for the retention period.
    # YOKEDCACHE_REDIS_URL, when set, points the config at Redis.
    config = CacheConfig(
        enable_metrics=True,
        metrics_retention_days=7
    )  # fmt: skip

    cache = YokedCache(config=config)
    cache.start_metrics_collection()

    for i in range(50):
        await cache.set(f"user:{i}", {"id": i})
    for i in range(100):
        await cache.get(f"user:{i}")  # 50 hits, 50 misses

    # Simple health check
    is_healthy = await cache.health()
    print(f"Cache is healthy: {is_healthy}")

    # Detailed health check with full diagnostics (its checks are not operations: they do not count)
    health_info = await cache.detailed_health_check()

    print(f"Status: {health_info['status']}")
    print(f"Redis connected: {health_info['redis_connected']}")
    print(f"Connection pool: {health_info['connection_pool']}")
    print(f"Circuit breaker: {health_info['circuit_breaker']}")
    print(f"Performance metrics: {health_info['performance_metrics']}")

    # Get current metrics snapshot: the same counters as the health check's performance metrics
    metrics = cache.get_comprehensive_metrics()

    print(f"Hit rate: {metrics.hit_rate:.2%}")
    print(f"Average response time: {metrics.avg_response_time:.3f}s")
    print(f"Total operations: {metrics.total_operations}")
    history = cache.metrics_history
    print(f"History: up to {history.snapshots.maxlen} snapshots, one per {history.interval:g}s")
    await cache.close()


if __name__ == "__main__":
    asyncio.run(main())
