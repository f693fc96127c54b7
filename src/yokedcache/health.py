"""Health checks and statistics that tell the truth without disturbing the cache.

A check never writes keys, never counts itself in the cache's statistics, never trips the
circuit breaker, and answers within ``health_check_timeout`` even when Redis hangs. A fresh,
idle cache is healthy: no traffic is not a warning.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

from .percentiles import percentile
from .telemetry.semconv import error_type

if TYPE_CHECKING:
    from .backends.base import Backend, Usage
    from .backends.near_cache import NearStats
    from .resilience import CircuitBreaker
    from .telemetry.instrumentation import Instrumentation
    from .telemetry.observers import StateReading
    from .window import CounterWindow

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"


class HealthSettings(Protocol):
    """The settings a check reads (``CacheConfig`` has them)."""

    @property
    def health_check_timeout(self) -> float: ...

    @property
    def degraded_error_rate(self) -> float: ...


class HealthSource(Protocol):
    """What a check needs of a cache: ``YokedCache`` provides it.

    Declared here, next to its only user, so this module depends on no cache class: the facade
    imports health, never the reverse, and a check cannot come to rely on the cache's private
    state. Everything a check does to the cache (adopt an event loop, ping, record the verdict)
    goes through these members.
    """

    backend: Backend
    breaker: CircuitBreaker | None
    telemetry: Instrumentation
    rates: CounterWindow
    #: The newest backend failure: (monotonic time, reason in words, server error code).
    last_failure: tuple[float, str, str | None] | None
    #: The near cache's counts and link state (``backends/near_cache.py``), or ``None``.
    near_stats: NearStats | None

    @property
    def config(self) -> HealthSettings: ...

    @property
    def name(self) -> str: ...

    @property
    def closed(self) -> bool: ...

    @property
    def event_loop(self) -> asyncio.AbstractEventLoop | None: ...

    def probe(self) -> Awaitable[None]: ...

    def record_probe(self, ok: bool) -> None: ...

    def pool_stats(self) -> dict[str, Any] | None: ...

    def state(self) -> StateReading: ...

    def twin_backend(self) -> Backend | None: ...


@dataclass(frozen=True)
class CacheStats(Mapping[str, Any]):
    """``await cache.get_stats()``: counts since start and what the cache holds now.

    ``hit_rate`` is ``None`` until something has been read: no value, not a misleading 0.
    Read it as attributes (``stats.hit_rate``) or as a read-only mapping (``stats["hit_rate"]``,
    ``dict(stats)``), as ``detailed_health_check()``'s dict reads: both spellings work.
    """

    hit_rate: float | None
    hits: int
    misses: int
    sets: int
    deletes: int
    invalidations: int
    errors: int
    total_keys: int
    total_memory_bytes: int
    uptime_seconds: float
    operations: dict[str, int] = field(default_factory=dict)
    backend: str = "memory"
    name: str = "memory"  # cache.name
    #: How total_keys / total_memory_bytes were obtained: "exact" (counted), "sampled"
    #: (estimated from random keys, see the errors) or "exact_keys" (keys counted by a paced
    #: SCAN, bytes estimated). ``estimated`` is False only for "exact".
    usage_method: str = "exact"
    estimated: bool = False
    #: 95 % half-widths of the estimates (0 when exact) and the random keys drawn.
    total_keys_error: int = 0
    total_memory_bytes_error: int = 0
    usage_samples: int = 0
    usage_age_seconds: float | None = None
    #: Whole-database figures (every prefix, not just this cache's): DBSIZE and the keys with
    #: a TTL of the selected database, and ``INFO memory`` used_memory of the whole server.
    database_keys: int | None = None
    database_keys_with_ttl: int | None = None
    server_used_memory_bytes: int | None = None

    @classmethod
    def with_usage(cls, usage: Usage | None, **counts: Any) -> CacheStats:
        """Counts plus the usage figures, labelled as exact or estimated."""
        if usage is None:
            return cls(total_keys=0, total_memory_bytes=0, **counts)
        db = usage.database
        return cls(
            total_keys=usage.keys,
            total_memory_bytes=usage.bytes,
            usage_method=usage.method,
            estimated=usage.estimated,
            total_keys_error=usage.keys_error,
            total_memory_bytes_error=usage.bytes_error,
            usage_samples=usage.samples,
            usage_age_seconds=max(0.0, time.time() - usage.measured_at) if usage.measured_at else None,
            database_keys=db.keys if db else None,
            database_keys_with_ttl=db.keys_with_ttl if db else None,
            server_used_memory_bytes=db.used_memory_bytes if db else None,
            **counts,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # -- the Mapping view: the field names are the keys --------------------------------------
    def __getitem__(self, key: str) -> Any:
        if key not in _STATS_FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_STATS_FIELDS)

    def __len__(self) -> int:
        return len(_STATS_FIELDS)


_STATS_FIELDS = tuple(f.name for f in fields(CacheStats))


@dataclass(frozen=True)
class ComprehensiveMetrics:
    """``cache.get_comprehensive_metrics()``: rates and latency, computed without I/O.

    ``hit_rate`` is ``None`` before the first read; ``operations_per_second`` is counter
    differences over ``window`` (since start while the cache is younger than that).
    """

    hit_rate: float | None
    avg_response_time: float
    total_operations: int
    error_rate: float
    p50_response_time: float
    p95_response_time: float
    p99_response_time: float
    operations_per_second: float
    window_seconds: float
    timestamp: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def comprehensive_metrics(cache: HealthSource, window: float = 60.0) -> ComprehensiveMetrics:
    counters = cache.telemetry.counters
    total = counters.total_calls
    recent = list(cache.telemetry.recent)
    now = time.perf_counter()
    in_window = [elapsed for started, elapsed, _op in recent if now - started <= window]
    durations = sorted(in_window)
    # A true rate: counter differences over the window (the sample buffer above is bounded).
    span, (calls_in_window, *_rest) = cache.rates.delta(window)
    total_duration = sum(counters.duration_sum.values())
    return ComprehensiveMetrics(
        hit_rate=counters.hit_rate,
        avg_response_time=total_duration / total if total else 0.0,
        total_operations=total,
        error_rate=counters.error_total / total if total else 0.0,
        p50_response_time=percentile(durations, 0.50),
        p95_response_time=percentile(durations, 0.95),
        p99_response_time=percentile(durations, 0.99),
        operations_per_second=calls_in_window / span if span > 0 else 0.0,
        window_seconds=window,
        timestamp=time.time(),
    )


async def _ping(
    cache: HealthSource, timeout: float, backend: Backend | None = None
) -> tuple[bool, float | None, str | None]:
    """Ping the backend directly (not through the breaker); never waits past ``timeout``.

    ``backend``: a throwaway twin of the cache's backend, for a check before the cache's own
    event loop exists (its connections must not be bound to the checker's loop).
    """
    if cache.closed:
        return False, None, "cache is closed"
    if backend is None:
        backend = cache.backend
        ping = cache.probe()  # the reserved lane: never an operation's connection
    else:
        ping = backend.ping()
    started = time.perf_counter()
    task = asyncio.ensure_future(ping)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()  # do not await: redis-py may absorb the cancellation mid-read
        cache.record_probe(False)
        return False, None, f"timed out after {timeout:g}s"
    exc = task.exception()
    cache.record_probe(exc is None)
    if exc is not None:
        return False, None, describe_failure(backend, exc)
    return True, time.perf_counter() - started, None


async def is_healthy(cache: HealthSource) -> bool:
    ok, _, _ = await _ping(cache, cache.config.health_check_timeout)
    return ok


async def detailed_health_check(cache: HealthSource, *, probe: Backend | None = None) -> dict[str, Any]:
    ok, latency, problem = await _ping(cache, cache.config.health_check_timeout, probe)
    breaker = cache.breaker.snapshot() if cache.breaker is not None else {"state": "disabled"}
    pool = cache.pool_stats()
    perf = comprehensive_metrics(cache).to_dict()
    reasons: list[str] = []
    if not ok:
        reasons.append(f"backend ping failed: {problem}")
    if breaker["state"] == "open":
        why = breaker.get("last_error")  # the cause, in the words the outage WARNING used
        reasons.append(f"circuit breaker open (last error: {why})" if why else "circuit breaker open")
    status = UNHEALTHY if reasons else HEALTHY
    if status == HEALTHY:
        reasons = _degraded_reasons(cache, breaker, pool)
        if reasons:
            status = DEGRADED
    info = cache.backend.info
    report = {
        "name": cache.telemetry.label,  # the name cap's decision, as on the cache's series
        "status": status,
        "reasons": reasons,
        "backend": {
            "kind": info.kind,
            "host": info.host,
            "port": info.port,
            "db": info.db,
            "url": info.extra.get("url"),
        },
        "redis_connected": ok if cache.backend.remote else None,
        "ping_latency_seconds": latency,
        "connection_pool": pool,
        "circuit_breaker": breaker,
        "performance_metrics": perf,
        "checked_at": time.time(),
    }
    near = cache.near_stats
    if near is not None:  # only with a near cache (docs/near-cache.md)
        report["near_cache"] = {"link_up": near.link_up, "link_error": near.link_error, "entries": near.entries,
                                "bytes": near.bytes, "flushes": near.flushes}  # fmt: skip
    return report


def _degraded_reasons(cache: HealthSource, breaker: dict[str, Any], pool: dict[str, Any] | None) -> list[str]:
    reasons: list[str] = []
    failing = _recent_failures(cache)
    if failing is not None:
        reasons.append(failing)
    if breaker["state"] == "half_open":
        reasons.append("circuit breaker half-open (recovering)")
    if pool is not None and pool["utilization"] >= 0.9:
        reasons.append(f"connection pool {pool['utilization']:.0%} in use")
    near = cache.near_stats
    if near is not None and not near.link_up and near.link_error is not None and not cache.closed:
        reasons.append(f"near cache invalidation link down ({near.link_error}): every GET goes to Redis")
    return reasons


def current_health(cache: HealthSource) -> tuple[str, list[str]]:
    """Status and reasons from what the cache already knows, with no I/O (the status page).

    :func:`detailed_health_check` pings, which takes a round trip and up to
    ``health_check_timeout`` against a hung server; a page redrawn every second must not.
    Unhealthy when the breaker is open or the newest backend call or background ping failed
    (the exported ``yokedcache_cache_health`` gauge is then 0 too), degraded for the same
    reasons as the detailed check (a half-open breaker among them), in the same words.
    """
    if cache.closed:
        return UNHEALTHY, ["cache is closed"]
    breaker = cache.breaker.snapshot() if cache.breaker is not None else {"state": "disabled"}
    last = cache.last_failure
    why = (f"{last[1]} ({last[2]})" if last[2] else last[1]) if last is not None else None
    if breaker["state"] == "open":
        cause = breaker.get("last_error")
        return UNHEALTHY, [f"circuit breaker open (last error: {cause})" if cause else "circuit breaker open"]
    if breaker["state"] != "half_open":  # half-open: a trial is under way, degraded below
        if breaker.get("consecutive_failures"):
            n = breaker["consecutive_failures"]
            return UNHEALTHY, [f"backend failing: {why or 'error'} ({n} in a row)"]
        if not cache.state().healthy:  # closed, nothing failing: the last ping failed
            return UNHEALTHY, [f"background ping failed{f' (last error: {why})' if why else ''}"]
    reasons = _degraded_reasons(cache, breaker, cache.backend.pool_stats())
    return (DEGRADED if reasons else HEALTHY), reasons


def describe_failure(backend: Backend, exc: BaseException) -> str:
    """Words for why a backend call failed ("authentication failed (WRONGPASS)"), never a secret."""
    failure = backend.classify_error(exc)
    if failure is None:
        return error_type(exc)
    return f"{failure.reason} ({failure.code})" if failure.code else failure.reason


def _recent_failures(cache: HealthSource, window: float = 60.0) -> str | None:
    """A reason to call the cache degraded: operations failing above the configured share."""
    last = cache.last_failure
    if last is None or time.monotonic() - last[0] > 10.0:  # nothing failed lately: over
        return None
    elapsed, (calls, errors, _hits, _misses) = cache.rates.delta(window)
    if not errors or not calls or errors / calls < cache.config.degraded_error_rate:
        return None
    _, reason, code = last
    why = f"{reason} ({code})" if code else reason
    return f"{errors} of {calls} operations failed in the last {elapsed:.0f}s: {why}"


def _unhealthy(cache: HealthSource, reason: str) -> dict[str, Any]:
    return {"name": cache.telemetry.label, "status": UNHEALTHY, "reasons": [reason],
            "backend": {"kind": cache.backend.info.kind}, "checked_at": time.time()}  # fmt: skip


def readiness_report(cache: HealthSource, timeout: float) -> dict[str, Any]:
    """The detailed check, run from another thread (an HTTP probe) on the cache's own loop.

    The cache's connections belong to its event loop, so the check is scheduled there; a loop
    too busy to answer within ``timeout`` is itself a reason not to take traffic.
    """
    if cache.closed:
        return _unhealthy(cache, "cache is closed")
    loop = cache.event_loop
    if loop is None or loop.is_closed() or not loop.is_running():
        if not cache.backend.loop_bound:  # nothing loop-bound: check it right here
            return asyncio.run(detailed_health_check(cache))
        twin = cache.twin_backend()
        if twin is None:
            return _unhealthy(cache, "not started: no running event loop has used this cache yet")
        # No operation yet (a pod waiting for its first request must still become ready): ping
        # through a twin backend on a private loop, so the cache's pool stays unbound.
        return asyncio.run(_check_before_first_use(cache, twin))
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        raise RuntimeError("readiness_report() blocks; on the cache's own loop use 'await detailed_health_check()'")
    future = asyncio.run_coroutine_threadsafe(detailed_health_check(cache), loop)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        return _unhealthy(cache, f"event loop did not run the health check within {timeout:g}s")


async def _check_before_first_use(cache: HealthSource, twin: Backend) -> dict[str, Any]:
    try:
        report = await detailed_health_check(cache, probe=twin)
    finally:
        with contextlib.suppress(Exception):  # a hung server: its sockets die with this loop
            await asyncio.wait_for(twin.close(), cache.config.health_check_timeout)
    report["checked_on"] = "a one-off connection: no operation has used this cache yet"
    return report


def worst_status(statuses: list[str]) -> str:
    order = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}
    return max(statuses, key=lambda s: order.get(s, 2), default=UNHEALTHY)


class MetricsHistory:
    """Down-sampled snapshots of :class:`ComprehensiveMetrics` kept for ``retention_days``.

    One snapshot per ``interval`` seconds (60 s by default), at most
    ``retention_days * 86400 / interval`` of them (10,080 for 7 days: 3.2 MB traced by
    ``python benchmarks/history_size.py``).
    """

    def __init__(self, retention_days: float, interval: float = 60.0) -> None:
        self.interval = interval
        self.snapshots: deque[ComprehensiveMetrics] = deque(maxlen=max(1, int(retention_days * 86400 / interval)))

    def add(self, snapshot: ComprehensiveMetrics) -> None:
        self.snapshots.append(snapshot)
