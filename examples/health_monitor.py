"""docs/monitoring.md, 'Performance Monitoring' > 'Health Monitoring', runnable.

    python examples/health_monitor.py
Environment: YOKEDCACHE_REDIS_URL (unset: the in-memory backend), PROMETHEUS_PORT (8000).

The monitor pushes its figures through CacheMetrics; the same figures are also exported by
the cache itself (``yokedcache_cache_health`` and friends), so in production the monitor loop
is optional. The scrape at the end shows both.
"""

import asyncio
import os
import time
import urllib.request

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics, PrometheusCollector

PROMETHEUS_PORT = int(os.environ.get("PROMETHEUS_PORT", "8000"))


class CacheHealthMonitor:
    """Monitor cache health and performance."""

    def __init__(self, cache: YokedCache, metrics: CacheMetrics):
        self.cache = cache
        self.metrics = metrics
        self.monitoring = True

    async def start_monitoring(self, interval: int = 60):
        """Start health monitoring loop."""
        while self.monitoring:
            await self._collect_health_metrics()
            await asyncio.sleep(interval)

    async def _collect_health_metrics(self):
        """Collect and report health metrics."""
        try:
            # Check backend health
            start_time = time.time()
            is_healthy = await self.cache.health_check()
            response_time = time.time() - start_time

            # Report health metrics
            await self.metrics.gauge("cache.health", 1.0 if is_healthy else 0.0)
            await self.metrics.timing("cache.health_check_duration", response_time)

            if is_healthy:
                # Collect performance metrics
                stats = await self.cache.get_stats()

                await self.metrics.gauge("cache.hit_rate", stats.hit_rate)
                await self.metrics.gauge("cache.size_bytes", stats.total_memory_bytes)
                await self.metrics.gauge("cache.keys_count", stats.total_keys)
                await self.metrics.gauge("cache.uptime_seconds", stats.uptime_seconds)

        except Exception as e:
            await self.metrics.increment("cache.health_check_errors")
            print(f"Health check failed: {e}")

    def stop_monitoring(self):
        """Stop health monitoring."""
        self.monitoring = False


async def main() -> None:
    prometheus = PrometheusCollector(port=PROMETHEUS_PORT)
    metrics = CacheMetrics([prometheus])
    cache = YokedCache(CacheConfig(metrics=metrics))
    for i in range(30):
        await cache.set(f"user:{i}", {"id": i})
    for i in range(40):
        await cache.get(f"user:{i}")

    # Usage
    monitor = CacheHealthMonitor(cache, metrics)
    task = asyncio.create_task(monitor.start_monitoring(interval=30))

    # Wait for the first round to reach the exporter, then show what Prometheus would scrape.
    wanted = ("cache_health ", "cache_hit_rate ", "cache_keys_count ", "yokedcache_cache_health{")
    deadline = time.monotonic() + 10
    while True:
        with urllib.request.urlopen(f"{prometheus.url}/metrics") as resp:
            lines = [line for line in resp.read().decode().splitlines() if line.startswith(wanted)]
        if len(lines) >= len(wanted) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    print("\n".join(sorted(lines)))

    monitor.stop_monitoring()
    task.cancel()
    await cache.close()
    metrics.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
