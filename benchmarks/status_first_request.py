"""The first ``/status.json`` after 10 s without one, with 10 busy caches (issue 25: under 5 ms, best of 3).

    python benchmarks/status_first_request.py [--caches 10] [--rate 500] [--saturate] [--idle 12]
                                              [--rounds 3] [--profile]

Ten in-memory caches stay busy the whole time: one task per cache on the event loop runs
get/set at ``--rate`` operations a second (``--saturate``: without pause, the loop's thread then
holds the GIL all the time). The status page is opened once (a request), then nobody asks for
``--idle`` seconds (longer than the board's 10 s watch plus the 1.5 s its last tables stay
valid: with less, the request reads tables the tick made while it was watched), then one request is timed by ``curl``
in its own process, over a fresh connection: the round trip a user opening the page sees.
Each of ``--rounds`` rounds times, after its own idle spell each, that HTTP request and the
route alone (what the server computes, in the HTTP thread's place), each both ways: as now,
and by the pre-25 path (no chunks: the request splits and sorts every cache's whole ring), in
turn so load drift hits all four; the best of each and the per-round ratios are printed.
``--profile`` also runs the route once more after idle under cProfile and prints its top
entries.

No assertion: a benchmark prints figures, and this machine is shared (say so with the numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


async def _busy(cache: object, stop: asyncio.Event, rate: float | None) -> None:
    i = 0
    while not stop.is_set():
        for _ in range(25):
            await cache.set(f"k{i % 300}", i)  # type: ignore[attr-defined]
            await cache.get(f"k{(i + 7) % 400}")  # type: ignore[attr-defined]
            i += 1
        await asyncio.sleep(50 / rate if rate else 0)


def _curl(url: str) -> float:
    """One GET by curl, in its own process (no GIL of ours on the client side): its total time."""
    done = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", url],
                          capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    code, total = done.stdout.split()
    assert code == "200", done.stdout
    return float(total)


def _timed(route: object) -> float:
    started = time.perf_counter()
    route({":query": ""})  # type: ignore[operator]
    return time.perf_counter() - started


def _pre25(board: object, timed: Callable[[], float]) -> float:
    """``timed`` as before issue 25: with no chunks, a request splits and sorts every whole ring.

    (The tick, once a second, makes the chunks again: the chance it does so within the
    milliseconds between this line and the request is about 1 %.)
    """
    board._chunks = {}  # type: ignore[attr-defined]
    return timed()


async def main(caches_wanted: int, rate: float | None, idle: float, rounds: int, profile: bool) -> None:
    from yokedcache import CacheConfig, YokedCache
    from yokedcache.bench import machine
    from yokedcache.monitoring import CacheMetrics, PrometheusCollector
    from yokedcache.server.status_page import StatusRoute

    collector = PrometheusCollector(port=0)
    metrics = CacheMetrics([collector])
    caches = [YokedCache(CacheConfig(metrics=metrics, name=f"cache{i}")) for i in range(caches_wanted)]
    stop = asyncio.Event()
    workers = [asyncio.create_task(_busy(c, stop, rate)) for c in caches]
    url = f"{collector.url}/status.json"
    route = StatusRoute(collector.status)
    print(machine())
    load = f"{rate:.0f} operations/s each" if rate else "saturating the event loop"
    print(f"{caches_wanted} busy in-memory caches ({load}); idle {idle:.1f} s before each timed request")
    try:
        await asyncio.sleep(5.0)  # the rings of recent operations fill, chart readings start
        board = collector.status
        kinds = {
            "HTTP round trip (curl)": lambda: _curl(url),
            "HTTP round trip (curl), pre-25 path": lambda: _pre25(board, lambda: _curl(url)),
            "route alone": lambda: _timed(route),
            "route alone, pre-25 path": lambda: _pre25(board, lambda: _timed(route)),
        }
        samples: dict[str, list[float]] = {label: [] for label in kinds}
        for n in range(rounds):
            for label, timed in kinds.items():
                await asyncio.to_thread(_curl, url)  # the page was open ...
                await asyncio.sleep(idle)  # ... then nobody looked for longer than the watch
                samples[label].append(await asyncio.to_thread(timed))
                print(f"  round {n + 1}, {label}: {samples[label][-1] * 1e3:.2f} ms")
        for label, values in samples.items():
            print(f"{label}: best of {rounds} {min(values) * 1e3:.2f} ms")
        for label in ("HTTP round trip (curl)", "route alone"):
            ratios = [n / o for n, o in zip(samples[label], samples[f"{label}, pre-25 path"], strict=True)]
            print(f"{label}: now / pre-25, per round: {', '.join(f'{r:.2f}' for r in ratios)}")
        if profile:
            await asyncio.sleep(idle)
            profiler = cProfile.Profile()
            await asyncio.to_thread(profiler.runcall, route, {":query": ""})
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
            stats.print_stats("status.py|percentiles|health|window")
            print(out.getvalue())
    finally:
        stop.set()
        await asyncio.gather(*workers)
        for cache in caches:
            await cache.close()
        metrics.shutdown()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caches", type=int, default=10)
    parser.add_argument("--rate", type=float, default=500.0, help="operations a second per cache")
    parser.add_argument("--saturate", action="store_true", help="no pause between operations")
    parser.add_argument("--idle", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.caches, None if args.saturate else args.rate, args.idle, args.rounds, args.profile))
