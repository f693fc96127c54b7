"""``CacheMetrics``: the documented collector API, built on one OpenTelemetry MeterProvider.

Each collector contributes one metric reader to a single ``MeterProvider``; the cache records
into it (``CacheConfig(metrics=metrics)``) and so do application metrics
(``await metrics.increment("user.login")``), so every collector sees the same numbers.

- ``PrometheusCollector``, ``StatsDCollector``, ``OTLPCollector``: built-in readers/exporters.
- Any object with async ``increment/gauge/histogram/timing(metric, value, tags)``: fed through
  the same bridge exporter as StatsD, every ``export_interval`` seconds.
- ``NoOpCollector`` (the default): no reader at all; the API's no-op provider is used.

Each is taken as a ``Collector`` (``exporters/collectors.py`` declares the three shapes; the
last two are adapted here), and ``CacheMetrics`` calls only that contract's members.

Application metric tags are bounded: each metric keeps at most ``max_tag_sets`` distinct tag
sets (1,000 by default); further ones fold into one ``otel.metric.overflow="true"`` series,
with a warning logged once per metric.

Shutdown (``shutdown()``, or at interpreter exit when the application never calls it) takes at
most ``shutdown_timeout`` seconds (1 s) plus a short grace, whatever the exporters' peers do:
see ``exporters/shutdown.py``.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Container
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import MeterProvider, NoOpMeterProvider

from .. import validation
from ..exporters.collectors import Collector, PushCollector, ReaderSource, is_push_collector

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader

    from ..exporters.shutdown import Outcome

log = logging.getLogger("yokedcache.monitoring")

OVERFLOW_TAGS = {"otel.metric.overflow": "true"}


class NoOpCollector(Collector):
    """Collects nothing; lets code keep its metrics calls with monitoring switched off."""

    def metric_reader(self, **_: Any) -> None:
        return None

    async def increment(self, metric: str, value: float = 1, tags: dict[str, Any] | None = None) -> None:
        return None

    async def gauge(self, metric: str, value: float, tags: dict[str, Any] | None = None) -> None:
        return None

    async def histogram(self, metric: str, value: float, tags: dict[str, Any] | None = None) -> None:
        return None

    async def timing(self, metric: str, value: float, tags: dict[str, Any] | None = None) -> None:
        return None


class _Pushed(Collector):
    """A user's push collector, fed by its own bridge reader every ``interval`` seconds."""

    def __init__(self, collector: PushCollector, interval: float) -> None:
        self.collector = collector
        self.interval = interval

    def metric_reader(self, timing_names: Container[str] = frozenset(), **_: Any) -> MetricReader:
        from ..exporters.bridge import bridge_reader

        reader, _exporter = bridge_reader([self.collector], self.interval, timing_names=timing_names)
        return reader


class _Reading(Collector):
    """An object that only offers a reader: the rest of the contract keeps its defaults."""

    def __init__(self, source: ReaderSource) -> None:
        self.source = source

    def metric_reader(self, **kwargs: Any) -> MetricReader | None:
        return self.source.metric_reader(**kwargs)


def _as_collector(obj: object, interval: float) -> Collector:
    """``obj`` as a ``Collector``: itself, its reader, or a bridge every ``interval`` seconds.

    A reader is preferred to the push methods, as an object offering both means its reader.
    """
    if isinstance(obj, Collector):
        return obj
    if isinstance(obj, ReaderSource):
        return _Reading(obj)
    if is_push_collector(obj):
        return _Pushed(obj, interval)
    raise TypeError(
        f"collectors: {type(obj).__name__} is neither a built-in collector nor an object with "
        "async increment/gauge/histogram/timing methods"
    )


