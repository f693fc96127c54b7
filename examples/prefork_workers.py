"""Several worker processes (as gunicorn/uvicorn pre-fork), each exporting OTLP to one Collector.

    python examples/prefork_workers.py
Environment: OTLP_ENDPOINT (http://localhost:4317), WORKERS (2), YOKEDCACHE_REDIS_URL (unset: memory),
OTEL_EXPORTER_OTLP_PROTOCOL (grpc; or http/protobuf with port 4318).

The OTel Prometheus exporter cannot aggregate across processes (it does not support
prometheus_client's multiprocess mode), so with several workers either push OTLP to a Collector
(this example) or give each worker its own Prometheus port. Build the telemetry in each worker,
after the fork -- exporter threads do not survive a fork, and each worker needs its own
``service.instance.id`` (CacheMetrics sets a fresh one) so its series stay apart.

With no Collector listening (or one that never answers) each worker still exits about 1 s after
its work, with one WARNING ("telemetry not delivered at shutdown ...: connection refused").
"""

import asyncio
import multiprocessing
import os

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics, OTLPCollector

ENDPOINT = os.environ.get("OTLP_ENDPOINT", "http://localhost:4317")
WORKERS = int(os.environ.get("WORKERS", "2"))


async def serve(worker: int) -> None:
    metrics = CacheMetrics([OTLPCollector(endpoint=ENDPOINT, insecure=True, export_interval=60)],
                           resource_attributes={"service.name": "catalog", "worker": str(worker)})  # fmt: skip
    async with YokedCache(CacheConfig(metrics=metrics)) as cache:
        for i in range(100):
            if await cache.get(f"product:{i % 10}") is None:
                await cache.set(f"product:{i % 10}", {"id": i})
    print(f"worker {worker} (pid {os.getpid()}) done", flush=True)
    metrics.shutdown()  # flushes the final batch to the Collector (at most shutdown_timeout, 1 s)


def worker_main(worker: int) -> None:  # what a post-fork hook or a worker's app startup runs
    asyncio.run(serve(worker))


if __name__ == "__main__":
    processes = [multiprocessing.Process(target=worker_main, args=(n,)) for n in range(WORKERS)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    raise SystemExit(max(p.exitcode or 0 for p in processes))
