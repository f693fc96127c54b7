"""Issue 13's figures at 1M and 10M keys, beside the same work done with a raw client.

    python benchmarks/scale.py [--sizes 1000000,10000000] [--window 60] [--tag-members 1000000]
    make scale

Starts a private ``redis-server`` (``--enable-debug-command yes``), fills it with ``DEBUG
POPULATE`` under the cache's prefix, and for each size prints:

1. background statistics over ``--window`` seconds: the Redis CPU our statistics used (INFO
   commandstats usec of the commands we sent), the app's CPU (this process does nothing else),
   and the p99/max of a concurrent client's GETs (a separate process, 1,000 GETs/s) with and
   without the cache running; then how long ``get_stats()`` takes warm, cold and right after an
   invalidation. Beside it: the same figures read by a raw client (DBSIZE + INFO), the same
   500-key sample drawn by a raw client (pipelined RANDOMKEY + MEMORY USAGE), and, at 1M keys,
   the old refresh (SCAN + MEMORY USAGE per key) done with a raw client;
2. the longest single command of ours (SLOWLOG, every command over 1 ms is logged) during
   ``invalidate_tags`` on a tag with ``--tag-members`` members and ``invalidate_pattern`` matching
   1,111 keys, with the concurrent client's worst GET; beside them the old one-shot Lua
   (SMEMBERS + UNLINK) and KEYS, run by a raw client on the same data.

Timing on a shared 2-vCPU machine is noisy; the command counts and SLOWLOG figures are not.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis

from yokedcache import CacheConfig, YokedCache
from yokedcache.percentiles import percentile

PREFIX = "yokedcache:"
TAG = "yokedcache-tags:yokedcache:big"
OLD_TAGS_LUA = """
local deleted = 0
for _, tag in ipairs(KEYS) do
  local members = redis.call('SMEMBERS', tag)
  for i = 1, #members, 500 do
    deleted = deleted + redis.call('UNLINK', unpack(members, i, math.min(i + 499, #members)))
  end
  redis.call('UNLINK', tag)
end
return deleted
"""


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} vCPUs ({model}), Python {platform.python_version()}"


# -- the concurrent client: a separate process so its CPU is not the app's ------------------------
def _getter(url: str, stop: Any, ready: Any, out: Any, rate: float) -> None:
    client = redis.Redis.from_url(url)
    client.set("probe", b"x" * 60)
    warm_until = time.perf_counter() + 0.5
    while time.perf_counter() < warm_until:
        client.get("probe")
        time.sleep(1.0 / rate)
    ready.set()
    latencies: list[float] = []
    interval = 1.0 / rate
    next_at = time.perf_counter()
    while not stop.is_set():
        started = time.perf_counter()
        client.get("probe")
        latencies.append((started, time.perf_counter() - started))
        next_at += interval
        pause = next_at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        else:
            next_at = time.perf_counter()
    out.send(latencies)


class Getter:
    """Runs GETs at a fixed rate in another process; ``stop()`` returns (p99, max) in ms."""

    def __init__(self, url: str, rate: float = 1000.0) -> None:
        ctx = mp.get_context("spawn")
        self._stop = ctx.Event()
        ready = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_getter, args=(url, self._stop, ready, send, rate), daemon=True)
        self._proc.start()
        if not ready.wait(30):  # connected and warmed up: what follows is measured
            raise RuntimeError("the concurrent GET client did not start")

    def stop(self) -> tuple[float, float, int]:
        return summary([latency for _, latency in self.samples()])

    def samples(self) -> list[tuple[float, float]]:
        """(perf_counter at start, latency) per GET; perf_counter is system-wide on Linux."""
        self._stop.set()
        samples = self._recv.recv()
        self._proc.join(10)
        return samples  # type: ignore[no-any-return]


def summary(latencies: list[float]) -> tuple[float, float, int]:
    """(p99 ms, max ms, count)."""
    latencies = sorted(latencies)
    return percentile(latencies, 0.99) * 1000, latencies[-1] * 1000, len(latencies)


def usec(raw: redis.Redis, commands: tuple[str, ...]) -> float:
    stats = raw.info("commandstats")
    return sum(stats.get(f"cmdstat_{c}", {}).get("usec", 0) for c in commands)


def server_cpu(raw: redis.Redis) -> float:
    cpu = raw.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def slowest(raw: redis.Redis, exclude: tuple[str, ...] = ("debug", "flushall", "sadd")) -> tuple[float, int]:
    """(longest command in ms, commands over 10 ms) logged since the last reset."""
    entries = [e for e in raw.slowlog_get(-1) if e["command"].split()[0].decode().lower() not in exclude]
    longest = max((e["duration"] for e in entries), default=0) / 1000
    return longest, sum(1 for e in entries if e["duration"] > 10_000)


def longest_text(longest: float) -> str:
    return f"{longest:.2f} ms" if longest else "< 1 ms (none logged over 1 ms)"


def reset_slowlog(raw: redis.Redis) -> None:
    raw.config_set("slowlog-log-slower-than", 1000)
    raw.config_set("slowlog-max-len", 100_000)
    raw.slowlog_reset()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


# -- 1. statistics ------------------------------------------------------------------------------
STATS_COMMANDS = ("evalsha", "eval", "info", "script|load")


async def statistics_figures(url: str, raw: redis.Redis, size: int, window: float) -> None:
    print(f"\n[{size:,} keys] 1. background statistics over {window:.0f} s (stats_refresh_interval 15 s)")
    # One GET client throughout; windows of 10 s alternate without and with a cache, so the
    # machine's drifting background load weighs on both alike. Each cache lives for one window and
    # refreshes when it starts: 6 refreshes per 60 s instead of 4 (conservative).
    getter = Getter(url)
    slot = 10.0
    windows: list[tuple[bool, float, float]] = []
    redis_before, server_before = usec(raw, STATS_COMMANDS), server_cpu(raw)
    app_cpu = 0.0
    for i in range(2 * max(1, round(window / slot))):
        with_cache = i % 2 == 1
        started = time.perf_counter()
        if with_cache:
            cpu = time.process_time()
            cache = YokedCache(CacheConfig(redis_url=url, enable_metrics=False, enable_tracing=False))
            await cache.get("probe")  # the first operation starts the background refresh
            await asyncio.sleep(slot - (time.perf_counter() - started))
            await cache.close()
            app_cpu += time.process_time() - cpu
        else:
            await asyncio.sleep(slot)
        windows.append((with_cache, started, time.perf_counter()))
    redis_cpu = (usec(raw, STATS_COMMANDS) - redis_before) / 1e6
    server_total = server_cpu(raw) - server_before
    samples = getter.samples()

    def within(flag: bool) -> list[float]:
        spans = [(a, b) for w, a, b in windows if w is flag]
        return [lat for t, lat in samples if any(a <= t < b for a, b in spans)]

    p99, worst, n = summary(within(True))
    base_p99, base_max, base_n = summary(within(False))
    measured = sum(b - a for w, a, b in windows if w)
    print(f"  Redis CPU on our statistics: {redis_cpu:.4f} s in {measured:.0f} s with a cache (target < 0.1 s); "
          f"whole server {server_total:.2f} s in {windows[-1][2] - windows[0][1]:.0f} s")  # fmt: skip
    print(f"  app CPU: {app_cpu:.4f} s (target < 0.5 s), cache start and close included")
    change = (p99 / base_p99 - 1) * 100 if base_p99 else 0.0
    print(f"  concurrent GET p99: {p99:.3f} ms with the cache vs {base_p99:.3f} ms without ({change:+.1f} %, "
          f"target within 10 %); max {worst:.2f} vs {base_max:.2f} ms; {n:,} / {base_n:,} GETs")  # fmt: skip

    cache = YokedCache(CacheConfig(redis_url=url, enable_metrics=False, enable_tracing=False))
    await cache.get("probe")
    warm = []
    for _ in range(20):
        started = time.perf_counter()
        stats = await cache.get_stats()
        warm.append(time.perf_counter() - started)
    fresh = []
    for _ in range(20):
        started = time.perf_counter()
        await cache.refresh_usage()
        fresh.append(time.perf_counter() - started)
    await cache.delete("nothing")
    await cache.invalidate_pattern("no-such-key-*")  # stale now: the next get_stats samples first
    started = time.perf_counter()
    after = await cache.get_stats()
    after_invalidation = time.perf_counter() - started
    await cache.close()
    print(f"  get_stats(): warm median {ms(statistics.median(warm))}, fresh sample median "
          f"{ms(statistics.median(fresh))} (max {ms(max(fresh))}), right after an invalidation "
          f"{ms(after_invalidation)} (target < 50 ms)")  # fmt: skip
    print(f"  figures: total_keys {stats.total_keys:,} +- {stats.total_keys_error:,} ({stats.usage_method}, "
          f"{stats.usage_samples} samples), total_memory_bytes {stats.total_memory_bytes:,} +- "
          f"{stats.total_memory_bytes_error:,}; database_keys {stats.database_keys:,}, "
          f"server_used_memory_bytes {stats.server_used_memory_bytes:,}; "
          f"after invalidation {after.total_keys:,}")  # fmt: skip

    print("  raw client, same figures:")
    started = time.perf_counter()
    pipe = raw.pipeline(transaction=False)
    pipe.dbsize()
    pipe.info("keyspace")
    pipe.info("memory")
    pipe.execute()
    print(f"    DBSIZE + INFO keyspace + INFO memory (one pipeline): {ms(time.perf_counter() - started)}")
    started = time.perf_counter()
    pipe = raw.pipeline(transaction=False)
    for _ in range(500):
        pipe.randomkey()
    keys = [k for k in pipe.execute() if k is not None and k.startswith(PREFIX.encode())]
    pipe = raw.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key)
    pipe.execute()
    print(f"    500 RANDOMKEY + MEMORY USAGE pipelined by the client: {ms(time.perf_counter() - started)}")
    if size <= 1_000_000:
        started, cpu = time.perf_counter(), time.process_time()
        before = usec(raw, ("scan", "memory|usage"))
        count = total = 0
        batch: list[bytes] = []
        for key in raw.scan_iter(match=PREFIX + "*", count=1000):
            batch.append(key)
            if len(batch) == 500:
                pipe = raw.pipeline(transaction=False)
                for k in batch:
                    pipe.memory_usage(k, samples=0)
                total += sum(int(x or 0) for x in pipe.execute())
                count += len(batch)
                batch.clear()
        print(f"    the old refresh (SCAN + MEMORY USAGE per key, {count:,} keys): "
              f"{time.perf_counter() - started:.1f} s, client CPU {time.process_time() - cpu:.1f} s, "
              f"Redis {(usec(raw, ('scan', 'memory|usage')) - before) / 1e6:.2f} s "
              "-- once per 15 s per process")  # fmt: skip


async def exact_count_figures(url: str, raw: redis.Redis, size: int, budget: float) -> None:
    cache = YokedCache(CacheConfig(redis_url=url, enable_metrics=False, enable_tracing=False))
    await cache.get("probe")
    before, cpu, started = usec(raw, ("scan",)), time.process_time(), time.perf_counter()
    keys = await cache.backend.count_keys(PREFIX + "*", cpu_budget=budget)  # type: ignore[attr-defined]
    wall = time.perf_counter() - started
    app, server = time.process_time() - cpu, (usec(raw, ("scan",)) - before) / 1e6
    await cache.close()
    print(f"  exact count (opt-in, cpu_budget {budget}): {keys:,} keys in {wall:.1f} s; app CPU {app:.2f} s "
          f"({app / wall:.1%} of the wall time), Redis {server:.2f} s ({server / wall:.1%})")  # fmt: skip


# -- 2. invalidation ------------------------------------------------------------------------------
def fill_tag(raw: redis.Redis, members: int) -> None:
    for start in range(0, members, 20_000):
        raw.sadd(TAG, *(f"{PREFIX}:{i}" for i in range(start, min(members, start + 20_000))))


async def deletion(url: str, raw: redis.Redis, delete: Callable[[], Awaitable[int]]) -> str:
    """Run ``delete`` while a concurrent client GETs: what it removed, how long it took, the longest
    single command Redis ran (SLOWLOG) and the concurrent GETs' latency, in words."""
    reset_slowlog(raw)
    getter = Getter(url)
    started = time.perf_counter()
    removed = await delete()
    wall = time.perf_counter() - started
    p99, worst, _ = getter.stop()
    longest, over = slowest(raw)
    return (f"{removed:,} deleted in {wall:.2f} s; longest command {longest_text(longest)}, {over} over "
            f"10 ms; concurrent GET p99 {p99:.2f} ms, max {worst:.2f} ms")  # fmt: skip


async def invalidation_figures(url: str, raw: redis.Redis, size: int, members: int) -> None:
    print(f"\n[{size:,} keys] 2. invalidation: longest single command (SLOWLOG) and a concurrent client's GETs")
    cache = YokedCache(CacheConfig(redis_url=url, enable_metrics=False, enable_tracing=False))
    await cache.get("probe")
    await cache.refresh_usage()

    fill_tag(raw, members)
    print(f"  invalidate_tags, {members:,} members: {await deletion(url, raw, lambda: cache.invalidate_tags('big'))}")

    raw.execute_command("DEBUG", "POPULATE", size, PREFIX)  # put the deleted keys back
    fill_tag(raw, members)

    async def old_lua() -> int:
        return int(raw.eval(OLD_TAGS_LUA, 1, TAG))

    print(f"    raw client, the old one-shot Lua (SMEMBERS + UNLINK): {await deletion(url, raw, old_lua)}")
    raw.execute_command("DEBUG", "POPULATE", size, PREFIX)

    pipe = raw.pipeline(transaction=False)
    for i in range(1_111):
        pipe.set(f"{PREFIX}hit:{i}", b"1")
    pipe.execute()
    keys = raw.dbsize()
    print(f"  invalidate_pattern matching 1,111 of {keys:,} keys (the whole keyspace is scanned): "
          f"{await deletion(url, raw, lambda: cache.invalidate_pattern('hit:*'))}")  # fmt: skip
    await cache.close()

    pipe = raw.pipeline(transaction=False)
    for i in range(1_111):
        pipe.set(f"{PREFIX}hit:{i}", b"1")
    pipe.execute()
    reset_slowlog(raw)
    started = time.perf_counter()
    removed = 0
    batch: list[bytes] = []
    for key in raw.scan_iter(match=PREFIX + "hit:*", count=1000):
        batch.append(key)
    for i in range(0, len(batch), 500):
        removed += raw.unlink(*batch[i : i + 500])
    wall = time.perf_counter() - started
    longest, _ = slowest(raw)
    print(f"    raw client, scan_iter(count=1000) + UNLINK: {removed:,} deleted in {wall:.2f} s; longest "
          f"command {longest_text(longest)}")  # fmt: skip
    reset_slowlog(raw)
    started = time.perf_counter()
    raw.keys(PREFIX + "hit:*")
    wall = time.perf_counter() - started
    longest, _ = slowest(raw)
    print(f"    raw client, one KEYS call (what a single call costs): {wall:.2f} s, Redis blocked {longest:.1f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000", help="keyspace sizes, comma-separated")
    parser.add_argument("--window", type=float, default=60.0, help="seconds of background statistics measured")
    parser.add_argument("--tag-members", type=int, default=1_000_000)
    parser.add_argument("--exact-budget", type=float, default=0.25, help="cpu_budget of the exact count shown")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.redis_server import RedisServer

    for size in (int(s) for s in args.sizes.split(",")):
        server = RedisServer("--enable-debug-command", "yes")
        server.start()
        try:
            raw = redis.Redis.from_url(server.url(), socket_timeout=600)  # DEBUG POPULATE 10M takes a while
            if size == int(args.sizes.split(",")[0]):
                print(f"redis-server {raw.info('server')['redis_version']}, redis-py {redis.__version__}")
            started = time.perf_counter()
            raw.execute_command("DEBUG", "POPULATE", size, PREFIX)
            print(f"\n== {size:,} keys (DEBUG POPULATE {time.perf_counter() - started:.1f} s, "
                  f"used_memory {raw.info('memory')['used_memory_human']}) ==")  # fmt: skip
            await statistics_figures(server.url(), raw, size, args.window)
            await exact_count_figures(server.url(), raw, size, args.exact_budget)
            await invalidation_figures(server.url(), raw, size, min(args.tag_members, size))
            raw.close()
        finally:
            server.close()


if __name__ == "__main__":
    asyncio.run(main())
