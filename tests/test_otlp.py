"""OTLP over gRPC and HTTP/protobuf, received and decoded by in-process receivers."""

from __future__ import annotations

import pytest

from yokedcache import CacheConfig, YokedCache
from yokedcache.monitoring import CacheMetrics, OTLPCollector

from .receivers import OTLPGrpcReceiver, OTLPHttpReceiver, metric_names, span_names


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_metrics_and_traces_arrive_over_otlp(protocol, redis_url):
    receiver = OTLPGrpcReceiver() if protocol == "grpc" else OTLPHttpReceiver()
    try:
        collector = OTLPCollector(endpoint=receiver.endpoint, protocol=protocol, insecure=True, export_interval=60)
        metrics = CacheMetrics([collector])
        cache = YokedCache(CacheConfig(metrics=metrics, redis_url=redis_url))
        await cache.set("k", 1)
        await cache.get("k")
        await cache.get("missing")
        metrics.force_flush()
        names = metric_names(receiver.metrics)
        assert {"yokedcache.cache.gets", "yokedcache.cache.operation.duration", "yokedcache.cache.hit_rate"} <= names
        gets = [
            (dict((kv.key, kv.value.string_value) for kv in p.attributes), p.as_int or p.as_double, m.sum)
            for r in receiver.metrics for rm in r.resource_metrics for sm in rm.scope_metrics
            for m in sm.metrics if m.name == "yokedcache.cache.gets" for p in m.sum.data_points
        ]  # fmt: skip
        assert {a["result"]: v for a, v, _ in gets} == {"hit": 1, "miss": 1}
        assert all(s.aggregation_temporality == 2 for _, _, s in gets)  # cumulative
        assert span_names(receiver.traces) == ["SET", "GET", "GET"]  # named after db.query.summary
        await cache.close()
        metrics.shutdown()
    finally:
        receiver.close()


def test_unknown_protocol_is_rejected():
    with pytest.raises(ValueError, match="protocol"):
        OTLPCollector(protocol="udp")


def test_prefork_workers_report_apart_and_add_up():
    from .test_examples import run_example

    receiver = OTLPGrpcReceiver()
    try:
        out = run_example("prefork_workers.py", OTLP_ENDPOINT=receiver.endpoint, WORKERS="3")
    finally:
        receiver.close()
    assert out.count("done") == 3
    instances: set[str] = set()
    latest: dict[tuple[str, str], int] = {}  # cumulative: the last value per process and result
    for request in receiver.metrics:
        for rm in request.resource_metrics:
            attrs = {kv.key: kv.value.string_value for kv in rm.resource.attributes}
            instances.add(attrs["service.instance.id"])
            assert attrs["service.name"] == "catalog"
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == "yokedcache.cache.gets":
                        for p in m.sum.data_points:
                            result = {kv.key: kv.value.string_value for kv in p.attributes}["result"]
                            latest[(attrs["service.instance.id"], result)] = p.as_int
    assert len(instances) == 3  # one service.instance.id per process
    hits = sum(v for (_, result), v in latest.items() if result == "hit")
    misses = sum(v for (_, result), v in latest.items() if result == "miss")
    assert (hits, misses) == (3 * 90, 3 * 10)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_abort_stops_the_metric_and_the_span_exporter_on_both_protocols(protocol):
    # The HTTP span exporter's shutdown() takes no timeout_millis: abort() used to raise
    # TypeError there, after the metric exporter, and leave the span exporter running.
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    meter_provider.get_meter("t").create_counter("abort.test").add(1)
    metrics_data = reader.get_metrics_data()
    finished = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(finished))
    tracer_provider.get_tracer("t").start_span("abort-test").end()
    spans = finished.get_finished_spans()

    receiver = OTLPGrpcReceiver() if protocol == "grpc" else OTLPHttpReceiver()
    try:
        collector = OTLPCollector(endpoint=receiver.endpoint, protocol=protocol, insecure=True, traces=True)
        # live, both exporters deliver to the real receiver ...
        assert collector.metric_exporter.export(metrics_data) is MetricExportResult.SUCCESS
        assert collector.span_exporter.export(spans) is SpanExportResult.SUCCESS
        delivered = (len(receiver.metrics), len(receiver.traces))
        assert delivered == (1, 1)
        collector.abort()
        # ... aborted, both refuse at once and nothing more arrives
        assert collector.metric_exporter.export(metrics_data) is MetricExportResult.FAILURE
        assert collector.span_exporter.export(spans) is SpanExportResult.FAILURE
        assert (len(receiver.metrics), len(receiver.traces)) == delivered
    finally:
        receiver.close()
        meter_provider.shutdown()
        tracer_provider.shutdown()
