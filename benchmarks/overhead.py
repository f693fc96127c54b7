"""Per-operation cost of the cache against baselines measured in the same process.

    python benchmarks/overhead.py [--redis-url URL] [--rounds 7] [--ops 20000]

Every figure is the median over interleaved rounds, so drift of the machine hits all
variants alike. Ratios, not absolute numbers, are what to compare across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry

from yokedcache import CacheConfig, YokedCache

Bench = Callable[[int], Awaitable[float]]


def per_op(fn: Callable[[str], Awaitable[object]], keys: list[str]) -> Bench:
    async def run(n: int) -> float:
        start = time.perf_counter()
        for i in range(n):
            await fn(keys[i % len(keys)])
        return (time.perf_counter() - start) / n

    return run


async def measure(benches: dict[str, Bench], rounds: int, ops: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in benches}
    for bench in benches.values():  # warm-up
        await bench(max(ops // 10, 100))
    for _ in range(rounds):
        for name, bench in benches.items():
            samples[name].append(await bench(ops))
    return {name: statistics.median(v) for name, v in samples.items()}


def sdk_provider() -> MeterProvider:
    return MeterProvider(metric_readers=[PrometheusMetricReader(registry=CollectorRegistry())])


async def memory_section(rounds: int, ops: int) -> dict[str, float]:
    keys = [f"k{i}" for i in range(1000)]
    bare: dict[str, bytes] = {k: b'"v"' for k in keys}

    async def bare_get(k: str) -> object:
        return bare.get(k)

    provider = sdk_provider()
    histogram = provider.get_meter("bench").create_histogram("bench.duration", unit="s")
    attrs = {"operation": "get", "result": "hit"}

    async def record_only(_: str) -> object:
        histogram.record(0.0001, attrs)
        return None

    nosdk = YokedCache(CacheConfig())
    withsdk = YokedCache(CacheConfig(meter_provider=provider))
    for cache in (nosdk, withsdk):
        await cache.set_many({k: "v" for k in keys})
    results = await measure(
        {
            "bare async dict get": per_op(bare_get, keys),
            "SDK histogram.record (2 attrs)": per_op(record_only, keys),
            "memory get, no SDK": per_op(nosdk.get, keys),
            "memory get, SDK + Prometheus reader": per_op(withsdk.get, keys),
        },
        rounds,
        ops,
    )
    await nosdk.close()
    await withsdk.close()
    provider.shutdown()
    return results


async def redis_pairs(raw: object, cache: YokedCache, raw_label: str, cache_label: str) -> dict[str, Bench]:
    """GET and SET through ``raw`` (a redis.asyncio client) and through ``cache``, same keys and values."""
    keys = [f"yokedcache:k{i}" for i in range(1000)]
    short = [k.removeprefix("yokedcache:") for k in keys]
    await cache.set_many({k: "v" for k in short})

    async def raw_set(k: str) -> object:
        return await raw.set(k, b'"v"', px=300_000)  # type: ignore[attr-defined]

    async def cache_set(k: str) -> object:
        return await cache.set(k, "v")

    return {
        f"{raw_label} GET": per_op(raw.get, keys),  # type: ignore[attr-defined]
        f"{cache_label} GET hit": per_op(cache.get, short),
        f"{raw_label} SET": per_op(raw_set, keys),
        f"{cache_label} SET": per_op(cache_set, short),
    }


async def redis_section(url: str, rounds: int, ops: int) -> dict[str, float]:
    import redis.asyncio as aioredis

    raw = aioredis.Redis.from_url(url)
    provider = sdk_provider()
    cache = YokedCache(CacheConfig(redis_url=url, meter_provider=provider, enable_tracing=False))
    benches = await redis_pairs(raw, cache, "raw redis.asyncio", "cache (metrics on)")
    results = await measure(benches, rounds, max(ops // 4, 1000))
    await cache.close()
    await raw.aclose()
    provider.shutdown()
    return results


def traced_provider() -> object:
    """SDK tracing as a production app runs it: always-on sampler, batch processor."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    class Discard(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    return provider


