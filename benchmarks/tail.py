"""The single-task tail: p50/p99 latency of one task against raw ``redis.asyncio.from_url()``.

    python benchmarks/tail.py [--redis-url URL] [--rounds 21] [--ops 2000]

GLIDE's mix (80 % GET, of them 80 % hits; 20 % SET), one task, every call timed alone. The
variants run in interleaved rounds in this process, on one private ``redis-server``:

- ``raw from_url() + json``: what users compare with;
- ``cache, metrics on``: an SDK ``MeterProvider`` with a Prometheus reader (both histograms:
  ``yokedcache.cache.operation.duration`` and ``db.client.operation.duration``);
- ``cache, db_client_metrics=False``: the same without the conventions' histogram;
- ``cache, no SDK``: the library case (the API's no-op instruments);
- ``cache, metrics on, flush every 64``: the batch size before issue 27, side by side.

Beside wall time it prints the client's CPU time per call (steadier than wall time on a shared
machine) and how long each flush on the loop took.

The deferred duration records are flushed on the event loop while the next command is in
flight; a flush that runs longer than the round trip delays that call. p99 shows it (issue 27:
the target is p99 <= 1.2x raw's, with the mean cost of the deferred record kept). Each
round ends by recording what it queued, inside its timing. Exit status 0 whatever the outcome.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Awaitable, Callable
from time import perf_counter, process_time
from typing import Any

from _measure import run_on_redis
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry

from yokedcache import CacheConfig, YokedCache

KEYS = [f"k{i}" for i in range(1000)]
#: 80 % GET (the first 800 keys exist: 80 % of GETs hit), 20 % SET, in a fixed shuffled order.
PLAN = [("set" if i % 5 == 4 else "get", (i * 7919) % 1000) for i in range(5000)]

Op = Callable[[str], Awaitable[object]]


def loop_of(get: Op, set_: Op, keys: list[str], settle: Callable[[], object] | None = None) -> Any:
    async def run(n: int, out: list[float]) -> tuple[float, float]:
        started, cpu = perf_counter(), process_time()
        for i in range(n):
            op, k = PLAN[i % len(PLAN)]
            t0 = perf_counter()
            await (get(keys[k]) if op == "get" else set_(keys[k]))
            out.append(perf_counter() - t0)
        if settle is not None:
            settle()
        return (perf_counter() - started) / n, (process_time() - cpu) / n

    return run


def timed_flushes(cache: YokedCache) -> list[float]:
    """Time every flush the event loop runs for ``cache`` (its callback calls ``telemetry.flush``)."""
    telemetry = cache.telemetry
    flush = telemetry.flush
    spans: list[float] = []

    def timed(limit: int | None = None) -> int:
        t0 = perf_counter()
        done = flush(limit)
        if limit is not None:  # the loop's batches, not the settle at the end of a round
            spans.append(perf_counter() - t0)
        return done

    telemetry.flush = timed  # type: ignore[method-assign]
    return spans


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(url: str, rounds: int, ops: int, compare: tuple[tuple[int, bool], ...] = ((64, True),)) -> None:
    import redis.asyncio as aioredis

    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=CollectorRegistry())])
    caches = {
        "cache, metrics on": YokedCache(CacheConfig(redis_url=url, meter_provider=provider, name="on")),
        "cache, db_client_metrics=False": YokedCache(
            CacheConfig(redis_url=url, meter_provider=provider, db_client_metrics=False, name="off")
        ),
        # no provider given and none set globally: the API's no-op instruments
        "cache, no SDK": YokedCache(CacheConfig(redis_url=url, name="nosdk")),
    }
    for at, db in compare:  # the same configuration, flushing every `at` operations (64: before issue 27)
        cache = YokedCache(CacheConfig(redis_url=url, meter_provider=provider, name=f"at{at}{db}",
                                       db_client_metrics=db))  # fmt: skip
        cache.telemetry.flush_at = at
        caches[f"cache, {'metrics on' if db else 'db metric off'}, flush every {at}"] = cache
    first = next(iter(caches.values()))
    await first.set_many({k: "v" for k in KEYS[:800]})
    plain = aioredis.from_url(url)
    full = [f"yokedcache:{k}" for k in KEYS]

    async def raw_get(k: str) -> object:
        raw = await plain.get(k)
        return json.loads(raw) if raw is not None else None

    async def raw_set(k: str) -> object:
        return await plain.set(k, json.dumps("v").encode(), px=300_000)

    loops = {"raw from_url() + json": loop_of(raw_get, raw_set, full)}
    flushes: dict[str, list[float]] = {}
    for name, cache in caches.items():
        flushes[name] = timed_flushes(cache)

        async def cache_set(k: str, cache: YokedCache = cache) -> object:
            return await cache.set(k, "v")

        loops[name] = loop_of(cache.get, cache_set, KEYS, cache.telemetry.flush)
    for loop in loops.values():  # warm-up
        await loop(500, [])
    base = "raw from_url() + json"
    rows: dict[str, dict[str, list[float]]] = {name: {"mean": [], "cpu": [], "p50": [], "p99": []} for name in loops}
    for _ in range(rounds):
        for name, loop in loops.items():
            latencies: list[float] = []
            row = rows[name]
            mean, cpu = await loop(ops, latencies)
            row["mean"].append(mean)
            row["cpu"].append(cpu)
            row["p50"].append(quantile(latencies, 0.5))
            row["p99"].append(quantile(latencies, 0.99))

    def ratio(name: str, field: str) -> float:  # per round against raw's same round, then the median
        return statistics.median(v / b for v, b in zip(rows[name][field], rows[base][field], strict=True))

    print(f"  one task, {rounds} interleaved rounds x {ops} calls (80 % GET / 20 % SET); medians over rounds")
    # CPU: this process's CPU time per call (the client's cost; steadier than wall time on a shared machine)
    header = ("variant", "mean µs", "CPU µs", "p50 µs", "p99 µs", "mean/raw", "CPU/raw", "p99/raw")
    print("    {:38} {:>8} {:>7} {:>7} {:>7} {:>8} {:>7} {:>7}".format(*header))
    for name, row in rows.items():
        mean, cpu, p50, p99 = (statistics.median(row[f]) * 1e6 for f in ("mean", "cpu", "p50", "p99"))
        print(f"    {name:38} {mean:8.1f} {cpu:7.1f} {p50:7.1f} {p99:7.1f} {ratio(name, 'mean'):8.3f} "
              f"{ratio(name, 'cpu'):7.3f} {ratio(name, 'p99'):7.3f}")  # fmt: skip
    print("  one flush on the loop (what a call whose reply arrives meanwhile waits for), all rounds:")
    for name, spans in flushes.items():
        if spans:
            print(f"    {name:34} p50 {quantile(spans, 0.5) * 1e6:7.1f} µs  p99 {quantile(spans, 0.99) * 1e6:7.1f} µs"
                  f"  ({len(spans)} flushes)")  # fmt: skip
    for name in ("cache, metrics on", "cache, db_client_metrics=False"):
        r = ratio(name, "p99")
        print(f"  {'PASS' if r <= 1.2 else 'FAIL'}  p99 at one task, {name}: {r:.3f}x raw (target <= 1.2x)")
    await plain.aclose()
    for cache in caches.values():
        await cache.close()
    provider.shutdown()


if __name__ == "__main__":
    import asyncio

    asyncio.run(run_on_redis(__doc__, measure, rounds=21, ops=2000))
