"""What a full metrics history costs in memory (docs/operations.md: ``start_metrics_collection``).

    python benchmarks/history_size.py [--days 7] [--interval 60]

A cache serves some operations, then its history is filled to capacity with real snapshots
(``get_comprehensive_metrics()``, what the sampler stores once per interval); the figure is
tracemalloc's traced growth, so it counts the snapshots and the deque, not allocator slack.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tracemalloc

from yokedcache import CacheConfig, YokedCache
from yokedcache.health import MetricsHistory


async def measure(days: float, interval: float) -> tuple[int, int]:
    cache = YokedCache(CacheConfig(metrics_retention_days=days))
    for i in range(1000):
        await cache.set(f"k{i % 100}", i)
        await cache.get(f"k{i % 150}")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    history = MetricsHistory(days, interval)
    while len(history.snapshots) < history.snapshots.maxlen:  # type: ignore[operator]
        history.add(cache.get_comprehensive_metrics())
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    await cache.close()
    return len(history.snapshots), grown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=7.0, help="metrics_retention_days")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between snapshots")
    args = parser.parse_args()
    count, grown = asyncio.run(measure(args.days, args.interval))
    print(f"{count:,} snapshots ({args.days:g} days, one per {args.interval:g} s): {grown / 1e6:.2f} MB traced, "
          f"{grown / count:,.0f} bytes per snapshot")  # fmt: skip


if __name__ == "__main__":
    main()
