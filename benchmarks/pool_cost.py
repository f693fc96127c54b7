"""What a connection costs to borrow: redis-py's plain ``ConnectionPool`` against its
``BlockingConnectionPool`` (``backends/redis.py`` chooses the plain one and says why).

Each round times ``get_connection`` + ``release`` of one warm connection, interleaved between the
two pools in the same process, and prints the medians in microseconds:

    python benchmarks/pool_cost.py            # a private redis-server
    python benchmarks/pool_cost.py --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import asyncio
import statistics
from time import perf_counter
from typing import Any

from _measure import run_on_redis


async def borrow_and_return(pool: Any, ops: int) -> float:
    """Seconds per get+release pair over ``ops`` pairs."""
    started = perf_counter()
    for _ in range(ops):
        connection = await pool.get_connection()
        await pool.release(connection)
    return (perf_counter() - started) / ops


async def measure(url: str, rounds: int, ops: int) -> None:
    import redis.asyncio as aioredis

    pools = {
        "ConnectionPool": aioredis.ConnectionPool.from_url(url, max_connections=52),
        "BlockingConnectionPool": aioredis.BlockingConnectionPool.from_url(url, max_connections=52),
    }
    for pool in pools.values():  # one warm connection each: the cost measured is the bookkeeping
        await aioredis.Redis(connection_pool=pool).ping()
    costs: dict[str, list[float]] = {name: [] for name in pools}
    for _ in range(rounds):
        for name, pool in pools.items():
            costs[name].append(await borrow_and_return(pool, ops))
    plain = statistics.median(costs["ConnectionPool"])
    for name, samples in costs.items():
        median = statistics.median(samples)
        print(f"  {name:24} {median * 1e6:7.2f} µs per get+release  {median / plain:5.2f}x")
    for pool in pools.values():
        await pool.disconnect()


async def main() -> None:
    await run_on_redis(__doc__, measure, rounds=15, ops=5000)


if __name__ == "__main__":
    asyncio.run(main())
