"""Auto-pipelining against raw redis-py (and aiocache, cashews), metrics on, in one process.

    python benchmarks/pipelining.py [--redis-url URL] [--rounds 5] [--seconds 1.0]   (or: make bench-pipelining)

Each concurrency level runs every client in interleaved rounds (the order rotates every round),
so drift of a shared machine hits them alike; a round's goodput ratio is the cache's successful
operations per second over raw ``redis.asyncio.from_url()``'s in the same round, and the verdict
uses the median ratio. The workload: N tasks, each a loop of 90 % GET / 10 % SET of JSON values
over 1,000 keys, for ``--seconds`` per client per round. Every client does the same work: raw
redis-py encodes and decodes the JSON itself. Latency is each operation as its caller saw it.

Targets (issue 19): 100 tasks >= 2.5x raw goodput; 10 tasks >= 1.5x; 1,000 tasks: no errors and
p99 below raw on a blocking pool of the same size (50); a single task: cache GET <= 1.10x raw
``from_url`` GET + ``json.loads`` (per-operation loops). Exit status 0 whatever the outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _measure import interleaved_ratios, per_op_loop
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry

from yokedcache import CacheConfig, YokedCache
from yokedcache.bench import machine
from yokedcache.percentiles import percentile

KEYS = [f"k{i}" for i in range(1000)]
PREFIX = "yokedcache:"
POOL = 50  # the cache's default max_connections, and the blocking pool raw gets at 1,000 tasks
VALUE = {"id": 1, "name": "a cached value", "tags": ["x", "y"]}

verdicts: list[tuple[str, bool, str]] = []


def verdict(name: str, ok: bool, detail: str) -> None:
    verdicts.append((name, ok, detail))
    print(f"  {'PASS' if ok else 'FAIL'}  {name}: {detail}")


@dataclass
class Run:
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)

    @property
    def goodput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


# A client: get(key) -> value or raise; set(key, value) -> None or raise; errors() -> count so far
# (for fail-open caches, which return defaults instead of raising); batches() -> sizes so far.
@dataclass
class Client:
    name: str
    get: Callable[[str], Awaitable[Any]]
    set: Callable[[str, Any], Awaitable[Any]]
    errors: Callable[[], int] = lambda: 0
    batch_sizes: list[int] | None = None
    close: Callable[[], Awaitable[Any]] | None = None


async def run_load(client: Client, tasks: int, seconds: float, seed: int) -> Run:
    run = Run()
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    errors_before = client.errors()
    batches_before = len(client.batch_sizes) if client.batch_sizes is not None else 0
    latencies = run.latencies

    async def worker(n: int) -> None:
        rng = random.Random(seed * 100_003 + n)
        get, put = client.get, client.set
        while loop.time() < stop:
            key = KEYS[rng.randrange(1000)]
            started = time.perf_counter()
            try:
                if rng.random() < 0.9:
                    await get(key)
                else:
                    await put(key, VALUE)
            except Exception:
                run.errors += 1
                await asyncio.sleep(0)  # a failing client must not spin without yielding
                continue
            latencies.append(time.perf_counter() - started)
            run.ok += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(tasks)))
    run.seconds = time.perf_counter() - started
    silent = client.errors() - errors_before  # fail-open: counted by the cache, not raised
    run.errors += silent
    run.ok -= silent
    if client.batch_sizes is not None:
        run.batch_sizes = client.batch_sizes[batches_before:]
    return run


class BatchSizes:
    """Wraps the cache's batch observer to keep every batch size (the benchmark's own record)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sizes: list[int] = []

    def pipeline_context(self) -> Any:
        return self.inner.pipeline_context()

    def pipeline_started(self, operations: int, commands: int, contexts: list[Any]) -> Any:
        self.sizes.append(operations)
        return self.inner.pipeline_started(operations, commands, contexts)

    def pipeline_finished(self, token: Any, error: BaseException | None) -> None:
        self.inner.pipeline_finished(token, error)


def raw_client(name: str, redis: Any) -> Client:
    async def get(key: str) -> Any:
        raw = await redis.get(PREFIX + key)
        return None if raw is None else json.loads(raw)

    async def put(key: str, value: Any) -> None:
        await redis.set(PREFIX + key, json.dumps(value), px=300_000)

    return Client(name, get, put, close=redis.aclose)


