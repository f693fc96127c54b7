"""Instruments are made once per MeterProvider, not per cache (OTel's guidance for libraries).

With no SDK, the API's proxy provider keeps every meter and instrument ever requested: a cache
that made its own would leave ~1.1 KB on the heap for ever (measured before: 1,100 bytes per cache
made and closed). Measured by tracemalloc in a fresh interpreter, so the global provider is the
API's own and no other test's state is counted.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from yokedcache import CacheConfig, YokedCache
from yokedcache.telemetry import semconv as sc

CHURN = """
import asyncio, gc, sys, tracemalloc
from yokedcache import CacheConfig, YokedCache

async def main(sdk):
    provider = None
    if sdk:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        provider = MeterProvider(metric_readers=[InMemoryMetricReader()])

    async def cycle(n):
        for _ in range(n):
            cache = YokedCache(CacheConfig(meter_provider=provider, name="churn"))
            await cache.set("k", 1)
            await cache.get("k")
            await cache.close()

    await cycle(200)  # one-time allocations: the provider's instruments, interned attribute dicts
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    await cycle(2000)
    gc.collect()
    after = tracemalloc.take_snapshot()
    print(sum(s.size_diff for s in after.compare_to(before, "filename")) / 2000)

asyncio.run(main(sys.argv[1] == "sdk"))
"""


@pytest.mark.parametrize("sdk", ["sdk", "no-sdk"])
def test_making_and_closing_2000_caches_leaves_under_200_bytes_each(sdk):
    done = subprocess.run([sys.executable, "-c", CHURN, sdk], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    per_cache = float(done.stdout.strip().splitlines()[-1])
    assert per_cache < 200, f"{per_cache:.0f} bytes left on the heap per cache made and closed ({sdk})"


async def test_caches_share_their_providers_instruments_and_stay_exact_per_name(redis_url, telemetry):
    config = {"redis_url": redis_url, "meter_provider": telemetry.meter_provider}
    async with YokedCache(CacheConfig(name="a", **config)) as a, YokedCache(CacheConfig(name="b", **config)) as b:
        assert a.telemetry._histogram is b.telemetry._histogram  # one instrument, made once
        assert a.telemetry._db_histogram is b.telemetry._db_histogram is not None
        for _ in range(3):
            await a.get("k")
        for _ in range(5):
            await b.get("k")
        metrics = telemetry.metrics(keep_name=True)
    for name in (sc.DURATION, sc.DB_CLIENT_DURATION):
        counts = {p.attributes[sc.CACHE_NAME]: p.count for _, p in metrics[name]}
        assert counts == {"a": 3, "b": 5}, name