async def tracing_section(url: str, rounds: int, ops: int) -> dict[str, float]:
    """Cache with spans + metrics against redis.asyncio instrumented by opentelemetry-instrumentation-redis."""
    import redis.asyncio as aioredis
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    tracer_provider = traced_provider()
    meter_provider = sdk_provider()
    raw = aioredis.Redis.from_url(url)
    RedisInstrumentor.instrument_client(raw, tracer_provider=tracer_provider)  # this client only
    cache = YokedCache(CacheConfig(redis_url=url, meter_provider=meter_provider, tracer_provider=tracer_provider))
    benches = await redis_pairs(raw, cache, "instrumented redis.asyncio", "cache (spans + metrics)")
    results = await measure(benches, rounds, max(ops // 4, 1000))
    await cache.close()
    RedisInstrumentor.uninstrument_client(raw)
    await raw.aclose()
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return results


async def exporters_section(rounds: int, ops: int) -> dict[str, float]:
    """Memory get with Prometheus + StatsD collectors on, and the StatsD traffic of 100,000 ops."""
    import socket

    from yokedcache.monitoring import CacheMetrics, PrometheusCollector, StatsDCollector

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    keys = [f"k{i}" for i in range(1000)]
    bare: dict[str, bytes] = {k: b'"v"' for k in keys}

    async def bare_get(k: str) -> object:
        return bare.get(k)

    statsd = StatsDCollector("127.0.0.1", udp.getsockname()[1], prefix="bench", use_tags=True)
    metrics = CacheMetrics([PrometheusCollector(port=None), statsd])
    cache = YokedCache(CacheConfig(metrics=metrics))
    await cache.set_many({k: "v" for k in keys})
    results = await measure(
        {"bare async dict get": per_op(bare_get, keys), "memory get, Prometheus + StatsD": per_op(cache.get, keys)},
        rounds,
        ops,
    )
    metrics.force_flush()
    before = statsd.datagrams_sent
    started = time.perf_counter()
    for i in range(100_000):
        await cache.get(keys[i % 1000])
    elapsed = time.perf_counter() - started
    metrics.force_flush()
    sent = statsd.datagrams_sent - before
    print(f"\nStatsD: 100,000 gets in {elapsed:.2f} s (flush interval 1 s) -> {sent} datagrams "
          f"({statsd.send_errors} send errors)")  # fmt: skip
    await cache.close()
    metrics.shutdown()
    udp.close()
    return results


def report(title: str, results: dict[str, float], baseline: str) -> None:
    print(f"\n{title}")
    base = results[baseline]
    for name, seconds in results.items():
        print(f"  {name:40} {seconds * 1e6:9.2f} µs/op   {seconds / base:6.2f}x {baseline}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", help="Redis to use; default: start a private redis-server")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ops", type=int, default=20_000)
    args = parser.parse_args()

    mem = await memory_section(args.rounds, args.ops)
    report("Memory backend (per get)", mem, "bare async dict get")
    overhead = mem["memory get, SDK + Prometheus reader"] - mem["bare async dict get"]
    print(f"  instrumentation overhead with SDK: {overhead * 1e6:.2f} µs = "
          f"{overhead / mem['SDK histogram.record (2 attrs)']:.2f}x one histogram.record")  # fmt: skip

    exp = await exporters_section(args.rounds, args.ops)
    report("Memory backend with exporters (per get)", exp, "bare async dict get")

    server = None
    url = args.redis_url
    if url is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.redis_server import RedisServer

        server = RedisServer()
        server.start()
        url = server.url()
    try:
        red = await redis_section(url, args.rounds, args.ops)
        report("Redis backend (GET)", {k: v for k, v in red.items() if "GET" in k}, "raw redis.asyncio GET")
        report("Redis backend (SET)", {k: v for k, v in red.items() if "SET" in k}, "raw redis.asyncio SET")
        tr = await tracing_section(url, args.rounds, args.ops)
        report("Tracing on (GET)", {k: v for k, v in tr.items() if "GET" in k}, "instrumented redis.asyncio GET")
        report("Tracing on (SET)", {k: v for k, v in tr.items() if "SET" in k}, "instrumented redis.asyncio SET")
    finally:
        if server is not None:
            server.close()


if __name__ == "__main__":
    asyncio.run(main())
