"""``YokedCache``: the async facade applications talk to.

It owns naming (key prefix, tag sets), serialisation, TTL defaults, resilience and the one
instrumentation point; backends only move bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from time import perf_counter
from typing import Any, TypeVar

from . import health, validation
from ._glob import escape_glob
from .backends.base import Backend, Usage
from .backends.memory import MemoryBackend
from .backends.near_cache import NearCache, NearCacheConfig, NearStats
from .cache_aside import CacheAside
from .config import MAX_TTL, CacheConfig
from .errors import CacheBackendError, CacheClosedError, CircuitOpenError
from .health import CacheStats, ComprehensiveMetrics
from .resilience import CLOSED, OPEN, CircuitBreaker, Guard
from .serializers import resolve_serializer
from .telemetry import semconv as sc
from .telemetry.instrumentation import Instrumentation, detach_background_context, suppressed
from .telemetry.near import NearInstruments
from .telemetry.observers import StateReading
from .window import CounterWindow

__all__ = ["YokedCache"]

log = logging.getLogger("yokedcache")

#: Tag sets live outside the data prefix so ``invalidate_pattern("*")`` never matches them.
TAG_ROOT = "yokedcache-tags:"

_MISSING = object()
R = TypeVar("R")
_get_running_loop = asyncio.get_running_loop

#: Backend closes started by the garbage collector (kept referenced until they finish).
_closing: set[asyncio.Task[None]] = set()


def _answered(found: object, _: None) -> tuple[bool, None]:
    return bool(found), None


def _false(_: object) -> bool:
    return False


def _zero(_: object) -> int:
    return 0


def _all_default(asked: tuple[list[str], Any]) -> dict[str, Any]:
    key_list, default = asked
    return dict.fromkeys(key_list, default)


def _check_key(key: object) -> str:
    if type(key) is not str:
        raise TypeError(f"key: expected a str, got {type(key).__name__}")
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: Redis could not store it, so neither do we
            raise ValueError("key: must be encodable as UTF-8 (it contains a lone surrogate)") from None
    return key


_TTL_RULE = f"must be a positive number of seconds up to {MAX_TTL:.0e}"


def _check_ttl(ttl: object) -> float:
    # Every set with a TTL passes here: a valid one costs a predicate and a comparison (as the
    # inline check did, ~130 ns); validation.number only words the error.
    if not (validation.is_number(ttl) and 0 < ttl <= MAX_TTL):  # type: ignore[operator]
        validation.number("ttl", ttl, rule=_TTL_RULE, kind="seconds as a number or None", minimum=0,
                          maximum=MAX_TTL, allow_zero=False, finite=True)  # fmt: skip
    return float(ttl)  # type: ignore[arg-type]


def _check_tags(tags: object) -> tuple[str, ...]:
    if tags is None:
        return ()
    if isinstance(tags, str):
        tags = (tags,)
    if not isinstance(tags, Iterable):
        raise TypeError(f"tags: expected a str or an iterable of str, got {type(tags).__name__}")
    out = tuple(dict.fromkeys(tags))
    for tag in out:
        if type(tag) is not str:
            raise TypeError(f"tags: every tag must be a str, got {type(tag).__name__}")
    return out


async def _background_work(ref: weakref.ReferenceType[YokedCache], stop: asyncio.Event) -> None:
    """Background work on its own schedule each: usage refresh (Redis) and history snapshots.

    Holds the cache only while working, never while it sleeps, so dropping the last reference
    to a cache ends this task too (see :meth:`YokedCache.__del__`).
    """
    # The task inherited the context of whichever operation started it: without this, the
    # refreshes would show up inside that user's trace.
    detach_background_context()
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    # redis-py can absorb a cancellation mid-command; the task still knows it was asked to stop.
    cancelling = getattr(task, "cancelling", lambda: 0)  # Python >= 3.11
    cache = ref()
    if cache is None or cache._closed:
        return
    exact: asyncio.Task[None] | None = None
    if cache.config.stats_exact_keys and cache.backend.counts_keys:
        exact = cache._exact_counter = loop.create_task(_count_keys_forever(ref, stop))
    next_usage = next_snapshot = loop.time()
    del cache
    try:
        while not cancelling():
            cache = ref()
            if cache is None or cache._closed:
                return
            now = loop.time()
            due: list[float] = []
            if cache.backend.current_usage() is None:  # measuring takes I/O: keep a recent answer
                if now >= next_usage:
                    # Reuse a sample another cache or process shared within half an interval.
                    await cache._refresh_usage(max_age=cache.config.stats_refresh_interval / 2)
                    next_usage = now + cache.config.stats_refresh_interval
                due.append(next_usage)
            history = cache.metrics_history  # re-read: collection may start while this runs
            if history is not None:
                if now >= next_snapshot:
                    history.add(cache.get_comprehensive_metrics())
                    next_snapshot = now + history.interval
                due.append(next_snapshot)
            del cache, history
            if not due or stop.is_set() or cancelling():
                return
            await _sleep_unless(stop, min(due) - loop.time())
    finally:
        if exact is not None:
            await _finish(exact)


async def _count_keys_forever(ref: weakref.ReferenceType[YokedCache], stop: asyncio.Event) -> None:
    """Exact key counts back to back, each paced to ``stats_exact_cpu_budget`` (opt-in)."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        cache = ref()
        if cache is None or cache._closed:
            return
        backend = cache.backend
        pattern = escape_glob(cache._prefix) + "*"
        budget, interval = cache.config.stats_exact_cpu_budget, cache.config.stats_refresh_interval
        generation = backend.invalidations
        started = loop.time()
        try:  # the reserved lane, without its deadline: a paced count takes as long as it takes
            count = functools.partial(backend.count_keys, pattern, cpu_budget=budget)
            keys = await cache._side_call(count, bounded=False)
        except Exception as exc:  # unreachable: try again next interval
            log.debug("exact key count failed: %s", type(exc).__name__)
        else:
            cache._exact_keys = (keys, generation, time.time())
        del cache, backend
        # at most one count per refresh interval, however fast the keyspace is walked
        await _sleep_unless(stop, interval - (loop.time() - started))


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep up to ``seconds`` or until ``stop`` is set.

    asyncio.wait, not wait_for: on Python 3.11 wait_for can swallow a cancellation.
    """
    if seconds <= 0 or stop.is_set():
        return
    waiter = asyncio.get_running_loop().create_task(stop.wait())
    try:
        await asyncio.wait({waiter}, timeout=seconds)
    finally:
        waiter.cancel()


async def _finish(task: asyncio.Task[Any], deadline: float = 5.0) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling again if a library swallowed it.

    Gives up after ``deadline`` seconds (every Redis command has its own deadline, so a task
    that checks for shutdown between commands ends well before).
    """
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline
    while not task.done() and loop.time() < give_up:
        task.cancel()
        await asyncio.wait({task}, timeout=min(0.05, max(0.0, give_up - loop.time())))
    if not task.done():
        log.warning("background task did not stop within %.1fs", deadline)


