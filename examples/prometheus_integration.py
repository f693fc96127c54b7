"""docs/monitoring.md, 'Prometheus Integration', runnable.

    python examples/prometheus_integration.py
Ports from PROMETHEUS_PORT_1/2/3 (defaults 8000, 9090, 8001 as in docs/monitoring.md; 0 picks a free port).
"""

import asyncio
import os
import urllib.request

from prometheus_client import CollectorRegistry

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics, PrometheusCollector

PORTS = [int(os.environ.get(f"PROMETHEUS_PORT_{i}", default)) for i, default in ((1, 8000), (2, 9090), (3, 8001))]


async def main() -> None:
    # Basic Prometheus setup
    prometheus_collector = PrometheusCollector(
        namespace="yokedcache",  # Metric prefix
        port=PORTS[0],  # HTTP port for metrics endpoint
        registry=None,  # a private registry (pass prometheus_client.REGISTRY to share the global one)
    )

    # Custom configuration
    custom = PrometheusCollector(
        namespace="myapp_cache",
        port=PORTS[1],
        subsystem="backend",  # Additional prefix
        labels={"environment": "production", "service": "api"},
    )

    # Custom registry for isolation
    custom_registry = CollectorRegistry()
    isolated = PrometheusCollector(
        namespace="myapp",
        port=PORTS[2],
        registry=custom_registry,
        labels={"environment": "production", "region": "us-east-1", "service": "user-service"},
    )

    for collector in (prometheus_collector, custom, isolated):
        metrics = CacheMetrics([collector])
        async with YokedCache(CacheConfig(metrics=metrics)) as cache:
            await cache.set("k", 1)
            await cache.get("k")
            await cache.get("missing")
            with urllib.request.urlopen(f"{collector.url}/metrics") as resp:
                lines = [x for x in resp.read().decode().splitlines() if "gets_total{" in x]
            print("\n".join(lines))
        metrics.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
