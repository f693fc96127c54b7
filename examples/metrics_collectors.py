"""docs/monitoring.md, 'Metrics Collectors', runnable.

    python examples/metrics_collectors.py
Environment: YOKEDCACHE_REDIS_URL (default redis://localhost:6379/0), PROMETHEUS_PORT (8000),
STATSD_PORT (8125).
"""

import asyncio
import os
import urllib.request

from yokedcache import CacheConfig, YokedCache
from yokedcache.backends import RedisBackend
from yokedcache.monitoring import CacheMetrics, NoOpCollector, PrometheusCollector, StatsDCollector

REDIS_URL = os.environ.get("YOKEDCACHE_REDIS_URL", "redis://localhost:6379/0")
PROMETHEUS_PORT = int(os.environ.get("PROMETHEUS_PORT", "8000"))
STATSD_PORT = int(os.environ.get("STATSD_PORT", "8125"))


async def main() -> None:
    # Setup backend
    backend = RedisBackend(redis_url=REDIS_URL)

    # Setup monitoring
    prometheus = PrometheusCollector(namespace="myapp", port=PROMETHEUS_PORT)
    metrics = CacheMetrics([
        prometheus,
        StatsDCollector(host="localhost", port=STATSD_PORT, prefix="myapp.cache"),
    ])  # fmt: skip

    # Create cache with monitoring
    config = CacheConfig(backend=backend, metrics=metrics)
    cache = YokedCache(config)

    await cache.set("user:1", {"name": "Ada"})
    print("get:", await cache.get("user:1"), await cache.get("user:2"))
    with urllib.request.urlopen(f"{prometheus.url}/metrics") as resp:
        body = resp.read().decode()
    print(next(line for line in body.splitlines() if line.startswith("myapp_cache_gets_total")))

    # No-Op collector (the default): no metrics collection, same code
    assert type(CacheMetrics().collectors[0]) is NoOpCollector
    CacheMetrics([NoOpCollector()])

    await cache.close()
    metrics.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
