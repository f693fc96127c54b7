"""A process of the cache-aside tests (tests/test_cache_aside.py): run as a script.

``stampede URL CALLERS``: print ``ready``, wait for ``go`` on stdin, then run CALLERS concurrent
``get_or_set(lock=True)`` calls on one cold key; the factory INCRs a counter in Redis (so the
parent counts computations across processes); print one JSON line: the distinct values seen.

``hold URL``: take the key's lock through ``get_or_set(lock=True)`` with a 1 s lock TTL and a
factory that prints ``computing`` and never returns (the parent SIGKILLs this process).

``key``: print the keys of a few decorated calls (stable across interpreter runs).
"""

from __future__ import annotations

import asyncio
import json
import sys

import redis

from yokedcache import CacheConfig, YokedCache

KEY = "cold"
COUNTER = "test:factory-calls"


async def stampede(url: str, callers: int) -> None:
    counter = redis.asyncio.Redis.from_url(url)

    async def factory() -> str:
        await counter.incr(COUNTER)
        await asyncio.sleep(0.05)  # a query: long enough for every caller to arrive meanwhile
        return "computed"

    async with YokedCache(CacheConfig(redis_url=url, lock=True, fail_open=False, max_connections=20)) as cache:
        await cache.connect()
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        values = await asyncio.gather(*(cache.get_or_set(KEY, factory, ttl=60) for _ in range(callers)))
        print(json.dumps({"values": sorted(set(values)), "counts": cache.computations()}), flush=True)
    await counter.aclose()


async def hold(url: str) -> None:
    async def never() -> str:
        print("computing", flush=True)
        await asyncio.Event().wait()
        return "never"

    async with YokedCache(CacheConfig(redis_url=url, lock=True, lock_ttl=1.0)) as cache:
        await cache.get_or_set(KEY, never)


async def keys() -> None:
    import enum

    class Colour(enum.Enum):
        RED = "red"

    cache = YokedCache()

    @cache.cached()
    async def report(day: str, *, limit: int = 10, colour: Colour = Colour.RED, **filters: object) -> None:
        return None

    made = [
        report.key_of("2026-12-08"),
        report.key_of(day="2026-12-08", limit=10),
        report.key_of("d", tags={"b", "a"}, when=(1.5, None, b"\x00"), deep={"z": [1, True]}),
        report.key_of("x" * 200),
    ]
    print(json.dumps(made))
    await cache.close()


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "stampede":
        asyncio.run(stampede(sys.argv[2], int(sys.argv[3])))
    elif command == "hold":
        asyncio.run(hold(sys.argv[2]))
    else:
        asyncio.run(keys())