def _close_in_background(backend: Backend) -> None:
    task = asyncio.get_running_loop().create_task(backend.close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


class YokedCache:
    """Async cache with TTLs and tags over Redis or memory, instrumented with OpenTelemetry.

    ``YokedCache()``, ``YokedCache(config)``, ``YokedCache(config=config)`` and
    ``YokedCache(redis_url=..., key_prefix=...)`` (fields of :class:`CacheConfig`) all work.
    """

    def __init__(self, config: CacheConfig | None = None, **overrides: Any) -> None:
        if config is None:
            config = CacheConfig(**overrides)
        elif not isinstance(config, CacheConfig):
            raise TypeError(f"config: expected a CacheConfig, got {type(config).__name__}")
        elif overrides:
            raise TypeError("pass either a CacheConfig or keyword settings, not both")
        self.config = config
        self._prefix = config.key_prefix
        self._tag_prefix = TAG_ROOT + config.key_prefix
        self._serializer = resolve_serializer(config.serializer)
        self._dumps = self._serializer.dumps
        self._loads = self._serializer.loads
        self._default_ttl = config.default_ttl
        self._fail_open = config.fail_open
        self.backend: Backend = self._make_backend(config)
        #: Near cache (docs/near-cache.md): its counts outlive a backend rebuilt for a new loop.
        self.near_stats: NearStats | None = NearStats() if config.near_cache is not None else None
        self._near: NearCache | None = None
        self._near_instruments: NearInstruments | None = None

        #: Built from the config (so it can be rebuilt for another event loop), or handed to us.
        self._owns_backend = config.backend is None or isinstance(config.backend, str)
        # A remote backend's calls go through the guard, which asks it what each exception means.
        classify = self.backend.classify_error if self.backend.remote else None
        breaker = (
            CircuitBreaker(config.circuit_failure_threshold, config.circuit_recovery_timeout)
            if config.circuit_breaker_enabled and classify is not None
            else None
        )
        self.breaker = breaker
        self._background: set[asyncio.Task[None]] = set()
        if breaker is not None:
            breaker.listeners.append(self._on_breaker_change)
        limit = self.backend.max_connections
        self._guard = (
            Guard(
                classify,
                breaker,
                config.retry_attempts,
                config.retry_backoff,
                max_concurrency=limit,
                timeout=config.operation_timeout if self._owns_backend else None,
            )
            if classify is not None
            else None
        )
        #: The newest backend failure: (monotonic time, reason in words, server error code).
        self.last_failure: tuple[float, str, str | None] | None = None
        #: The outage in progress (see _note_failure): when it began, errors before it, whether
        #: its WARNING went out; and when the last WARNING did.
        self._outage_since: float | None = None
        self._outage_errors = 0
        self._outage_warned = False
        self._warned_at: float | None = None

        self._usage: Usage | None = None
        #: ``backend.invalidations`` when ``_usage`` was measured (stale once it moves).
        self._usage_generation: int | None = None
        #: Last exact count with ``stats_exact_keys``: (keys, invalidations at its start, time).
        self._exact_keys: tuple[int, int | None, float] | None = None
        self._exact_counter: asyncio.Task[None] | None = None
        #: This cache's SET + DELETE count when the kept usage sample was started.
        self._usage_sets = 0
        #: The event loop that uses this cache (health checks from other threads run there).
        self._loop: asyncio.AbstractEventLoop | None = None
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
        #: Connections belong to an event loop (Redis), so every operation checks it is on that loop;
        #: the memory backend's dict does not (benchmarks/overhead.py target 3b: 60 ns of ~1.6 µs).
        self._loop_bound = self.backend.loop_bound
        #: The loop every per-loop piece (connections, background task) is ready for; any other
        #: value -- None after close(), a new loop -- sends the next operation through _prepare.
        self._bound_loop: asyncio.AbstractEventLoop | None = None
        #: Breaker success count when the last background ping/refresh failed (None: it did not).
        self._ping_failed_at: int | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._needs_refresher = self.backend.current_usage() is None
        meter_provider = config.metrics.meter_provider if config.metrics is not None else config.meter_provider
        tracer_provider = config.tracer_provider
        if tracer_provider is None and config.metrics is not None:
            tracer_provider = config.metrics.tracer_provider
        info = self.backend.info
        self.telemetry = Instrumentation(
            backend_info=info,
            name=config.name,
            meter_provider=meter_provider,
            tracer_provider=tracer_provider,
            metrics_enabled=config.enable_metrics,
            tracing_enabled=config.enable_tracing if config.enable_tracing is not None else self.backend.remote,
            capture_keys=config.capture_keys,
            db_client_metrics=config.db_client_metrics,
            driver=self.backend.driver_telemetry(),
            usage=self.usage_snapshot,
            evictions=lambda: self.backend.evictions,
            state=self.state,
            owner=weakref.ref(self),
        )
        self._observe_batches()
        self.metrics_history: health.MetricsHistory | None = None
        self._closed = False
        #: Operations, errors and hits over a sliding window (ops/s, error rate, health).
        self.rates = CounterWindow(self._totals)
        self._bind_backend()
        #: get_or_set and @cached: single-flight, locks, early refresh (cache_aside.py).
        self.cache_aside = CacheAside(self, self._call)

    @staticmethod
    def _make_backend(config: CacheConfig) -> Backend:
        if config.backend is not None and not isinstance(config.backend, str):
            return config.backend
        url = config.resolved_redis_url()
        if url is not None:
            from .backends.redis import RedisBackend
            from .backends.redis_cluster import RedisClusterBackend
            from .backends.redis_sentinel import RedisSentinelBackend

            flavours = (RedisClusterBackend, RedisSentinelBackend)
            backend_class = next((f for f in flavours if f.serves(url)), RedisBackend)
            return backend_class(
                url,
                max_connections=config.max_connections,
                # No per-read timeout in redis-py (asyncio.wait_for per write costs ~12 µs): the
                # guard puts one deadline of operation_timeout on each whole command instead.
                socket_timeout=None,
                connect_timeout=config.connect_timeout,
                auto_pipeline=config.auto_pipeline,
            )
        return MemoryBackend(max_keys=config.max_keys, max_memory_bytes=config.max_memory_bytes)

    def _bind_backend(self) -> None:
        """Hot-path shortcuts, bound once per backend: one that can answer synchronously
        (``supports_nowait``: memory) is called without a coroutine per operation; others are
        called through the guard (breaker + retries)."""
        backend = self.backend
        if self.near_stats is not None:
            self._install_near_cache(backend)
        nowait = backend.supports_nowait
        self._get_nowait: Callable[[str], bytes | None] | None = backend.get_nowait if nowait else None
        self._set_nowait: Callable[..., None] | None = backend.set_nowait if nowait else None
        self._backend_get = backend.get
        self._backend_set = backend.set

    def _install_near_cache(self, backend: Backend) -> None:
        """Put a near cache in front of ``backend``; ``get`` then tries process memory first."""
        settings = self.config.near_cache
        assert isinstance(settings, NearCacheConfig) and self.near_stats is not None  # CacheConfig made it so
        near = self._near = NearCache.install(backend, settings, self._prefix, self.near_stats)
        if self._near_instruments is None:
            self._near_instruments = NearInstruments.create(self.telemetry, self.near_stats)
        near.on_lag = self._near_instruments.record_lag
        if self._guard is not None and backend.pipeliner is not None:
            self._guard.self_admitting = near  # see _observe_batches
        self.get = self._near_get  # type: ignore[method-assign]

    async def _near_get(self, key: str, default: Any = None) -> Any:
        """``get`` with a near cache: a local copy that may be served answers with no round trip
        and no CLIENT span (it touched no database), but with its duration recorded; anything
        else is the plain :meth:`get`, whose backend call fills the local copy."""
        started = perf_counter()
        near = self._near
        if near is not None and type(key) is str and _get_running_loop() is self._bound_loop:
            raw = near.lookup(self._prefix + key)
            if raw is not None:
                try:
                    value = self._loads(raw)
                except Exception:
                    return await YokedCache.get(self, key, default)
                tel = self.telemetry
                tel.counters.hits += 1
                tel.finish(sc.OP_GET, started, None, True, value)
                return value
        return await YokedCache.get(self, key, default)

    @property
    def name(self) -> str:
        """``cache.name`` on this cache's metrics and spans (``CacheConfig.name`` or the backend kind)."""
        return self.telemetry.name

    def _observe_batches(self) -> None:
        """Auto-pipelined batches feed the batch-size histogram and PIPELINE spans. Pipelined
        calls skip the guard's admission and deadline: the pipeliner bounds its connections,
        queues in order and holds each operation to the same deadline itself, from the moment
        it was issued (admitting max_connections calls at once would only cap its batches, and a
        timer per caller would count one hung batch as many failures)."""
        self.backend.observe_batches(self.telemetry)
        pipeliner = self.backend.pipeliner
        if self._guard is not None:
            # A near cache's fill and writes call the pipeliner: they skip them alike.
            near = self._near if pipeliner is not None else None
            self._guard.self_admitting = near if near is not None else pipeliner
            if pipeliner is not None and self._guard.timeout is not None:  # the deadline, per round trip
                pipeliner.timeout = self._guard.timeout

    def __repr__(self) -> str:
        return f"YokedCache(name={self.name!r}, backend={self.backend!r}, key_prefix={self._prefix!r})"

    # -- plumbing -------------------------------------------------------------------------
    def _prepare(self, loop: asyncio.AbstractEventLoop) -> None:
        """First operation on ``loop``: refuse if closed, move to a new loop, start background work."""
        if self._closed:
            raise CacheClosedError("cache is closed: it opens no new connections (create a new YokedCache)")
        if self._loop is not None and self._loop is not loop:
            self._move_to_loop(loop)
        self._loop = loop
        if self._needs_refresher and self._refresher is None:
            self._start_refresher()
        if self._near is not None:
            self._near.start()
        self._bound_loop = loop

    def _move_to_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Used from a second event loop (``asyncio.run`` twice, a loop per test): start afresh.

        Sockets, futures and tasks belong to the loop that made them; using them from another
        loop fails half-way (a write goes out, then "Event loop is closed"). So connections are
        rebuilt for the new loop before any command is sent, and the old ones are closed on their
        own loop if it still runs, or left to the collector if it is gone.
        """
        old_loop, old_backend = self._loop, self.backend
        if not self._owns_backend and old_backend.loop_bound:
            raise RuntimeError(
                "this cache's backend was created outside the cache and holds connections of another "
                "event loop; give the cache a redis_url (it then reconnects per loop) or create it "
                "inside the loop that uses it"
            )
        log.debug("cache used from a new event loop: reconnecting there")
        if self._refresher is not None:
            if old_loop is not None and not old_loop.is_closed():
                old_loop.call_soon_threadsafe(self._refresher.cancel)
            self._refresher = None
            self._stop = None
        if self._owns_backend and old_backend.loop_bound:
            self.backend = self._make_backend(self.config)
            self._bind_backend()
            self._observe_batches()
            self._release_elsewhere(old_backend, old_loop)
        if self._guard is not None:
            self._guard.reset_for_loop()
        self.telemetry.reset_for_loop()

    async def _call(self, fn: Any, *args: Any) -> Any:
        loop = _get_running_loop()
        if loop is not self._bound_loop:
            self._prepare(loop)
        guard = self._guard
        if guard is None:
            return await fn(*args)
        return await guard.call(fn, *args)

    async def _run(
        self,
        op: str,
        settle: Callable[[Any, Any], tuple[R, bool | None]],
        fallback: Callable[[Any], R],
        fn: Callable[..., Awaitable[Any]],
        *args: Any,
        key: str | None = None,
        batch: int | None = None,
        context: Any = None,
    ) -> R:
        """One operation around one backend call: its span, timing, failure handling and record.

        Every operation but get and set goes through here, so they all start, fail (fail-open,
        cancellation) and finish alike; get and set inline the same steps (the comment above
        :meth:`get` gives the benchmark's figures).

        ``settle(answer, context)`` turns the backend's answer into the caller's value and the
        span's ``cache.hit``, counting what its operation counts; ``fallback(context)`` makes the
        fail-open answer, and only on failure (get_many's is a dict of every key). ``context``
        carries what they need of the call (get_many's keys and default), so they are plain
        functions, not closures made per call. benchmarks/operation_cost.py (memory, no SDK):
        the wrapper costs about 0.1 µs per operation over the hand-written bodies it replaced
        (delete 1.47 against 1.34-1.39 µs, get_many of 3 keys 3.94-4.02 against 3.75-3.89 µs),
        against a Redis round trip of 70-100 µs.
        """
        tel = self.telemetry
        active = tel.start_span(op, key, batch)
        started = perf_counter()
        try:
            # _call's steps, inline: one coroutine per operation, as before the wrapper
            # (benchmarks/operation_cost.py, memory: delete 1.67 µs through _call, 1.47 µs inline)
            loop = _get_running_loop()
            if loop is not self._bound_loop:
                self._prepare(loop)
            guard = self._guard
            answer = await (fn(*args) if guard is None else guard.call(fn, *args))
            value, hit = settle(answer, context)
        except BaseException as exc:
            self._failed(op, started, active, exc)
            return fallback(context)
        tel.finish(op, started, active, hit, value)
        return value

    def _deleted(self, removed: int, _: None) -> tuple[bool, None]:
        self.telemetry.counters.deletes += 1
        return bool(removed), None

    def _invalidated(self, removed: int, _: None) -> tuple[int, None]:
        count = int(removed)
        self.telemetry.counters.invalidations += 1
        return count, None

    def _got_many(
        self, raws: Sequence[bytes | None], asked: tuple[list[str], Any]
    ) -> tuple[dict[str, Any], bool | None]:
        key_list, default = asked
        loads = self._loads
        result: dict[str, Any] = {}
        hits = 0
        for key, raw in zip(key_list, raws, strict=True):
            if raw is None:
                result[key] = default
            else:
                result[key] = loads(raw)
                hits += 1
        counters = self.telemetry.counters
        counters.hits += hits
        counters.misses += len(key_list) - hits
        return result, (hits == len(key_list) if key_list else None)

    def _stored_many(self, _: None, count: int) -> tuple[bool, None]:
        self.telemetry.counters.sets += count
        return True, None

    async def _side_call(self, fn: Any, *args: Any, bounded: bool = True) -> Any:
        """Side work on the backend (pings, statistics) through the guard's reserved lane."""
        guard = self._guard
        with suppressed():  # ours, not the caller's: no spans in its trace
            return await (fn(*args) if guard is None else guard.side_call(fn, *args, bounded=bounded))

    def _failed(self, op: str, started: float, active: Any, exc: BaseException, tagged: bool = False) -> None:
        """Record a failure; re-raise unless the backend failed and we fail open.

        A caller's own cancellation (or a timeout around its task) is not a backend error: it
        is counted apart and never reaches the error rate.
        """
        if isinstance(exc, asyncio.CancelledError):
            self.telemetry.cancelled(op, active)
            raise exc
        if isinstance(exc, CacheClosedError):
            self.telemetry.end_span(active)
            raise exc
        self.telemetry.fail(op, started, active, exc, tagged)
        if isinstance(exc, CacheBackendError):
            self._note_failure(exc)
            if self._fail_open:
                return
        raise exc

    def _where(self) -> str:
        info = self.backend.info  # host and port only: never the URL, which may hold a password
        return f"{info.host}:{info.port}" if info.port is not None else (info.host or info.kind)

    def _note_failure(self, exc: CacheBackendError) -> None:
        """Remember the newest failure; one WARNING per outage, at most one a minute.

        An outage runs from a failure to the next call that succeeds (which logs one INFO if
        the outage was announced). A second outage within a minute of the last WARNING is
        announced when that minute is up, if it still lasts: flapping cannot flood the log.
        """
        now = time.monotonic()
        previous = self.last_failure
        if isinstance(exc, CircuitOpenError) and previous is not None:  # keep the cause, not "open"
            self.last_failure = (now, previous[1], previous[2])
        else:
            self.last_failure = (now, exc.reason, exc.code)
        if self._outage_since is None:
            self._outage_since = now
            self._outage_errors = self.telemetry.counters.error_total - 1
            if self._guard is not None:
                self._guard.on_next_success = self._recovered
        warned = self._warned_at
        if self._outage_warned or (warned is not None and now - warned < 60.0):
            return
        self._warned_at, self._outage_warned = now, True
        _, reason, code = self.last_failure
        log.warning(
            "cache backend %s failing: %s%s; %s",
            self._where(),
            reason,
            f" ({code})" if code else "",
            "returning defaults (fail_open)" if self._fail_open else "raising to callers",
        )

    def _recovered(self) -> None:
        """A call succeeded after failures: the outage is over (say so if it was announced)."""
        since = self._outage_since
        if since is None:
            return
        if self._outage_warned:
            failed = self.telemetry.counters.error_total - self._outage_errors
            log.info("cache backend %s recovered after %.1f s (%d operations failed meanwhile)", self._where(),
                     time.monotonic() - since, failed)  # fmt: skip
        self._outage_since, self._outage_warned = None, False

    def _ttl(self, ttl: float | None) -> float | None:
        return self._default_ttl if ttl is None else _check_ttl(ttl)

    def _totals(self) -> tuple[int, int, int, int]:
        """Cumulative (operations, errors, hits, misses) for :attr:`rates`."""
        c = self.telemetry.counters
        return c.total_calls, c.error_total, c.hits, c.misses

    def _start_refresher(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no running loop: try again on the next operation
            return
        self._loop = loop
        self._stop = asyncio.Event()
        # The task holds the cache weakly: a cache dropped without close() can still be collected.
        self._refresher = loop.create_task(_background_work(weakref.ref(self), self._stop))

    def _on_breaker_change(self, old: str, new: str) -> None:
        if new != OPEN:
            return
        # The server is deemed gone: drop idle sockets so recovery starts on fresh connections.
        try:
            task = asyncio.get_running_loop().create_task(self._drop_idle_connections())
        except RuntimeError:
            return
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _drop_idle_connections(self) -> None:
        try:
            await self.backend.drop_idle_connections()
        except Exception as exc:
            log.debug("dropping idle connections failed: %s", type(exc).__name__)

    async def refresh_usage(self) -> Usage | None:
        """Measure the keys and bytes under this cache's prefix now (kept for metrics and stats).

        On Redis this is an estimate from a bounded random sample (exact when the database is no
        bigger than the sample; ``Usage.method`` says which): O(1) in the size of the keyspace.
        """
        return await self._refresh_usage(max_age=0.0)

    async def _refresh_usage(self, max_age: float) -> Usage | None:
        backend = self.backend
        generation = backend.invalidations
        sets = self.telemetry.counters.sets + self.telemetry.counters.deletes  # writes the figures include
        if self._usage is not None and generation != self._usage_generation:
            max_age = 0.0  # we invalidated since: a shared pre-invalidation sample is stale
        try:
            estimate = functools.partial(backend.estimate_usage, self._prefix, max_age=max_age)
            self._usage = await self._side_call(estimate)
        except Exception as exc:  # a failed refresh keeps the last known figures
            log.debug("usage refresh failed: %s", type(exc).__name__)
            self.record_probe(False)
        else:
            self._usage_generation = generation
            self._usage_sets = sets
            self.record_probe(True)
        return self.usage_snapshot()

    def _tag_keys(self, tags: Sequence[str]) -> list[str]:
        prefix = self._tag_prefix
        return [prefix + t for t in tags]

    # -- operations -----------------------------------------------------------------------
    # get and set inline the steps of _run (span, timing, _failed, finish), plus a synchronous
    # path for a backend that has one, instead of calling it: benchmarks/overhead.py target 3b
    # measured memory get without an SDK at 2.19 µs through _run (19.1x a bare dict get, target
    # <= 10x) against 1.07 µs inline (9.3x); target 3a, 1.44x one histogram.record (target
    # <= 1.3x) against 1.22x. Medians of six runs; target 1 (Redis) cannot resolve the ~1 µs.
    async def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default`` when absent (or unreachable, fail-open)."""
        if type(key) is not str or not key.isascii():
            _check_key(key)
        full = self._prefix + key
        tel = self.telemetry
        active = tel.start_span(sc.OP_GET, full) if tel.tracing_enabled else None
        started = perf_counter()
        try:
            if self._loop_bound:
                loop = _get_running_loop()
                if loop is not self._bound_loop:
                    self._prepare(loop)
            elif self._bound_loop is None:  # memory: only the first use (and close) need a look
                self._prepare(_get_running_loop())
            nowait = self._get_nowait
            if nowait is not None:
                raw = nowait(full)
            else:
                guard = self._guard
                raw = await (self._backend_get(full) if guard is None else guard.call(self._backend_get, full))
            if raw is None:
                tel.counters.misses += 1
                tel.finish(sc.OP_GET, started, active, False)
                return default
            value = self._loads(raw)
        except BaseException as exc:
            self._failed(sc.OP_GET, started, active, exc)
            return default
        tel.counters.hits += 1
        tel.finish(sc.OP_GET, started, active, True, value)
        return value

    async def set(self, key: str, value: Any, ttl: float | None = None, tags: Iterable[str] | None = None) -> bool:
        """Store ``value``; ``ttl`` seconds (default ``default_ttl``). False if unreachable (fail-open)."""
        # inline, not through _run, for the figures above get
        if type(key) is not str or not key.isascii():
            _check_key(key)
        full = self._prefix + key
        expiry = self._default_ttl if ttl is None else _check_ttl(ttl)
        tag_keys = self._tag_keys(_check_tags(tags)) if tags is not None else ()
        data = self._dumps(value)  # raises SerializationError before anything is written
        tel = self.telemetry
        active = tel.start_span(sc.OP_SET, full, tagged=bool(tag_keys)) if tel.tracing_enabled else None
        started = perf_counter()
        try:
            if self._loop_bound:
                loop = _get_running_loop()
                if loop is not self._bound_loop:
                    self._prepare(loop)
            elif self._bound_loop is None:
                self._prepare(_get_running_loop())
            nowait = self._set_nowait
            if nowait is not None:
                nowait(full, data, expiry, tag_keys)
            else:
                guard = self._guard
                setter = self._backend_set
                await (setter(full, data, expiry, tag_keys) if guard is None
                       else guard.call(setter, full, data, expiry, tag_keys))  # fmt: skip
        except BaseException as exc:
            self._failed(sc.OP_SET, started, active, exc, bool(tag_keys))
            return False
        tel.counters.sets += 1
        tel.finish(sc.OP_SET, started, active, None, True, bool(tag_keys))
        return True

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed."""
        full = self._prefix + _check_key(key)
        return await self._run(sc.OP_DELETE, self._deleted, _false, self.backend.delete, [full], key=full)

    async def exists(self, key: str) -> bool:
        full = self._prefix + _check_key(key)
        return await self._run(sc.OP_EXISTS, _answered, _false, self.backend.exists, full, key=full)

    async def get_many(self, keys: Iterable[str], default: Any = None) -> dict[str, Any]:
        """``{key: value}`` for every requested key (``default`` where absent). One round trip."""
        if isinstance(keys, (str, bytes)):  # a str is an iterable of one-letter keys: never meant
            raise TypeError(f"keys: expected an iterable of str keys, got a single {type(keys).__name__}")
        key_list = [_check_key(k) for k in keys]
        prefix = self._prefix
        return await self._run(
            sc.OP_GET_MANY,
            self._got_many,
            _all_default,
            self.backend.get_many,
            [prefix + k for k in key_list],
            batch=len(key_list),
            context=(key_list, default),
        )

    async def set_many(
        self, items: Mapping[str, Any], ttl: float | None = None, tags: Iterable[str] | None = None
    ) -> bool:
        """Store every item atomically on Redis (one MULTI); all values are serialised first."""
        if not isinstance(items, Mapping):
            raise TypeError(f"items: expected a mapping of key to value, got {type(items).__name__}")
        prefix = self._prefix
        pairs = [(prefix + _check_key(k), self._dumps(v)) for k, v in items.items()]
        expiry = self._ttl(ttl)
        tag_list = _check_tags(tags)
        tag_keys = self._tag_keys(tag_list) if tag_list else ()
        return await self._run(sc.OP_SET_MANY, self._stored_many, _false, self.backend.set_many, pairs, expiry,
                               tag_keys, batch=len(pairs), context=len(pairs))  # fmt: skip

    async def invalidate_pattern(self, pattern: str) -> int:
        """Delete keys matching a Redis glob ``pattern`` (relative to the key prefix); return the count."""
        validation.string("pattern", pattern)
        full = escape_glob(self._prefix) + pattern
        return await self._run(
            sc.OP_INVALIDATE_PATTERN, self._invalidated, _zero, self.backend.invalidate_pattern, full
        )

    async def invalidate_tags(self, tags: Iterable[str] | str) -> int:
        """Delete every key stored with any of ``tags`` (in any process sharing the Redis)."""
        tag_keys = self._tag_keys(_check_tags(tags))
        return await self._run(sc.OP_INVALIDATE_TAGS, self._invalidated, _zero, self.backend.invalidate_tags, tag_keys)

    async def clear(self) -> int:
        """Delete everything under this cache's key prefix (and its tag sets)."""
        return await self._run(sc.OP_CLEAR, self._invalidated, _zero, self._clear_all)

    async def _clear_all(self) -> int:
        removed = await self.backend.invalidate_pattern(escape_glob(self._prefix) + "*")
        await self.backend.invalidate_pattern(escape_glob(self._tag_prefix) + "*")
        return removed

    # -- cache-aside (cache_aside.py; docs/cache-aside.md) --------------------------------
    async def get_or_set(
        self,
        key: str,
        factory: Callable[[], Any],
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        *,
        lock: bool | None = None,
        early_refresh: float | bool | None = None,
        stale_ttl: float | None = None,
    ) -> Any:
        """The value under ``key``; on a miss ``factory()``'s (sync or async), run once for all
        concurrent callers (``lock``: across processes too) and stored (``None`` is not)."""
        aside = self.cache_aside
        options = aside.options(ttl, _check_tags(tags) or None, lock, early_refresh, stale_ttl)
        return await aside.get_or_set(key, factory, options)

    def cached(
        self,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        key: Callable[..., str] | None = None,
        *,
        lock: bool | None = None,
        early_refresh: float | bool | None = None,
        stale_ttl: float | None = None,
    ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        """Decorate an async function: ``get_or_set`` under a key built from its module,
        qualified name and arguments (or ``key(*args, **kwargs)``); adds ``.invalidate(...)``."""
        aside = self.cache_aside
        return aside.decorate(aside.options(ttl, _check_tags(tags) or None, lock, early_refresh, stale_ttl), key)

    def computations(self) -> dict[str, int]:
        """Cache-aside counts since start: factory runs, coalesced callers, saved computations."""
        return self.cache_aside.telemetry.counts.as_dict()

    # -- health and statistics ------------------------------------------------------------
    async def connect(self) -> None:
        """Contact the backend now instead of at the first operation: a start-up check.

        A configuration the server cannot serve (a cluster URL at a node without cluster mode)
        raises ``CacheConfigurationError`` whatever ``fail_open`` says, as every operation then
        would. An unreachable server raises its ``CacheConnectionError`` with ``fail_open=False``;
        with ``fail_open`` it logs the outage's one WARNING and returns, like an operation. With a
        near cache it also waits (up to ``connect_timeout``) for its invalidation link.
        """
        try:  # not through _run: a start-up check is no operation (no span, counted nowhere)
            await self._call(self.backend.ping)
        except CacheBackendError as exc:
            self._note_failure(exc)
            if not self._fail_open:
                raise
            return
        if self._near is not None:  # and the near cache's link (docs/near-cache.md), briefly
            await self._near.wait_live(self.config.connect_timeout)

    async def health(self) -> bool:
        """True when the backend answers a ping within ``health_check_timeout``. Never raises."""
        return await health.is_healthy(self)

    async def health_check(self) -> bool:
        """Same as :meth:`health` (connects if needed; an idle, reachable Redis is healthy)."""
        return await health.is_healthy(self)

    async def detailed_health_check(self) -> dict[str, Any]:
        """Status (healthy/degraded/unhealthy), ping latency, pool, breaker and performance.

        Writes no keys, leaves the statistics untouched and returns within the timeout.
        """
        return await health.detailed_health_check(self)

    # -- the seam health.py works through (health.HealthSource) ---------------------------
    # Checks run from other threads and before the first operation; these members say what they
    # may rely on, so health.py needs none of this class's private state (nor imports it). The
    # alert rules, the status page and the demo read a cache through them too: nothing outside
    # this module touches its private members (tests/test_cache_privacy.py).
    @property
    def closed(self) -> bool:
        """True once :meth:`close` has begun: a check then reports it and must not reconnect."""
        return self._closed

    @property
    def event_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop this cache's connections belong to (None before first use).

        A check from another thread must run there (see ``health.readiness_report``).
        """
        return self._loop

    def probe(self) -> Awaitable[None]:
        """A ping through the reserved lane: never an operation's connection, never the breaker.

        A ping before any operation makes the running loop the cache's own, as an operation
        would, because the connection it opens belongs to that loop. The caller decides how
        long to wait and reports the verdict with :meth:`record_probe`.
        """
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._side_call(self.backend.ping)

    def record_probe(self, ok: bool) -> None:
        """A health ping or background refresh answered (or not); feeds the exported health.

        The health gauge must follow pings even while no operation runs, and a ping's verdict
        stands until a backend call succeeds after it (see :meth:`state`).
        """
        breaker = self.breaker
        self._ping_failed_at = None if ok else (breaker.total_successes if breaker is not None else 0)

    def state(self) -> StateReading:
        """Health, breaker and pool as plain numbers, for observable gauges (any thread, no I/O)."""
        breaker = self.breaker
        failed_at = self._ping_failed_at
        if breaker is None:
            healthy = failed_at is None
        else:
            # The newest evidence wins: a failed probe counts until a backend call succeeds after it.
            probe_ok = failed_at is None or breaker.total_successes > failed_at
            healthy = probe_ok and breaker.state == CLOSED and breaker.consecutive_failures == 0
        pool = self.backend.pool_stats()
        return StateReading(
            healthy=healthy,
            breaker_state=breaker.state if breaker is not None else None,
            breaker_opens=breaker.opens if breaker is not None else 0,
            pool_in_use=pool["in_use"] if pool else None,
            pool_idle=pool["idle"] if pool else None,
            pool_max=pool["max_connections"] if pool else None,
            pool_pending=self._guard.waiting if self._guard is not None else 0,
        )

    def pool_stats(self) -> dict[str, Any] | None:
        """The backend's pool figures plus ``waiting``, the calls queued for a connection.

        The guard admits operations before the pool sees them, so a saturated pool shows in
        ``waiting`` and nowhere in the backend's own figures.
        """
        pool = self.backend.pool_stats()
        if pool is not None and self._guard is not None:
            pool["waiting"] = self._guard.waiting
        return pool

    def twin_backend(self) -> Backend | None:
        """A new backend like this cache's own, or None when the backend was handed in.

        For a readiness check before the first operation: pinging through the cache's own
        backend from the checker's throwaway loop would bind its pool to that loop. A backend
        made elsewhere cannot be rebuilt from the configuration.
        """
        return self._make_backend(self.config) if self._owns_backend else None

    def usage_snapshot(self) -> Usage | None:
        """The last known keys and bytes (``None`` before the first measurement), without I/O.

        Its readers cannot await Redis: metric callbacks run in the reader's thread, and alert
        rules, the status page and the demo's screen are synchronous. :meth:`refresh_usage`
        measures now; :meth:`get_stats` measures first when these figures are stale.

        With ``stats_exact_keys``, the last completed exact count replaces the sampled keys, and
        the bytes are scaled to it, as long as no invalidation of ours happened since it began.
        """
        backend = self.backend
        live = backend.current_usage()
        if live is not None:
            return live
        usage = self._usage
        exact = self._exact_keys
        if usage is None or exact is None or usage.method == "exact":
            return usage
        keys, generation, measured_at = exact
        if generation != backend.invalidations:
            return usage
        per_key = usage.bytes / usage.keys if usage.keys else 0.0
        return replace(
            usage,
            keys=keys,
            bytes=round(per_key * keys),
            method="exact_keys",
            keys_error=0,
            bytes_error=round(usage.bytes_error * keys / usage.keys) if usage.keys else usage.bytes_error,
            measured_at=measured_at,
        )

    async def get_stats(self) -> CacheStats:
        """Counts since start plus keys/bytes held (for Redis: this prefix, refreshed in the background).

        Figures measured before an invalidation of this cache are never returned: one O(1)
        sample is taken first; on a database small enough to count exactly (5,000 keys), so
        are figures that predate this cache's own writes. ``usage_method`` and the ``*_error``
        fields say what is estimated.
        """
        usage = self.usage_snapshot()
        c = self.telemetry.counters
        if (
            usage is None
            or self.backend.invalidations != self._usage_generation
            # written since: drawn before this cache's first writes, or measured exactly (a small
            # database, redis_usage.EXACT_LIMIT) and so cheap to count again rather than be stale;
            # live figures (measured_at 0: the memory backend) are never stale
            or (
                c.sets + c.deletes != self._usage_sets
                and (self._usage_sets == 0 or (bool(usage.measured_at) and not usage.estimated))
            )
        ):
            usage = await self.refresh_usage()
        return CacheStats.with_usage(
            usage,
            hit_rate=c.hit_rate,
            hits=c.hits,
            misses=c.misses,
            sets=c.sets,
            deletes=c.deletes,
            invalidations=c.invalidations,
            errors=c.error_total,
            uptime_seconds=time.monotonic() - c.started_monotonic,
            operations={op: n for op, n in c.calls.items() if n},
            backend=self.backend.info.kind,
            name=self.name,
        )

    def get_comprehensive_metrics(self, window: float = 60.0) -> ComprehensiveMetrics:
        """Hit rate, average latency, error rate, p50/p95/p99 and ops/s; synchronous, no I/O."""
        return health.comprehensive_metrics(self, window)

    def start_metrics_collection(self, interval: float = 60.0) -> None:
        """Keep a down-sampled history for ``metrics_retention_days`` (see :attr:`metrics_history`).

        Callable before an event loop exists: the sampler starts with the first operation.
        """
        if self.metrics_history is None:
            self.metrics_history = health.MetricsHistory(self.config.metrics_retention_days, interval)
        self._needs_refresher = True
        self._bound_loop = None  # the next operation starts the sampler if this cannot
        if self._refresher is None and not self._closed:
            self._start_refresher()  # no running loop yet: the first operation starts it

    # -- lifecycle ------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop background work and telemetry, let operations in flight finish (up to
        ``close_timeout`` seconds), then release every connection. Idempotent.

        Afterwards operations raise :class:`~yokedcache.errors.CacheClosedError` and open nothing.
        """
        if self._closed:
            return
        self._closed = True
        self._bound_loop = None
        loop = asyncio.get_running_loop()
        same_loop = self._loop is None or self._loop is loop
        if self._stop is not None:
            self._stop.set() if same_loop else self._call_on_own_loop(self._stop.set)
        if self._refresher is not None:
            # The refresher checks _closed and the stop event between round trips; _finish
            # repeats the cancellation, which redis-py can absorb mid-command. Only once it has
            # ended are the connections closed: no command of ours reaches Redis afterwards.
            if same_loop:
                await _finish(self._refresher, deadline=self.config.operation_timeout + 1.0)
            else:
                self._call_on_own_loop(self._refresher.cancel)
        if self._exact_counter is not None:
            if same_loop:
                await _finish(self._exact_counter, deadline=self.config.operation_timeout + 1.0)
            else:
                self._call_on_own_loop(self._exact_counter.cancel)
        guard = self._guard
        if guard is not None:
            if same_loop:
                await guard.drain(self.config.close_timeout)
            guard.closed = True
        self.telemetry.close()
        if same_loop:
            await self.backend.close()
        else:
            self._release_elsewhere(self.backend, self._loop)

    @staticmethod
    def _release_elsewhere(backend: Backend, loop: asyncio.AbstractEventLoop | None) -> None:
        """Close connections of another event loop: on that loop if it runs, else hang them up."""
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(backend.close(), loop)
            return
        backend.abandon_connections()

    def _call_on_own_loop(self, fn: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn)

    def __del__(self, _warn: Any = warnings.warn) -> None:
        # Like an unclosed file or socket: say so, then release what can be released.
        if getattr(self, "_closed", True):
            return
        self._closed = True
        self._bound_loop = None
        _warn(f"unclosed {self!r}: call 'await cache.close()' (or use 'async with')", ResourceWarning, source=self)
        if self._stop is not None:
            self._call_on_own_loop(self._stop.set)
        if self._guard is not None:
            self._guard.closed = True
        with contextlib.suppress(Exception):
            self.telemetry.close()
        if self.backend.loop_bound:
            backend, loop = self.backend, self._loop
            if loop is not None and not loop.is_closed():
                self._call_on_own_loop(lambda: _close_in_background(backend))
            else:
                self._release_elsewhere(backend, None)

    async def __aenter__(self) -> YokedCache:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