class CacheMetrics:
    """One MeterProvider (and, with OTLP, one TracerProvider) feeding every collector."""

    def __init__(
        self,
        collectors: list[Any] | None = None,
        *,
        export_interval: float = 5.0,
        max_tag_sets: int = 1000,
        max_timers: int = 10_000,
        resource_attributes: dict[str, Any] | None = None,
        shutdown_timeout: float = 1.0,
    ) -> None:
        self.shutdown_timeout = _check_shutdown_timeout(shutdown_timeout)
        self.collectors = list(collectors) if collectors else [NoOpCollector()]
        self.max_tag_sets = max_tag_sets
        self.max_timers = max_timers
        #: Names of histograms recorded through ``timing`` (the bridge delivers them as timings).
        self.timing_names: set[str] = set()
        self._members = [_as_collector(c, export_interval) for c in self.collectors]
        readers, span_processors = _sdk_components(self._members, self.timing_names)
        self.meter_provider: Any = NoOpMeterProvider()
        self.tracer_provider: Any = None
        #: What ``force_flush`` pushes: the SDK providers built here (none for the no-op one).
        self._flushes: list[Callable[[float], bool]] = []
        if readers:
            self.meter_provider, self.tracer_provider = _sdk_providers(readers, span_processors, resource_attributes)
            self._flushes = [p.force_flush for p in (self.meter_provider, self.tracer_provider) if p is not None]
        for member in self._members:
            member.bind(self.meter_provider)
        self._meter = self.meter_provider.get_meter("yokedcache.app")
        self._instruments: dict[tuple[str, str], Any] = {}
        self._tag_sets: dict[str, set[frozenset[tuple[str, str]]]] = {}
        self._overflow_warned: set[str] = set()
        self._timers: OrderedDict[str, float] = OrderedDict()
        self._timer_ids = itertools.count(1)
        self._sdk_components = [*readers, *span_processors]
        self._shut_down = False
        if readers:
            atexit.register(self._shutdown_at_exit)

    # -- application metrics --------------------------------------------------------------
    def _instrument(self, kind: str, name: str) -> Any:
        found = self._instruments.get((kind, name))
        if found is not None:
            return found
        validation.instrument_name(name)
        if kind == "counter":
            inst = self._meter.create_counter(name)
        elif kind == "gauge":
            inst = self._meter.create_gauge(name)
        elif kind == "timing":
            self.timing_names.add(name)
            inst = self._meter.create_histogram(name, unit="s")
        else:
            inst = self._meter.create_histogram(name)
        self._instruments[(kind, name)] = inst
        return inst

    def _tags(self, name: str, tags: dict[str, Any] | None) -> dict[str, str]:
        if not tags:
            return {}
        if not isinstance(tags, dict):
            raise TypeError(f"tags: expected a dict, got {type(tags).__name__}")
        clean = {str(k): str(v) for k, v in tags.items()}
        key = frozenset(clean.items())
        seen = self._tag_sets.setdefault(name, set())
        if key in seen:
            return clean
        for tag in clean:  # checked once per new tag set, like a metric name once per instrument
            validation.tag_name(tag)
        if len(seen) >= self.max_tag_sets:
            if name not in self._overflow_warned:
                self._overflow_warned.add(name)
                log.warning("metric %s has more than %d tag sets; further ones fold into the overflow series",
                            name, self.max_tag_sets)  # fmt: skip
            return OVERFLOW_TAGS
        seen.add(key)
        return clean

    @staticmethod
    def _number(value: Any) -> float:
        validation.number("value", value, kind="a number")
        return value  # type: ignore[no-any-return]

    async def increment(self, metric: str, value: float = 1, tags: dict[str, Any] | None = None) -> None:
        value = self._number(value)
        if value < 0:
            raise ValueError(f"value: a counter only increases, got {value}")
        self._instrument("counter", metric).add(value, self._tags(metric, tags))

    async def gauge(self, metric: str, value: float, tags: dict[str, Any] | None = None) -> None:
        self._instrument("gauge", metric).set(self._number(value), self._tags(metric, tags))

    async def histogram(self, metric: str, value: float, tags: dict[str, Any] | None = None) -> None:
        self._instrument("histogram", metric).record(self._number(value), self._tags(metric, tags))

    async def timing(self, metric: str, value: float, tags: dict[str, Any] | None = None) -> None:
        """Record a duration in seconds."""
        value = self._number(value)
        if value < 0:
            raise ValueError(f"value: a duration cannot be negative, got {value}")
        self._instrument("timing", metric).record(value, self._tags(metric, tags))

    def start_timer(self, metric: str) -> str:
        """Start timing; pass the id to :meth:`end_timer`. At most ``max_timers`` stay open:
        the oldest is dropped beyond that, so timers never ended cannot leak."""
        timer_id = f"{metric}:{next(self._timer_ids)}"
        self._timers[timer_id] = time.perf_counter()
        while len(self._timers) > self.max_timers:
            self._timers.popitem(last=False)
        return timer_id

    async def end_timer(
        self, timer_id: str, metric: str | None = None, tags: dict[str, Any] | None = None
    ) -> float | None:
        """Record the elapsed seconds as a timing; ``None`` for an unknown or expired id."""
        started = self._timers.pop(timer_id, None)
        if started is None:
            return None
        elapsed = time.perf_counter() - started
        await self.timing(metric or timer_id.rsplit(":", 1)[0], elapsed, tags)
        return elapsed

    # -- lifecycle ------------------------------------------------------------------------
    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Push pending data to every periodic exporter now (tests, shutdown hooks)."""
        ok = True
        for flush in self._flushes:
            ok = flush(timeout_millis) and ok
        return bool(ok)

    def shutdown(self, timeout: float | None = None) -> None:
        """Flush and stop every reader, exporter and HTTP server, in at most ``timeout`` seconds
        (default ``shutdown_timeout``) plus a short grace.

        An export still running at the deadline (an absent or silent Collector) is aborted and
        reported in one WARNING on ``yokedcache.monitoring.shutdown``; the SDK's own messages
        about it are repeated there at DEBUG instead of printed. A second call does nothing.
        """
        if self._shut_down:
            return
        self._shut_down = True
        timeout = self.shutdown_timeout if timeout is None else _check_shutdown_timeout(timeout, "timeout")
        atexit.unregister(self._shutdown_at_exit)
        # A collector that is also a push collector (StatsD) is closed by the bridge feeding it,
        # after the final export: see Collector.close in exporters/collectors.py.
        closes = [c.close for c in self._members if not is_push_collector(c)]
        if not self._sdk_components:
            for close in closes:
                close()
            return
        from ..exporters.shutdown import bounded_shutdown, sdk_threads

        steps = [lambda: self.meter_provider.shutdown(timeout_millis=timeout * 1000)]
        if self.tracer_provider is not None:
            steps.append(self.tracer_provider.shutdown)
        steps += closes  # an HTTP server's close waits up to its 0.5 s poll: alongside, not after
        aborts = [c.abort for c in self._members]
        self._report(bounded_shutdown(steps, sdk_threads(self._sdk_components), aborts, timeout), timeout)

    def _report(self, outcome: Outcome, timeout: float) -> None:
        """The SDK's held-back records at DEBUG, and a failed shutdown in one WARNING."""
        for record in outcome.held:
            log.getChild("shutdown").debug("held back from %s: %s", record.name, record.getMessage())
        if outcome.failed:
            targets = ", ".join(c.target for c in self._members if c.target) or "exporters"
            log.getChild("shutdown").warning(
                "telemetry not delivered at shutdown (%s): %s; gave up after %g s, so what was recorded "
                "since the last export is lost (CacheMetrics(shutdown_timeout=...) waits longer)",
                targets, outcome.cause(timeout), timeout,
            )  # fmt: skip

    def _shutdown_at_exit(self) -> None:
        try:
            self.shutdown()
        except Exception:  # never a traceback from an exit hook
            log.debug("telemetry shutdown at exit failed", exc_info=True)


