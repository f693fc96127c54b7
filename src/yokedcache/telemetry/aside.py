"""What cache-aside (``get_or_set``, ``@cached``) records: computations, coalesced callers,
compute durations, early refreshes and stale serves; the factory's INTERNAL span.

Nothing here runs on a hit: a computation costs a database query, so one synchronous counter
or histogram record beside it (a few µs with an SDK) is noise. Plain counts are kept too, for
the status page and ``YokedCache.computations()``. Instruments are made once per meter (every
cache recording into one provider shares them) and follow the cache's meter when the
instrumentor switches providers.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import SpanKind

from . import semconv as sc

__all__ = ["AsideCounts", "AsideTelemetry"]


@dataclass
class AsideCounts:
    """Counts of one cache's cache-aside calls since start."""

    #: Factory runs that returned a value / raised.
    computations_ok: int = 0
    computations_error: int = 0
    #: Callers served by a computation another caller of this process ran (single-flight).
    coalesced_process: int = 0
    #: Callers served by a computation another process ran while they waited for its lock.
    coalesced_lock: int = 0
    #: XFetch recomputations started before the entry expired.
    early_refreshes: int = 0
    #: Callers given an expired value because the factory failed.
    stale_serves: int = 0

    @property
    def saved(self) -> int:
        """Computations saved: callers that would have run the factory without coalescing."""
        return self.coalesced_process + self.coalesced_lock

    def as_dict(self) -> dict[str, int]:
        return {
            "computations_ok": self.computations_ok,
            "computations_error": self.computations_error,
            "coalesced_process": self.coalesced_process,
            "coalesced_lock": self.coalesced_lock,
            "early_refreshes": self.early_refreshes,
            "stale_serves": self.stale_serves,
            "saved": self.saved,
        }


class _Instruments:
    """The five cache-aside instruments of one meter."""

    def __init__(self, meter: Any) -> None:
        units = sc.BUILT_IN_UNITS
        self.computations = meter.create_counter(
            sc.COMPUTATIONS, unit=units[sc.COMPUTATIONS], description="Factory runs of get_or_set and @cached"
        )
        self.coalesced = meter.create_counter(
            sc.COALESCED, unit=units[sc.COALESCED], description="Callers served by another caller's computation"
        )
        self.duration = meter.create_histogram(
            sc.COMPUTE_DURATION,
            unit=units[sc.COMPUTE_DURATION],
            description="How long get_or_set and @cached factories ran",
            explicit_bucket_boundaries_advisory=list(sc.COMPUTE_BUCKETS),
        )
        self.early = meter.create_counter(
            sc.EARLY_REFRESHES, unit=units[sc.EARLY_REFRESHES], description="Early (XFetch) recomputations started"
        )
        self.stale = meter.create_counter(
            sc.STALE_SERVES, unit=units[sc.STALE_SERVES], description="Expired values served because a factory failed"
        )


#: One set of instruments per meter: caches sharing a provider share them (no duplicate warnings).
_BY_METER: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()


class AsideTelemetry:
    """Records one cache's cache-aside events into its :class:`Instrumentation`'s meter and tracer."""

    def __init__(self, telemetry: Any) -> None:
        #: The cache's :class:`~yokedcache.telemetry.instrumentation.Instrumentation`.
        self.telemetry = telemetry
        self.counts = AsideCounts()
        self._meter: Any = None
        self._instruments: _Instruments | None = None
        self._label = ""
        self._relabel()

    def _relabel(self) -> None:
        """Attributes by the name cap's decision (``Instrumentation.label``), never the raw name."""
        name = self._label = self.telemetry.label
        self._outcome = {o: {sc.CACHE_NAME: name, sc.ATTR_OUTCOME: o} for o in (sc.OUTCOME_OK, sc.OUTCOME_ERROR)}
        self._scope = {s: {sc.CACHE_NAME: name, sc.ATTR_SCOPE: s} for s in (sc.SCOPE_PROCESS, sc.SCOPE_LOCK)}
        self._plain = {sc.CACHE_NAME: name}

    def _current(self) -> _Instruments | None:
        if self.telemetry.label != self._label:  # a rebind moved this cache past (or back under) the cap
            self._relabel()
        meter = self.telemetry.meter
        if meter is not self._meter:
            self._meter = meter
            self._instruments = None
            if meter is not None:
                try:
                    found = _BY_METER.get(meter)
                    if found is None:
                        found = _BY_METER[meter] = _Instruments(meter)
                except TypeError:  # a meter that cannot be weakly referenced: its own set
                    found = _Instruments(meter)
                self._instruments = found
        return self._instruments

    def computed(self, ok: bool, seconds: float) -> None:
        counts = self.counts
        outcome = sc.OUTCOME_OK if ok else sc.OUTCOME_ERROR
        if ok:
            counts.computations_ok += 1
        else:
            counts.computations_error += 1
        instruments = self._current()
        if instruments is not None:
            attrs = self._outcome[outcome]
            instruments.computations.add(1, attrs)
            instruments.duration.record(seconds, attrs)

    def coalesced(self, scope: str) -> None:
        if scope == sc.SCOPE_LOCK:
            self.counts.coalesced_lock += 1
        else:
            self.counts.coalesced_process += 1
        instruments = self._current()
        if instruments is not None:
            instruments.coalesced.add(1, self._scope[scope])

    def early_refresh(self) -> None:
        self.counts.early_refreshes += 1
        instruments = self._current()
        if instruments is not None:
            instruments.early.add(1, self._plain)

    def stale_served(self) -> None:
        self.counts.stale_serves += 1
        instruments = self._current()
        if instruments is not None:
            instruments.stale.add(1, self._plain)

    @contextlib.contextmanager
    def operation_span(self, function: str) -> Iterator[Any]:
        """The get_or_set span (INTERNAL, ``yokedcache get_or_set``) when tracing is on, else None.

        Its get and set CLIENT spans and the factory's span are its children; the caller sets
        ``cache.hit`` on it once the answer is known.
        """
        tracer = self.telemetry.tracer
        if tracer is None:
            yield None
            return
        attributes = {sc.CACHE_NAME: self.telemetry.label, "code.function.name": function}
        with tracer.start_as_current_span("yokedcache get_or_set", kind=SpanKind.INTERNAL, attributes=attributes) as s:
            yield s

    @contextlib.contextmanager
    def factory_span(self, function: str) -> Iterator[None]:
        """The factory runs under an INTERNAL span named after it (exceptions recorded on it)."""
        tracer = self.telemetry.tracer
        if tracer is None:
            yield
            return
        with tracer.start_as_current_span(function, kind=SpanKind.INTERNAL, attributes=self._plain):
            yield
