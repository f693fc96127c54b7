"""The ``yokedcache`` command: ``demo``, ``health``, ``stats`` and ``bench``.

Errors a user can fix (a bad URL, a port in use, an unreachable Redis) are printed as one line
naming the problem and exit with status 2 -- no traceback. ``health`` exits 0 healthy,
1 degraded, 2 unhealthy, so it works as a container probe.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from ._cli_common import UserError, build_cache, build_config, probe_url, redis_failed, redis_url
from ._urls import DEFAULT_REDIS_URL, redact_url
from ._version import __version__

EXIT_BY_STATUS = {"healthy": 0, "degraded": 1, "unhealthy": 2}


# -- demo -----------------------------------------------------------------------------------
async def _demo(args: argparse.Namespace) -> int:
    from .demo import NEXT_STEPS, LiveView, Workload
    from .monitoring import AlertManager, CacheMetrics, PrometheusCollector

    url = redis_url(args)
    if url is not None:
        # a bad URL fails here, before a port is taken (building a cache connects nothing)
        await build_cache(build_config(redis_url=url, enable_metrics=False, enable_tracing=False)).close()
    try:
        collectors: list[Any] = [PrometheusCollector(port=args.port, addr=args.addr)]
    except OSError as exc:
        raise UserError(f"{exc.strerror or exc}; choose another with --port") from None
    if args.otlp_endpoint:
        from .monitoring import OTLPCollector

        collectors.append(OTLPCollector(endpoint=args.otlp_endpoint, protocol=args.otlp_protocol, insecure=True,
                                        export_interval=5))  # fmt: skip
    metrics = CacheMetrics(collectors)
    config = build_config(
        redis_url=url,
        metrics=metrics,
        key_prefix="yokedcache-demo:",
        stats_refresh_interval=2,
        enable_tracing=True if args.otlp_endpoint else None,
    )
    cache = build_cache(config)
    alerts = AlertManager(cache, interval=1.0, window=10.0)
    try:
        if url is not None and not await cache.health_check():
            raise await redis_failed(cache, url)
        prometheus = collectors[0]
        backend = f"Redis {redact_url(url)}" if url else "in-memory backend"
        # The page's URL comes first: it is what most people want from the demo.
        header = (f"status page {prometheus.url}/\n"
                  f"yokedcache demo -- {backend} -- {prometheus.url}/metrics  {prometheus.url}/readyz  "
                  "(Ctrl-C to stop)")  # fmt: skip
        workload = Workload(cache, rate=args.rate, concurrency=args.concurrency)
        view = LiveView(cache, workload, header)
        print(header, flush=True)
        # Rules for the page's alert panel (no notifiers: nothing leaves the machine).
        alerts.add_alert("backend_down", "circuit_breaker_open", 1, ">=", severity="critical",
                         description="the circuit breaker is open: the backend is failing")  # fmt: skip
        alerts.add_alert("slow_operations", "p99_response_time", 0.05, ">", for_seconds=10,
                         description="p99 over 50 ms for 10 s")  # fmt: skip
        alerts.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        running = asyncio.create_task(workload.run(stop))
        deadline = loop.time() + args.duration if args.duration else None
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if not args.quiet:
                view.show()
            if deadline is not None and loop.time() >= deadline:
                stop.set()
        await running
        print(view.summary(), flush=True)
        print(NEXT_STEPS, flush=True)
        return 0
    finally:
        alerts.stop(timeout=1.0)
        await cache.close()
        metrics.shutdown()


# -- health and stats ---------------------------------------------------------------------
async def _health(args: argparse.Namespace) -> int:
    config = build_config(redis_url=probe_url(args), name=args.name, health_check_timeout=args.timeout,
                     enable_metrics=False, enable_tracing=False)  # fmt: skip
    async with build_cache(config) as cache:
        report = await cache.detailed_health_check()
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        backend = report["backend"]
        where = backend.get("url") or backend["kind"]
        latency = report.get("ping_latency_seconds")
        ping = f"{latency * 1e3:.2f} ms" if latency is not None else "failed"
        print(f"{report['status']}: {where} (ping {ping}; cache {report['name']})")
        for reason in report["reasons"]:
            print(f"  - {reason}")
        pool = report.get("connection_pool")
        if pool:
            if pool["in_use"] + pool["idle"] == 0:  # a failed connect leaves no socket behind
                print(f"  pool: not connected yet, max {pool['max_connections']}")
            else:
                print(f"  pool: {pool['in_use']} in use, {pool['idle']} idle, max {pool['max_connections']}")
        print(f"  url from: {_url_source(args)}")
    return EXIT_BY_STATUS.get(report["status"], 2)


def _url_source(args: argparse.Namespace) -> str:
    """Where the probed URL came from, so a probe never leaves its reader guessing."""
    if args.redis_url:
        return "--redis-url"
    if redis_url(args):
        return "$YOKEDCACHE_REDIS_URL"
    return "the default, as backend='redis' uses (--redis-url or $YOKEDCACHE_REDIS_URL to check another)"


async def _stats(args: argparse.Namespace) -> int:
    url = probe_url(args)
    config = build_config(redis_url=url, name=args.name, key_prefix=args.key_prefix, enable_metrics=False,
                     enable_tracing=False)  # fmt: skip
    async with build_cache(config) as cache:
        if not await cache.health_check():
            raise await redis_failed(cache, url)
        await cache.refresh_usage()
        stats = await cache.get_stats()
    data = stats.to_dict()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"{stats.name}: {stats.backend} at {redact_url(url)}, prefix {args.key_prefix!r}")
        how = "counted" if not stats.estimated else f"estimated, +- {stats.total_keys_error:,} keys"
        print(f"  keys {stats.total_keys:,}   bytes {stats.total_memory_bytes:,}   ({how})")
        print(f"  url from: {_url_source(args)}")
        print("  (hit/miss counts live in each application process: scrape its /metrics)")
    return 0


# -- entry point ----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yokedcache", description="yokedcache: demo, health, stats, bench")
    parser.add_argument("--version", action="version", version=f"yokedcache {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def redis_option(p: argparse.ArgumentParser, fallback: str = "the in-memory backend") -> None:
        p.add_argument("--redis-url", help=f"Redis URL (default: $YOKEDCACHE_REDIS_URL, else {fallback})")

    def name_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", help="the cache's name, as its cache.name label (default: the backend kind)")

    demo = sub.add_parser("demo", help="run a realistic workload with a live status page, figures and /metrics")
    redis_option(demo)
    demo.add_argument("--port", type=int, default=9464, help="metrics/health port (default 9464)")
    demo.add_argument("--addr", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    demo.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: run on)")
    demo.add_argument("--rate", type=float, default=1000, help="cache ops per second (default 1000; 0 = flat out)")
    demo.add_argument("--concurrency", type=int, default=8, help="concurrent workers (default 8)")
    demo.add_argument("--otlp-endpoint", help="also export metrics and traces over OTLP, e.g. http://localhost:4317")
    demo.add_argument("--otlp-protocol", choices=["grpc", "http/protobuf"], default="grpc")
    demo.add_argument("--quiet", action="store_true", help="no live view; print the summary only")

    health = sub.add_parser("health", help="detailed health check; exit 0 healthy, 1 degraded, 2 unhealthy")
    redis_option(health, DEFAULT_REDIS_URL)
    name_option(health)
    health.add_argument("--json", action="store_true", help="print the full report as JSON")
    health.add_argument("--timeout", type=float, default=1.0, help="ping timeout in seconds (default 1)")

    stats = sub.add_parser("stats", help="keys and bytes held under a key prefix")
    redis_option(stats, DEFAULT_REDIS_URL)
    name_option(stats)
    stats.add_argument("--key-prefix", default="yokedcache:", help="key prefix to count (default yokedcache:)")
    stats.add_argument("--json", action="store_true")

    from .bench import add_arguments as add_bench_arguments

    add_bench_arguments(sub.add_parser("bench", help="benchmark the cache against a no-cache baseline"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .bench import run as _bench

    args = build_parser().parse_args(argv)
    command = {"demo": _demo, "health": _health, "stats": _stats, "bench": _bench}[args.command]
    try:
        return asyncio.run(command(args))
    except UserError as exc:
        print(f"yokedcache {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        if "pip install" not in str(exc):  # not a missing extra (see _extras.require): a bug
            raise
        print(f"yokedcache {args.command}: error: {exc}", file=sys.stderr)  # names the one extra
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `yokedcache demo | head -5`: the reader left; that ends the run, quietly
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush finds no closed pipe to complain about."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
