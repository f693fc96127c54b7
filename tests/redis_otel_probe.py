"""Run by tests/test_redis_otel.py in a fresh interpreter: redis-py's own OpenTelemetry beside ours.

    python tests/redis_otel_probe.py REDIS_URL pipelined|direct

redis-py records into the *global* MeterProvider, which a process may set once, so this runs
apart from the suite. It turns on every metric group of redis-py (``redis[otel]``), runs cache
operations and prints one JSON object: what each scope recorded under
``db.client.operation.duration`` and ``db.client.connection.count``, the spans, the log lines.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections import Counter
from typing import Any

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


async def main(url: str, mode: str) -> dict[str, Any]:
    import redis

    from yokedcache import CacheConfig, YokedCache

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(provider)
    try:
        from redis.observability.config import MetricGroup, OTelConfig
        from redis.observability.providers import get_observability_instance
    except ImportError:  # redis-py before 7.2 has no OpenTelemetry of its own
        native = False
    else:
        get_observability_instance().init(OTelConfig(metric_groups=list(MetricGroup)))  # every group
        native = True
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("yokedcache").addHandler(handler)
    logging.getLogger("yokedcache").setLevel(logging.INFO)

    operations = 0
    data = None
    for name in ("a", "b"):  # two caches: the log lines are said once per process
        config = CacheConfig(redis_url=url, name=name, meter_provider=provider, tracer_provider=tracer_provider,
                             auto_pipeline=mode == "pipelined")  # fmt: skip
        async with YokedCache(config) as cache:
            await cache.set("k", 1)
            for _ in range(3):
                await cache.get("k")
            await cache.get("missing")
            await cache.invalidate_pattern("nothing-*")
            operations += 6
            data = reader.get_metrics_data()  # while a cache is open: its pool is observed too
    recorded: Counter[str] = Counter()
    connections: Counter[str] = Counter()
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            scope = "yokedcache" if sm.scope.name == "yokedcache" else "redis-py"
            for m in sm.metrics:
                for p in m.data.data_points:
                    attrs = dict(p.attributes or {})
                    if m.name == "db.client.operation.duration":
                        recorded[f"{scope} {attrs.get('db.operation.name')}"] += p.count
                        if scope == "redis-py":
                            recorded["redis-py db.system"] += attrs.get("db.system") == "redis"
                    elif m.name == "db.client.connection.count":
                        connections[scope] += 1
    finished = spans.get_finished_spans()
    return {
        "redis": redis.__version__,
        "native": native,
        "operations": operations,
        "recorded": recorded,
        "connections": connections,
        "client_spans": sum(s.kind.name == "CLIENT" for s in finished),
        "span_scopes": sorted({s.instrumentation_scope.name for s in finished}),
        "log": lines,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
