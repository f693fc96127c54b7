"""The instruments of one meter provider: observables read at collection time, and histograms.

Every instrument exists once per meter provider, made when the first cache reports into it and
shared by every cache after (OTel's guidance: create instruments once, reuse them). With no SDK,
the API's proxy keeps every meter and instrument ever requested, so a per-cache instrument would
leak ~1 KB per cache made and closed. Observable callbacks sum over every live cache that reports
into that provider (the SDK keeps the first callback registered under a name and ignores later
ones); they run in the reader's thread, so they only read plain numbers and never await Redis.
The synchronous histograms tell caches apart by the ``cache.name`` each record carries.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation

from .._version import __version__
from . import semconv as sc
from .counters import CacheCounters

if TYPE_CHECKING:
    from ..backends.base import Usage


@dataclass(frozen=True)
class StateReading:
    """What a cache reports about its own state, read at collection time (no I/O)."""

    healthy: bool
    breaker_state: str | None = None  # closed / half_open / open; None without a breaker
    breaker_opens: int = 0
    pool_in_use: int | None = None
    pool_idle: int | None = None
    pool_max: int | None = None
    pool_pending: int = 0  # operations waiting for a connection


class Observed(Protocol):
    """What the callbacks read of one cache: ``Instrumentation`` (``instrumentation.py``).

    A protocol, not an import of that class: instrumentation.py registers its caches here, and
    importing it back would make the two modules a cycle (``tests/test_import_graph.py``).
    """

    name: str
    #: What the cache reports as: ``name``, or ``_other`` beyond the name cap (``names.py``).
    label: str
    counters: CacheCounters
    usage: Callable[[], Usage | None]
    evictions: Callable[[], int | None]
    state: Callable[[], StateReading | None]
    #: A weak reference to the cache itself (``None`` when no cache owns the telemetry): the
    #: status page and ``/readyz`` (``server/``) find the caches reporting into a meter here.
    owner: Callable[[], Any] | None
    #: False when the driver (redis-py's own OpenTelemetry) reports db.client.connection.count
    #: for this cache's pool: the name is left to it, not counted twice.
    reports_db_connections: bool

    def flush(self, limit: int | None = None) -> int: ...


def _opens_of(member: Observed) -> int:
    state = member.state()
    return state.breaker_opens if state is not None else 0


#: Monotonic counts a cache reports from elsewhere than its ``CacheCounters`` (the backend, the
#: breaker), by the name its counter's callback reads them under.
_COUNTED_ELSEWHERE: dict[str, Callable[[Observed], int]] = {
    "evictions": lambda member: member.evictions() or 0,
    "breaker_opens": _opens_of,
}


class _Totals:
    """Counter values of caches (of one name) that stopped reporting.

    Which counts: every name in ``CacheCounters.COUNTS`` and ``_COUNTED_ELSEWHERE``, read from
    those two tables, never listed here; a count added to either is kept when a cache closes.
    """

    __slots__ = ("counts", "errors")

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys((*CacheCounters.COUNTS, *_COUNTED_ELSEWHERE), 0)
        self.errors: dict[tuple[str, str], int] = {}

    @classmethod
    def of(cls, member: Observed) -> _Totals:
        t = cls()
        c = member.counters
        t.counts = {name: getattr(c, name) for name in CacheCounters.COUNTS}
        t.counts.update((name, read(member)) for name, read in _COUNTED_ELSEWHERE.items())
        t.errors = dict(c.errors)
        return t

    def add(self, other: _Totals, sign: int = 1) -> None:
        for name, count in other.counts.items():
            self.counts[name] += sign * count
        for key, count in other.errors.items():
            self.errors[key] = self.errors.get(key, 0) + sign * count

    def subtract(self, other: _Totals) -> None:
        self.add(other, -1)


class ObservedCaches:
    """The caches reporting into one meter, the observable instruments that read them, and the
    histograms they record into.

    Every observation carries the cache's name (``cache.name``): caches of different names
    are series apart; caches sharing a name share (sum into) one series, on purpose.
    """

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self.meter = meter
        self.duration: Histogram = meter.create_histogram(
            sc.DURATION,
            unit=sc.BUILT_IN_UNITS[sc.DURATION],
            description="Duration of cache operations",
            explicit_bucket_boundaries_advisory=list(sc.DURATION_BUCKETS),
        )
        self.batch_size: Histogram = meter.create_histogram(
            sc.PIPELINE_BATCH_SIZE,
            unit=sc.BUILT_IN_UNITS[sc.PIPELINE_BATCH_SIZE],
            description="Cache operations sent together in one auto-pipelined round trip",
            explicit_bucket_boundaries_advisory=list(sc.BATCH_SIZE_BUCKETS),
        )
        self._db_duration: Histogram | None = None
        self._members: weakref.WeakSet[Observed] = weakref.WeakSet()
        #: Counts of closed caches per name, so summed counters stay monotonic when one closes.
        self._retired: dict[str, _Totals] = {}
        self._folded: weakref.WeakKeyDictionary[Observed, _Totals] = weakref.WeakKeyDictionary()
        self._attrs: dict[tuple[str, str, str], dict[str, str]] = {}

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
        # The same pools under the stable database conventions' names (pool name = cache name).
        up_down(sc.DB_CONNECTION_COUNT, self._db_connections, "Connections by state (db.client.connection.state)")
        up_down(sc.DB_CONNECTION_MAX, self._db_connection_max, "Connections the pool may open for operations")
        up_down(sc.DB_CONNECTION_PENDING, self._db_pending, "Operations waiting for a connection")

    def db_duration(self) -> Histogram:
        """``db.client.operation.duration``, made when the first database cache asks for it."""
        with self._lock:
            if self._db_duration is None:
                self._db_duration = self.meter.create_histogram(
                    sc.DB_CLIENT_DURATION,
                    unit=sc.BUILT_IN_UNITS[sc.DB_CLIENT_DURATION],
                    description="Duration of database client operations",
                    explicit_bucket_boundaries_advisory=list(sc.DB_CLIENT_DURATION_BUCKETS),
                )
            return self._db_duration

    def add(self, member: Observed) -> None:
        with self._lock:
            self._members.add(member)
            folded = self._folded.pop(member, None)
            if folded is not None:  # re-added (the switch flipped back): un-retire its counts
                self._retired[member.label].subtract(folded)

    def discard(self, member: Observed) -> None:
        """Stop observing ``member``; its counts so far stay in the totals (counters never go back)."""
        with self._lock:
            if member not in self._members:
                return
            self._members.discard(member)
            folded = _Totals.of(member)
            self._retired.setdefault(member.label, _Totals()).add(folded)
            self._folded[member] = folded

    def members(self) -> list[Observed]:
        with self._lock:
            return list(self._members)

    def _groups(self) -> dict[str, list[Observed]]:
        """Live members by label (names beyond the cap are already OTHER_NAME: ``names.py``)."""
        with self._lock:
            groups: dict[str, list[Observed]] = {}
            for member in self._members:
                groups.setdefault(member.label, []).append(member)
            return groups

    def _with_retired(self) -> list[tuple[str, list[Observed], _Totals | None]]:
        groups = self._groups()
        retired = self._retired
        return [(n, groups.get(n, []), retired.get(n)) for n in sorted(groups.keys() | retired.keys())]

    def _a(self, name: str, key: str = "", value: str = "") -> dict[str, str]:
        """Attributes of one series, built once: the cache name plus at most one more pair."""
        attrs = self._attrs.get((name, key, value))
        if attrs is None:
            attrs = {sc.CACHE_NAME: name, key: value} if key else {sc.CACHE_NAME: name}
            if len(self._attrs) < 4096:
                self._attrs[(name, key, value)] = attrs
        return attrs

    # -- callbacks ------------------------------------------------------------------------
    def _field(self, field: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            for name, members, retired in self._with_retired():
                base = retired.counts[field] if retired is not None else 0
                if members or base:
                    yield Observation(base + sum(getattr(m.counters, field) for m in members), self._a(name))

        return observe

    def _gets(self, options: CallbackOptions) -> Iterable[Observation]:
        groups = self._with_retired()
        # Registered first, so it runs before the SDK collects the duration histogram: queued
        # records land in this collection.
        for _, members, _ in groups:
            for member in members:
                member.flush()
        for name, members, retired in groups:
            hits = (retired.counts["hits"] if retired else 0) + sum(m.counters.hits for m in members)
            misses = (retired.counts["misses"] if retired else 0) + sum(m.counters.misses for m in members)
            if members or hits or misses:
                yield Observation(hits, self._a(name, sc.ATTR_RESULT, "hit"))
                yield Observation(misses, self._a(name, sc.ATTR_RESULT, "miss"))

    def _hit_rate(self, options: CallbackOptions) -> Iterable[Observation]:
        for name, members in self._groups().items():
            hits = sum(m.counters.hits for m in members)
            gets = hits + sum(m.counters.misses for m in members)
            if gets:  # no reads yet: no value, rather than a 0 that trips hit-rate alerts
                yield Observation(hits / gets, self._a(name))

    def _errors(self, options: CallbackOptions) -> Iterable[Observation]:
        for name, members, retired in self._with_retired():
            totals = dict(retired.errors) if retired is not None else {}
            for m in members:
                for key, count in list(m.counters.errors.items()):
                    totals[key] = totals.get(key, 0) + count
            for (operation, etype), count in totals.items():
                yield Observation(count, {sc.CACHE_NAME: name, sc.ATTR_OPERATION: operation, sc.ATTR_ERROR_TYPE: etype})

    def _evictions(self, options: CallbackOptions) -> Iterable[Observation]:
        for name, members, retired in self._with_retired():
            values = [e for e in (m.evictions() for m in members) if e is not None]
            if values or (retired is not None and retired.counts["evictions"]):
                yield Observation((retired.counts["evictions"] if retired else 0) + sum(values), self._a(name))

    def _usage(self, options: CallbackOptions, field: str) -> Iterable[Observation]:
        for name, members in self._groups().items():
            values = [u for u in (m.usage() for m in members) if u is not None]
            if values:
                yield Observation(sum(getattr(u, field) for u in values), self._a(name))

    def _states(self, db_connections: bool = False) -> dict[str, list[StateReading]]:
        """State readings by cache name (``db_connections``: only caches reporting that name)."""
        out: dict[str, list[StateReading]] = {}
        for name, members in self._groups().items():
            if db_connections:
                members = [m for m in members if m.reports_db_connections]
            states = [s for s in (m.state() for m in members) if s is not None]
            if states:
                out[name] = states
        return out

    def _health(self, options: CallbackOptions) -> Iterable[Observation]:
        for name, states in self._states().items():
            yield Observation(1 if all(s.healthy for s in states) else 0, self._a(name))

    def _breaker_state(self, options: CallbackOptions) -> Iterable[Observation]:
        for name, states in self._states().items():
            values = [sc.BREAKER_STATE_VALUES[s.breaker_state] for s in states if s.breaker_state is not None]
            if values:
                yield Observation(max(values), self._a(name))

    def _breaker_opens(self, options: CallbackOptions) -> Iterable[Observation]:
        states = self._states()
        for name in sorted(states.keys() | self._retired.keys()):
            with_breaker = [s for s in states.get(name, []) if s.breaker_state is not None]
            retired = self._retired.get(name)
            if with_breaker or (retired is not None and retired.counts["breaker_opens"]):
                opens = (retired.counts["breaker_opens"] if retired else 0) + sum(s.breaker_opens for s in with_breaker)
                yield Observation(opens, self._a(name))

    def _pools(self, db_connections: bool = False) -> dict[str, list[StateReading]]:
        out = {}
        for name, states in self._states(db_connections).items():
            pools = [s for s in states if s.pool_max is not None]
            if pools:
                out[name] = pools
        return out

    def _pool_connections(self, options: CallbackOptions) -> Iterable[Observation]:
        for name, pools in self._pools().items():
            yield Observation(sum(s.pool_in_use or 0 for s in pools), self._a(name, sc.ATTR_POOL_STATE, "used"))
            yield Observation(sum(s.pool_idle or 0 for s in pools), self._a(name, sc.ATTR_POOL_STATE, "idle"))

    def _pool_max(self, options: CallbackOptions) -> Iterable[Observation]:
        for name, pools in self._pools().items():
            yield Observation(sum(s.pool_max or 0 for s in pools), self._a(name))

    def _pool_utilization(self, options: CallbackOptions) -> Iterable[Observation]:
        for name, pools in self._pools().items():
            limit = sum(s.pool_max or 0 for s in pools)
            if limit:
                yield Observation(sum(s.pool_in_use or 0 for s in pools) / limit, self._a(name))

    def _pool_attrs(self, name: str, state: str | None = None) -> dict[str, str]:
        attrs = {sc.CACHE_NAME: name, sc.DB_CONNECTION_POOL_NAME: name}
        if state is not None:
            attrs[sc.DB_CONNECTION_STATE] = state
        return attrs

    def _db_connections(self, options: CallbackOptions) -> Iterable[Observation]:
        for name, pools in self._pools(db_connections=True).items():
            yield Observation(sum(s.pool_in_use or 0 for s in pools), self._pool_attrs(name, "used"))
            yield Observation(sum(s.pool_idle or 0 for s in pools), self._pool_attrs(name, "idle"))

    def _db_connection_max(self, options: CallbackOptions) -> Iterable[Observation]:
        for name, pools in self._pools().items():
            yield Observation(sum(s.pool_max or 0 for s in pools), self._pool_attrs(name))

    def _db_pending(self, options: CallbackOptions) -> Iterable[Observation]:
        for name, pools in self._pools().items():
            yield Observation(sum(s.pool_pending for s in pools), self._pool_attrs(name))

    def _size(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._usage(options, "bytes")

    def _keys(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._usage(options, "keys")


_lock = threading.Lock()
_by_provider: weakref.WeakKeyDictionary[Any, ObservedCaches] = weakref.WeakKeyDictionary()
_global: ObservedCaches | None = None


def members_of(meter_provider: Any) -> list[Observed]:
    """The live caches reporting into ``meter_provider`` (``None`` = the global provider)."""
    with _lock:
        found = _global if meter_provider is None else _by_provider.get(meter_provider)
    return found.members() if found is not None else []


def observed_caches(meter_provider: Any) -> ObservedCaches:
    """The instruments of ``meter_provider`` (``None`` = the global provider), made once."""
    global _global
    with _lock:
        found = _global if meter_provider is None else _by_provider.get(meter_provider)
        if found is None:
            meter = metrics.get_meter(sc.SCOPE_NAME, __version__, meter_provider=meter_provider,
                                      schema_url=sc.SCHEMA_URL)  # fmt: skip
            found = ObservedCaches(meter)
            if meter_provider is None:
                _global = found
            else:
                _by_provider[meter_provider] = found
        return found
