"""``yokedcache demo``: a realistic read-through workload with live figures and a /metrics endpoint.

The workload is what a product catalogue in front of a slow database does: skewed (Zipf-like)
reads so a few hot keys dominate, misses filled with TTLs of seconds to a minute, tags per
category with occasional invalidation, some deletes and batch reads. Everything it shows is
also exported, so the terminal view and a Prometheus scrape agree.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TextIO

from .cache import YokedCache
from .percentiles import percentile

OPERATIONS = ("get", "set", "get_many", "delete", "invalidate_tags")


@dataclass
class WorkloadStats:
    """Latencies as the application sees them, per operation, over a sliding window."""

    window: int = 5000
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPERATIONS, 0))
    latencies: dict[str, deque[float]] = field(default_factory=dict)

    def record(self, op: str, seconds: float) -> None:
        self.calls[op] += 1
        found = self.latencies.get(op)
        if found is None:
            found = self.latencies[op] = deque(maxlen=self.window)
        found.append(seconds)

    def percentiles(self, op: str) -> tuple[float, float, float] | None:
        values = sorted(self.latencies.get(op, ()))
        if not values:
            return None
        return percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99)


class Workload:
    """Concurrent workers issuing a catalogue-like mix at about ``rate`` operations per second."""

    def __init__(self, cache: YokedCache, *, products: int = 2000, categories: int = 20, rate: float = 1000.0,
                 concurrency: int = 8, seed: int = 7) -> None:  # fmt: skip
        self.cache = cache
        self.products = products
        self.categories = categories
        self.rate = rate
        self.concurrency = concurrency
        self.stats = WorkloadStats()
        self._rng = random.Random(seed)
        weights = [1 / (rank + 1) ** 1.1 for rank in range(products)]  # Zipf, s = 1.1
        self._cumulative = list(itertools.accumulate(weights))

    def _product(self) -> int:
        return bisect.bisect_left(self._cumulative, self._rng.random() * self._cumulative[-1])

    async def _timed(self, op: str, call: object) -> object:
        started = time.perf_counter()
        result = await call  # type: ignore[misc]
        self.stats.record(op, time.perf_counter() - started)
        return result

    async def step(self) -> int:
        """One user request: mostly a read-through get, sometimes a write, batch or invalidation.

        Returns the cache operations it made (a miss is a get and a set): the pacing counts
        operations, so ``rate`` is the operations per second the cache sees.
        """
        rng, cache = self._rng, self.cache
        roll = rng.random()
        pid = self._product()
        key = f"product:{pid}"
        if roll < 0.92:
            if await self._timed("get", cache.get(key)) is None:
                category = f"category:{pid % self.categories}"
                value = {"id": pid, "name": f"product {pid}", "price": round(1 + pid * 0.37, 2)}
                await self._timed("set", cache.set(key, value, ttl=rng.uniform(30, 300), tags=[category]))
                return 2
        elif roll < 0.985:
            keys = [f"product:{self._product()}" for _ in range(5)]
            await self._timed("get_many", cache.get_many(keys))
        elif roll < 0.9995:
            await self._timed("delete", cache.delete(key))
        else:  # a category's prices changed: about one a few seconds, 1/20 of the catalogue each
            await self._timed("invalidate_tags", cache.invalidate_tags(f"category:{rng.randrange(self.categories)}"))
        return 1

    async def run(self, stop: asyncio.Event) -> None:
        per_worker = self.rate / self.concurrency if self.rate > 0 else 0.0

        async def worker() -> None:
            next_at = time.monotonic()
            while not stop.is_set():
                operations = await self.step()
                if per_worker:
                    next_at += operations / per_worker
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    elif delay < -1:  # fell behind by a second: do not try to catch up in a burst
                        next_at = time.monotonic()
                else:
                    await asyncio.sleep(0)

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.1%}"  # None: nothing read yet


#: Printed when the demo ends (also after Ctrl-C): where to go from here.
NEXT_STEPS = """next steps:
  1. scrape it with Prometheus while it runs (it targets the demo's default port, 9464):
     prometheus --config.file=collector-config/prometheus/prometheus.yml
     (its otel-collector job stays down until a Collector runs: collector-config/README.md;
     the shipped alerts stay quiet for this workload, whose hit rate settles near 90 %)
  2. run the tests: make test
  3. point it at Redis: yokedcache demo --redis-url redis://localhost:6379/0"""


def _human_seconds(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


class LiveView:
    """Renders the figures once a second: a redrawn screen on a terminal, a line otherwise."""

    def __init__(self, cache: YokedCache, workload: Workload, header: str, out: TextIO = sys.stdout) -> None:
        self.cache = cache
        self.workload = workload
        self.header = header
        self.out = out
        self.tty = out.isatty()
        self._last_calls = dict(workload.stats.calls)
        self._last_at = time.monotonic()
        self.started = time.monotonic()

    def render(self) -> str:
        now = time.monotonic()
        elapsed = max(now - self._last_at, 1e-9)
        calls = dict(self.workload.stats.calls)
        rates = {op: (calls[op] - self._last_calls.get(op, 0)) / elapsed for op in OPERATIONS}
        self._last_calls, self._last_at = calls, now
        counters = self.cache.telemetry.counters
        usage = self.cache.usage_snapshot()
        breaker = self.cache.breaker.state if self.cache.breaker else "n/a"
        lines = [
            self.header,
            f"uptime {now - self.started:5.0f} s   hit rate {_percent(counters.hit_rate):>6}   errors "
            f"{counters.error_total}   keys {usage.keys if usage else 0:,}   size "
            f"{_human_bytes(usage.bytes if usage else 0)}   breaker {breaker}",
            f"running {self.operations_per_second():,.0f} ops/s ({self._target()})",
            "",
            f"{'operation':16} {'ops/s':>9} {'p50':>10} {'p95':>10} {'p99':>10}",
        ]
        for op in OPERATIONS:
            pct = self.workload.stats.percentiles(op)
            cells = [_human_seconds(p) for p in pct] if pct else ["-", "-", "-"]
            lines.append(f"{op:16} {rates[op]:9.1f} {cells[0]:>10} {cells[1]:>10} {cells[2]:>10}")
        return "\n".join(lines)

    def show(self) -> None:
        text = self.render()
        if self.tty:
            self.out.write("\x1b[H\x1b[2J" + text + "\n")
        else:
            total = sum(self.workload.stats.calls.values())
            self.out.write(f"[{time.monotonic() - self.started:5.0f} s] {total:,} operations, "
                           f"{self.operations_per_second():,.0f} ops/s ({self._target()}), "
                           f"hit rate {_percent(self.cache.telemetry.counters.hit_rate)}\n")  # fmt: skip
        self.out.flush()

    def operations_per_second(self, window: float = 5.0) -> float:
        """What the cache itself measured over the last ``window`` seconds (its counters)."""
        return self.cache.get_comprehensive_metrics(window).operations_per_second

    def _target(self) -> str:
        rate = self.workload.rate
        return f"target {rate:,.0f}" if rate > 0 else "no target: flat out"

    def summary(self) -> str:
        counters = self.cache.telemetry.counters
        total = sum(self.workload.stats.calls.values())
        took = time.monotonic() - self.started
        lines = [
            f"ran {took:.1f} s: {total:,} operations ({self.operations_per_second(took):,.0f} ops/s, "
            f"{self._target()}), hit rate {_percent(counters.hit_rate)}, errors {counters.error_total}",
        ]
        for op in OPERATIONS:
            pct = self.workload.stats.percentiles(op)
            if pct:
                p50, p95, p99 = (_human_seconds(p) for p in pct)
                lines.append(f"  {op:16} {self.workload.stats.calls[op]:>9,}   p50 {p50}   p95 {p95}   p99 {p99}")
        return "\n".join(lines)
