"""``yokedcache bench``: docs/monitoring.md, 'Performance Benchmarking', done right.

- warm-up before measuring; each operation timed with ``perf_counter``;
- throughput is operations / wall time (docs/monitoring.md divides by the two slowest single
  operations, which overstates throughput by two to three orders of magnitude);
- mean, p50, p95, p99 per operation; ``--concurrency`` tasks share the load;
- in the same run, the same operations through a baseline with no cache layer: a bare dict for
  the memory backend, raw ``redis.asyncio`` on the cache's own connection pool for Redis, so the
  ratio is the cost of yokedcache alone;
- ``--json FILE`` writes every figure for CI or comparison.

The benchmark scripts reuse :func:`machine`; the tight-loop helpers only they use live in
``benchmarks/_measure.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, cast

from .percentiles import percentile

if TYPE_CHECKING:
    from .backends.redis import RedisBackend

Op = Callable[[int], Awaitable[object]]


@dataclass
class Result:
    name: str
    ops: int
    seconds: float
    mean: float
    p50: float
    p95: float
    p99: float

    @property
    def throughput(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0


async def run_timed(op: Op, ops: int, concurrency: int = 1, progress: Callable[[int], None] | None = None,
                    start: int = 0) -> tuple[list[float], float]:  # fmt: skip
    """Run ``op(i)`` for ``ops`` values of i over ``concurrency`` tasks: (per-call seconds, wall seconds)."""
    samples: list[float] = []
    counter = iter(range(start, start + ops))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await op(i)
            samples.append(time.perf_counter() - started)

    wall = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - wall
    if progress is not None:
        progress(len(samples))
    return samples, wall


async def run_interleaved(ops: dict[str, Op], count: int, concurrency: int = 1, rounds: int = 10,
                          progress: Callable[[int], None] | None = None) -> dict[str, Result]:  # fmt: skip
    """``count`` calls of each op, in ``rounds`` alternating chunks so machine drift hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in ops}
    walls = dict.fromkeys(ops, 0.0)
    chunk = max(1, count // rounds)
    done = 0
    while done < count:
        n = min(chunk, count - done)
        for name, op in ops.items():
            got, wall = await run_timed(op, n, concurrency, progress, start=done)
            samples[name].extend(got)
            walls[name] += wall
        done += n
    results = {}
    for name, values in samples.items():
        values.sort()
        p50, p95, p99 = (percentile(values, q) for q in (0.50, 0.95, 0.99))
        results[name] = Result(name, len(values), walls[name], statistics.fmean(values), p50, p95, p99)
    return results


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")  # fmt: skip


def _fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.2f} ms"


