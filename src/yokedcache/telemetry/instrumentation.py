"""The one instrumentation point every cache operation goes through.

Per operation it measures the duration once and queues it for the SDK histograms (ours and, on
Redis, the conventions' ``db.client.operation.duration``, both recorded in the same small batches
on the event loop, while the next command is in flight), bumps plain counters, and -- only when
tracing is on and the span is sampled -- builds a span whose duration is exactly the one recorded.
Attribute dictionaries are built once here, never per call. With no SDK installed, the histograms
and tracer are the API's no-ops, called inline, and the whole point costs well under a microsecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterator
from time import perf_counter, time_ns
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import validation
from .._version import __version__
from ..backends.base import BackendInfo, DriverTelemetry, Usage
from ..errors import CacheCommandError, CacheUnavailableError, original_error
from . import semconv as sc
from . import switch
from .counters import MAX_ERROR_TYPES, OTHER_ERROR, CacheCounters
from .names import name_cap
from .observers import ObservedCaches, StateReading, observed_caches

try:  # the API has carried this key for years; keep a fallback for very old/new layouts
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
except ImportError:  # pragma: no cover
    _SUPPRESS_INSTRUMENTATION_KEY = otel_context.create_key("suppress_instrumentation")

__all__ = ["ActiveSpan", "Instrumentation"]

log = logging.getLogger("yokedcache.telemetry")

#: Queued operations that trigger a flush on the event loop: the first. The flush runs on the
#: loop's next turn, which for one task is while its next command is in flight: one operation's
#: two records (~20 µs) fit in that round trip, so the caller never waits for them. Many tasks
#: still get warm batches, since every operation that finished in the same turn is queued before
#: the flush runs (up to _FLUSH_MOST). Measured at one task (benchmarks/tail.py, quiet machine):
#: p99 0.93x raw's flushing every operation, 1.46x every 8 and 6.0x every 64.
_FLUSH_BATCH = 1
#: Most operations one flush records: many tasks queue many per loop turn, and warm batches are
#: what makes a deferred record cheap; the rest go on the loop's next turn.
_FLUSH_MOST = 128
_FLUSH_LIMIT = 256  # queued operations recorded inline when the loop never got a turn

#: The span, the context token to detach and the span's start (``time_ns``): the duration
#: recorded is the span's own, end minus start, as the database conventions ask.
#: "No provider": a cache that neither records nor traces is asked of no name cap.
_UNCAPPED = object()

ActiveSpan = tuple[trace.Span, object, int]


class Instrumentation:
    """Telemetry of one cache: counters, the duration histogram and (optionally) spans."""

    def __init__(
        self,
        *,
        backend_info: BackendInfo,
        name: str | None = None,
        counters: CacheCounters | None = None,
        meter_provider: Any = None,
        tracer_provider: Any = None,
        metrics_enabled: bool = True,
        tracing_enabled: bool = False,
        capture_keys: bool = False,
        db_client_metrics: bool = True,
        driver: DriverTelemetry | None = None,
        usage: Callable[[], Usage | None] = lambda: None,
        evictions: Callable[[], int | None] = lambda: None,
        state: Callable[[], StateReading | None] = lambda: None,
        owner: Callable[[], Any] | None = None,
        recent_window: int = 2048,
    ) -> None:
        for flag, value in (("metrics_enabled", metrics_enabled), ("tracing_enabled", tracing_enabled),
                            ("capture_keys", capture_keys), ("db_client_metrics", db_client_metrics)):  # fmt: skip
            validation.boolean(flag, value)
        if name is not None:  # CacheConfig checked it already; anyone else building this is checked here
            validation.cache_name("name", name)
        self.counters = counters if counters is not None else CacheCounters()
        #: (start, duration, operation) of the most recent operations, for percentiles.
        self.recent: deque[tuple[float, float, str]] = deque(maxlen=recent_window)
        self.usage = usage
        self.evictions = evictions
        self.state = state
        #: A weak reference to the cache, for the status page and ``/readyz`` (which read what
        #: the cache keeps and run its health checks).
        self.owner = owner
        self.capture_keys = capture_keys
        self._db_client_metrics = db_client_metrics
        driver = driver if driver is not None else DriverTelemetry()
        #: db.client.connection.count for this cache's pool, unless the driver (redis-py) reports it.
        self.reports_db_connections = not driver.counts_connections
        self._db_histogram: Any = None
        #: Record durations in batches on the event loop instead of inline (see finish and rebind).
        self._defer = False
        #: (duration, our attributes, db.client.operation.duration's or None) per operation.
        self._pending: deque[tuple[float, dict[str, str], dict[str, Any] | None]] = deque()
        self._flush_scheduled = False
        #: The loop's handle of the scheduled flush: close() cancels it, so a closed cache is not
        #: kept alive by a callback of a loop that has not turned since (a caller that never yields).
        self._flush_handle: asyncio.Handle | None = None
        #: Queued operations that trigger a flush (_FLUSH_BATCH; benchmarks/tail.py varies it).
        self.flush_at = _FLUSH_BATCH
        self._explicit_meter_provider = meter_provider
        self._explicit_tracer_provider = tracer_provider
        self._metrics_requested = metrics_enabled
        self._tracing_requested = tracing_enabled
        self._closed = False

        #: The cache's name (default: the backend's kind) ...
        self.name = name if name is not None else backend_info.kind
        #: ... and what it reports as on every point, span, health report and status row: the
        #: name, or ``_other`` beyond the name cap (``names.py``), decided in :meth:`rebind`.
        self.label = self.name
        self._backend_info = backend_info
        self._driver = driver
        self._is_db = backend_info.system is not None
        self._span_kind = SpanKind.CLIENT if self._is_db else SpanKind.INTERNAL
        self._build_attributes()
        _tell_once(driver, db_client_metrics)

        self._histogram: Any = None
        self._batch_histogram: Any = None
        self._observed: ObservedCaches | None = None
        self._tracer: Any = None
        self.tracing_enabled = False
        self._settings = switch.current()
        if meter_provider is None or tracer_provider is None:
            switch.follow(self)
        self.rebind()

    def _build_attributes(self) -> None:
        """Every attribute dict this cache records with, built once per label (never per call).

        ``cache.name`` comes only from :attr:`label`, the name cap's decision: an instrument
        added here must take its attributes from these dicts (or from ``self.label``), never
        from :attr:`name`, or it escapes the cap.
        """
        label, backend_info = self.label, self._backend_info
        self._op_attrs = {op: {sc.CACHE_NAME: label, sc.ATTR_OPERATION: op} for op in sc.OPERATIONS}
        self._error_attrs: dict[tuple[str, str], dict[str, str]] = {}
        base: dict[str, Any] = {sc.CACHE_NAME: label, sc.CACHE_BACKEND: backend_info.kind}
        if self._is_db:
            base[sc.DB_SYSTEM_NAME] = backend_info.system
            if backend_info.db is not None:
                base[sc.DB_NAMESPACE] = backend_info.db
            if backend_info.host is not None:
                base[sc.SERVER_ADDRESS] = backend_info.host
            if backend_info.port is not None:
                base[sc.SERVER_PORT] = backend_info.port
        self._name_operations(backend_info, base, self._driver)
        self._db_error_attrs: dict[tuple[str, str, str | None], dict[str, Any]] = {}
        self._pipeline_attrs = {**base, sc.DB_OPERATION_NAME: sc.PIPELINE, sc.DB_QUERY_SUMMARY: sc.PIPELINE}
        self._batch_attrs = {sc.CACHE_NAME: label}

    def _name_operations(self, backend_info: BackendInfo, base: dict[str, Any], driver: DriverTelemetry) -> None:
        """Span names and the attribute dictionaries of spans and db.client.operation.duration, per operation."""
        if self._is_db:
            # Stable database conventions: the span is named after db.query.summary, which for
            # one Redis command is the command; our own verb rides along in our namespace.
            commands = {**sc.REDIS_COMMANDS, **backend_info.extra.get("commands", {})}
            tagged = backend_info.extra.get("commands", {}).get("set_tagged", sc.REDIS_TAGGED_SET)
            self._span_names = {op: commands[op] for op in sc.OPERATIONS}
            self._span_attrs = {
                op: {**base, sc.DB_OPERATION_NAME: commands[op], sc.DB_QUERY_SUMMARY: commands[op],
                     sc.CACHE_OPERATION: op}
                for op in sc.OPERATIONS
            }  # fmt: skip
            self._tagged_set_attrs = {
                **self._span_attrs[sc.OP_SET], sc.DB_OPERATION_NAME: tagged, sc.DB_QUERY_SUMMARY: tagged,
            }  # fmt: skip
            self._tagged_set_name = tagged
            db_base = {k: v for k, v in base.items() if k != sc.CACHE_BACKEND}
            #: Attributes of db.client.operation.duration points (the span's, less our own).
            self._db_attrs: dict[str, dict[str, Any] | None] = {
                op: {**db_base, sc.DB_OPERATION_NAME: commands[op], sc.DB_QUERY_SUMMARY: commands[op]}
                for op in sc.OPERATIONS
            }
            self._db_tagged_set_attrs = {**db_base, sc.DB_OPERATION_NAME: tagged, sc.DB_QUERY_SUMMARY: tagged}
            for op in driver.timed:  # the driver times these commands itself: never count them twice
                self._db_attrs[op] = None
        else:  # a dict in this process: no database, no db.* attributes, an INTERNAL span
            self._span_names = {op: f"yokedcache {op}" for op in sc.OPERATIONS}
            self._span_attrs = {op: {**base, sc.CACHE_OPERATION: op} for op in sc.OPERATIONS}
            self._tagged_set_attrs = self._span_attrs[sc.OP_SET]
            self._tagged_set_name = self._span_names[sc.OP_SET]
            self._db_attrs = dict.fromkeys(sc.OPERATIONS)
            self._db_tagged_set_attrs = {}

    def rebind(self) -> None:
        """(Re)resolve providers: explicit ones always, the global ones while the switch is on."""
        self.flush()  # what was measured belongs to the providers it was measured under
        settings = self._settings = switch.current()
        if self._observed is not None:
            self._observed.discard(self)
            self._observed = None
        self._histogram = self._db_histogram = self._batch_histogram = None
        self._db_queued = dict.fromkeys(sc.OPERATIONS)
        #: The provider's meter (None: metrics off): cache-aside's and the near cache's instruments use it.
        self.meter: Any = None
        if self._closed:
            self.tracing_enabled = False
            return

        meter_provider = self._explicit_meter_provider
        records = self._metrics_requested and (meter_provider is not None or settings.enabled)
        if records and meter_provider is None:
            meter_provider = settings.meter_provider
        tracer_provider = self._explicit_tracer_provider
        self.tracing_enabled = bool(self._tracing_requested and (tracer_provider is not None or settings.enabled))
        if self.tracing_enabled and tracer_provider is None:
            tracer_provider = settings.tracer_provider
        self._relabel(meter_provider if records else tracer_provider if self.tracing_enabled else _UNCAPPED)
        if records:
            # The provider's instruments, made once and shared by every cache reporting into it.
            observed = self._observed = observed_caches(meter_provider)
            self.meter = observed.meter
            self._histogram = observed.duration
            self._batch_histogram = observed.batch_size
            if self._db_client_metrics and self._is_db:
                self._db_histogram = observed.db_duration()
                self._db_queued = self._db_attrs
            observed.add(self)
        # Queue only for a real SDK: the API's own no-op (and proxy) instruments cost less inline.
        self._defer = self._histogram is not None and not type(self._histogram).__module__.startswith(
            "opentelemetry.metrics"
        )
        if self.tracing_enabled:
            self._tracer = trace.get_tracer(
                sc.SCOPE_NAME, __version__, tracer_provider=tracer_provider, schema_url=sc.SCHEMA_URL
            )

    def _relabel(self, provider: Any) -> None:
        """Ask the name cap of the provider this cache reports into what it reports as.

        The meter provider's when it records metrics, else the tracer provider's when it traces,
        so spans, series, health and the status page agree; a cache reporting nowhere keeps its name.
        """
        label = self.name if provider is _UNCAPPED else name_cap(provider).label(self.name)
        if label != self.label:
            self.label = label
            self._build_attributes()

    @property
    def tracer(self) -> Any:
        """The tracer spans go to while tracing is on, else None (cache-aside's spans use it)."""
        return self._tracer if self.tracing_enabled else None

    def close(self) -> None:
        """Stop reporting this cache's counts and gauges (what was queued is recorded first)."""
        self._closed = True
        handle, self._flush_handle = self._flush_handle, None
        if handle is not None:
            handle.cancel()  # drops its reference to this object at once
        self._flush_scheduled = False
        self.rebind()

    # -- deferred duration records ---------------------------------------------------------
    def _schedule_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_scheduled = True
        self._flush_handle = loop.call_soon(self._flush_batch)

    def _flush_batch(self) -> None:
        self._flush_scheduled = False
        self._flush_handle = None
        self.flush(_FLUSH_MOST)
        if len(self._pending) >= self.flush_at:
            self._schedule_flush()

    def flush(self, limit: int | None = None) -> int:
        """Record queued durations (all, or ``limit``); safe from any thread (collection calls it).

        Both histograms record from the one measurement, in the same warm batch: the second
        record costs a fraction of a record made alone after a round trip.
        """
        histogram = self._histogram
        db_histogram = self._db_histogram
        pop = self._pending.popleft
        done = 0
        while limit is None or done < limit:
            try:
                elapsed, attrs, db_attrs = pop()
            except IndexError:
                break
            if histogram is not None:
                histogram.record(elapsed, attrs)
                if db_attrs is not None and db_histogram is not None:
                    db_histogram.record(elapsed, db_attrs)
            done += 1
        return done

    # -- hot path -------------------------------------------------------------------------
    def start_span(
        self, op: str, key: str | None = None, batch: int | None = None, tagged: bool = False
    ) -> ActiveSpan | None:
        """Start and activate a span for ``op`` when tracing is on and the span is sampled.

        ``batch``: keys a multi-key operation names; ``tagged``: a SET that carries tags (a MULTI).
        """
        if not self.tracing_enabled or otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY):
            return None
        start = time_ns()
        if tagged:
            span = self._tracer.start_span(self._tagged_set_name, kind=self._span_kind,
                                           attributes=self._tagged_set_attrs, start_time=start)  # fmt: skip
        else:
            span = self._tracer.start_span(self._span_names[op], kind=self._span_kind,
                                           attributes=self._span_attrs[op], start_time=start)  # fmt: skip
        if not span.is_recording():
            return None
        if batch is not None:
            span.set_attribute(sc.CACHE_KEYS, batch)
            # a batch is two or more operations: MGET is one command, set_many one SET per key
            if op == sc.OP_SET_MANY and batch > 1 and self._is_db:
                span.set_attribute(sc.DB_BATCH_SIZE, batch)
        settings = self._settings
        if key is not None and (self.capture_keys or settings.capture_keys):
            span.set_attribute(sc.CACHE_KEY, key)
        if settings.request_hook is not None:
            _run_hook("request_hook", settings.request_hook, span, op, key)
        # Active, so that the duration histogram's exemplar carries this trace. For Redis this
        # span IS the database CLIENT span: instrumentation below it (opentelemetry-instrumentation
        # -redis, redis-py's own) is suppressed, so each call shows once, not as CLIENT under CLIENT.
        context = trace.set_span_in_context(span)
        if self._is_db:
            context = otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, context)
        return span, otel_context.attach(context), start

    def finish(
        self, op: str, started: float, active: ActiveSpan | None, hit: bool | None = None, result: Any = None,
        tagged: bool = False,
    ) -> None:  # fmt: skip
        """Record a successful operation that began at ``started`` (``perf_counter()``).

        With a span, the duration is the span's (its start to the end given to it), so the
        histograms and the trace agree exactly. ``result`` (what the caller gets back) only
        reaches a configured ``response_hook``; ``tagged``: a SET with tags (a MULTI).
        """
        if active is None:
            elapsed = perf_counter() - started
        else:
            end = time_ns()
            elapsed = (end - active[2]) / 1e9
        counters = self.counters
        counters.calls[op] += 1
        counters.duration_sum[op] += elapsed
        self.recent.append((started, elapsed, op))
        histogram = self._histogram
        if histogram is not None:
            db_attrs = self._db_queued[op]  # None unless db.client.operation.duration is on
            if tagged and db_attrs is not None:
                db_attrs = self._db_tagged_set_attrs
            if active is None and self._defer:
                # An SDK record costs ~4 µs warm but ~12 µs once redis-py's round trip (or an
                # idle spell, for the memory backend) has evicted it from the CPU caches
                # (benchmarks/record_cost.py). Queued, the records run in warm batches on the
                # loop, off the caller's path: while the next command is in flight, or as soon as
                # the caller yields. Sampled operations record inline, so exemplars keep the trace.
                pending = self._pending
                pending.append((elapsed, self._op_attrs[op], db_attrs))
                queued = len(pending)
                if queued >= self.flush_at:
                    if not self._flush_scheduled:
                        self._schedule_flush()
                    elif queued >= _FLUSH_LIMIT:  # a caller that never yields: the loop gets no turn
                        self.flush()
            else:
                histogram.record(elapsed, self._op_attrs[op])
                if db_attrs is not None:
                    self._db_histogram.record(elapsed, db_attrs)
        if active is not None:
            span, token, _ = active
            if hit is not None:
                span.set_attribute(sc.CACHE_HIT, hit)
            hook = self._settings.response_hook
            if hook is not None:
                _run_hook("response_hook", hook, span, op, result)
            span.end(end_time=end)
            otel_context.detach(token)

    # -- auto-pipelined batches (the backend's BatchObserver) ---------------------------------
    def pipeline_context(self) -> trace.Span | None:
        """The span of the operation being queued, if it records (called in the caller's context)."""
        if not self.tracing_enabled:
            return None
        span = trace.get_current_span()
        return span if span.is_recording() else None

    def pipeline_started(self, operations: int, commands: int, spans: list[Any]) -> _Batch | None:
        """A batch leaves: record its size; with sampled operations aboard, open its span.

        The PIPELINE span (CLIENT, ``db.operation.batch.size`` = Redis commands) is a child of
        the first sampled operation and links to every operation it carries; each of those
        operation spans links back to it, so any trace leads to the batch its command rode in.
        """
        histogram = self._batch_histogram
        if histogram is not None:
            histogram.record(operations, self._batch_attrs)
        riders = [s for s in spans if s is not None]
        if not riders or not self.tracing_enabled:
            return None
        attributes: dict[str, Any] = {**self._pipeline_attrs, sc.PIPELINE_OPERATIONS: operations}
        if commands > 1:  # the conventions never set a batch size of 1
            attributes[sc.DB_BATCH_SIZE] = commands
        span = self._tracer.start_span(
            sc.PIPELINE,
            context=trace.set_span_in_context(riders[0]),
            kind=SpanKind.CLIENT,
            attributes=attributes,
            links=[trace.Link(s.get_span_context()) for s in riders],
        )
        batch_context = span.get_span_context()
        for rider in riders:
            rider.add_link(batch_context, {sc.PIPELINE_OPERATIONS: operations})
        return _Batch(span)

    def pipeline_finished(self, token: _Batch | None, error: BaseException | None) -> None:
        if token is None or token.span is None:
            return
        span = token.span
        if error is not None and not isinstance(error, asyncio.CancelledError):
            span.set_attribute(sc.ERROR_TYPE, sc.error_type(error))
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()

    def reset_for_loop(self) -> None:
        """The cache moved to another event loop: a flush scheduled on the old one never runs."""
        self._flush_scheduled = False
        self._flush_handle = None
        self.flush()

    def end_span(self, active: ActiveSpan | None) -> None:
        if active is not None:
            span, token, _ = active
            span.end()
            otel_context.detach(token)

    def cancelled(self, op: str, active: ActiveSpan | None) -> None:
        """The caller cancelled the operation: counted apart, no duration, span not an error."""
        self.counters.cancellations += 1
        if active is not None:
            active[0].set_attribute(sc.CACHE_CANCELLED, True)
        self.end_span(active)

    def fail(
        self, op: str, started: float, active: ActiveSpan | None, exc: BaseException, tagged: bool = False
    ) -> None:
        """Record a failed operation: counted, timed with ``error.type``, span marked ERROR.

        ``error.type`` names the driver's exception (``redis.exceptions.ReadOnlyError``), not
        our wrapper, as the semantic conventions ask; ``db.response.status_code`` is the Redis
        error prefix (``WRONGTYPE``) when the server replied with one.
        """
        if active is None:
            elapsed = perf_counter() - started
        else:
            end = time_ns()
            elapsed = (end - active[2]) / 1e9
        etype = sc.error_type(original_error(exc))
        code = getattr(exc, "code", None) if isinstance(exc, CacheCommandError | CacheUnavailableError) else None
        counters = self.counters
        counters.calls[op] += 1
        counters.duration_sum[op] += elapsed
        counters.add_error(op, etype)
        self.recent.append((started, elapsed, op))
        if self._histogram is not None:
            attrs, db_attrs = self._failure_attrs(op, etype, code, tagged)
            self._histogram.record(elapsed, attrs)
            if db_attrs is not None:
                self._db_histogram.record(elapsed, db_attrs)
        if active is not None:
            span, token, _ = active
            span.set_attribute(sc.ERROR_TYPE, etype)
            if code is not None:
                span.set_attribute(sc.DB_RESPONSE_STATUS_CODE, code)  # the server's error prefix
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.end(end_time=end)
            otel_context.detach(token)

    def _failure_attrs(
        self, op: str, etype: str, code: str | None, tagged: bool
    ) -> tuple[dict[str, str], dict[str, Any] | None]:
        """Attributes of a failure's points, built once per kind of failure, within the counters'
        cap on error types (beyond it both histograms fold into ``_OTHER``, as the counters do)."""
        attrs = self._error_attrs.get((op, etype))
        if attrs is None:
            if len(self._error_attrs) >= MAX_ERROR_TYPES:
                etype, code = OTHER_ERROR, None
            attrs = self._error_attrs.setdefault(
                (op, etype), {sc.CACHE_NAME: self.label, sc.ATTR_OPERATION: op, sc.ATTR_ERROR_TYPE: etype}
            )
        base = self._db_queued[op]
        if base is None:
            return attrs, None
        if tagged:  # a SET with tags is a MULTI, as its span says
            base, op = self._db_tagged_set_attrs, f"{op} (with tags)"
        db_attrs = self._db_error_attrs.get((op, etype, code))
        if db_attrs is None:
            if len(self._db_error_attrs) >= MAX_ERROR_TYPES:
                etype, code = OTHER_ERROR, None
            db_attrs = {**base, sc.ERROR_TYPE: etype}
            if code is not None:
                db_attrs[sc.DB_RESPONSE_STATUS_CODE] = code
            db_attrs = self._db_error_attrs.setdefault((op, etype, code), db_attrs)
        return attrs, db_attrs


