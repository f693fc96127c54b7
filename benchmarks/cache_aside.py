"""Cache-aside beside its peers: what ``@cached`` adds to a hit, and how many factory calls a
stampede of 1,000 concurrent callers on a cold key makes (docs/cache-aside.md).

1. Hit cost on memory, no SDK: a hit through ``@cache.cached`` against a hand-written
   ``get`` (the key built with an f-string), and the same pair in cashews (``@cache(ttl=)``,
   ``mem://``) and aiocache (``@cached``, ``SimpleMemoryCache``). Interleaved rounds in one
   process; each ratio compares runs of the same round (the machine may be loaded).
2. 1,000 concurrent callers on a cold key, a 20 ms factory: factory calls per library and mode.
   One process here; the cross-process count (4 x 250 with ``lock=True``) is
   tests/test_cache_aside.py::test_four_processes_of_250_callers_on_a_cold_key_compute_exactly_once.

Run: ``python benchmarks/cache_aside.py`` (needs the ``bench`` extra for the peers; starts a
private redis-server for the Redis rows unless ``--redis-url`` is given).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from _measure import interleaved_ratios, per_op_loop, run_on_redis

from yokedcache import CacheConfig, YokedCache

KEYS = [str(i) for i in range(100)]
CALLERS = 1000
FACTORY_SECONDS = 0.02
_MISSING = object()


async def _hit_loops() -> tuple[dict[str, Callable[[int], Awaitable[float]]], list[Callable[[], Awaitable[Any]]]]:
    """``{name: loop}`` of warm hits, and what to close afterwards."""
    loops: dict[str, Callable[[int], Awaitable[float]]] = {}
    closers: list[Callable[[], Awaitable[Any]]] = []
    cache = YokedCache(CacheConfig(enable_metrics=False))
    closers.append(cache.close)

    async def load(user_id: str) -> dict[str, str]:
        return {"id": user_id}

    async def by_hand(user_id: str) -> Any:
        key = f"user:{user_id}"
        value = await cache.get(key, _MISSING)
        if value is _MISSING:
            value = await load(user_id)
            await cache.set(key, value)
        return value

    decorated = cache.cached(ttl=300)(load)
    for k in KEYS:
        await by_hand(k)
        await decorated(k)
    loops["yokedcache get by hand"] = per_op_loop(by_hand, KEYS)
    loops["yokedcache @cached"] = per_op_loop(decorated, KEYS)
    await _peer_hit_loops(loops, closers, load)
    return loops, closers


async def _peer_hit_loops(
    loops: dict[str, Callable[[int], Awaitable[float]]],
    closers: list[Callable[[], Awaitable[Any]]],
    load: Callable[[str], Awaitable[Any]],
) -> None:
    try:
        from cashews import Cache
    except ImportError:
        print("  (cashews not installed: pip install 'yokedcache-otel[bench]')")
    else:
        cashews = Cache()
        cashews.setup("mem://")
        closers.append(cashews.close)

        async def cashews_by_hand(user_id: str) -> Any:
            key = f"user:{user_id}"
            value = await cashews.get(key, default=_MISSING)
            if value is _MISSING:
                value = await load(user_id)
                await cashews.set(key, value, expire=300)
            return value

        cashews_decorated = cashews(ttl=300)(load)
        for k in KEYS:
            await cashews_by_hand(k)
            await cashews_decorated(k)
        loops["cashews get by hand"] = per_op_loop(cashews_by_hand, KEYS)
        loops["cashews @cache"] = per_op_loop(cashews_decorated, KEYS)
    try:
        from aiocache import SimpleMemoryCache, cached
    except ImportError:
        print("  (aiocache not installed: pip install 'yokedcache-otel[bench]')")
    else:
        aio = SimpleMemoryCache()
        closers.append(aio.close)

        async def aiocache_by_hand(user_id: str) -> Any:
            key = f"user:{user_id}"
            value = await aio.get(key, default=_MISSING)
            if value is _MISSING:
                value = await load(user_id)
                await aio.set(key, value, ttl=300)
            return value

        aio_decorated = cached(ttl=300)(load)
        for k in KEYS:
            await aiocache_by_hand(k)
            await aio_decorated(k)
        loops["aiocache get by hand"] = per_op_loop(aiocache_by_hand, KEYS)
        loops["aiocache @cached"] = per_op_loop(aio_decorated, KEYS)


async def hit_cost(rounds: int, ops: int) -> None:
    loops, closers = await _hit_loops()
    costs, ratios = await interleaved_ratios(loops, "yokedcache get by hand", rounds, ops)
    print(f"\n1. A hit on memory, no SDK ({rounds} interleaved rounds of {ops} calls; medians)")
    print(f"   {'':28} {'per call':>10} {'vs ours by hand':>16}")
    for name, cost in costs.items():
        print(f"   {name:28} {cost * 1e6:8.2f} µs {ratios[name]:15.2f}x")
    added = (ratios["yokedcache @cached"] - 1) * costs["yokedcache get by hand"]
    print(f"   @cached adds {added * 1e6:.2f} µs to a hand-written get (target: at most 1 µs)")
    for closer in closers:
        await closer()


class Counter:
    """A factory that counts its calls and takes FACTORY_SECONDS, like a query."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, *_: Any) -> str:
        self.calls += 1
        await asyncio.sleep(FACTORY_SECONDS)
        return "value"


