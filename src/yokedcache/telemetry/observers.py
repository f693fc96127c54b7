"""Observable instruments: counts and gauges read at collection time, not per operation.

One set of observable instruments exists per meter provider (the SDK keeps the first callback
registered under a name and ignores later ones), and its callbacks sum over every live cache
that reports into that provider. Callbacks run in the reader's thread, so they only read
plain numbers; they never await Redis.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from . import semconv as sc

if TYPE_CHECKING:
    from .instrumentation import Instrumentation


@dataclass(frozen=True)
class StateReading:
    """What a cache reports about its own state, read at collection time (no I/O)."""

    healthy: bool
    breaker_state: str | None = None  # closed / half_open / open; None without a breaker
    breaker_opens: int = 0
    pool_in_use: int | None = None
    pool_idle: int | None = None
    pool_max: int | None = None


class _Totals:
    """Counter values of caches that stopped reporting."""

    __slots__ = (
        "breaker_opens", "cancellations", "deletes", "errors", "evictions", "hits", "invalidations", "misses", "sets",
    )  # fmt: skip
    _SUMMED = ("hits", "misses", "sets", "deletes", "invalidations", "cancellations", "evictions", "breaker_opens")

    def __init__(self) -> None:
        self.hits = self.misses = self.sets = self.deletes = self.invalidations = self.cancellations = 0
        self.evictions = self.breaker_opens = 0
        self.errors: dict[tuple[str, str], int] = {}

    @classmethod
    def of(cls, member: Instrumentation) -> _Totals:
        t = cls()
        c = member.counters
        t.hits, t.misses, t.sets, t.deletes, t.invalidations = c.hits, c.misses, c.sets, c.deletes, c.invalidations
        t.cancellations = c.cancellations
        t.errors = dict(c.errors)
        t.evictions = member.evictions() or 0
        state = member.state()
        t.breaker_opens = state.breaker_opens if state is not None else 0
        return t

    def add(self, other: _Totals, sign: int = 1) -> None:
        for name in self._SUMMED:
            setattr(self, name, getattr(self, name) + sign * getattr(other, name))
        for key, count in other.errors.items():
            self.errors[key] = self.errors.get(key, 0) + sign * count

    def subtract(self, other: _Totals) -> None:
        self.add(other, -1)


_HIT = {sc.ATTR_RESULT: "hit"}
_MISS = {sc.ATTR_RESULT: "miss"}
_EMPTY: dict[str, str] = {}
_USED = {sc.ATTR_POOL_STATE: "used"}
_IDLE = {sc.ATTR_POOL_STATE: "idle"}


class ObservedCaches:
    """The caches reporting into one meter, and the observable instruments that read them."""

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self._members: weakref.WeakSet[Instrumentation] = weakref.WeakSet()
        #: Counts of closed caches, so summed counters stay monotonic when one cache closes.
        self._retired = _Totals()
        self._folded: weakref.WeakKeyDictionary[Instrumentation, _Totals] = weakref.WeakKeyDictionary()

        # Units come from sc.BUILT_IN_UNITS, the one list the Prometheus collector also reads.
        def counter(name: str, callback: Callable[..., Any], description: str) -> None:
            meter.create_observable_counter(name, [callback], unit=sc.BUILT_IN_UNITS[name], description=description)

        def gauge(name: str, callback: Callable[..., Any], description: str) -> None:
            meter.create_observable_gauge(name, [callback], unit=sc.BUILT_IN_UNITS[name], description=description)

        def up_down(name: str, callback: Callable[..., Any], description: str) -> None:
            meter.create_observable_up_down_counter(
                name, [callback], unit=sc.BUILT_IN_UNITS[name], description=description
            )

        counter(sc.GETS, self._gets, "Cache GET operations by result, per key")
        counter(sc.HITS, self._field("hits"), "Cache hits")
        counter(sc.MISSES, self._field("misses"), "Cache misses")
        counter(sc.SETS, self._field("sets"), "Keys written by SET operations")
        counter(sc.DELETES, self._field("deletes"), "Keys passed to DELETE")
        counter(sc.INVALIDATIONS, self._field("invalidations"), "Invalidation operations (by pattern, by tags, clear)")
        counter(sc.ERRORS, self._errors, "Failed cache operations by error.type")
        counter(sc.EVICTIONS, self._evictions, "Keys evicted to respect limits")
        counter(sc.CANCELLATIONS, self._field("cancellations"),
                "Operations cancelled by their caller (not errors: kept out of the error rate)")  # fmt: skip
        gauge(sc.HIT_RATE, self._hit_rate, "Cache hit rate since start (0-1)")
        gauge(sc.SIZE, self._size, "Bytes held by the cache (keys and values)")
        gauge(sc.KEYS_COUNT, self._keys, "Keys held by the cache")
        gauge(sc.HEALTH, self._health, "1 when every cache's backend is reachable and its breaker closed, else 0")
        gauge(sc.BREAKER_STATE, self._breaker_state,
              "Circuit breaker state: 0 closed, 1 half-open, 2 open (worst over caches)")  # fmt: skip
        counter(sc.BREAKER_OPENS, self._breaker_opens, "Times the circuit breaker opened")
        up_down(sc.POOL_CONNECTIONS, self._pool_connections, "Backend connections by state (used, idle)")
        up_down(sc.POOL_MAX, self._pool_max, "Connection pool size limit")
        gauge(sc.POOL_UTILIZATION, self._pool_utilization, "Connections in use over the pool limit (0-1)")

    def add(self, member: Instrumentation) -> None:
        with self._lock:
            self._members.add(member)
            folded = self._folded.pop(member, None)
            if folded is not None:  # re-added (the switch flipped back): un-retire its counts
                self._retired.subtract(folded)

    def discard(self, member: Instrumentation) -> None:
        """Stop observing ``member``; its counts so far stay in the totals (counters never go back)."""
        with self._lock:
            if member not in self._members:
                return
            self._members.discard(member)
            folded = _Totals.of(member)
            self._retired.add(folded)
            self._folded[member] = folded

    def members(self) -> list[Instrumentation]:
        with self._lock:
            return list(self._members)

    # -- callbacks ------------------------------------------------------------------------
    def _field(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            members = self.members()
            retired = getattr(self._retired, name)
            if members or retired:
                yield Observation(retired + sum(getattr(m.counters, name) for m in members), _EMPTY)

        return observe

    def _gets(self, options: CallbackOptions) -> Iterable[Observation]:
        members = self.members()
        # Registered first, so it runs before the SDK collects the duration histogram: queued
        # records land in this collection.
        for member in members:
            member.flush()
        hits = self._retired.hits + sum(m.counters.hits for m in members)
        misses = self._retired.misses + sum(m.counters.misses for m in members)
        if members or hits or misses:
            yield Observation(hits, _HIT)
            yield Observation(misses, _MISS)

    def _hit_rate(self, options: CallbackOptions) -> Iterable[Observation]:
        members = self.members()
        hits = sum(m.counters.hits for m in members)
        gets = hits + sum(m.counters.misses for m in members)
        if gets:  # no reads yet: no value, rather than a 0 that trips hit-rate alerts
            yield Observation(hits / gets, _EMPTY)

    def _errors(self, options: CallbackOptions) -> Iterable[Observation]:
        totals = dict(self._retired.errors)
        for m in self.members():
            for key, count in list(m.counters.errors.items()):
                totals[key] = totals.get(key, 0) + count
        for (operation, etype), count in totals.items():
            yield Observation(count, {sc.ATTR_OPERATION: operation, sc.ATTR_ERROR_TYPE: etype})

    def _evictions(self, options: CallbackOptions) -> Iterable[Observation]:
        values = [e for e in (m.evictions() for m in self.members()) if e is not None]
        if values or self._retired.evictions:
            yield Observation(self._retired.evictions + sum(values), _EMPTY)

    def _usage(self, options: CallbackOptions, field: str) -> Iterable[Observation]:
        values = [u for u in (m.usage() for m in self.members()) if u is not None]
        if values:
            yield Observation(sum(getattr(u, field) for u in values), _EMPTY)

    def _states(self) -> list[StateReading]:
        return [s for s in (m.state() for m in self.members()) if s is not None]

    def _health(self, options: CallbackOptions) -> Iterable[Observation]:
        states = self._states()
        if states:
            yield Observation(1 if all(s.healthy for s in states) else 0, _EMPTY)

    def _breaker_state(self, options: CallbackOptions) -> Iterable[Observation]:
        values = [sc.BREAKER_STATE_VALUES[s.breaker_state] for s in self._states() if s.breaker_state is not None]
        if values:
            yield Observation(max(values), _EMPTY)

    def _breaker_opens(self, options: CallbackOptions) -> Iterable[Observation]:
        states = [s for s in self._states() if s.breaker_state is not None]
        if states or self._retired.breaker_opens:
            yield Observation(self._retired.breaker_opens + sum(s.breaker_opens for s in states), _EMPTY)

    def _pools(self) -> list[StateReading]:
        return [s for s in self._states() if s.pool_max is not None]

    def _pool_connections(self, options: CallbackOptions) -> Iterable[Observation]:
        pools = self._pools()
        if pools:
            yield Observation(sum(s.pool_in_use or 0 for s in pools), _USED)
            yield Observation(sum(s.pool_idle or 0 for s in pools), _IDLE)

    def _pool_max(self, options: CallbackOptions) -> Iterable[Observation]:
        pools = self._pools()
        if pools:
            yield Observation(sum(s.pool_max or 0 for s in pools), _EMPTY)

    def _pool_utilization(self, options: CallbackOptions) -> Iterable[Observation]:
        pools = self._pools()
        limit = sum(s.pool_max or 0 for s in pools)
        if limit:
            yield Observation(sum(s.pool_in_use or 0 for s in pools) / limit, _EMPTY)

    def _size(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._usage(options, "bytes")

    def _keys(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._usage(options, "keys")


_lock = threading.Lock()
_by_provider: weakref.WeakKeyDictionary[Any, ObservedCaches] = weakref.WeakKeyDictionary()
_global: ObservedCaches | None = None


def members_of(meter_provider: Any) -> list[Instrumentation]:
    """The live caches reporting into ``meter_provider`` (``None`` = the global provider)."""
    with _lock:
        found = _global if meter_provider is None else _by_provider.get(meter_provider)
    return found.members() if found is not None else []


def observed_caches(meter_provider: Any, meter: Meter) -> ObservedCaches:
    """The registry for ``meter_provider`` (``None`` = the global provider), created once."""
    global _global
    with _lock:
        if meter_provider is None:
            if _global is None:
                _global = ObservedCaches(meter)
            return _global
        found = _by_provider.get(meter_provider)
        if found is None:
            found = _by_provider[meter_provider] = ObservedCaches(meter)
        return found
