"""One process of the near-cache property test: random reads and writes, every event timed.

``python -m tests.near_cache_worker URL SEED SECONDS STALENESS OUT`` writes a JSON file with
every write (key, value, sent, replied or None when it failed) and every read (key, value,
started, ended) it made, and its near-cache counts. Times are ``time.monotonic()``, one clock
for every process of the machine (Linux ``CLOCK_MONOTONIC``), so histories can be merged.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from typing import Any

from yokedcache import CacheConfig, NearCacheConfig, YokedCache

KEYS = [f"k{i}" for i in range(6)]
TASKS = 4
FAILED = "<failed>"


async def one_task(cache: YokedCache, rng: random.Random, until: float, events: list[list[Any]], name: str) -> None:
    n = 0
    while time.monotonic() < until:
        key = rng.choice(KEYS)
        roll = rng.random()
        if roll < 0.12:
            n += 1
            value = f"{name}:{n}"
            sent = time.monotonic()
            ok = await cache.set(key, value)
            events.append(["w", key, value, sent, time.monotonic() if ok else None])
        elif roll < 0.16:
            sent = time.monotonic()
            try:
                await cache.delete(key)
                replied: float | None = time.monotonic()
            except Exception:
                replied = None
            events.append(["w", key, None, sent, replied])
        else:
            started = time.monotonic()
            value = await cache.get(key, FAILED)
            if value != FAILED:
                events.append(["r", key, value, started, time.monotonic()])
        pause = rng.choice((0, 0, 0, 0, 0.0005, 0.002, 0.02, 0.08))
        await asyncio.sleep(pause)


async def main(url: str, seed: int, seconds: float, staleness: float, out: str) -> None:
    config = CacheConfig(redis_url=url, default_ttl=None, near_cache=NearCacheConfig(max_staleness=staleness),
                         retry_attempts=0, circuit_breaker_enabled=False, operation_timeout=0.5)  # fmt: skip
    events: list[list[Any]] = []
    async with YokedCache(config) as cache:
        await cache.exists("start")
        until = time.monotonic() + seconds
        rngs = [random.Random(seed * 100 + i) for i in range(TASKS)]
        pid = os.getpid()
        await asyncio.gather(*(one_task(cache, rngs[i], until, events, f"{pid}.{i}") for i in range(TASKS)))
        stats = cache.near_stats
        assert stats is not None
        counts = {"hits": stats.hits, "misses": stats.misses, "flushes": stats.flushes,
                  "invalidations": stats.invalidations}  # fmt: skip
    with open(out, "w") as f:
        json.dump({"pid": pid, "events": events, "counts": counts}, f)


if __name__ == "__main__":
    url_, seed_, seconds_, staleness_, out_ = sys.argv[1:6]
    asyncio.run(main(url_, int(seed_), float(seconds_), float(staleness_), out_))