class _Batch:
    """What :meth:`Instrumentation.pipeline_started` hands back: the batch's span, if any."""

    __slots__ = ("span",)

    def __init__(self, span: trace.Span | None) -> None:
        self.span = span


_told: set[str] = set()


def _tell_once(driver: DriverTelemetry, db_client_metrics: bool) -> None:
    """One log line per process for each way redis-py's own OpenTelemetry shares the work with ours."""
    told = []
    if driver.unseen and db_client_metrics:
        told.append((logging.WARNING, "redis-py's OpenTelemetry COMMAND metrics never see the commands yokedcache's "
                     "auto-pipeliner (or, with auto_pipeline=False, its direct path) sends (get, set, delete, exists, "
                     "get_many, set_many): yokedcache records db.client.operation.duration for those, redis-py for "
                     "the rest (docs/semconv.md)"))  # fmt: skip
    elif driver.unseen:
        told.append((logging.WARNING, "redis-py's OpenTelemetry COMMAND metrics never see the commands yokedcache's "
                     "auto-pipeliner or direct path sends, and db_client_metrics=False: "
                     "db.client.operation.duration has no point for get, set, delete, exists, get_many or set_many "
                     "(docs/semconv.md)"))  # fmt: skip
    elif driver.timed:
        told.append((logging.INFO, "redis-py's OpenTelemetry COMMAND metrics are on: yokedcache leaves "
                     "db.client.operation.duration to them (yokedcache.cache.operation.duration still times "
                     "every cache operation)"))  # fmt: skip
    if driver.counts_connections:
        told.append((logging.INFO, "redis-py's OpenTelemetry reports db.client.connection.count: yokedcache leaves "
                     "that name to it (its yokedcache.cache.pool.* gauges stay)"))  # fmt: skip
    for level, message in told:
        if message not in _told:
            _told.add(message)
            log.log(level, message)


def _run_hook(name: str, hook: Callable[..., Any], *args: Any) -> None:
    """User hooks must never break a cache operation: failures are logged and swallowed."""
    try:
        hook(*args)
    except Exception:
        log.exception("yokedcache %s raised; the cache operation continues", name)


@contextlib.contextmanager
def suppressed() -> Iterator[None]:
    """Instrumentation off for our own side work (statistics, pings) run in a caller's context."""
    token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        yield
    finally:
        otel_context.detach(token)


def detach_background_context() -> None:
    """Make the current task a context root with instrumentation suppressed.

    For housekeeping tasks (usage refresh): they must not join the trace of the operation that
    happened to start them, nor produce a stream of root spans of their own.
    """
    otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, otel_context.Context()))
