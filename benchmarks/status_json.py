"""What ``/status.json`` costs with 10 caches (issue 18: under 5 ms), and a chart reading.

    python benchmarks/status_json.py [--caches 10] [--requests 300]

Ten in-memory caches, each with its 2,048 most recent operations inside the window (the most
the page ever sorts), errors of two types, and five minutes of chart readings (made with a
clock moved by hand, so the run takes seconds, not five minutes). It times, per request:

- ``watched``: the route as the HTTP thread runs it (snapshot, JSON, encode) while the page
  polls, so the once-a-second tick has the latency tables ready;
- ``HTTP round trip``: the same over a kept-alive loopback connection;
- ``cold``: the route when nobody asked for 10 s, so it sorts the latency tables itself;

for the three queries the page makes: none, ``charts=10`` (its per-second poll) and
``charts=300`` (once, when it opens). Then one chart reading (``tick``) of all ten caches.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import statistics
import sys
from pathlib import Path
from time import perf_counter

from yokedcache import CacheConfig, YokedCache
from yokedcache.bench import machine
from yokedcache.monitoring import CacheMetrics, PrometheusCollector
from yokedcache.server.status_page import StatusRoute
from yokedcache.window import CounterWindow


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
    return f"median {statistics.median(values) * 1e3:.2f} ms, p95 {p95 * 1e3:.2f} ms, max {values[-1] * 1e3:.2f} ms"


async def main(caches_wanted: int, requests: int) -> None:
    collector = PrometheusCollector(port=0)
    metrics = CacheMetrics([collector])
    board = collector.status
    clock = [0.0]
    board._clock = lambda: clock[0]  # the server's own readings follow this clock too
    caches = [YokedCache(CacheConfig(metrics=metrics, name=f"cache{i}")) for i in range(caches_wanted)]
    try:
        for cache in caches:
            cache.rates = CounterWindow(cache._totals, clock=lambda: clock[0])
        # five minutes of chart readings: a few operations per cache per simulated second
        for second in range(301):
            clock[0] = float(second)
            for cache in caches:
                for i in range(7):
                    await cache.set(f"k{i}", i)
                    await cache.get(f"k{i + 2}")
            board.tick()
        # then every cache's recent-operations ring full and inside the window, errors included
        for cache in caches:
            for i in range(2048):
                await (cache.get(f"k{i % 300}") if i % 3 else cache.set(f"k{i % 300}", i))
            for kind in (TypeError, ValueError):
                cache.telemetry.counters.add_error("get", f"builtins.{kind.__name__}")

        route = StatusRoute(board)
        route({":query": ""})  # someone watches: the next tick prepares the latency tables
        clock[0] += 1.0
        started = perf_counter()
        board.tick()
        prepare = perf_counter() - started
        prepared = dict(board._latency)
        board._clock = lambda: clock[0]
        host, port = "127.0.0.1", collector.server.port  # type: ignore[union-attr]
        conn = http.client.HTTPConnection(host, port, timeout=10)
        print(machine())
        print(f"{caches_wanted} caches, {requests} requests per query; recent ring full (2,048 ops per cache)")
        for query in ("", "charts=10", "charts=300"):
            server_side, cold, round_trip, size = [], [], [], 0
            for _ in range(requests):
                board._latency = {}  # as if nobody had asked for a while: latency sorted now
                started = perf_counter()
                route({":query": query})
                cold.append(perf_counter() - started)
                board._latency = prepared  # what the tick made a moment ago while the page polls
                started = perf_counter()
                _, _, body, _ = route({":query": query})
                server_side.append(perf_counter() - started)
                size = len(body)
                started = perf_counter()
                conn.request("GET", "/status.json" + (f"?{query}" if query else ""))
                reply = conn.getresponse()
                reply.read()
                round_trip.append(perf_counter() - started)
                assert reply.status == 200
            label = f"/status.json{'?' + query if query else ''}"
            print(f"{label:28} {size / 1024:6.1f} KiB  watched (page polling): server side {_ms(server_side)}")
            print(f"{'':38} HTTP round trip {_ms(round_trip)}")
            print(f"{'':38} cold (first request): {_ms(cold)}")
        conn.close()
        ticks = []
        for second in range(302, 302 + requests):
            clock[0] = float(second)
            started = perf_counter()
            board.tick()
            ticks.append(perf_counter() - started)
        print(f"one chart reading of all {caches_wanted} caches (tick, once a second): {_ms(ticks)}")
        print(f"  while watched, the tick also sorts the latency tables: that tick took {prepare * 1e3:.2f} ms")
    finally:
        for cache in caches:
            await cache.close()
        metrics.shutdown()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caches", type=int, default=10)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main(args.caches, args.requests))
