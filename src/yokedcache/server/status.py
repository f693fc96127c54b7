"""What the status page shows: ``/status.json`` (format version 1) and its chart readings.

Everything here reads what the caches already keep -- their counters, the readings of their
:class:`~yokedcache.window.CounterWindow`, the last 2,048 operation durations, the breaker,
the pool and the last usage figures -- and does no I/O. A status request never reaches Redis,
so it answers as fast with Redis hung or gone as with Redis well, and the cache's hot path
pays nothing for it: no operation records anything extra for the page.

Memory is bounded whatever the traffic: per cache name, the window's readings (at most
``horizon / resolution`` + 2, one a second) and :data:`CHART_SECONDS` p99 points.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..health import DEGRADED, HEALTHY, UNHEALTHY, current_health, worst_status
from ..percentiles import percentile
from ..telemetry.semconv import OPERATIONS

if TYPE_CHECKING:
    from ..cache import YokedCache
    from ..telemetry.observers import Observed

__all__ = ["CHART_SECONDS", "SCHEMA_VERSION", "WINDOW_SECONDS", "StatusBoard"]

#: ``version`` of the ``/status.json`` format. Fields are only ever added within a version; a
#: field that changes meaning or goes away bumps it.
SCHEMA_VERSION = 1
#: Seconds over which ops/s, hit rate and error rate are computed (counter differences).
WINDOW_SECONDS = 10.0
#: Seconds of chart history kept and served.
CHART_SECONDS = 300
#: Seconds between chart readings.
TICK_SECONDS = 1.0
#: Seconds after a status request during which the tick prepares the latency tables.
WATCHED_SECONDS = 10.0

_BREAKER_ORDER = {"closed": 0, "half_open": 1, "open": 2}
#: The ``totals`` of a cache group, in the order ``/status.json`` lists them.
_TOTALS = ("operations", "gets", "hits", "misses", "sets", "deletes", "invalidations", "errors", "cancellations")
#: What the page shows of a firing alert (the notification payload minus the cache's address).
_ALERT_FIELDS = ("alert", "severity", "metric", "value", "threshold", "comparison", "timestamp", "description")


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class _Group:
    """Caches sharing a name, as the exported series do (they sum into one)."""

    __slots__ = ("caches", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.caches: list[YokedCache] = []


Entry = tuple[float, float, str]  # (start, duration, operation), as ``Instrumentation.recent`` keeps them


class _Chunks:
    """One cache's recent durations, split by operation and sorted by the tick, a second at a time.

    Why: a request after a quiet spell used to split and sort every cache's 2,048 recent
    durations itself, 4 ms warm and 8-20 ms cold for 10 busy caches (issue 25). The tick now
    does that work once per operation, as the operations arrive (it reads them for the p99
    chart anyway), and a request only joins presorted runs (a sort of runs is a merge) plus the
    operations finished since the last tick.

    The table covers the operations the cache still keeps (``recent``, 2,048) that started in
    the window, to the second: a chunk is kept or dropped whole.
    """

    __slots__ = ("count", "view")

    def __init__(self) -> None:
        self.count = 0
        #: (operations counted when the tick last read the cache, chunks oldest first), replaced
        #: whole, so a request on another thread reads a consistent pair without the lock.
        self.view: tuple[int | None, tuple[tuple[float, int, dict[str, list[float]]], ...]] = (None, ())

    def take(self, total: int, recent: deque[Entry], since: float) -> dict[str, list[float]]:
        """Chunk what finished since the last call; returns its sorted durations by operation
        (for the p99 chart; none at a cache's first reading, which starts its series)."""
        seen, chunks = self.view
        fresh = _fresh(recent, total, seen)
        kept = list(chunks)
        by_op: dict[str, list[float]] = {}
        if fresh:
            _durations_by_operation(fresh, -math.inf, by_op)
            for values in by_op.values():
                values.sort()
            kept.append((fresh[-1][0], len(fresh), by_op))
            self.count += len(fresh)
        limit = recent.maxlen or len(recent)
        while kept and (self.count - kept[0][1] >= limit or kept[0][0] <= since):
            self.count -= kept.pop(0)[1]
        self.view = (total, tuple(kept))
        return by_op if seen is not None else {}

    def durations(self, recent: deque[Entry], total: int, since: float, into: dict[str, list[float]]) -> None:
        """Add the durations of the window by operation: the chunks', then those since the tick."""
        seen, chunks = self.view
        for newest, _, by_op in chunks:
            if newest > since:
                for op, values in by_op.items():
                    into.setdefault(op, []).extend(values)
        fresh = _fresh(recent, total, seen)
        if fresh:
            _durations_by_operation(fresh, since, into)


def _fresh(recent: deque[Entry], total: int, seen: int | None) -> list[Entry]:
    """The entries finished after ``seen`` operations (all kept, when ``seen`` is None), oldest first.

    Reads only those: ``islice(reversed(...))`` and ``list`` run in C, so the event loop cannot
    append in between, and a request touches the few new entries, not all 2,048.
    """
    count = len(recent) if seen is None else min(len(recent), total - seen)
    if count <= 0:
        return []
    entries = list(itertools.islice(reversed(recent), count))
    entries.reverse()
    return entries


class StatusBoard:
    """The figures of every cache ``source()`` returns, grouped by ``cache.name``.

    ``tick()`` (called by the HTTP server between requests) takes one chart reading a second;
    ``snapshot()`` builds the ``/status.json`` document.
    """

    def __init__(
        self,
        source: Callable[[], Iterable[Observed]],
        *,
        window: float = WINDOW_SECONDS,
        chart_seconds: int = CHART_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self.window = window
        self.chart_seconds = chart_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._next_tick = 0.0
        #: Per name: (monotonic time, p99 of the operations finished since the last reading).
        self._p99: dict[str, deque[tuple[float, float | None]]] = {}
        #: Per cache (by id): its recent durations as the tick chunked them (latency tables).
        self._chunks: dict[int, _Chunks] = {}
        #: Per cache (by id): (monotonic time, calls per operation + evictions) readings, one a
        #: tick, for the window's per-operation rates (a window's worth: a few dozen ints each).
        self._calls: dict[int, deque[tuple[float, tuple[int, ...]]]] = {}
        #: Per name: (monotonic time, latency rows), made by the tick while someone watches.
        self._latency: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._watched_until = -math.inf
        #: More top-level members of the document, computed per snapshot (multiprocess mode
        #: adds ``workers``: see monitoring/prometheus.py).
        self.extras: dict[str, Callable[[], Any]] = {}

    # -- reading the caches ---------------------------------------------------------------
    def _groups(self) -> list[_Group]:
        groups: dict[str, _Group] = {}
        for member in self._source():
            owner = member.owner
            cache = owner() if owner is not None else None
            if cache is None:
                continue
            # the label the exporter uses (the name cap's decision, telemetry/names.py), so the
            # page's named rows are the exporter's named series
            name = member.label
            groups.setdefault(name, _Group(name)).caches.append(cache)
        return [groups[n] for n in sorted(groups)]

    def tick(self) -> None:
        """One chart reading a second: each cache's counter window, and the p99 of the
        operations finished since the previous reading (from the cache's recent durations)."""
        now = self._clock()
        if now < self._next_tick:
            return
        with self._lock:
            self._next_tick = now + TICK_SECONDS
            chunks: dict[int, _Chunks] = {}
            calls: dict[int, deque[tuple[float, tuple[int, ...]]]] = {}
            groups = self._groups()
            since = time.perf_counter() - self.window
            for group in groups:
                durations: list[float] = []
                for cache in group.caches:
                    cache.rates.sample()
                    state = chunks[id(cache)] = self._chunks.get(id(cache)) or _Chunks()
                    by_op = state.take(cache.telemetry.counters.total_calls, cache.telemetry.recent, since)
                    for values in by_op.values():
                        durations.extend(values)  # presorted runs: the sort below merges them
                    readings = self._calls.pop(id(cache), None)
                    if readings is None:
                        readings = deque(maxlen=int(self.window / TICK_SECONDS) + 3)
                    readings.append((now, _calls_reading(cache)))
                    calls[id(cache)] = readings
                series = self._p99.get(group.name)
                if series is None:
                    series = self._p99[group.name] = deque(maxlen=self.chart_seconds + 1)
                if durations:
                    durations.sort()
                    series.append((now, round(percentile(durations, 0.99), 9)))
                else:
                    series.append((now, None))
            self._chunks = chunks
            self._calls = calls  # caches gone since the last tick drop out
            # While someone polls (the page: every second), the latency tables are made here,
            # once a second for every viewer, so a request only reads them (~4 ms of sorting
            # for 10 busy caches would otherwise be in every answer).
            if now < self._watched_until:
                now_perf = time.perf_counter()
                self._latency = {g.name: (now, self._latency_rows(g.caches, now_perf)) for g in groups}
            else:
                self._latency = {}
            # names whose caches are all gone: their points age out, then the series goes
            for name in [n for n, s in self._p99.items() if s and now - s[-1][0] > self.chart_seconds]:
                del self._p99[name]

    # -- the document -----------------------------------------------------------------------
    def snapshot(self, chart_seconds: float = 0.0) -> dict[str, Any]:
        """The ``/status.json`` document; charts cover the last ``chart_seconds`` (0: none)."""
        chart_seconds = max(0.0, min(float(chart_seconds), float(self.chart_seconds)))
        mono, wall = self._clock(), time.time()
        self._watched_until = mono + WATCHED_SECONDS
        caches = [self._group_status(g, chart_seconds, mono, wall) for g in self._groups()]
        return {
            "version": SCHEMA_VERSION,
            "generated_at": round(wall, 3),
            "window_seconds": self.window,
            "chart_seconds": chart_seconds,
            "status": worst_status([c["health"]["status"] for c in caches]) if caches else UNHEALTHY,
            "caches": caches,
            **{name: compute() for name, compute in self.extras.items()},
        }

    def _group_status(self, group: _Group, chart_seconds: float, mono: float, wall: float) -> dict[str, Any]:
        from ..alerting.manager import firing_for, rules_for

        caches = group.caches
        totals, errors, uptime = _totals(caches)
        gets = totals["gets"]
        doc: dict[str, Any] = {
            "name": group.name,
            "backend": "+".join(sorted({c.backend.info.kind for c in caches})),
            "instances": len(caches),
            "health": _health(caches),
            "breaker": _breaker([c.breaker for c in caches if c.breaker is not None]),
            "uptime_seconds": round(uptime, 3),
            "window": self._window(caches, mono),
            "hit_rate_since_start": _r(totals["hits"] / gets, 6) if gets else None,
            "totals": totals,
            "computations": _computations(caches),
            "latency": self._latency_for(group, mono),
            "errors": errors,
            "pool": _pool([p for p in (c.backend.pool_stats() for c in caches) if p is not None]),
            "usage": _usage([u for u in (c.usage_snapshot() for c in caches) if u is not None], wall),
            "near_cache": _near([n for n in (c.near_stats for c in caches) if n is not None]),
            "alerts": [{k: a.get(k) for k in _ALERT_FIELDS} for c in caches for a in firing_for(c)],
            "alert_rules": [rule for c in caches for rule in rules_for(c)],
            "max_memory_bytes": _max_memory(caches),
        }
        doc["totals"]["evictions"] = _evictions(caches)
        if chart_seconds > 0:
            doc["charts"] = self._charts(group, chart_seconds, mono, wall)
        return doc

    def _latency_for(self, group: _Group, mono: float) -> list[dict[str, Any]]:
        made = self._latency.get(group.name)
        if made is not None and mono - made[0] <= 1.5 * TICK_SECONDS:
            return made[1]
        # nobody watched a moment ago (or the tick is late): make them now
        return self._latency_rows(group.caches, time.perf_counter())

    def _window(self, caches: list[YokedCache], mono: float) -> dict[str, Any]:
        """Rates over the last ``window`` seconds: counter differences, summed over the caches."""
        ops = errors = hits = misses = 0
        ops_per_second = 0.0
        elapsed_max = 0.0
        for cache in caches:
            elapsed, (d_ops, d_errors, d_hits, d_misses) = cache.rates.delta(self.window)
            elapsed_max = max(elapsed_max, elapsed)
            ops, errors, hits, misses = ops + d_ops, errors + d_errors, hits + d_hits, misses + d_misses
            if elapsed > 0:
                ops_per_second += d_ops / elapsed
        per_operation, evictions_per_second = self._call_rates(caches, mono)
        rates = [{"operation": op, "operations_per_second": round(rate, 3)}
                 for op, rate in zip(OPERATIONS, per_operation, strict=True) if rate > 0]  # fmt: skip
        return {
            "seconds": round(elapsed_max, 3),
            "operations": ops,
            "operations_per_second": round(ops_per_second, 3),
            "hit_rate": _r(hits / (hits + misses), 6) if hits + misses else None,
            "errors": errors,
            "error_ratio": _r(errors / ops, 6) if ops else None,
            "rates": rates,
            "evictions_per_second": evictions_per_second,
        }

    def _call_rates(self, caches: list[YokedCache], mono: float) -> tuple[list[float], float | None]:
        """Per-operation calls per second and evictions per second over about the last window:
        from the newest tick reading at least a window old, else since the cache's start."""
        rates = [0.0] * len(OPERATIONS)
        evictions: float | None = None
        for cache in caches:
            now_values = _calls_reading(cache)
            base_t, base = cache.telemetry.counters.started_monotonic, (0,) * len(now_values)
            for t, values in reversed(self._calls.get(id(cache), ())):
                if mono - t >= self.window:
                    base_t, base = t, values
                    break
            elapsed = mono - base_t
            if elapsed <= 0:
                continue
            diffs = [(a - b) / elapsed for a, b in zip(now_values, base, strict=True)]
            rates = [r + d for r, d in zip(rates, diffs, strict=False)]
            if cache.backend.evictions is not None:
                evictions = (evictions or 0.0) + diffs[-1]
        return rates, None if evictions is None else round(evictions, 3)

    def _latency_rows(self, caches: list[YokedCache], now_perf: float) -> list[dict[str, Any]]:
        """p50/p95/p99 per operation over the caches' recent operations inside the window."""
        by_op: dict[str, list[float]] = {}
        since = now_perf - self.window
        for cache in caches:
            telemetry = cache.telemetry
            state = self._chunks.get(id(cache)) or _Chunks()  # not read by a tick yet: all is fresh
            state.durations(telemetry.recent, telemetry.counters.total_calls, since, by_op)
        rows = []
        for op in OPERATIONS:
            values = by_op.get(op)
            if values:
                values.sort()  # presorted runs, one per chunk: a merge
                rows.append({
                    "operation": op,
                    "count": len(values),
                    "p50_seconds": round(percentile(values, 0.50), 9),
                    "p95_seconds": round(percentile(values, 0.95), 9),
                    "p99_seconds": round(percentile(values, 0.99), 9),
                })  # fmt: skip
        return rows

    def _charts(self, group: _Group, seconds: float, mono: float, wall: float) -> dict[str, list[list[Any]]]:
        """``[[unix time, value], ...]`` for ops/s, hit rate and p99, oldest first.

        Ops/s and hit rate are the differences between consecutive readings of the caches'
        counter windows (true averages over each interval); with several caches of one name,
        intervals ending in the same second are added up.
        """
        merged: dict[float, list[float]] = {}  # key -> [ops/s, hits, misses, operations, errors]
        single = len(group.caches) == 1
        for cache in group.caches:
            readings = cache.rates.history(seconds)
            for (t0, (ops0, e0, h0, m0)), (t1, (ops1, e1, h1, m1)) in itertools.pairwise(readings):
                dt = t1 - t0
                if dt <= 0 or mono - t1 >= seconds:
                    continue
                key = t1 if single else float(round(t1))
                point = merged.setdefault(key, [0.0, 0.0, 0.0, 0.0, 0.0])
                point[0] += (ops1 - ops0) / dt
                point[1] += h1 - h0
                point[2] += m1 - m0
                point[3] += ops1 - ops0
                point[4] += e1 - e0
        ops, hit_rate, error_ratio = [], [], []
        for t in sorted(merged):
            rate, hits, misses, operations, errors = merged[t]
            at = round(wall - (mono - t), 3)
            ops.append([at, round(rate, 3)])
            hit_rate.append([at, _r(hits / (hits + misses), 6) if hits + misses else None])
            error_ratio.append([at, _r(errors / operations, 6) if operations else None])
        with self._lock:
            points = list(self._p99.get(group.name, ()))
        p99 = [[round(wall - (mono - t), 3), v] for t, v in points if mono - t < seconds]
        return {"operations_per_second": ops, "hit_rate": hit_rate, "p99_seconds": p99, "error_ratio": error_ratio}


def _durations_by_operation(recent: Iterable[tuple[float, float, str]], since: float,
                            into: dict[str, list[float]]) -> None:  # fmt: skip
    """Add the durations of the recent operations that started after ``since``, by operation.

    Runs on every request for up to 2,048 operations per cache, so every step is one C-level
    pass (no Python code per operation): with a Python loop here, 10 busy caches took 4-5 ms.
    Entries are in completion order, so their start times are sorted but for overlaps: the
    cut by bisection is off by at most a few concurrent operations.
    """
    entries = list(recent)  # one C-level copy: safe while the event loop appends
    if not entries:
        return
    starts, durations, operations = zip(*entries, strict=True)
    if starts[0] <= since:
        cut = bisect.bisect_right(starts, since)
        durations, operations = durations[cut:], operations[cut:]
    for op in set(operations):
        found = into.setdefault(op, [])
        found.extend(itertools.compress(durations, map(operator.eq, itertools.repeat(op), operations)))


def _calls_reading(cache: YokedCache) -> tuple[int, ...]:
    """Calls per operation (in :data:`OPERATIONS` order), then evictions (0 when not counted)."""
    calls = cache.telemetry.counters.calls
    return (*(calls.get(op, 0) for op in OPERATIONS), cache.backend.evictions or 0)


def _evictions(caches: list[YokedCache]) -> int | None:
    """Entries evicted since start; ``None`` when no cache of the name counts evictions (Redis)."""
    counted = [c.backend.evictions for c in caches if c.backend.evictions is not None]
    return sum(counted) if counted else None


def _max_memory(caches: list[YokedCache]) -> int | None:
    """The bound on bytes held (``CacheConfig.max_memory_bytes``, memory backend), summed over the
    instances; ``None`` when any is unbounded or the backend is not the in-process one."""
    limits = [c.config.max_memory_bytes if c.backend.info.kind == "memory" else None for c in caches]
    return None if not limits or None in limits else sum(limits)  # type: ignore[arg-type]


def _health(caches: list[YokedCache]) -> dict[str, Any]:
    """The worst status of the caches, with every distinct reason once."""
    statuses, reasons = [], []
    for cache in caches:
        status, why = current_health(cache)
        statuses.append(status)
        reasons.extend(r for r in why if r not in reasons)
    return {"status": worst_status(statuses), "reasons": reasons}


def _breaker(breakers: list[Any]) -> dict[str, Any] | None:
    if not breakers:
        return None
    return {
        "state": max((b.state for b in breakers), key=lambda s: _BREAKER_ORDER.get(s, 2)),
        "opens": sum(b.opens for b in breakers),
    }


def _totals(caches: list[YokedCache]) -> tuple[dict[str, int], list[dict[str, Any]], float]:
    """``(totals since start, error counts by operation and error type, uptime in seconds)``."""
    totals = dict.fromkeys(_TOTALS, 0)
    errors: dict[tuple[str, str], int] = {}
    uptime = 0.0
    for cache in caches:
        c = cache.telemetry.counters
        totals["operations"] += c.total_calls
        totals["gets"] += c.hits + c.misses
        totals["hits"] += c.hits
        totals["misses"] += c.misses
        totals["sets"] += c.sets
        totals["deletes"] += c.deletes
        totals["invalidations"] += c.invalidations
        totals["cancellations"] += c.cancellations
        for key, count in list(c.errors.items()):
            errors[key] = errors.get(key, 0) + count
            totals["errors"] += count
        uptime = max(uptime, time.monotonic() - c.started_monotonic)
    rows = [{"operation": op, "error_type": etype, "count": n} for (op, etype), n in sorted(errors.items())]
    return totals, rows, uptime


def _computations(caches: list[YokedCache]) -> dict[str, int]:
    """Cache-aside since start (``get_or_set``, ``@cached``): factory runs and callers spared one."""
    out = {"ok": 0, "error": 0, "coalesced_process": 0, "coalesced_lock": 0, "saved": 0, "early_refreshes": 0,
           "stale_serves": 0}  # fmt: skip
    for cache in caches:
        counts = cache.computations()
        out["ok"] += counts["computations_ok"]
        out["error"] += counts["computations_error"]
        for name in ("coalesced_process", "coalesced_lock", "saved", "early_refreshes", "stale_serves"):
            out[name] += counts[name]
    return out


def _pool(pools: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not pools:
        return None
    in_use = sum(p["in_use"] for p in pools)
    maximum = sum(p["max_connections"] for p in pools)
    return {
        "in_use": in_use,
        "idle": sum(p["idle"] for p in pools),
        "max": maximum,
        "utilization": _r(min(1.0, in_use / maximum), 6) if maximum else None,
    }


def _near(stats: list[Any]) -> dict[str, Any] | None:
    """The near caches' figures (docs/near-cache.md), summed; ``None`` where none is configured."""
    if not stats:
        return None
    hits, misses = sum(n.hits for n in stats), sum(n.misses for n in stats)
    return {
        "hit_rate_since_start": _r(hits / (hits + misses), 6) if hits + misses else None,
        "hits": hits,
        "misses": misses,
        "entries": sum(n.entries for n in stats),
        "bytes": sum(n.bytes for n in stats),
        "invalidations": sum(n.invalidations for n in stats),
        "flushes": sum(n.flushes for n in stats),
    }


def _usage(usages: list[Any], wall: float) -> dict[str, Any] | None:
    if not usages:
        return None
    methods = sorted({u.method for u in usages})
    measured = [u.measured_at for u in usages if u.measured_at]
    return {
        "keys": sum(u.keys for u in usages),
        "bytes": sum(u.bytes for u in usages),
        "estimated": any(u.estimated for u in usages),
        "method": methods[0] if len(methods) == 1 else "mixed",
        "keys_error": sum(u.keys_error for u in usages),
        "bytes_error": sum(u.bytes_error for u in usages),
        "age_seconds": round(max(0.0, wall - min(measured)), 3) if measured else None,
    }


#: The statuses, worst last (the page colours them green, amber, red).
STATUSES = (HEALTHY, DEGRADED, UNHEALTHY)
