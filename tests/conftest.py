from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from yokedcache import CacheConfig, YokedCache

from .redis_server import INSTALL_HINT, RedisServer, in_ci, missing

if in_ci():
    from hypothesis import settings

    # CI must not turn red on a case nobody has seen: there the property suites run a fixed,
    # reproducible set of examples. Locally every run explores new ones.
    settings.register_profile("ci", derandomize=True, database=None)
    settings.load_profile("ci")


def _require_redis() -> None:
    import shutil

    if shutil.which("redis-server") is None:
        missing(INSTALL_HINT)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    _require_redis()
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A clean database on the private server (restarted if a fault test left it down)."""
    import redis

    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url())
    client.flushall()
    client.close()
    return redis_server.url()


@dataclass
class Telemetry:
    meter_provider: MeterProvider
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    spans: InMemorySpanExporter

    def metrics(self, keep_name: bool = False) -> dict[str, list]:
        """``{instrument name: [(attributes, data point), ...]}`` from a fresh collection.

        ``cache.name`` is on every point of ours; it is left out unless ``keep_name`` (the tests
        of names ask for it), so the other tests read like the attribute sets they check.
        """
        out: dict[str, list] = {}
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for p in metric.data.data_points:
                        attrs = dict(p.attributes or {})
                        if not keep_name:
                            attrs.pop("cache.name", None)
                        out.setdefault(metric.name, []).append((attrs, p))
        return out

    def instruments(self) -> dict[str, object]:
        out = {}
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out[metric.name] = (metric, sm.scope)
        return out

    def value(self, name: str, **attrs: str) -> float:
        points = [p for a, p in self.metrics().get(name, []) if a == attrs]
        assert len(points) == 1, f"{name}{attrs}: {len(points)} points"
        return points[0].value


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    yield Telemetry(mp, reader, tp, exporter)
    mp.shutdown()
    tp.shutdown()


@pytest.fixture(params=["memory", "redis", "minimal"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    """The built-in backends, and "minimal": tests/test_backend_contract.py's DictBackend, which
    implements only the abstract members of the backend contract."""
    return str(request.param)


@pytest.fixture
def backend_settings(backend_kind: str, request: pytest.FixtureRequest) -> dict[str, object]:
    """``CacheConfig`` settings that select the parametrised backend. Every cache of a test shares
    one store, as caches on one Redis do (the memory backend is one store per cache)."""
    if backend_kind == "redis":
        return {"redis_url": request.getfixturevalue("redis_url")}
    if backend_kind == "minimal":
        from .test_backend_contract import DictBackend

        return {"backend": DictBackend()}
    return {}


@pytest.fixture
async def make_cache(backend_settings: dict[str, object], telemetry: Telemetry):
    """Factory for caches on the parametrised backend, all closed at teardown."""
    created: list[YokedCache] = []

    def make(**kw: object) -> YokedCache:
        kw.setdefault("meter_provider", telemetry.meter_provider)
        kw.setdefault("tracer_provider", telemetry.tracer_provider)
        if "backend" not in kw:
            kw = {**backend_settings, **kw}
        cache = YokedCache(CacheConfig(**kw))  # type: ignore[arg-type]
        created.append(cache)
        return cache

    yield make
    for cache in created:
        await cache.close()


@pytest.fixture
async def cache(make_cache) -> YokedCache:
    return make_cache()
