"""One OTel ``MetricExporter`` that feeds push-style collectors.

A collector is any object with async ``increment/gauge/histogram/timing(metric, value, tags)``
(the documented custom-collector shape, ``PushCollector`` in ``exporters/collectors.py``); the
StatsD collector is one of them. ``bridge_reader`` builds the reader for one. The bridge runs on
a ``PeriodicExportingMetricReader`` with delta temporality, so per flush it sees exact counter
deltas and a histogram per attribute set; from that it makes:

- counters -> ``increment(name, delta, tags)`` (zero deltas skipped): totals stay exact;
- gauges -> ``gauge(name, value, tags)``;
- histograms -> one ``histogram(name, value, tags)`` per non-empty bucket, ``value`` being a
  representative inside that bucket (the exact mean when only one bucket is filled). Collectors
  whose ``histogram`` accepts ``count=`` get the bucket's sample count too. A collector with a
  ``distribution(name, [(value, count), ...], tags, unit=...)`` method gets each attribute
  set's buckets in one call instead, with the instrument's unit (StatsD uses it to spread
  samples over lines in proportion and to send seconds as millisecond timers).

Collector calls run on the bridge's own event loop in its own thread: a slow or failing
collector can never block or break the application, and one that raises is counted and
logged (once per flush), never stopping the others.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import threading
from collections.abc import Container, Iterable, Iterator, Sequence
from typing import Any

from .._extras import require

require("opentelemetry.sdk.metrics", "sdk")

from opentelemetry.sdk.metrics import (  # noqa: E402
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (  # noqa: E402
    AggregationTemporality,
    Gauge,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData  # noqa: E402

from ..telemetry.semconv import documented_name  # noqa: E402
from .collectors import PushCollector, missing_push_methods  # noqa: E402

log = logging.getLogger("yokedcache.exporters")

#: One collector call: ``(method, metric name, value, tags, extra)`` (see ``CollectorExporter._calls``).
Call = tuple[str, str, Any, dict[str, str], Any]

#: Per instrument kind, the temporality the bridge asks for: deltas where a collector wants
#: "since the last flush" (counts, histograms), cumulative where the value is a level
#: (up-down counters and gauges, whose delta would be meaningless to a StatsD gauge).
PREFERRED_TEMPORALITY = {
    Counter: AggregationTemporality.DELTA,
    UpDownCounter: AggregationTemporality.CUMULATIVE,
    Histogram: AggregationTemporality.DELTA,
    ObservableCounter: AggregationTemporality.DELTA,
    ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
    ObservableGauge: AggregationTemporality.CUMULATIVE,
}


def bucket_representatives(
    counts: Sequence[int], bounds: Sequence[float], total: float, minimum: float, maximum: float
) -> list[tuple[float, int]]:
    """``[(value, count)]`` for each non-empty bucket, each value inside its bucket."""
    filled = [(i, c) for i, c in enumerate(counts) if c]
    if len(filled) == 1:
        return [(total / filled[0][1], filled[0][1])]
    out = []
    for i, count in filled:
        lower = bounds[i - 1] if i > 0 else minimum
        upper = bounds[i] if i < len(bounds) else maximum
        lower, upper = max(lower, minimum), min(upper, maximum)
        out.append(((lower + upper) / 2, count))
    return out


class _Recipient:
    """A collector plus what the bridge learned about its method signatures."""

    def __init__(self, collector: Any) -> None:
        missing = missing_push_methods(collector)
        if missing:
            raise TypeError(f"collector {type(collector).__name__} lacks async method(s): {', '.join(missing)}")
        self.collector = collector
        self.name = type(collector).__name__
        self.histogram_takes_count = _accepts(collector.histogram, "count")
        self.timing_takes_count = _accepts(collector.timing, "count")
        distribution = getattr(collector, "distribution", None)
        self.distribution = distribution if callable(distribution) else None
        self.errors = 0


def _tags(point: Any) -> dict[str, str]:
    return {k: str(v) for k, v in (point.attributes or {}).items()}


def _metric_calls(metric: Metric, timing_names: Container[str]) -> Iterator[Call]:
    """The collector calls for one metric of a flush (see ``CollectorExporter._calls``)."""
    name = documented_name(metric.name)
    data = metric.data
    if isinstance(data, Sum):
        for p in data.data_points:
            if not data.is_monotonic:
                yield "gauge", name, p.value, _tags(p), None
            elif p.value:
                yield "increment", name, p.value, _tags(p), None
    elif isinstance(data, Gauge):
        for p in data.data_points:
            if not (isinstance(p.value, float) and not math.isfinite(p.value)):
                yield "gauge", name, p.value, _tags(p), None
    elif isinstance(data, HistogramData):
        kind = "timing" if metric.name in timing_names else "histogram"
        for p in data.data_points:
            if p.count:
                buckets = bucket_representatives(p.bucket_counts, p.explicit_bounds, p.sum, p.min, p.max)
                yield kind, name, buckets, _tags(p), metric.unit or ""


def _accepts(fn: Any, param: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return param in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class CollectorExporter(MetricExporter):
    """Pushes each flush's metrics into one or more collectors."""

    def __init__(
        self, collectors: Iterable[Any], timeout: float = 5.0, timing_names: Container[str] = frozenset()
    ) -> None:
        super().__init__(preferred_temporality=PREFERRED_TEMPORALITY)
        self._recipients = [_Recipient(c) for c in collectors]
        #: Histograms recorded through ``CacheMetrics.timing`` (delivered via ``timing``).
        self._timing_names = timing_names
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._loop_lock = threading.Lock()
        #: Calls that raised, per collector class name (visible in health output).
        self.failures: dict[str, int] = {}

    @property
    def collectors(self) -> list[Any]:
        return [r.collector for r in self._recipients]

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        calls = list(self._calls(metrics_data, self._timing_names))
        ok = True
        for recipient in self._recipients:
            ok &= self._run(self._deliver(recipient, calls))
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def _run(self, coro: Any) -> Any:
        """Run ``coro`` on the bridge's loop thread (export may be called from any thread,
        including one whose own event loop is running, e.g. ``force_flush`` from the app)."""
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="yokedcache-bridge", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(self._timeout + 1)
        except Exception:  # _deliver handles its own errors; this is a timeout of the whole flush
            future.cancel()
            return False

    async def _deliver(self, recipient: _Recipient, calls: list[Call]) -> bool:
        collector = recipient.collector
        failed = 0
        first: BaseException | None = None

        async def one(kind: str, name: str, value: Any, tags: dict[str, str], extra: Any) -> None:
            method = getattr(collector, kind)
            if kind not in ("histogram", "timing"):
                await method(name, value, tags)
                return
            if recipient.distribution is not None:  # value: [(representative, count)], extra: the unit
                await recipient.distribution(name, value, tags, unit=extra)
                return
            takes_count = recipient.histogram_takes_count if kind == "histogram" else recipient.timing_takes_count
            for representative, count in value:
                if takes_count:
                    await method(name, representative, tags, count=count)
                else:  # a plain collector gets one observation per filled bucket
                    await method(name, representative, tags)

        async def run_all() -> None:
            nonlocal failed, first
            for call in calls:
                try:
                    await one(*call)
                except Exception as exc:
                    failed += 1
                    first = first or exc
            flush = getattr(collector, "flush", None)
            if callable(flush):
                result = flush()
                if inspect.isawaitable(result):
                    await result

        try:
            await asyncio.wait_for(run_all(), self._timeout)
        except Exception as exc:  # timeout or a failing flush
            failed += 1
            first = first or exc
        if failed:
            recipient.errors += failed
            self.failures[recipient.name] = self.failures.get(recipient.name, 0) + failed
            log.warning("collector %s failed %d call(s) this flush: %s: %s",
                        recipient.name, failed, type(first).__name__, first)  # fmt: skip
        return not failed

    @staticmethod
    def _calls(metrics_data: MetricsData, timing_names: Container[str]) -> Iterable[Call]:
        """``(method, name, value, tags, extra)``; for histograms ``value`` is the list of
        ``(representative, count)`` per filled bucket and ``extra`` the instrument's unit."""
        for rm in metrics_data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    yield from _metric_calls(metric, timing_names)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        for recipient in self._recipients:
            close = getattr(recipient.collector, "close", None)
            if callable(close):
                try:
                    result = close()
                    if inspect.isawaitable(result):
                        self._run(result)
                except Exception as exc:
                    log.warning("collector %s failed to close: %s", recipient.name, exc)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._loop.close()
            self._loop = None


def bridge_reader(
    collectors: Iterable[PushCollector],
    interval: float,
    *,
    timing_names: Container[str] = frozenset(),
    timeout: float = 5.0,
) -> tuple[PeriodicExportingMetricReader, CollectorExporter]:
    """A periodic reader exporting to ``collectors`` every ``interval`` seconds, and its bridge.

    The one place a push collector's reader is built: for ``StatsDCollector``
    (``monitoring/statsd.py``) and for a user's collector (``exporters/collectors.py``).
    """
    exporter = CollectorExporter(collectors, timeout=timeout, timing_names=timing_names)
    return PeriodicExportingMetricReader(exporter, export_interval_millis=interval * 1000), exporter
