"""Load and soak: mixed operations flat out against Redis while Prometheus scrapes and StatsD flushes.

    python benchmarks/soak.py [--duration 600] [--redis-url URL]     (make soak: 10 minutes)

Reports throughput, p50/p99, RSS at start and end, and whether every exporter's totals equal
the operations issued. ``tests/test_soak.py`` runs the same for 30 seconds in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from yokedcache import CacheConfig, YokedCache
from yokedcache.demo import Workload
from yokedcache.monitoring import CacheMetrics, PrometheusCollector, StatsDCollector


def rss_bytes() -> int:
    """Current resident set size (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class UDPCounter:
    """A StatsD listener that sums counter lines by name and tags."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.counters: dict[str, float] = {}
        self.datagrams = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            self.datagrams += 1
            for line in data.decode().split("\n"):
                name, _, rest = line.partition(":")
                fields = rest.split("|")
                if len(fields) > 1 and fields[1] == "c":
                    tags = next((f[1:] for f in fields[2:] if f.startswith("#")), "")
                    key = f"{name}|{tags}" if tags else name
                    self.counters[key] = self.counters.get(key, 0) + float(fields[0])

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def scrape_counts(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    counts = {}
    pattern = r'^soak_cache_operation_duration_seconds_count\{cache_name="redis",operation="(\w+)"\} (\S+)$'
    for m in re.finditer(pattern, text, re.M):
        counts[m.group(1)] = float(m.group(2))
    return counts


async def run_soak(duration: float, redis_url: str, scrape_every: float = 5.0, report_every: float = 60.0,
                   out: Any = sys.stdout) -> dict[str, Any]:  # fmt: skip
    udp = UDPCounter()
    prometheus = PrometheusCollector(port=0, namespace="soak")
    statsd = StatsDCollector("127.0.0.1", udp.port, prefix="soak", use_tags=True, flush_interval=1.0)
    metrics = CacheMetrics([prometheus, statsd])
    cache = YokedCache(CacheConfig(redis_url=redis_url, metrics=metrics, key_prefix="soak:", fail_open=False))
    workload = Workload(cache, rate=0, concurrency=16, products=20_000, categories=200)
    stop = asyncio.Event()
    scrapes = 0
    errors: list[str] = []

    async def scraper() -> None:
        nonlocal scrapes
        while not stop.is_set():
            await asyncio.sleep(scrape_every)
            await asyncio.to_thread(scrape_counts, prometheus.url or "")
            scrapes += 1

    rss_start = rss_bytes()
    started = time.monotonic()
    running = asyncio.create_task(workload.run(stop))
    scraping = asyncio.create_task(scraper())
    rss_samples = [rss_start]
    try:
        next_report = started + report_every
        while time.monotonic() - started < duration:
            await asyncio.sleep(min(1.0, max(0.0, duration - (time.monotonic() - started))))
            rss_samples.append(rss_bytes())
            if time.monotonic() >= next_report:
                next_report += report_every
                issued = sum(workload.stats.calls.values())
                print(f"  [{time.monotonic() - started:5.0f} s] {issued:,} operations, RSS "
                      f"{rss_samples[-1] / 2**20:.1f} MiB", file=out, flush=True)  # fmt: skip
    finally:
        stop.set()
        for task in (running, scraping):
            try:
                await task
            except Exception as exc:
                errors.append(repr(exc))
    elapsed = time.monotonic() - started
    calls = dict(workload.stats.calls)
    issued_gets = calls["get"] + 5 * calls["get_many"]
    metrics.force_flush()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the last datagrams are in flight
        statsd_gets = sum(udp.counters.get(f"soak.gets|cache.name:redis,result:{r}", 0) for r in ("hit", "miss"))
        if statsd_gets >= issued_gets:
            break
        await asyncio.sleep(0.05)
    exported = await asyncio.to_thread(scrape_counts, prometheus.url or "")
    latencies = sorted(v for values in workload.stats.latencies.values() for v in values)
    result = {
        "seconds": elapsed,
        "operations": sum(calls.values()),
        "throughput": sum(calls.values()) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1e3 if latencies else 0.0,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3 if latencies else 0.0,
        "rss_start_mib": rss_start / 2**20,
        "rss_end_mib": rss_samples[-1] / 2**20,
        "rss_max_mib": max(rss_samples) / 2**20,
        "issued": calls,
        "prometheus_exported": exported,
        "prometheus_exact": all(exported.get(op, 0) == n for op, n in calls.items()),
        "statsd_gets": statsd_gets,
        "issued_gets": issued_gets,
        "statsd_exact": statsd_gets == issued_gets,
        "statsd_datagrams": udp.datagrams,
        "cache_errors": cache.telemetry.counters.error_total,
        "exceptions": errors,
        "scrapes": scrapes,
    }
    await cache.close()
    metrics.shutdown()
    udp.close()
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--redis-url", help="default: a private redis-server")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.redis_server import given_or_private_redis

    with given_or_private_redis(args.redis_url) as url:
        print(f"soak: {args.duration:.0f} s of mixed operations, 16 workers, Prometheus scrape every 5 s, "
              "StatsD flush every 1 s")  # fmt: skip
        result = await run_soak(args.duration, url)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
