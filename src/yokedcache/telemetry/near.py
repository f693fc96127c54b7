"""The near cache's instruments: its own hits and misses, invalidations, flushes, size and lag.

Apart from the seed's counters on purpose: ``yokedcache.cache.hits`` keeps meaning "served
without computing" (a near hit is one of them), and these say how many of those never left the
process. Made once per meter, when the first cache with a near cache reports into it, and summed per
``cache.name`` over its caches; every series carries ``cache.name`` only (never a key).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from . import semconv as sc

__all__ = ["NearInstruments"]

_COUNTED = ("hits", "misses", "invalidations", "flushes")


class _NearMeter:
    """The near-cache instruments of one meter, made once and shared by its caches (as
    ``observers.ObservedCaches`` does for the others): observables summed per ``cache.name``
    over the caches reporting here, plus what caches that are gone had counted, so the
    counters stay monotonic."""

    def __init__(self, meter: Any) -> None:
        self._lock = threading.Lock()
        self._members: weakref.WeakSet[NearInstruments] = weakref.WeakSet()
        self._retired: dict[str, dict[str, int]] = {}

        def summed(field: str, counted: bool) -> Callable[[CallbackOptions], Iterable[Observation]]:
            """Per cache.name: the live caches' ``field``, plus the gone ones' for a counter."""

            def observe(options: CallbackOptions) -> Iterable[Observation]:
                totals = {n: c.get(field, 0) for n, c in self._retired.items()} if counted else {}
                for member in self._live():
                    label = member.telemetry.label
                    totals[label] = totals.get(label, 0) + getattr(member.stats, field)
                for label, value in totals.items():
                    yield Observation(value, {sc.CACHE_NAME: label})

            return observe

        counters = ((sc.NEAR_HITS, "hits", "GETs served from process memory by the near cache"),
                    (sc.NEAR_MISSES, "misses", "GETs the near cache could not serve (sent to Redis)"),
                    (sc.NEAR_INVALIDATIONS, "invalidations", "Keys named by Redis invalidation messages"),
                    (sc.NEAR_FLUSHES, "flushes", "Whole near-cache flushes (link lost, FLUSHDB)"))  # fmt: skip
        for instrument, field, description in counters:
            meter.create_observable_counter(instrument, callbacks=[summed(field, True)], unit=sc.NEAR_UNITS[instrument],
                                            description=description)  # fmt: skip
        for instrument, field, description in (
            (sc.NEAR_ENTRIES, "entries", "Entries held by the near cache"),
            (sc.NEAR_SIZE, "bytes", "Bytes held by the near cache (estimated)"),
        ):
            meter.create_observable_gauge(instrument, callbacks=[summed(field, False)], unit=sc.NEAR_UNITS[instrument],
                                          description=description)  # fmt: skip
        self.lag = meter.create_histogram(
            sc.NEAR_INVALIDATION_LAG,
            unit="s",
            description="Sampled time from an own SET's reply to its invalidation's arrival on the near cache link",
            explicit_bucket_boundaries_advisory=list(sc.NEAR_LAG_BUCKETS),
        )

    def _live(self) -> list[NearInstruments]:
        with self._lock:
            return list(self._members)

    def add(self, member: NearInstruments) -> None:
        with self._lock:
            self._members.add(member)
        weakref.finalize(member, self._retire, member.telemetry, member.stats)

    def _retire(self, telemetry: Any, stats: Any) -> None:
        """A cache that is gone: keep what it counted under its name."""
        with self._lock:
            counts = self._retired.setdefault(telemetry.label, {})
            for field in _COUNTED:
                counts[field] = counts.get(field, 0) + getattr(stats, field)


#: One set of near-cache instruments per meter (the API's proxy keeps every instrument ever made).
_BY_METER: weakref.WeakKeyDictionary[Any, _NearMeter] = weakref.WeakKeyDictionary()
_BY_METER_LOCK = threading.Lock()


class NearInstruments:
    """One cache's part in its meter's near-cache instruments: its ``NearStats`` is read at
    collection time, and its invalidation-lag samples are recorded under its ``cache.name``."""

    def __init__(self, telemetry: Any, stats: Any) -> None:
        self.telemetry = telemetry
        self.stats = stats
        self._shared: _NearMeter | None = None
        meter = telemetry.meter
        if meter is None:  # metrics off: the lag samples go nowhere
            return
        with _BY_METER_LOCK:
            shared = _BY_METER.get(meter)
            if shared is None:
                shared = _BY_METER[meter] = _NearMeter(meter)
        self._shared = shared
        shared.add(self)

    @classmethod
    def create(cls, telemetry: Any, stats: Any) -> NearInstruments:
        return cls(telemetry, stats)

    def record_lag(self, seconds: float) -> None:
        if self._shared is not None:
            self._shared.lag.record(seconds, {sc.CACHE_NAME: self.telemetry.label})
