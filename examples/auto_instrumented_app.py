"""A small async service that uses the cache and knows nothing about OpenTelemetry.

Run it under auto-instrumentation (see docs/telemetry.md, 'Traces and auto-instrumentation'):

    opentelemetry-instrument --traces_exporter otlp --metrics_exporter otlp \\
        --service_name catalog python examples/auto_instrumented_app.py

Environment: YOKEDCACHE_REDIS_URL (unset: the in-memory backend, which records metrics but no
spans unless CacheConfig(enable_tracing=True)), REQUESTS (200).
"""

import asyncio
import os
import random

from yokedcache import YokedCache

REQUESTS = int(os.environ.get("REQUESTS", "200"))


async def load_product(product_id: int) -> dict:
    await asyncio.sleep(0.001)  # the slow database the cache is in front of
    return {"id": product_id, "name": f"product {product_id}", "price": round(product_id * 1.25, 2)}


async def get_product(cache: YokedCache, product_id: int) -> dict:
    key = f"product:{product_id}"
    product = await cache.get(key)
    if product is None:
        product = await load_product(product_id)
        await cache.set(key, product, ttl=60, tags=["products"])
    return product


async def main() -> None:
    rng = random.Random(42)
    async with YokedCache() as cache:
        for _ in range(REQUESTS):
            await get_product(cache, int(rng.paretovariate(1.5)) % 50)  # a few hot products
        await cache.invalidate_tags("products")  # a price update
        stats = await cache.get_stats()
        print(f"hits={stats.hits} misses={stats.misses} sets={stats.sets} hit_rate={stats.hit_rate:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
