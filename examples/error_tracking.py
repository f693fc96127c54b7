"""docs/monitoring.md, 'Error Rate Monitoring', runnable.

    python examples/error_tracking.py
Environment: YOKEDCACHE_REDIS_URL (default: a port where nothing listens, to produce errors),
PROMETHEUS_PORT (8000).

``fail_open=False`` makes connection failures reach the caller as the builtin
``ConnectionError`` (the default, fail-open, returns the default value and only counts the
error). The cache counts every failure itself as ``yokedcache_cache_errors_total{operation,
error_type}``; the tracker below is docs/monitoring.md's own, application-side view.
"""

import asyncio
import os
import urllib.request

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics, PrometheusCollector

REDIS_URL = os.environ.get("YOKEDCACHE_REDIS_URL", "redis://127.0.0.1:1/0")
PROMETHEUS_PORT = int(os.environ.get("PROMETHEUS_PORT", "8000"))


class ErrorTrackingMetrics:
    """Track and report error rates."""

    def __init__(self, metrics: CacheMetrics):
        self.metrics = metrics
        self.error_counts = {}

    async def track_error(self, operation: str, error_type: str, error: Exception):
        """Track an error occurrence."""
        error_key = f"{operation}.{error_type}"

        await self.metrics.increment("cache.errors.total", tags={
            "operation": operation,
            "error_type": error_type,
            "error_class": error.__class__.__name__
        })  # fmt: skip

        # Track error rate
        self.error_counts[error_key] = self.error_counts.get(error_key, 0) + 1

    async def calculate_error_rates(self, total_operations: dict):
        """Calculate and report error rates."""
        for error_key, error_count in self.error_counts.items():
            operation = error_key.split(".")[0]
            total_ops = total_operations.get(operation, 1)
            error_rate = error_count / total_ops

            await self.metrics.gauge(f"cache.error_rate.{operation}", error_rate)


async def main() -> None:
    prometheus = PrometheusCollector(port=PROMETHEUS_PORT)
    metrics = CacheMetrics([prometheus])
    cache = YokedCache(CacheConfig(redis_url=REDIS_URL, fail_open=False, retry_attempts=0, metrics=metrics))

    # Usage with cache operations
    error_tracker = ErrorTrackingMetrics(metrics)

    async def safe_cache_get(key: str):
        """Cache GET with error tracking."""
        try:
            return await cache.get(key)
        except ConnectionError as e:
            await error_tracker.track_error("get", "connection", e)
            return None
        except Exception as e:
            await error_tracker.track_error("get", "unknown", e)
            return None

    for i in range(10):
        await safe_cache_get(f"user:{i}")

    stats = await cache.get_stats()
    await error_tracker.calculate_error_rates(stats.operations)
    print("tracked:", error_tracker.error_counts)
    print(f"cache error rate: {cache.get_comprehensive_metrics().error_rate:.0%}")

    with urllib.request.urlopen(f"{prometheus.url}/metrics") as resp:
        body = resp.read().decode()
    wanted = ("cache_errors_total{", "cache_error_rate_get ", "yokedcache_cache_errors_total{")
    print("\n".join(sorted(line for line in body.splitlines() if line.startswith(wanted))))

    await cache.close()
    metrics.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
