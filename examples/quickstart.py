"""Quick start: the embedded in-memory cache, with its metrics printed from the OTel SDK.

Run: python examples/quickstart.py   (needs `pip install 'yokedcache-otel[prometheus]'` for the SDK)
"""

from __future__ import annotations

import asyncio
import random

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from yokedcache import CacheConfig, YokedCache


async def main() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    async with YokedCache(CacheConfig(meter_provider=provider, default_ttl=60)) as cache:
        rng = random.Random(7)
        for _ in range(5_000):
            key = f"user:{int(rng.paretovariate(1.2)) % 500}"  # skewed: a few hot keys
            if await cache.get(key) is None:
                await cache.set(key, {"id": key, "score": rng.random()}, tags=["users"])
        print("invalidated:", await cache.invalidate_tags("users"))

        data = reader.get_metrics_data()
        for metric in data.resource_metrics[0].scope_metrics[0].metrics:
            for point in metric.data.data_points:
                attrs = dict(point.attributes or {})
                value = getattr(point, "value", None)
                if value is None:
                    value = f"count={point.count} sum={point.sum:.6f}s"
                print(f"{metric.name:40} {attrs!s:30} {value}")
    provider.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
