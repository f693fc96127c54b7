"""What ``CacheMetrics`` asks of a collector is declared in ``exporters/collectors.py``, and enough.

The four built-in collectors are ``Collector``s; a collector written here against the contract
alone gets its reader, spans, binding, closing and aborting from ``CacheMetrics``; the documented
custom collector (async ``increment/gauge/histogram/timing``) and a bare reader source plug in
as before; and ``CacheMetrics`` and the bridge accept and refuse the same push shape.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from yokedcache.exporters.bridge import CollectorExporter
from yokedcache.exporters.collectors import PUSH_METHODS, Collector, PushCollector
from yokedcache.monitoring import CacheMetrics, NoOpCollector, OTLPCollector, PrometheusCollector, StatsDCollector


class Recording:
    """The documented custom collector, plus the ``close`` the bridge calls at shutdown."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def increment(self, metric: str, value: float = 1, tags: dict[str, Any] | None = None) -> None:
        self.calls.append(f"increment {metric}")

    async def gauge(self, metric: str, value: float, tags: dict[str, Any] | None = None) -> None:
        self.calls.append(f"gauge {metric}")

    async def histogram(self, metric: str, value: float, tags: dict[str, Any] | None = None) -> None:
        self.calls.append(f"histogram {metric}")

    async def timing(self, metric: str, value: float, tags: dict[str, Any] | None = None) -> None:
        self.calls.append(f"timing {metric}")

    def close(self) -> None:
        self.calls.append("close")


class Contracted(Collector):
    """A collector written against the contract alone, recording what CacheMetrics calls."""

    target = "contracted peer"

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.spans = InMemorySpanExporter()
        self.calls: list[str] = []
        self.bound_to: Any = None

    def metric_reader(self, **kwargs: Any) -> InMemoryMetricReader:
        self.calls.append(f"metric_reader {sorted(kwargs)}")
        return self.reader

    def span_processor(self) -> SimpleSpanProcessor:
        return SimpleSpanProcessor(self.spans)

    def bind(self, meter_provider: Any) -> None:
        self.bound_to = meter_provider

    def close(self) -> None:
        self.calls.append("close")


class ReaderOnly(Collector):
    def metric_reader(self, **_: Any) -> InMemoryMetricReader:
        return InMemoryMetricReader()


def test_the_built_in_collectors_are_collectors():
    built_in = [
        PrometheusCollector(port=None),
        StatsDCollector(),
        OTLPCollector(endpoint="http://127.0.0.1:4317"),
        NoOpCollector(),
    ]
    assert all(isinstance(c, Collector) for c in built_in)
    assert OTLPCollector(endpoint="http://127.0.0.1:4317").target == "OTLP grpc to http://127.0.0.1:4317"
    assert PrometheusCollector(port=None).target is None


def test_push_methods_name_the_protocol_methods():
    declared = [n for n, v in vars(PushCollector).items() if inspect.iscoroutinefunction(v)]
    assert tuple(declared) == PUSH_METHODS


def test_a_collector_written_against_the_contract_gets_every_member_called():
    collector = Contracted()
    metrics = CacheMetrics([collector])
    assert collector.calls == ["metric_reader ['timing_names']"]
    assert collector.bound_to is metrics.meter_provider
    metrics.tracer_provider.get_tracer("t").start_span("s").end()
    assert [s.name for s in collector.spans.get_finished_spans()] == ["s"]
    assert metrics.force_flush() is True
    metrics.shutdown()
    assert collector.calls[-1] == "close"


def test_the_defaults_mean_not_here():
    collector = ReaderOnly()
    assert (collector.span_processor(), collector.bind(None), collector.close(), collector.abort()) == (None,) * 4
    assert collector.target is None
    metrics = CacheMetrics([collector])
    assert metrics.tracer_provider is None  # no span processor, no tracer provider
    metrics.shutdown()


def test_without_an_sdk_provider_force_flush_has_nothing_to_push():
    assert CacheMetrics().force_flush() is True
    assert CacheMetrics([NoOpCollector()]).force_flush() is True


async def test_a_push_collector_is_closed_once_by_its_bridge_after_the_final_export():
    collector = Recording()
    metrics = CacheMetrics([collector], export_interval=60)
    await metrics.increment("user.login")
    metrics.shutdown()
    assert collector.calls == ["increment user.login", "close"]


async def test_statsd_is_closed_by_its_bridge_not_alongside_it():
    closes: list[str] = []

    class Counted(StatsDCollector):
        def close(self) -> None:
            closes.append("close")
            super().close()

    collector = Counted(flush_interval=60)
    metrics = CacheMetrics([collector])
    await metrics.increment("user.login")
    metrics.shutdown()
    assert closes == ["close"]
    assert collector.lines_sent == 1  # the final export went out before the socket closed


def test_cache_metrics_and_the_bridge_refuse_the_same_incomplete_shape():
    class NoTiming:
        async def increment(self, metric: str, value: float = 1, tags: Any = None) -> None: ...
        async def gauge(self, metric: str, value: float, tags: Any = None) -> None: ...
        async def histogram(self, metric: str, value: float, tags: Any = None) -> None: ...

    with pytest.raises(TypeError, match=r"^collectors: NoTiming is neither a built-in collector nor an object with "
                       r"async increment/gauge/histogram/timing methods$"):  # fmt: skip
        CacheMetrics([NoTiming()])
    with pytest.raises(TypeError, match=r"^collector NoTiming lacks async method\(s\): timing$"):
        CollectorExporter([NoTiming()])


async def test_an_object_offering_a_reader_gets_the_provider_through_it():
    class Source:  # not a Collector: only its metric_reader is used
        def __init__(self) -> None:
            self.reader = InMemoryMetricReader()

        def metric_reader(self, **_: Any) -> InMemoryMetricReader:
            return self.reader

    source = Source()
    metrics = CacheMetrics([source])
    await metrics.increment("user.login")
    names = [m.name for rm in source.reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics
             for m in sm.metrics]  # fmt: skip
    assert names == ["user.login"]
    metrics.shutdown()
