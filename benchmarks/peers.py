"""yokedcache beside its peers on GLIDE's mix, in one process, against one redis-server.

    python benchmarks/peers.py [--redis-url URL] [--rounds 5] [--seconds 1.0] [--tasks 1,10,100,1000]
    (or: make bench-peers, which installs the [bench] extra and Node's ioredis first)

The workload is valkey-glide's benchmark mix: 80 % GET (80 % of them on keys that exist, 20 % on
keys that never do) and 20 % SET, of a small JSON value, by N tasks for ``--seconds`` per client
per round. Every client does the same work: the raw clients encode and decode the JSON
themselves. Clients run in interleaved rounds whose order rotates, so a busy machine hits them
alike. A round's ratio is a client's goodput (successful operations per second) over raw
``redis.asyncio.from_url()``'s in the same round; the table gives the median over rounds. At
1,000 tasks raw ``from_url()`` fails most calls (its pool caps at 100 connections), so that row
compares with raw on a ``BlockingConnectionPool(50)`` instead.

CPU is the client process's CPU time (``time.process_time()``, every thread: GLIDE's Rust core
included) per successful operation. Node's ioredis (with ``enableAutoPipelining``) runs as a
child process with the same mix when ``node`` and ``tests/.node/node_modules/ioredis`` are present;
its CPU is ``process.cpuUsage()``.

Levers for the cache's own CPU (``--levers``): the same cache with redis-py's pure-Python reply
parser against the hiredis one (the ``hiredis`` extra), interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry

from yokedcache import CacheConfig, YokedCache
from yokedcache.bench import machine
from yokedcache.percentiles import percentile

ROOT = Path(__file__).resolve().parent.parent
HITS = [f"k{i}" for i in range(1000)]
MISSES = [f"miss{i}" for i in range(1000)]
PREFIX = "yokedcache:"
POOL = 50
VALUE = {"id": 1, "name": "a cached value", "tags": ["x", "y"]}
IOREDIS = ROOT / "tests" / ".node" / "node_modules" / "ioredis"
BASE = "raw redis-py from_url()"
BLOCKING = f"raw redis-py BlockingConnectionPool({POOL})"


@dataclass
class Run:
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def goodput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


@dataclass
class Client:
    name: str
    get: Callable[[str], Awaitable[Any]] | None
    set: Callable[[str, Any], Awaitable[Any]] | None
    errors: Callable[[], int] = lambda: 0
    close: Callable[[], Awaitable[Any]] | None = None
    #: A client in another process (Node): runs one round itself and returns its Run.
    external: Callable[[int, float], Awaitable[Run]] | None = None


async def run_load(client: Client, tasks: int, seconds: float, seed: int) -> Run:
    if client.external is not None:
        return await client.external(tasks, seconds)
    run = Run()
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    errors_before = client.errors()
    latencies = run.latencies

    async def worker(n: int) -> None:
        rng = random.Random(seed * 100_003 + n)
        get, put = client.get, client.set
        assert get is not None and put is not None
        while loop.time() < stop:
            started = time.perf_counter()
            draw = rng.random()
            try:
                if draw < 0.64:  # 80 % GET x 80 % hits
                    await get(HITS[rng.randrange(1000)])
                elif draw < 0.8:
                    await get(MISSES[rng.randrange(1000)])
                else:
                    await put(HITS[rng.randrange(1000)], VALUE)
            except Exception:
                run.errors += 1
                await asyncio.sleep(0)
                continue
            latencies.append(time.perf_counter() - started)
            run.ok += 1

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(tasks)))
    run.seconds = time.perf_counter() - started
    run.cpu = time.process_time() - cpu
    silent = client.errors() - errors_before  # fail-open: counted by the cache, not raised
    run.errors += silent
    run.ok -= silent
    return run


# -- the clients -------------------------------------------------------------------------------
def raw_client(name: str, redis: Any) -> Client:
    async def get(key: str) -> Any:
        raw = await redis.get(PREFIX + key)
        return None if raw is None else json.loads(raw)

    async def put(key: str, value: Any) -> None:
        await redis.set(PREFIX + key, json.dumps(value), px=300_000)

    return Client(name, get, put, close=redis.aclose)


def cache_client(name: str, cache: YokedCache) -> Client:
    counters = cache.telemetry.counters
    return Client(name, cache.get, cache.set, lambda: counters.error_total, cache.close)


async def glide_client(host: str, port: int) -> Client | None:
    try:
        from glide import GlideClient, GlideClientConfiguration, NodeAddress
    except ImportError:
        print("  (valkey-glide not installed: pip install 'yokedcache-otel[bench]')")
        return None
    from importlib.metadata import version

    client = await GlideClient.create(GlideClientConfiguration([NodeAddress(host, port)]))

    async def get(key: str) -> Any:
        raw = await client.get(PREFIX + key)
        return None if raw is None else json.loads(raw)

    async def put(key: str, value: Any) -> None:
        await client.set(PREFIX + key, json.dumps(value))

    return Client(f"valkey-glide {version('valkey-glide')}", get, put, close=client.close)


def coredis_client(host: str, port: int) -> Client | None:
    """coredis (6 is built on anyio): a client per round, inside its own ``async with``."""
    try:
        import coredis
    except ImportError:
        print("  (coredis not installed: pip install 'yokedcache-otel[bench]')")
        return None

    async def one_round(tasks: int, seconds: float) -> Run:
        async with coredis.Redis(host=host, port=port, max_connections=POOL) as client:

            async def get(key: str) -> Any:
                raw = await client.get(PREFIX + key)
                return None if raw is None else json.loads(raw)

            async def put(key: str, value: Any) -> None:
                await client.set(PREFIX + key, json.dumps(value), px=300_000)

            await client.get("warm")
            return await run_load(Client("coredis", get, put), tasks, seconds, seed=tasks)

    return Client(f"coredis {coredis.__version__}", None, None, external=one_round)


async def cache_peers(url: str, host: str, port: int) -> list[Client]:
    out: list[Client] = []
    try:
        from aiocache import RedisCache
        from aiocache.serializers import JsonSerializer

        aio = RedisCache(endpoint=host, port=port, serializer=JsonSerializer(), namespace="aio")
        out.append(Client("aiocache 0.12", aio.get, lambda k, v: aio.set(k, v, ttl=300), close=aio.close))
    except ImportError:
        print("  (aiocache not installed: pip install 'yokedcache-otel[bench]')")
    try:
        from cashews import Cache

        cashews = Cache()
        cashews.setup(url, client_side=False)
        await cashews.init()
        out.append(Client("cashews 7", cashews.get, lambda k, v: cashews.set(k, v, expire=300), close=cashews.close))
    except ImportError:
        print("  (cashews not installed: pip install 'yokedcache-otel[bench]')")
    return out


NODE_SCRIPT = r"""
// node -e SCRIPT -- MODULE TASKS SECONDS PORT: with -e, process.argv[1] is the first argument
const Redis = require(process.argv[1]);
const [tasks, seconds, port] = [+process.argv[2], +process.argv[3], +process.argv[4]];
const redis = new Redis({ port, host: "127.0.0.1", enableAutoPipelining: true, lazyConnect: false });
const VALUE = { id: 1, name: "a cached value", tags: ["x", "y"] };
let ok = 0, errors = 0;
async function worker(stop) {
  while (performance.now() < stop) {
    const draw = Math.random();
    try {
      if (draw < 0.64) {
        const r = await redis.get("yokedcache:k" + Math.floor(Math.random() * 1000));
        if (r) JSON.parse(r);
      }
      else if (draw < 0.8) { await redis.get("yokedcache:miss" + Math.floor(Math.random() * 1000)); }
      else { await redis.set("yokedcache:k" + Math.floor(Math.random() * 1000), JSON.stringify(VALUE), "PX", 300000); }
      ok++;
    } catch (e) { errors++; }
  }
}
redis.once("ready", async () => {
  await redis.get("warm");
  const cpu = process.cpuUsage(), t0 = performance.now();
  const stop = t0 + seconds * 1000;
  await Promise.all(Array.from({ length: tasks }, () => worker(stop)));
  const elapsed = (performance.now() - t0) / 1000, used = process.cpuUsage(cpu);
  console.log(JSON.stringify({ ok, errors, seconds: elapsed, cpu: (used.user + used.system) / 1e6 }));
  redis.disconnect();
});
"""


def ioredis_client(port: int) -> Client | None:
    node = shutil.which("node")
    if node is None or not IOREDIS.exists():
        print("  (ioredis not run: needs node and `make bench-peers` to npm-install ioredis into tests/.node)")
        return None
    version = json.loads((IOREDIS / "package.json").read_text())["version"]

    async def one_round(tasks: int, seconds: float) -> Run:
        proc = await asyncio.create_subprocess_exec(
            node, "-e", NODE_SCRIPT, "--", str(IOREDIS), str(tasks), str(seconds), str(port),
            stdout=subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate()
        result = json.loads(out.decode().strip().splitlines()[-1])
        return Run(ok=result["ok"], errors=result["errors"], seconds=result["seconds"], cpu=result["cpu"])

    return Client(f"Node ioredis {version} (auto-pipelining)", None, None, external=one_round)


# -- rounds and the table ------------------------------------------------------------------------
async def level(clients: list[Client], tasks: int, rounds: int, seconds: float, base: str) -> dict[str, dict]:
    runs: dict[str, list[Run]] = {c.name: [] for c in clients}
    for r in range(rounds):
        order = clients[r % len(clients) :] + clients[: r % len(clients)]
        for client in order:
            runs[client.name].append(await run_load(client, tasks, seconds, seed=r))
    print(f"\n{tasks} task(s), GLIDE's mix, {rounds} interleaved rounds of {seconds:g} s; ratios to {base}")
    print(f"    {'client':48} {'goodput':>11} {'ratio':>7} {'p50':>8} {'p99':>9} {'CPU/op':>9} {'errors':>8}")
    out = {}
    for client in clients:
        own = runs[client.name]
        ratios = [a.goodput / b.goodput for a, b in zip(own, runs[base], strict=True) if b.goodput]
        ratio = statistics.median(ratios) if ratios else float("nan")
        goodput = statistics.median(r.goodput for r in own)
        ok = sum(r.ok for r in own)
        cpu = sum(r.cpu for r in own) / ok if ok else float("nan")
        errors = sum(r.errors for r in own)
        lat = sorted(x for r in own for x in r.latencies)
        p50 = percentile(lat, 0.5) * 1e3 if lat else float("nan")  # (Node reports no latencies)
        p99 = percentile(lat, 0.99) * 1e3 if lat else float("nan")
        print(f"    {client.name:48} {goodput:>9,.0f}/s {ratio:6.2f}x {p50:6.2f}ms {p99:7.2f}ms "
              f"{cpu * 1e6:6.1f} µs {errors:>8}")  # fmt: skip
        out[client.name] = {"goodput": goodput, "ratio": ratio, "p99_ms": p99, "cpu_us": cpu * 1e6, "errors": errors}
    return out


async def levers(url: str, provider: MeterProvider, rounds: int, seconds: float, tasks: list[int]) -> None:
    """The cache with redis-py's Python reply parser against the hiredis one, interleaved; and
    with metrics off, which shows what the SDK's per-operation record costs."""
    from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser
    from redis.utils import HIREDIS_AVAILABLE

    if not HIREDIS_AVAILABLE:
        print("\n(levers: hiredis is not installed: pip install 'yokedcache-otel[hiredis]')")
        return
    clients = []
    variants = (("metrics on, python parser", _AsyncRESP2Parser, True),
                ("metrics on, hiredis parser", _AsyncHiredisParser, True),
                ("metrics off, hiredis parser", _AsyncHiredisParser, False))  # fmt: skip
    for name, parser, metrics in variants:
        cache = YokedCache(CacheConfig(redis_url=url, meter_provider=provider, max_connections=POOL,
                                       enable_metrics=metrics, enable_tracing=False))  # fmt: skip
        cache.backend.pool.connection_kwargs["parser_class"] = parser  # before any connection is made
        clients.append(cache_client(f"yokedcache, {name}", cache))
    for n in tasks:
        await level(clients, n, rounds, seconds, clients[0].name)
    for client in clients:
        assert client.close is not None
        await client.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", help="Redis to use; default: start a private redis-server")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="per client per round")
    parser.add_argument("--tasks", default="1,10,100,1000", help="concurrency levels")
    parser.add_argument("--only", help="comma-separated substrings: run only the clients whose name has one")
    parser.add_argument("--levers", action="store_true", help="only the CPU levers (parser) at these levels")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    sys.path.insert(0, str(ROOT))
    from urllib.parse import urlsplit

    import redis
    import redis.asyncio as aioredis
    from tests.redis_server import given_or_private_redis

    tasks_levels = [int(t) for t in args.tasks.split(",")]
    with given_or_private_redis(args.redis_url) as url:
        where = urlsplit(url)
        host, port = where.hostname or "127.0.0.1", where.port or 6379
        sync = redis.Redis.from_url(url)
        print(f"redis-server {sync.info('server')['redis_version']}, redis-py {redis.__version__}")
        sync.mset({PREFIX + k: json.dumps(VALUE) for k in HITS})
        sync.close()
        provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=CollectorRegistry())])
        if args.levers:
            await levers(url, provider, args.rounds, args.seconds, tasks_levels)
            return
        table: dict[int, dict[str, dict]] = {}
        for tasks in tasks_levels:
            base = BLOCKING if tasks >= 1000 else BASE
            clients = [raw_client(BASE, aioredis.from_url(url))]
            if tasks >= 1000:
                pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=POOL)
                clients.insert(0, raw_client(BLOCKING, aioredis.Redis(connection_pool=pool)))
            on = YokedCache(CacheConfig(redis_url=url, meter_provider=provider, max_connections=POOL))
            off = YokedCache(CacheConfig(redis_url=url, meter_provider=provider, max_connections=POOL,
                                         auto_pipeline=False))  # fmt: skip
            clients += [cache_client("yokedcache, metrics on", on),
                        cache_client("yokedcache, metrics on, auto_pipeline=False", off)]  # fmt: skip
            if not args.only:  # (peers hold connections: made only when they run)
                for made in (await glide_client(host, port), coredis_client(host, port), ioredis_client(port)):
                    if made is not None:
                        clients.append(made)
                clients += await cache_peers(url, host, port)
            else:
                wanted = args.only.split(",")
                clients = [c for c in clients if c.name in (BASE, base) or any(w in c.name for w in wanted)]
            table[tasks] = await level(clients, tasks, args.rounds, args.seconds, base)
            for client in clients:
                if client.close is not None:
                    await client.close()
        provider.shutdown()
    print_markdown(table)


def print_markdown(table: dict[int, dict[str, dict]]) -> None:
    """The README/docs table: goodput ratio to raw redis-py (blocking pool at 1,000 tasks)."""
    names = [n for n in next(iter(table.values())) if n not in (BASE, BLOCKING)]
    print("\n| Tasks | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for tasks, row in table.items():
        cells = []
        for name in names:
            r = row.get(name)
            if r is None:
                cells.append("-")
                continue
            p99 = "" if r["p99_ms"] != r["p99_ms"] else f", p99 {r['p99_ms']:.1f} ms"  # NaN: none measured
            cell = f"{r['ratio']:.2f}x ({r['goodput']:,.0f}/s{p99}, {r['cpu_us']:.0f} µs CPU/op)"
            if r["errors"]:
                cell += f", {r['errors']:,} errors"
            cells.append(cell)
        print(f"| {tasks:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    asyncio.run(main())