def cache_client(name: str, cache: YokedCache) -> Client:
    sizes = None
    pipeliner = getattr(cache.backend, "pipeliner", None)
    if pipeliner is not None:
        pipeliner.observer = observer = BatchSizes(pipeliner.observer)
        sizes = observer.sizes
    counters = cache.telemetry.counters
    return Client(name, cache.get, cache.set, lambda: counters.error_total, sizes, cache.close)


async def peer_clients(url: str) -> list[Client]:
    """aiocache and cashews on the same Redis, JSON values (skipped with a note if missing)."""
    out: list[Client] = []
    try:
        from urllib.parse import urlsplit

        from aiocache import RedisCache
        from aiocache.serializers import JsonSerializer

        where = urlsplit(url)
        aio = RedisCache(endpoint=where.hostname, port=where.port, serializer=JsonSerializer(), namespace="aio")
        out.append(Client("aiocache 0.12 (redis)", aio.get, lambda k, v: aio.set(k, v, ttl=300), close=aio.close))
    except ImportError:
        print("  (aiocache not installed: pip install 'yokedcache-otel[bench]')")
    try:
        from cashews import Cache

        cashews = Cache()
        cashews.setup(url, client_side=False)
        await cashews.init()
        out.append(Client("cashews 7 (redis)", cashews.get, lambda k, v: cashews.set(k, v, expire=300),
                          close=cashews.close))  # fmt: skip
    except ImportError:
        print("  (cashews not installed: pip install 'yokedcache-otel[bench]')")
    return out


def summary(runs: list[Run]) -> tuple[float, float, float, int, list[int]]:
    goodput = statistics.median(r.goodput for r in runs)
    latencies = sorted(x for r in runs for x in r.latencies)
    sizes = sorted(s for r in runs for s in r.batch_sizes)
    return goodput, percentile(latencies, 0.5), percentile(latencies, 0.99), sum(r.errors for r in runs), sizes


async def level(clients: list[Client], tasks: int, rounds: int, seconds: float) -> dict[str, tuple[Any, ...]]:
    runs: dict[str, list[Run]] = {c.name: [] for c in clients}
    for r in range(rounds):
        order = clients[r % len(clients) :] + clients[: r % len(clients)]
        for client in order:
            runs[client.name].append(await run_load(client, tasks, seconds, seed=r))
    base = clients[0].name
    out = {}
    print(f"\n{tasks} task(s), 90 % GET / 10 % SET, {rounds} interleaved rounds of {seconds:g} s each")
    print(f"    {'client':46} {'goodput':>12} {'ratio':>7} {'p50':>9} {'p99':>9} {'errors':>7}  batch sizes")
    for client in clients:
        goodput, p50, p99, errors, sizes = summary(runs[client.name])
        ratios = [a.goodput / b.goodput for a, b in zip(runs[client.name], runs[base], strict=True) if b.goodput]
        ratio = statistics.median(ratios) if ratios else float("nan")
        if sizes:
            batched = sum(sizes) / sum(r.ok + r.errors for r in runs[client.name])
            batch = (f"p50 {percentile(sizes, 0.5)}, p99 {percentile(sizes, 0.99)}, max {sizes[-1]}; "
                     f"{batched:.0%} of ops batched")  # fmt: skip
        else:
            batch = "-"
        print(f"    {client.name:46} {goodput:>9,.0f}/s {ratio:6.2f}x {p50 * 1e3:7.2f}ms {p99 * 1e3:7.2f}ms "
              f"{errors:>7}  {batch}")  # fmt: skip
        out[client.name] = (goodput, ratio, p50, p99, errors)
    return out


