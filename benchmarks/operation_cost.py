"""What each cache operation costs on the memory backend with no SDK: the facade's own work.

Best of 9 runs of 20,000 calls each, after a warm-up; compare two trees by running this file with
``PYTHONPATH=<other tree>/src`` (cache.py's ``_run`` cites these figures):

    python benchmarks/operation_cost.py
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from yokedcache import CacheConfig, YokedCache


async def best_of(fn: Callable[[], Awaitable[object]], calls: int, runs: int = 9) -> float:
    """Fewest seconds per call over ``runs`` loops of ``calls`` calls."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(calls):
            await fn()
        best = min(best, (time.perf_counter() - started) / calls)
    return best


async def main(calls: int = 20_000) -> None:
    cache = YokedCache(CacheConfig(enable_metrics=False, enable_tracing=False))
    await cache.set_many({"a": 1, "b": 2, "c": 3})
    for _ in range(calls):  # warm-up
        await cache.get("a")
        await cache.delete("missing")
    operations: dict[str, Callable[[], Awaitable[object]]] = {
        "get": lambda: cache.get("a"),
        "delete": lambda: cache.delete("missing"),
        "exists": lambda: cache.exists("a"),
        "get_many (3 keys)": lambda: cache.get_many(["a", "b", "c"]),
        "set_many (2 items)": lambda: cache.set_many({"x": 1, "y": 2}),
    }
    for name, fn in operations.items():
        print(f"  {name:20} {await best_of(fn, calls) * 1e6:6.2f} µs")
    await cache.close()


if __name__ == "__main__":
    asyncio.run(main())
