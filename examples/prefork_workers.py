"""Several worker processes (as gunicorn/uvicorn pre-fork) behind one Prometheus /metrics.

    python examples/prefork_workers.py
Environment: WORKERS (2), METRICS_PORT (9464), YOKEDCACHE_REDIS_URL (unset: memory).
With OTLP_ENDPOINT set (e.g. http://localhost:4317; OTEL_EXPORTER_OTLP_PROTOCOL grpc or
http/protobuf with port 4318), each worker pushes OTLP to that Collector instead.

Prometheus path (the default): the parent gives every worker one empty directory in
``PROMETHEUS_MULTIPROC_DIR`` before they start, as a process manager's environment would. Each
worker then runs the guide's own line, ``PrometheusCollector(port=METRICS_PORT)``: every worker
binds the port (they share it), writes its figures to the directory, and whichever one answers a
scrape answers for all of them. Under gunicorn, add ``from yokedcache.monitoring import
child_exit`` to ``gunicorn.conf.py`` (docs/multiprocess.md).

OTLP path: build the telemetry in each worker, after the fork (exporter threads do not survive
a fork); each worker gets its own ``service.instance.id`` so its series stay apart and add up.
With no Collector listening (or one that never answers) each worker still exits about 1 s after
its work, with one WARNING ("telemetry not delivered at shutdown ...: connection refused").
"""

import asyncio
import multiprocessing
import os
import tempfile
import urllib.request

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics, OTLPCollector, PrometheusCollector

ENDPOINT = os.environ.get("OTLP_ENDPOINT")
WORKERS = int(os.environ.get("WORKERS", "2"))
PORT = int(os.environ.get("METRICS_PORT", "9464"))


async def serve(worker: int, counted: object, scraped: object) -> None:
    if ENDPOINT:
        collector = OTLPCollector(endpoint=ENDPOINT, insecure=True, export_interval=60)
    else:
        collector = PrometheusCollector(port=PORT)  # PROMETHEUS_MULTIPROC_DIR: one /metrics for all workers
    metrics = CacheMetrics([collector], resource_attributes={"service.name": "catalog", "worker": str(worker)})
    async with YokedCache(CacheConfig(metrics=metrics)) as cache:
        for i in range(100):
            if await cache.get(f"product:{i % 10}") is None:
                await cache.set(f"product:{i % 10}", {"id": i})
    print(f"worker {worker} (pid {os.getpid()}) done", flush=True)
    if not ENDPOINT:
        metrics.force_flush()
        collector.store.write()  # the store thread does this every second; now, for the demo
        counted.set()  # type: ignore[attr-defined]
        scraped.wait(30)  # type: ignore[attr-defined]  # a real worker keeps serving
    metrics.shutdown()  # OTLP: flushes the final batch to the Collector (at most shutdown_timeout, 1 s)


def worker_main(worker: int, counted: object, scraped: object) -> None:  # what a worker's app startup runs
    asyncio.run(serve(worker, counted, scraped))


def gets_total(body: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in body.splitlines():
        if line.startswith("yokedcache_cache_gets_total{"):
            result = line.split('result="', 1)[1].split('"', 1)[0]
            totals[result] = totals.get(result, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


if __name__ == "__main__":
    if not ENDPOINT:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="yokedcache-metrics-"))
    events = [(multiprocessing.Event(), multiprocessing.Event()) for _ in range(WORKERS)]
    processes = [multiprocessing.Process(target=worker_main, args=(n, *events[n])) for n in range(WORKERS)]
    for p in processes:
        p.start()
    if not ENDPOINT:
        for counted, _ in events:
            counted.wait(30)
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/metrics", timeout=10) as response:
            totals = gets_total(response.read().decode())
        print(f"one scrape of :{PORT} for {WORKERS} workers: hits {totals.get('hit', 0):.0f}, "
              f"misses {totals.get('miss', 0):.0f}")  # fmt: skip
        for _, scraped in events:
            scraped.set()
    for p in processes:
        p.join()
    raise SystemExit(max(p.exitcode or 0 for p in processes))
