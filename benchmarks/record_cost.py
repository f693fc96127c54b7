"""Where the cost of metrics goes on a Redis GET: the profile behind targets 1 and 5.

    python benchmarks/record_cost.py [--rounds 15] [--ops 2000]

Each variant is a hand-written GET (same pool, same JSON decode) that differs from the one
before it in one thing, measured as a per-round ratio to raw ``redis.asyncio`` in this process:

- ``no metrics``: the GET and the decode alone;
- ``record inline``: plus one SDK ``Histogram.record`` right after the round trip;
- ``record batched (64)``: the same records queued and run 64 at a time;
- ``queue only``: queued, recorded outside the timed loop (the cost of the queue itself);
- ``cache.get``: the real facade (breaker, admission, counters, batched records).

The gap between ``record inline`` and ``record batched`` is the cold-cache penalty of an SDK
call made right after redis-py has run; ``cache.get`` minus ``record batched`` is the facade.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any

from _measure import interleaved_ratios, per_op_loop, run_on_redis
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry

from yokedcache import CacheConfig, YokedCache

KEYS = [f"k{i}" for i in range(1000)]
FULL = [f"yokedcache:{k}" for k in KEYS]
BATCH = 64


async def measure(url: str, rounds: int, ops: int) -> None:
    import redis.asyncio as aioredis

    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=CollectorRegistry())])
    cache = YokedCache(CacheConfig(redis_url=url, meter_provider=provider, enable_tracing=False))
    await cache.set_many({k: "v" for k in KEYS})
    raw = aioredis.Redis(connection_pool=cache.backend.pool)  # type: ignore[attr-defined]
    histogram = provider.get_meter("record_cost").create_histogram("record_cost.duration", unit="s")
    attrs = {"db.operation.name": "get"}
    loads = cache._loads
    queued: list[float] = []

    def drain() -> None:
        for elapsed in queued:
            histogram.record(elapsed, attrs)
        queued.clear()

    async def no_metrics(key: str) -> Any:
        return loads(await raw.get(key))

    async def record_inline(key: str) -> Any:
        started = perf_counter()
        value = loads(await raw.get(key))
        histogram.record(perf_counter() - started, attrs)
        return value

    async def queue_only(key: str) -> Any:
        started = perf_counter()
        value = loads(await raw.get(key))
        queued.append(perf_counter() - started)
        return value

    async def record_batched(key: str) -> Any:
        value = await queue_only(key)
        if len(queued) >= BATCH:
            drain()
        return value

    def untimed_drain(loop: Any) -> Any:
        async def run(n: int) -> float:
            cost = await loop(n)
            drain()  # after the clock stopped: 'queue only' pays nothing for the records
            return float(cost)

        return run

    loops = {
        "raw GET": per_op_loop(raw.get, FULL),
        "no metrics": per_op_loop(no_metrics, FULL),
        "record inline": per_op_loop(record_inline, FULL),
        f"record batched ({BATCH})": untimed_drain(per_op_loop(record_batched, FULL)),
        "queue only": untimed_drain(per_op_loop(queue_only, FULL)),
        "cache.get": per_op_loop(cache.get, KEYS, cache.telemetry.flush),
    }
    costs, ratios = await interleaved_ratios(loops, "raw GET", rounds, ops)
    base = costs["raw GET"]
    for name in loops:
        extra = (costs[name] - base) * 1e6
        print(f"  {name:22} {costs[name] * 1e6:8.2f} µs/op  {ratios[name]:6.3f}x  ({extra:+6.2f} µs)")
    await cache.close()
    provider.shutdown()


async def main() -> None:
    await run_on_redis(__doc__, measure, rounds=15, ops=2000)


if __name__ == "__main__":
    asyncio.run(main())
