"""The near cache's targets (issue 27), measured in interleaved rounds in one process.

1. Single task, GET of one hot key: yokedcache with ``near_cache=True`` against raw redis-py
   (``redis.asyncio.from_url`` + ``json.loads``), yokedcache without a near cache, and coredis's
   client-side cache (``coredis.Redis(cache=LRUCache(...))``, which runs its ``TrackingCache``).
   Target: near >= 20x raw.
2. 100 tasks reading keys drawn from Zipf(1.1) over 100,000 keys (read-only mix): goodput
   (successful GETs per second) with the near cache against without it, and coredis with its
   cache. Target: >= 2x. The near cache has its default bounds (10,000 entries, 16 MiB), so it
   holds the hottest 10 % of the keys, not all of them.

Ratios are medians of per-round ratios (each round runs every contender once, in turn), so a
shared machine's drift hits all alike. Run: ``python benchmarks/near_cache.py`` (a private
redis-server), ``--rounds``, ``--ops``; coredis comes with ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _measure import interleaved_ratios, per_op_loop, run_on_redis

from yokedcache import CacheConfig, NearCacheConfig, YokedCache

KEYS = 100_000
TASKS = 100
PREFIX = "yokedcache:"


async def preload(url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    await client.flushdb()
    value = json.dumps({"id": 0, "name": "hot", "tags": ["a", "b"]})
    for start in range(0, KEYS, 5000):
        await client.mset({f"{PREFIX}z{i}": value for i in range(start, min(start + 5000, KEYS))})
    await client.set(f"{PREFIX}hot", value)
    await client.aclose()


def zipf_sample(n: int, seed: int = 27) -> list[int]:
    weights = itertools.accumulate(1 / (i**1.1) for i in range(1, KEYS + 1))
    return random.Random(seed).choices(range(KEYS), cum_weights=list(weights), k=n)


def goodput(get: Callable[[str], Awaitable[Any]], names: list[str],
            cpu: list[float] | None = None) -> Callable[[int], Awaitable[float]]:  # fmt: skip
    """A round of ``ops`` GETs spread over TASKS tasks; returns seconds per successful GET and
    appends this process's CPU seconds per GET to ``cpu`` (steadier than wall time when other
    jobs share the machine)."""

    async def run(ops: int) -> float:
        per_task = ops // TASKS
        offset = random.randrange(len(names) - ops)
        ok = 0

        async def task(start: int) -> None:
            nonlocal ok
            for name in names[start : start + per_task]:
                if await get(name) is not None:
                    ok += 1

        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(task(offset + t * per_task) for t in range(TASKS)))
        if cpu is not None:
            cpu.append((time.process_time() - cpu_started) / max(ok, 1))
        return (time.perf_counter() - started) / max(ok, 1)

    return run


async def interleaved_samples(loops: dict[str, Callable[[int], Awaitable[float]]], rounds: int,
                              ops: int) -> dict[str, list[float]]:  # fmt: skip
    """Each loop once per round, in turn, after one warm-up round (which also fills near caches)."""
    samples: dict[str, list[float]] = {name: [] for name in loops}
    for loop in loops.values():
        await loop(ops)
    for _ in range(rounds):
        for name, loop in loops.items():
            samples[name].append(await loop(ops))
    return samples


async def coredis_client(url: str) -> Any:
    try:
        import coredis
        from coredis.cache import LRUCache
    except ImportError:
        print("coredis not installed (pip install -e '.[bench]'): its column is left out")
        return None
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    return coredis.Redis("127.0.0.1", port, cache=LRUCache(max_keys=10_000))


def report(title: str, costs: dict[str, float], ratios: dict[str, float], unit: str) -> None:
    print(f"\n{title}")
    for name, cost in costs.items():
        figure = f"{1 / cost:,.0f} ops/s" if unit == "ops/s" else f"{cost * 1e6:.2f} µs/op"
        print(f"  {name:<24} {figure:>16}   {1 / ratios[name]:6.2f}x the baseline")


async def measure(url: str, rounds: int, ops: int) -> None:
    import redis.asyncio as aioredis

    await preload(url)
    raw = aioredis.from_url(url)
    plain = YokedCache(CacheConfig(redis_url=url, default_ttl=None))
    near = YokedCache(CacheConfig(redis_url=url, default_ttl=None, near_cache=True))
    cored = await coredis_client(url)
    working_set = NearCacheConfig(max_entries=KEYS, max_bytes=64 * 1024 * 1024)
    big = YokedCache(CacheConfig(redis_url=url, default_ttl=None, near_cache=working_set))

    async def raw_get(key: str) -> Any:
        data = await raw.get(PREFIX + key)
        return None if data is None else json.loads(data)

    async def coredis_get(key: str) -> Any:
        data = await cored.get(PREFIX + key)
        return None if data is None else json.loads(data)

    async def run_all() -> None:
        await big.exists("start")
        await near.get("hot")
        while near.near_stats is not None and near.near_stats.hits == 0:  # the link is up
            await asyncio.sleep(0.01)
            await near.get("hot")
        hot = ["hot"]
        loops = {"raw from_url + json": per_op_loop(raw_get, hot), "yokedcache": per_op_loop(plain.get, hot),
                 "yokedcache near_cache": per_op_loop(near.get, hot)}  # fmt: skip
        if cored is not None:
            loops["coredis TrackingCache"] = per_op_loop(coredis_get, hot)
        costs, ratios = await interleaved_ratios(loops, "raw from_url + json", rounds, ops)
        report("1. single task, GET of one hot key (per GET)", costs, ratios, "µs")

        names = [f"z{i}" for i in zipf_sample(max(ops * 4, 400_000))]
        cpu: dict[str, list[float]] = {}
        contenders = {"yokedcache": plain.get, "yokedcache near_cache": near.get, "near_cache, 100k entries": big.get}
        if cored is not None:
            contenders["coredis TrackingCache"] = coredis_get
        zipf = {name: goodput(get, names, cpu.setdefault(name, [])) for name, get in contenders.items()}
        zops = max(ops, 20_000)
        samples = await interleaved_samples(zipf, rounds, zops)
        print(f"\n2. Zipf(1.1) over {KEYS:,} keys, {TASKS} tasks, read only (goodput, ops/s per round)")
        base = samples["yokedcache"]
        for name, values in samples.items():
            ratio = statistics.median(b / v for v, b in zip(values, base, strict=True))
            rounds_ = " ".join(f"{1 / v:7,.0f}" for v in values)
            cpu_us = statistics.median(cpu[name][1:]) * 1e6  # [0] is the warm-up round
            print(f"  {name:<26} {rounds_}   median {1 / statistics.median(values):7,.0f}   {ratio:5.2f}x"
                  f"   client CPU {cpu_us:5.1f} µs/GET")  # fmt: skip
        for label, cache in (("default bounds", near), ("100k entries", big)):
            stats = cache.near_stats
            assert stats is not None and stats.hit_rate is not None
            print(f"  near cache ({label}): hit rate {stats.hit_rate:.3f}, {stats.entries:,} entries, "
                  f"{stats.bytes:,} bytes, {stats.flushes} flushes")  # fmt: skip

    try:
        if cored is not None:
            async with cored:
                await run_all()
        else:
            await run_all()
    finally:
        await plain.close()
        await near.close()
        await big.close()
        await raw.aclose()


if __name__ == "__main__":
    asyncio.run(run_on_redis(__doc__, measure, rounds=5, ops=20_000))