class Progress:
    """A one-line progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.done = 0
        self.enabled = enabled and sys.stderr.isatty()

    def __call__(self, n: int) -> None:
        self.done += n
        if self.enabled:
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done:,}/{self.total:,}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", help="benchmark Redis (default: $YOKEDCACHE_REDIS_URL, else memory)")
    parser.add_argument("--ops", type=int, default=10_000, help="operations per kind (default 10,000)")
    parser.add_argument("--duration", type=float,
                        help="instead of --ops: about this many seconds in all, shared by the four kinds")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=1, help="concurrent tasks (default 1)")
    parser.add_argument("--warmup", type=int, default=1000, help="untimed operations first (default 1,000)")
    parser.add_argument("--no-metrics", action="store_true", help="cache without an SDK (API no-ops)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--no-progress", action="store_true")


async def run(args: argparse.Namespace) -> int:
    from ._cli_common import UserError, build_cache, build_config, redis_failed, redis_url
    from ._extras import install_hint

    if args.ops < 1 or args.concurrency < 1 or args.warmup < 0:
        raise UserError("--ops and --concurrency must be >= 1, --warmup >= 0")
    url = redis_url(args)
    provider: Any = None
    if not args.no_metrics:
        try:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from opentelemetry.sdk.metrics import MeterProvider
            from prometheus_client import CollectorRegistry
        except ImportError:
            raise UserError(f"metrics on needs: {install_hint('prometheus')} (or pass --no-metrics)") from None
        provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=CollectorRegistry())])
    config = build_config(redis_url=url, meter_provider=provider, enable_metrics=not args.no_metrics,
                     enable_tracing=False, key_prefix="yokedcache-bench:", default_ttl=300)  # fmt: skip
    cache = build_cache(config)
    try:
        if url is not None:
            from ._urls import redact_url

            if not await cache.health_check():
                raise await redis_failed(cache, url)
            # what a redis_url builds (cache.py _make_backend); a cast, not a check: nothing
            # above backends/ tests a backend's class (ARCHITECTURE.md)
            backend = cast("RedisBackend", cache.backend)
            # The baseline is redis-py's own client over the backend's connections: the same pool
            # and settings, closed with the cache.
            raw_client = backend.client
            base_get: Callable[[str], Awaitable[object]] = raw_client.get

            async def base_set(key: str, value: bytes) -> object:
                return await raw_client.set(key, value, px=300_000)

            baseline = "raw redis.asyncio"
            target = f"Redis {redact_url(url)}"
        else:
            store: dict[str, bytes] = {}

            async def base_get(key: str) -> object:  # type: ignore[misc]
                return store.get(key)

            async def base_set(key: str, value: bytes) -> object:
                store[key] = value
                return True

            baseline = "bare dict"
            target = "in-memory backend"

        keyspace = 1000
        keys = [f"k{i}" for i in range(keyspace)]
        full = [f"yokedcache-bench:{k}" for k in keys]
        payload = {"id": 1, "name": "benchmark value", "tags": ["a", "b"], "score": 0.5}
        encoded = json.dumps(payload, separators=(",", ":")).encode()
        ops = {
            f"{baseline} SET": lambda i: base_set(full[i % keyspace], encoded),
            f"{baseline} GET": lambda i: base_get(full[i % keyspace]),
            "cache SET": lambda i: cache.set(keys[i % keyspace], payload),
            "cache GET": lambda i: cache.get(keys[i % keyspace]),
        }
        count = args.ops
        if args.duration:  # calibrate: how many operations of each kind fit in the duration
            _, probe = await run_timed(ops["cache GET"], 200, args.concurrency)
            count = max(100, int(args.duration / len(ops) / max(probe / 200, 1e-9)))
        for op in ops.values():  # warm-up: connections, pool, caches
            await run_timed(op, args.warmup, args.concurrency)
        progress = Progress(count * len(ops), not args.no_progress)
        results = await run_interleaved(ops, count, args.concurrency, progress=progress)
        progress.close()
    finally:
        await cache.close()
        if provider is not None:
            provider.shutdown()

    metrics = "metrics off" if args.no_metrics else "metrics on (SDK + Prometheus reader)"
    print(f"yokedcache bench: {target}, {count:,} operations per kind, concurrency {args.concurrency}, {metrics}")
    print(f"machine: {machine()}")
    print(f"\n{'':26}{'ops/s':>10}{'mean':>11}{'p50':>11}{'p95':>11}{'p99':>11}   vs {baseline}")
    for name, r in results.items():
        base = results[f"{baseline} {name.split()[-1]}"]
        ratio = f"{r.mean / base.mean:.2f}x" if not name.startswith(baseline) else ""
        print(f"{name:26}{r.throughput:>10,.0f}{_fmt(r.mean):>11}{_fmt(r.p50):>11}{_fmt(r.p95):>11}"
              f"{_fmt(r.p99):>11}   {ratio}")  # fmt: skip
    if args.json:
        data = {
            "target": target, "baseline": baseline, "concurrency": args.concurrency, "metrics": not args.no_metrics,
            "machine": machine(),
            "results": {name: {**asdict(r), "throughput": r.throughput} for name, r in results.items()},
        }  # fmt: skip
        await asyncio.to_thread(_write_json, args.json, data)
    return 0


def _write_json(path: str, data: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
