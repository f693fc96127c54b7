"""Multiprocess mode's two costs, each against its baseline in this same process.

    python benchmarks/multiprocess.py [--redis-url URL] [--rounds 31] [--ops 500]

1. Recording: ``benchmarks/overhead.py``'s target 1 (a Redis GET hit with metrics on, against a
   raw ``redis.asyncio`` GET + ``json.loads``) with ``PrometheusCollector`` in single-process
   mode and in multiprocess mode (its store thread writing every second, as in a worker), in
   interleaved rounds. The hot path is the same; the difference is the background writes.
2. A scrape of 16 workers x 10 caches: sixteen stores in one directory, each written from a real
   SDK collection of ten caches, then the answering worker's whole scrape (its own write, the
   dead-worker check, the merge of every file, the rendering), timed ``SCRAPES`` times.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from _measure import interleaved_ratios, per_op_loop, run_on_redis
from prometheus_client import generate_latest

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics, PrometheusCollector

KEYS = [f"k{i}" for i in range(1000)]
FULL = [f"yokedcache:{k}" for k in KEYS]
SCRAPES = 30


async def recording(url: str, rounds: int, ops: int) -> None:
    import redis.asyncio as aioredis

    print("\n1. Redis GET hit, metrics on: single-process vs multiprocess PrometheusCollector (target <= 3 %)")
    directory = tempfile.mkdtemp(prefix="yc-mp-bench-")
    single = CacheMetrics([PrometheusCollector(port=None)])
    multi = CacheMetrics([PrometheusCollector(port=None, multiprocess_dir=directory)])
    one = YokedCache(CacheConfig(redis_url=url, metrics=single, enable_tracing=False, name="single"))
    many = YokedCache(CacheConfig(redis_url=url, metrics=multi, enable_tracing=False, name="multi"))
    await one.set_many({k: "v" for k in KEYS})
    plain = aioredis.from_url(url)

    async def plain_get(k: str) -> object:
        raw = await plain.get(k)
        return json.loads(raw) if raw is not None else None

    loops = {
        "raw from_url() GET + json.loads": per_op_loop(plain_get, FULL),
        "cache GET hit, single-process": per_op_loop(one.get, KEYS, one.telemetry.flush),
        "cache GET hit, multiprocess": per_op_loop(many.get, KEYS, many.telemetry.flush),
    }
    costs, ratios = await interleaved_ratios(loops, "raw from_url() GET + json.loads", rounds, ops)
    for name, cost in costs.items():
        print(f"  {name:40s} {cost * 1e6:8.2f} us/op  {ratios[name]:.3f}x raw")
    a, b = ratios["cache GET hit, single-process"], ratios["cache GET hit, multiprocess"]
    print(f"  T1 single-process {a:.3f}x, multiprocess {b:.3f}x: multiprocess costs {100 * (b / a - 1):+.1f} %")
    await plain.aclose()
    for cache in (one, many):
        await cache.close()
    single.shutdown()
    multi.shutdown()


async def scrape(scrapes: int) -> None:
    print("\n2. One scrape of 16 workers x 10 caches (target <= 50 ms)")
    directory = tempfile.mkdtemp(prefix="yc-mp-bench-")
    workers = []
    for _ in range(16):
        collector = PrometheusCollector(port=None, multiprocess_dir=directory)
        metrics = CacheMetrics([collector])
        caches = [YokedCache(CacheConfig(metrics=metrics, name=f"cache{n}")) for n in range(10)]
        for cache in caches:
            for i in range(20):
                await cache.set(f"k{i}", i)
                await cache.get(f"k{i % 25}")
            await cache.refresh_usage()
        collector.store.write()
        workers.append((collector, metrics, caches))
    answering = workers[0][0]
    times = []
    for _ in range(scrapes):
        started = time.perf_counter()
        body = generate_latest(answering.registry)
        times.append(time.perf_counter() - started)
    files = len(list(Path(directory).glob("*.db")))
    lines = body.count(b"\n")
    print(f"  {files} store files, {len(body) / 1024:.0f} KiB of exposition, {lines} lines")
    print(f"  scrape: median {statistics.median(times) * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms "
          f"over {scrapes} scrapes")  # fmt: skip
    for _collector, metrics, caches in workers:
        for cache in caches:
            await cache.close()
        metrics.shutdown()


async def measure(url: str, rounds: int, ops: int) -> None:
    await recording(url, rounds, ops)
    await scrape(SCRAPES)


if __name__ == "__main__":
    asyncio.run(run_on_redis(__doc__, measure, rounds=31, ops=500))