async def _stampede(call: Callable[[], Awaitable[Any]]) -> None:
    results = await asyncio.gather(*(call() for _ in range(CALLERS)))
    assert all(r == "value" for r in results), set(map(repr, results))


async def stampede(url: str) -> None:
    print(
        f"\n2. {CALLERS:,} concurrent callers on a cold key, a {FACTORY_SECONDS * 1000:.0f} ms factory: factory calls"
    )
    rows: list[tuple[str, int]] = []
    for name, settings in (
        ("yokedcache get_or_set, memory", {}),
        ("yokedcache get_or_set, Redis", {"redis_url": url}),
        ("yokedcache get_or_set, Redis, lock=True", {"redis_url": url, "lock": True}),
    ):
        counter = Counter()
        async with YokedCache(CacheConfig(key_prefix=f"bench-aside-{len(rows)}:", **settings)) as cache:
            await cache.clear()
            await _stampede(lambda cache=cache, counter=counter: cache.get_or_set("cold", counter, ttl=60))
        rows.append((name, counter.calls))
    counter = Counter()
    async with YokedCache(CacheConfig(key_prefix="bench-aside-deco:")) as cache:
        decorated = cache.cached(ttl=60)(counter.__call__)
        await _stampede(lambda: decorated("cold"))
    rows.append(("yokedcache @cached, memory", counter.calls))
    rows += await _peer_stampedes(url)
    for name, calls in rows:
        print(f"   {name:44} {calls:6,}")


async def _peer_stampedes(url: str) -> list[tuple[str, int]]:
    rows: list[tuple[str, int]] = []
    try:
        from cashews import Cache
    except ImportError:
        return rows
    for name, target, lock in (
        ("cashews @cache, mem://", "mem://", False),
        ("cashews @cache(lock=True), mem://", "mem://", True),
        ("cashews @cache, Redis", url, False),
        ("cashews @cache(lock=True), Redis", url, True),
    ):
        cashews = Cache()
        cashews.setup(target, client_side=False) if target != "mem://" else cashews.setup(target)
        await cashews.clear()
        counter = Counter()
        decorated = cashews(ttl=60, lock=lock)(counter.__call__)
        await _stampede(lambda decorated=decorated: decorated("cold"))
        rows.append((name, counter.calls))
        await cashews.close()
    try:
        from aiocache import cached
    except ImportError:
        return rows
    counter = Counter()
    decorated = cached(ttl=60)(counter.__call__)
    await _stampede(lambda: decorated("cold"))
    rows.append(("aiocache @cached, memory", counter.calls))
    return rows


async def measure(url: str, rounds: int, ops: int) -> None:
    await hit_cost(rounds, ops)
    await stampede(url)


if __name__ == "__main__":
    asyncio.run(run_on_redis(__doc__, measure, rounds=15, ops=20_000))