def _sdk_components(members: list[Collector], timing_names: set[str]) -> tuple[list[Any], list[Any]]:
    """``(metric readers, span processors)`` the collectors contribute to the providers."""
    readers = [r for c in members if (r := c.metric_reader(timing_names=timing_names)) is not None]
    return readers, [p for c in members if (p := c.span_processor()) is not None]


def _sdk_providers(
    readers: list[Any], span_processors: list[Any], resource_attributes: dict[str, Any] | None
) -> tuple[MeterProvider, Any]:
    """The SDK ``MeterProvider`` over ``readers``, and a ``TracerProvider`` when there are span
    processors (else ``None``), sharing one resource."""
    from .._extras import require

    require("opentelemetry.sdk.metrics", "sdk")
    from opentelemetry.sdk.metrics import MeterProvider as SDKMeterProvider
    from opentelemetry.sdk.resources import Resource

    attrs = {"service.instance.id": str(uuid.uuid4()), **(resource_attributes or {})}
    resource = Resource.create(attrs)
    # The SDK's own exit hooks would wait out an absent Collector (10 s and retries): ours
    # (CacheMetrics registers it) has a deadline.
    meter_provider = SDKMeterProvider(metric_readers=readers, resource=resource, shutdown_on_exit=False)
    tracer_provider = None
    if span_processors:
        from opentelemetry.sdk.trace import TracerProvider

        tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        for p in span_processors:
            tracer_provider.add_span_processor(p)
    return meter_provider, tracer_provider


def _check_shutdown_timeout(value: Any, name: str = "shutdown_timeout") -> float:
    validation.number(name, value, rule="expected a positive, finite number of seconds", kind="a number of seconds",
                      minimum=0, allow_zero=False, finite=True)  # fmt: skip
    return float(value)
