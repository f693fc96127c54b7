"""What ``CacheMetrics`` asks of a collector is declared in ``exporters/collectors.py``, and enough.

The four built-in collectors are ``Collector``s; a collector written here against the contract
alone gets its reader, spans, binding, closing and aborting from ``CacheMetrics``; the documented
custom collector (async ``increment/gauge/histogram/timing``) and a bare reader source plug in
as before; and ``CacheMetrics`` and the bridge accept and refuse the same push shape.
"""

from __future__ import annotations

import inspect
import logging
import sys
import threading
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from yokedcache.exporters.bridge import CollectorExporter
from yokedcache.exporters.collectors import PUSH_METHODS, Collector, PushCollector
from yokedcache.monitoring import CacheMetrics, NoOpCollector, OTLPCollector, PrometheusCollector, StatsDCollector

from .receivers import StatsDListener


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


class Received(InMemoryMetricReader):
    """An in-memory reader that records the metric names of every collection pushed into it,
    so a flush shows it went through this reader (``force_flush`` returns True regardless)."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[str] = []

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        self.received += [m.name for rm in metrics_data.resource_metrics for sm in rm.scope_metrics
                          for m in sm.metrics]  # fmt: skip
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)


class Contracted(Collector):
    """A collector written against the contract alone, recording what CacheMetrics calls.

    With ``stuck=True`` its ``close`` is a peer that does not answer: it returns only once the
    test sets ``release`` (or after 10 s), so ``CacheMetrics.shutdown`` passes its deadline.
    """

    target = "contracted peer"

    def __init__(self, *, stuck: bool = False) -> None:
        self.reader = Received()
        self.spans = InMemorySpanExporter()
        self.calls: list[str] = []
        self.bound_to: Any = None
        self.stuck = stuck
        self.release = threading.Event()
        self.closed = threading.Event()

    def metric_reader(self, **kwargs: Any) -> Received:
        self.calls.append(f"metric_reader {sorted(kwargs)}")
        return self.reader

    def span_processor(self) -> SimpleSpanProcessor:
        return SimpleSpanProcessor(self.spans)

    def bind(self, meter_provider: Any) -> None:
        self.bound_to = meter_provider

    def close(self) -> None:
        if self.stuck:
            self.release.wait(10)
        self.calls.append("close")
        self.closed.set()

    def abort(self) -> None:
        self.calls.append("abort")


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


async def test_a_collector_written_against_the_contract_gets_every_member_called(caplog):
    collector = Contracted()
    metrics = CacheMetrics([collector])
    assert collector.calls == ["metric_reader ['timing_names']"]
    assert collector.bound_to is metrics.meter_provider
    metrics.tracer_provider.get_tracer("t").start_span("s").end()
    assert [s.name for s in collector.spans.get_finished_spans()] == ["s"]
    await metrics.increment("user.login")
    assert collector.reader.received == []
    assert metrics.force_flush() is True
    assert collector.reader.received == ["user.login"]  # the flush went through this collector's reader
    metrics.shutdown()
    assert collector.calls[-1] == "close"
    assert collector.calls == ["metric_reader ['timing_names']", "close"]  # in time: nothing aborted

    # past the deadline: the collector is aborted and named, by its target, in the one warning
    stuck = Contracted(stuck=True)
    metrics = CacheMetrics([stuck], shutdown_timeout=0.05)
    with caplog.at_level(logging.WARNING, "yokedcache.monitoring.shutdown"):
        metrics.shutdown()
    stuck.release.set()
    assert stuck.closed.wait(5), "the stuck close never returned"
    assert stuck.calls == ["metric_reader ['timing_names']", "abort", "close"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "yokedcache.monitoring.shutdown"]
    assert warnings == [
        "telemetry not delivered at shutdown (contracted peer): no answer within 0.05 s; gave up after 0.05 s, "
        "so what was recorded since the last export is lost (CacheMetrics(shutdown_timeout=...) waits longer)"
    ]


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


def _called_from(code: Any) -> bool:
    """Whether a frame of the current call stack runs ``code``."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


async def test_statsd_is_closed_by_its_bridge_not_alongside_it():
    closes: list[str] = []
    #: (event, thread name, datagrams sent so far, called from the bridge's shutdown)
    events: list[tuple[str, str, int, bool]] = []
    bridge_shutdown = CollectorExporter.shutdown.__code__

    class Counted(StatsDCollector):
        def flush(self) -> None:
            with self._lock:
                pending = len(self._lines)
            super().flush()
            if pending:
                events.append(("flush", threading.current_thread().name, self.datagrams_sent,
                               _called_from(bridge_shutdown)))  # fmt: skip

        def close(self) -> None:
            closes.append("close")
            events.append(("close", threading.current_thread().name, self.datagrams_sent,
                           _called_from(bridge_shutdown)))  # fmt: skip
            super().close()

    listener = StatsDListener()
    try:
        collector = Counted("127.0.0.1", listener.port, flush_interval=60)
        metrics = CacheMetrics([collector])
        await metrics.increment("user.login")
        metrics.shutdown()
        listener.wait_for(lambda: listener.counter_total("yokedcache.user.login") == 1)
    finally:
        listener.close()
    assert closes == ["close"]
    assert collector.lines_sent == 1  # the final export went out before the socket closed
    assert (collector.datagrams_sent, collector.send_errors) == (1, 0)
    assert listener.lines() == ["yokedcache.user.login:1|c"]
    # the final export is sent on the bridge's loop; then the bridge's shutdown, and nothing
    # else, closes the collector (CacheMetrics.shutdown runs its closes on helper threads)
    assert events == [
        ("flush", "yokedcache-bridge", 1, False),
        ("close", "yokedcache-telemetry-shutdown", 1, True),
    ]


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
