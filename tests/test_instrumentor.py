"""YokedCacheInstrumentor: auto-instrumentation in a real subprocess, hooks, keys, suppression,
nesting under the redis instrumentation, exemplars, and uninstrument back to the no-op path."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from opentelemetry.context import attach, detach, set_value
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from yokedcache import CacheConfig, YokedCache
from yokedcache.instrumentor import YokedCacheInstrumentor
from yokedcache.telemetry import semconv as sc
from yokedcache.telemetry import switch

from .receivers import OTLPGrpcReceiver, OTLPHttpReceiver

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "auto_instrumented_app.py"
OTEL_INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"


@pytest.fixture
def instrumentor():
    inst = YokedCacheInstrumentor()
    yield inst
    if inst.is_instrumented_by_opentelemetry:
        inst.uninstrument()
    switch.reset()


# -- auto-instrumentation, end to end -----------------------------------------------------
def _attrs(kvs) -> dict:
    out = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


def _spans(receiver) -> list:
    return [s for r in receiver.traces for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]


def _metrics(receiver) -> dict:
    found: dict = {}
    for r in receiver.metrics:
        for rm in r.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    found.setdefault(m.name, []).append(m)
    return found


def run_instrumented(receiver, protocol: str, redis_url: str, **env: str) -> str:
    full_env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_SERVICE_NAME": "catalog",
        "OTEL_METRIC_EXPORT_INTERVAL": "60000",  # the exit flush delivers one final batch
        "YOKEDCACHE_REDIS_URL": redis_url,
        "REQUESTS": "40",
        **env,
    }
    result = subprocess.run(
        [str(OTEL_INSTRUMENT), sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=90, env=full_env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_entry_point_is_registered_for_opentelemetry_instrument():
    (ep,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "yokedcache"]
    assert ep.load() is YokedCacheInstrumentor
    assert ep.dist is not None and ep.dist.name == "yokedcache-otel"  # the distribution; the import name is yokedcache


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_opentelemetry_instrument_finds_the_cache(protocol, redis_url):
    receiver = OTLPGrpcReceiver() if protocol == "grpc" else OTLPHttpReceiver()
    try:
        out = run_instrumented(receiver, protocol, redis_url)
    finally:
        receiver.close()
    hits, misses = (int(part.split("=")[1]) for part in out.split()[:2])
    assert hits + misses == 40 and misses > 0

    spans = _spans(receiver)
    ours = [s for s in spans if "yokedcache.cache.operation" in _attrs(s.attributes)]
    gets = [s for s in ours if _attrs(s.attributes)["yokedcache.cache.operation"] == "get"]
    assert len(gets) == 40 and all(s.name == "GET" for s in gets)  # named after db.query.summary
    attrs = _attrs(gets[0].attributes)
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    assert attrs[sc.DB_SYSTEM_NAME] == "redis" and attrs[sc.DB_OPERATION_NAME] == "GET"
    assert attrs[sc.DB_QUERY_SUMMARY] == "GET"
    assert attrs[sc.SERVER_ADDRESS] == "127.0.0.1" and attrs[sc.SERVER_PORT] == port
    assert attrs[sc.DB_NAMESPACE] == "0"
    assert sorted(_attrs(s.attributes)[sc.CACHE_HIT] for s in gets).count(True) == hits
    assert all(sc.CACHE_KEY not in _attrs(s.attributes) for s in ours)  # keys only when asked for
    assert gets[0].kind == 3  # SPAN_KIND_CLIENT
    # opentelemetry-instrumentation-redis is installed too, yet every Redis call is ONE client
    # span: ours carries the database conventions, the contrib one beneath it is suppressed
    assert [s.name for s in spans if s not in ours and s.kind == 3] == []
    assert {"set", "invalidate_tags"} <= {_attrs(s.attributes)["yokedcache.cache.operation"] for s in ours}

    metrics = _metrics(receiver)
    (duration,) = metrics["yokedcache.cache.operation.duration"][-1:]
    counts = {_attrs(p.attributes)["operation"]: p.count for p in duration.histogram.data_points}
    assert counts["get"] == 40 and counts["set"] == misses
    gets_metric = metrics["yokedcache.cache.gets"][-1]
    by_result = {_attrs(p.attributes)["result"]: p.as_int for p in gets_metric.sum.data_points}
    assert by_result == {"hit": hits, "miss": misses}


def test_disabled_instrumentation_sends_nothing_of_ours(redis_url):
    receiver = OTLPGrpcReceiver()
    try:
        run_instrumented(receiver, "grpc", redis_url, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="yokedcache")
    finally:
        receiver.close()
    spans = _spans(receiver)
    assert spans, "the redis instrumentation still reports: the pipeline itself worked"
    assert not [s for s in spans if s.name.startswith("yokedcache")]
    assert not [name for name in _metrics(receiver) if name.startswith("yokedcache.")]


def test_disabled_by_wildcard_environment(monkeypatch, telemetry):
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "requests, *")
    assert switch.is_disabled_by_environment()
    cache = YokedCache(CacheConfig(enable_tracing=True))  # follows the (disabled) global providers
    assert cache.telemetry.tracing_enabled is False and cache.telemetry._histogram is None


# -- in process ---------------------------------------------------------------------------
async def test_instrument_points_existing_caches_at_the_given_providers(instrumentor, telemetry):
    cache = YokedCache(CacheConfig(enable_tracing=True))  # created before instrument()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    await cache.set("k", 1)
    await cache.get("k")
    assert [s.name for s in telemetry.spans.get_finished_spans()] == ["yokedcache set", "yokedcache get"]
    assert telemetry.value(sc.HITS) == 1

    instrumentor.uninstrument()
    await cache.get("k")
    await cache.get("other")
    assert len(telemetry.spans.get_finished_spans()) == 2  # no new spans
    (point,) = [p for a, p in telemetry.metrics()[sc.DURATION] if a == {"operation": "get"}]
    assert point.count == 1  # no new measurements: the no-op path
    assert telemetry.value(sc.HITS) == 1 and sc.MISSES not in telemetry.metrics()  # the later miss went nowhere
    assert (await cache.get_stats()).hits == 2  # the cache's own statistics still count
    await cache.close()


async def test_explicit_providers_do_not_follow_the_switch(instrumentor, telemetry):
    cache = YokedCache(CacheConfig(meter_provider=telemetry.meter_provider, tracer_provider=telemetry.tracer_provider,
                                   enable_tracing=True))  # fmt: skip
    instrumentor.instrument()
    instrumentor.uninstrument()
    await cache.get("k")
    assert [s.name for s in telemetry.spans.get_finished_spans()] == ["yokedcache get"]
    await cache.close()


async def test_hooks_see_the_span_and_failures_are_contained(instrumentor, telemetry, caplog):
    seen = []

    def request_hook(span, operation, key):
        span.set_attribute("app.tenant", "acme")
        seen.append(("request", operation, key))

    def response_hook(span, operation, result):
        seen.append(("response", operation, result))
        raise RuntimeError("hook bug")

    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, request_hook=request_hook,
                            response_hook=response_hook)  # fmt: skip
    async with YokedCache(CacheConfig(enable_tracing=True)) as cache:
        with caplog.at_level(logging.ERROR, logger="yokedcache.telemetry"):
            assert await cache.set("k", {"v": 1}) is True
            assert await cache.get("k") == {"v": 1}
    assert seen == [
        ("request", "set", "yokedcache:k"),
        ("response", "set", True),
        ("request", "get", "yokedcache:k"),
        ("response", "get", {"v": 1}),
    ]
    assert all(s.attributes["app.tenant"] == "acme" for s in telemetry.spans.get_finished_spans())
    assert "response_hook raised" in caplog.text


def test_hooks_must_be_callable(instrumentor):
    with pytest.raises(TypeError, match="request_hook"):
        instrumentor.instrument(request_hook="not a function")


@pytest.mark.parametrize("capture", [False, True])
async def test_keys_are_captured_only_when_enabled(instrumentor, telemetry, capture):
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, capture_keys=capture)
    async with YokedCache(CacheConfig(enable_tracing=True)) as cache:
        await cache.get("user:42")
    (span,) = telemetry.spans.get_finished_spans()
    assert (span.attributes.get(sc.CACHE_KEY) == "yokedcache:user:42") is capture
    assert capture or "user:42" not in repr(dict(span.attributes))


async def test_suppress_instrumentation_is_honoured(instrumentor, telemetry):
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

    instrumentor.instrument(tracer_provider=telemetry.tracer_provider)
    async with YokedCache(CacheConfig(enable_tracing=True)) as cache:
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            await cache.get("k")
        finally:
            detach(token)
        assert telemetry.spans.get_finished_spans() == ()
        await cache.get("k")
    assert len(telemetry.spans.get_finished_spans()) == 1


async def test_with_the_contrib_redis_instrumentation_each_call_is_one_client_span(telemetry, redis_url):
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.trace import SpanKind

    RedisInstrumentor().instrument(tracer_provider=telemetry.tracer_provider)
    try:
        config = CacheConfig(redis_url=redis_url, tracer_provider=telemetry.tracer_provider, auto_pipeline=False) \
            if "auto_pipeline" in CacheConfig.__dataclass_fields__ \
            else CacheConfig(redis_url=redis_url, tracer_provider=telemetry.tracer_provider)  # fmt: skip
        async with YokedCache(config) as cache:
            await cache.set("k", 1)
            await cache.set("t", 1, tags=["x"])
            await cache.get("k")
    finally:
        RedisInstrumentor().uninstrument()
    spans = telemetry.spans.get_finished_spans()
    # ours are the database CLIENT spans; the contrib's would have been children of the same kind
    assert [(s.name, s.kind) for s in spans] == [
        ("SET", SpanKind.CLIENT), ("MULTI", SpanKind.CLIENT), ("GET", SpanKind.CLIENT),
    ]  # fmt: skip
    assert all(s.parent is None for s in spans)


async def test_duration_histogram_carries_the_trace_as_an_exemplar(telemetry, redis_url):
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])  # the default exemplar filter: trace_based
    async with YokedCache(CacheConfig(redis_url=redis_url, meter_provider=provider,
                                      tracer_provider=telemetry.tracer_provider)) as cache:  # fmt: skip
        await cache.get("k")
    (span,) = telemetry.spans.get_finished_spans()
    points = [p for m in reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics
              if m.name == sc.DURATION for p in m.data.data_points]  # fmt: skip
    exemplars = [e for p in points for e in p.exemplars]
    assert exemplars and exemplars[0].trace_id == span.context.trace_id
    assert exemplars[0].span_id == span.context.span_id
    provider.shutdown()


async def test_errors_mark_the_span_and_a_miss_does_not(telemetry):
    from .redis_server import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    async with YokedCache(CacheConfig(redis_url=url, tracer_provider=telemetry.tracer_provider,
                                      retry_attempts=0)) as cache:  # fmt: skip
        await cache.get("k")
    async with YokedCache(CacheConfig(tracer_provider=telemetry.tracer_provider, enable_tracing=True)) as cache:
        await cache.get("missing")
    failed, missed = telemetry.spans.get_finished_spans()
    assert failed.status.status_code.name == "ERROR"
    assert failed.attributes[sc.ERROR_TYPE] == "redis.exceptions.ConnectionError"
    assert missed.status.status_code.name == "UNSET" and missed.attributes[sc.CACHE_HIT] is False
    assert sc.ERROR_TYPE not in missed.attributes


async def test_uninstrument_restores_the_native_telemetry_from_before_instrument(instrumentor, telemetry):
    from yokedcache.telemetry import switch

    cache = YokedCache(CacheConfig(enable_tracing=True))
    before = (switch.current(), cache.telemetry.tracing_enabled, cache.telemetry._histogram is not None)
    assert before[0].enabled  # native: on the global providers, with no instrumentor at all
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    assert switch.current().tracer_provider is telemetry.tracer_provider
    instrumentor.uninstrument()
    after = (switch.current(), cache.telemetry.tracing_enabled, cache.telemetry._histogram is not None)
    assert after == before  # not silence: what it was
    await cache.close()
