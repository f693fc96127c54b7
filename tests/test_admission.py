"""One admission path: 1,000 tasks, cancellations and side work never need connection N+k+1."""

from __future__ import annotations

import asyncio
import random
import threading

import redis

from yokedcache import CacheConfig, YokedCache
from yokedcache.backends.base import RESERVED_CONNECTIONS


class ConnectionWatcher(threading.Thread):
    """Polls CLIENT LIST from its own connection; keeps the most the server ever saw of ours."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.most = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.most = max(self.most, len(self.client.client_list()) - 1)

    def close(self) -> None:
        self.stop.set()
        self.join(5)
        self.client.close()


async def test_thousand_tasks_with_cancellations_and_side_work_stay_within_the_pool(redis_url):
    limit = 10
    cache = YokedCache(CacheConfig(redis_url=redis_url, max_connections=limit, fail_open=False,
                                   stats_refresh_interval=0.05))  # fmt: skip
    await cache.set_many({f"k{i}": i for i in range(100)})
    watcher = ConnectionWatcher(redis_url)
    watcher.start()
    rng = random.Random(7)
    outcomes = {"ok": 0, "cancelled": 0}

    async def worker(n: int) -> None:
        for i in range(20):
            key = f"k{(n + i) % 100}"
            op = cache.get(key) if rng.random() < 0.9 else cache.set(key, n)
            try:
                if rng.random() < 0.05:  # a caller that gives up early
                    await asyncio.wait_for(op, 0.0005)
                else:
                    await op
                outcomes["ok"] += 1
            except asyncio.TimeoutError:
                outcomes["cancelled"] += 1

    async def side_work() -> None:
        for _ in range(30):  # health checks and statistics beside the traffic, several at once
            await asyncio.gather(*(cache.detailed_health_check() for _ in range(5)), cache.refresh_usage())

    try:
        await asyncio.gather(*(worker(n) for n in range(1000)), side_work())
    finally:
        watcher.close()
    counters = cache.telemetry.counters
    assert counters.error_total == 0, counters.errors
    assert outcomes["ok"] + outcomes["cancelled"] == 20_000 and outcomes["cancelled"] > 0
    assert counters.cancellations <= outcomes["cancelled"]  # a timeout may hit after the operation ended
    assert 1 <= watcher.most <= limit + RESERVED_CONNECTIONS, watcher.most
    await cache.close()
