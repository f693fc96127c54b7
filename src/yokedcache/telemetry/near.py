"""The near cache's instruments: its own hits and misses, invalidations, flushes, size and lag.

Apart from the seed's counters on purpose: ``yokedcache.cache.hits`` keeps meaning "served
without computing" (a near hit is one of them), and these say how many of those never left the
process. Created only for a cache with a near cache, on the meter its instrumentation uses;
every series carries ``cache.name`` only (never a key).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from . import semconv as sc

__all__ = ["NearInstruments"]


class NearInstruments:
    """Observable counters and gauges reading a ``NearStats``, and the lag histogram."""

    def __init__(self, meter: Any, name: str, stats: Any) -> None:
        self._attrs = {sc.CACHE_NAME: name}
        self._lag: Any = None
        if meter is None:  # metrics off: the lag samples go nowhere
            return

        def reader(field: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
            def observe(options: CallbackOptions) -> Iterable[Observation]:
                yield Observation(getattr(stats, field), self._attrs)

            return observe

        counters = ((sc.NEAR_HITS, "hits", "GETs served from process memory by the near cache"),
                    (sc.NEAR_MISSES, "misses", "GETs the near cache could not serve (sent to Redis)"),
                    (sc.NEAR_INVALIDATIONS, "invalidations", "Keys named by Redis invalidation messages"),
                    (sc.NEAR_FLUSHES, "flushes", "Whole near-cache flushes (link lost, FLUSHDB)"))  # fmt: skip
        for instrument, field, description in counters:
            meter.create_observable_counter(instrument, callbacks=[reader(field)], unit=sc.NEAR_UNITS[instrument],
                                            description=description)  # fmt: skip
        for instrument, field, description in (
            (sc.NEAR_ENTRIES, "entries", "Entries held by the near cache"),
            (sc.NEAR_SIZE, "bytes", "Bytes held by the near cache (estimated)"),
        ):
            meter.create_observable_gauge(instrument, callbacks=[reader(field)], unit=sc.NEAR_UNITS[instrument],
                                          description=description)  # fmt: skip
        self._lag = meter.create_histogram(
            sc.NEAR_INVALIDATION_LAG,
            unit="s",
            description="Sampled time from an own SET's reply to its invalidation's arrival on the near cache link",
            explicit_bucket_boundaries_advisory=list(sc.NEAR_LAG_BUCKETS),
        )

    @classmethod
    def create(cls, telemetry: Any, stats: Any) -> NearInstruments:
        return cls(telemetry.meter, telemetry.label, stats)

    def record_lag(self, seconds: float) -> None:
        if self._lag is not None:
            self._lag.record(seconds, self._attrs)