async def single_task(url: str, provider: MeterProvider, rounds: int, ops: int) -> None:
    """T1: one task, cache GET hit vs raw from_url GET + json.loads (per-operation loops)."""
    import redis.asyncio as aioredis

    print("\nsingle task (T1): cache GET hit vs raw from_url GET + json.loads, per-operation loops")
    raw = aioredis.from_url(url)
    cache = YokedCache(CacheConfig(redis_url=url, meter_provider=provider, enable_tracing=False))
    await cache.set_many({k: VALUE for k in KEYS})
    full = [PREFIX + k for k in KEYS]

    async def raw_get(key: str) -> Any:
        return json.loads(await raw.get(key))

    loops = {
        "raw from_url GET + json.loads": per_op_loop(raw_get, full),
        "yokedcache GET hit (auto_pipeline on)": per_op_loop(cache.get, KEYS, cache.telemetry.flush),
    }
    costs, ratios = await interleaved_ratios(loops, "raw from_url GET + json.loads", rounds, ops)
    for name, seconds in costs.items():
        print(f"    {name:46} {seconds * 1e6:9.2f} µs/op  {ratios[name]:6.3f}x")
    ratio = ratios["yokedcache GET hit (auto_pipeline on)"]
    verdict("single task GET", ratio <= 1.10, f"{ratio:.3f}x raw from_url + json (target <= 1.10x)")
    await cache.close()
    await raw.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", help="Redis to use; default: start a private redis-server")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="per client per round")
    parser.add_argument("--tasks", default="1,10,100,1000", help="concurrency levels")
    parser.add_argument("--peers", action="store_true", help="also aiocache and cashews (docs/performance.md table)")
    parser.add_argument("--no-single", action="store_true", help="skip the single-task T1 loops")
    args = parser.parse_args()
    print(f"machine: {machine()}")

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import redis
    import redis.asyncio as aioredis
    from tests.redis_server import given_or_private_redis

    with given_or_private_redis(args.redis_url) as url:
        print(f"redis-server {redis.Redis.from_url(url).info('server')['redis_version']}, redis-py {redis.__version__}")
        provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=CollectorRegistry())])
        if not args.no_single:
            await single_task(url, provider, 31, 500)
        for tasks in (int(t) for t in args.tasks.split(",")):
            clients = [raw_client("raw redis.asyncio.from_url()", aioredis.from_url(url))]
            if tasks >= 1000:
                blocking = aioredis.BlockingConnectionPool.from_url(url, max_connections=POOL)
                blocking_client = aioredis.Redis(connection_pool=blocking)
                clients.append(raw_client(f"raw, BlockingConnectionPool({POOL})", blocking_client))
            on = YokedCache(CacheConfig(redis_url=url, meter_provider=provider, max_connections=POOL))
            off = YokedCache(CacheConfig(redis_url=url, meter_provider=provider, max_connections=POOL,
                                         auto_pipeline=False))  # fmt: skip
            clients += [cache_client("yokedcache, auto_pipeline=True (metrics on)", on),
                        cache_client("yokedcache, auto_pipeline=False (metrics on)", off)]  # fmt: skip
            if args.peers:
                clients += await peer_clients(url)
            await on.set_many({k: VALUE for k in KEYS})
            results = await level(clients, tasks, args.rounds, args.seconds)
            cache_row = results["yokedcache, auto_pipeline=True (metrics on)"]
            if tasks == 100:
                verdict("100 tasks", cache_row[1] >= 2.5, f"{cache_row[1]:.2f}x raw from_url goodput (target >= 2.5x)")
            elif tasks == 10:
                verdict("10 tasks", cache_row[1] >= 1.5, f"{cache_row[1]:.2f}x raw from_url goodput (target >= 1.5x)")
            elif tasks >= 1000:
                blocking_row = results[f"raw, BlockingConnectionPool({POOL})"]
                verdict(f"{tasks} tasks", cache_row[4] == 0 and cache_row[3] < blocking_row[3],
                        f"{cache_row[4]} errors, p99 {cache_row[3] * 1e3:.1f} ms vs raw on a blocking pool of "
                        f"{POOL} {blocking_row[3] * 1e3:.1f} ms (target: 0 errors, p99 below)")  # fmt: skip
            for client in clients:
                if client.close is not None:
                    await client.close()
        provider.shutdown()
    passed = sum(ok for _, ok, _ in verdicts)
    print(f"\n{passed}/{len(verdicts)} targets met")
    for name, ok, detail in verdicts:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {detail}")


if __name__ == "__main__":
    asyncio.run(main())
