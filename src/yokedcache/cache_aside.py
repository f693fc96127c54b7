"""Cache-aside as applications write it: ``get_or_set``, ``@cached`` and stampede protection.

On a miss, the factory runs once per process for every concurrent caller of the key
(single-flight); with ``lock`` once across every process sharing the store (a backend lock,
``SET NX PX`` on Redis). Opt-in: XFetch early refresh (Vattani, Chierichetti, Lowenstein,
VLDB 2015) and stale-on-error. Each step is counted and traced (``telemetry/aside.py``).
``YokedCache.get_or_set`` and ``YokedCache.cached`` delegate here; this module reads the cache
only through :class:`AsideHost`, its public operations, plus the guarded backend call the
cache hands it (so lock commands get the same breaker, deadline and retries as any other).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import math
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Protocol

from . import validation
from .backends.base import Backend
from .cache_keys import key_builder
from .config import MAX_TTL
from .errors import CacheBackendError
from .telemetry import semconv as sc
from .telemetry.aside import AsideTelemetry

__all__ = ["LOCK_ROOT", "STORE_NONE", "AsideHost", "CacheAside", "Options"]

log = logging.getLogger("yokedcache")

#: Lock keys live outside the data prefix, so ``invalidate_pattern("*")`` never matches them.
LOCK_ROOT = "yokedcache-lock:"
#: A factory's ``None`` is returned but not stored: the next call computes again (documented).
STORE_NONE = False
#: Marks a stored entry that carries its logical expiry and compute time (early refresh,
#: stale-on-error): ``{ENVELOPE: 1, "v": value, "x": expires (epoch s) or None, "d": seconds}``.
ENVELOPE = "__yokedcache_aside__"

_MISSING: Any = object()
_TAKE_OVER: Any = object()  # the runner was cancelled: a waiter computes instead
_HIT, _COMPUTED, _COALESCED, _STALE = "hit", "computed", "coalesced", "stale"
_FIRST_POLL, _LAST_POLL = 0.005, 0.05  # seconds between looks at a lock held elsewhere
_PLAIN_OPTIONS_KEPT = 64


class AsideHost(Protocol):
    """What cache-aside uses of a :class:`~yokedcache.YokedCache` (all public)."""

    config: Any
    telemetry: Any
    backend: Backend
    last_failure: Any

    async def get(self, key: str, default: Any = None) -> Any: ...

    async def set(self, key: str, value: Any, ttl: float | None = None, tags: Iterable[str] | None = None) -> bool: ...

    async def delete(self, key: str) -> bool: ...


@dataclass(frozen=True)
class Options:
    """One call's (or one decorated function's) settings, checked once."""

    ttl: float | None
    tags: Iterable[str] | None
    lock: bool
    #: XFetch's beta (1.0 is the paper's optimum; higher refreshes earlier); None: off.
    early_refresh: float | None
    #: Seconds an expired value may still be served when the factory fails; None: off.
    stale_ttl: float | None

    @property
    def envelope(self) -> bool:
        return self.early_refresh is not None or self.stale_ttl is not None


@dataclass(frozen=True, slots=True)
class Computation:
    """One miss's work, made only on a miss (never on a hit): the key, the factory with its
    arguments, and the call's options, handed as one through single-flight, the lock and the
    computation."""

    key: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    options: Options


class CacheAside:
    """Cache-aside for one cache: its in-flight computations and what they recorded."""

    def __init__(self, host: AsideHost, call: Callable[..., Awaitable[Any]]) -> None:
        self._host = host
        #: The cache's guarded backend call: breaker, admission, deadline, retries.
        self._call = call
        self._flights: dict[str, asyncio.Future[Any]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        #: Options of get_or_set calls given at most a TTL, by TTL (checked once each).
        self._plain_options: dict[float | None, Options] = {}
        self.telemetry = AsideTelemetry(host.telemetry)

    # -- options ------------------------------------------------------------------------------
    def options(
        self,
        ttl: float | None,
        tags: Iterable[str] | None,
        lock: bool | None,
        early_refresh: float | bool | None,
        stale_ttl: float | None,
    ) -> Options:
        """Check once what a call or a decorator was given (errors name the argument).

        get_or_set asks on every call: the common forms (a TTL at most, or nothing) are kept.
        """
        plain = tags is None and lock is None and early_refresh is None and stale_ttl is None
        if plain and (ttl is None or type(ttl) is int or type(ttl) is float):
            found = self._plain_options.get(ttl)
            if found is None:
                found = self._checked(ttl, tags, lock, early_refresh, stale_ttl)
                if len(self._plain_options) < _PLAIN_OPTIONS_KEPT:
                    self._plain_options[ttl] = found
            return found
        return self._checked(ttl, tags, lock, early_refresh, stale_ttl)

    def _checked(self, ttl: Any, tags: Any, lock: Any, early_refresh: Any, stale_ttl: Any) -> Options:
        """:meth:`options`' checks, made once per decorator (and per uncommon get_or_set call)."""
        validation.number("ttl", ttl, rule=f"must be a positive number of seconds up to {MAX_TTL:.0e}",
                          kind="seconds as a number or None", minimum=0, maximum=MAX_TTL, allow_zero=False,
                          finite=True, allow_none=True)  # fmt: skip
        validation.boolean("lock", lock, allow_none=True)
        if early_refresh is True:
            early_refresh = 1.0
        elif early_refresh is False:
            early_refresh = None
        validation.number("early_refresh", early_refresh, rule="must be a positive finite number (XFetch beta)",
                          kind="a number, a bool or None", minimum=0, allow_zero=False, finite=True,
                          allow_none=True)  # fmt: skip
        validation.number("stale_ttl", stale_ttl, rule="must be a positive finite number of seconds",
                          kind="a number or None", minimum=0, allow_zero=False, finite=True,
                          allow_none=True)  # fmt: skip
        config = self._host.config
        return Options(
            ttl=ttl,
            tags=tuple(tags) if tags is not None and not isinstance(tags, str) else tags,
            lock=config.lock if lock is None else lock,
            early_refresh=None if early_refresh is None else float(early_refresh),
            stale_ttl=None if stale_ttl is None else float(stale_ttl),
        )

    # -- get_or_set ---------------------------------------------------------------------------
    def get_or_set(self, key: str, factory: Callable[..., Any], options: Options) -> Awaitable[Any]:
        """The value under ``key``; on a miss, ``factory()``'s, stored (see the module docstring).

        Not a coroutine itself: the caller awaits :meth:`fetch` directly (one frame fewer per hit).
        """
        if not callable(factory):
            raise TypeError(f"factory: expected a callable, got {type(factory).__name__}")
        return self.fetch(key, factory, (), {}, options)

    async def fetch(
        self, key: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], options: Options
    ) -> Any:
        """``fn(*args, **kwargs)`` through the cache under ``key``, with its span when tracing."""
        telemetry = self.telemetry
        if not telemetry.telemetry.tracing_enabled:
            if options.envelope:
                return (await self._fetch(key, fn, args, kwargs, options))[0]
            host = self._host  # the plain hit, inline: one coroutine fewer (docs/cache-aside.md)
            failure = host.last_failure
            found = await host.get(key, _MISSING)
            if found is not _MISSING:
                return found
            self._count_failed_read(failure)
            return (await self.miss(Computation(key, fn, args, kwargs, options), _MISSING))[0]
        with telemetry.operation_span(_name_of(fn)) as span:
            value, source = await self._fetch(key, fn, args, kwargs, options)
            if span is not None:
                span.set_attribute(sc.SPAN_CACHE_HIT, source == _HIT)
                span.set_attribute(sc.ASIDE_SOURCE, source)
            return value

    async def _fetch(
        self, key: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], options: Options
    ) -> tuple[Any, str]:
        host = self._host
        failure = host.last_failure
        found = await host.get(key, _MISSING)
        if found is _MISSING:
            self._count_failed_read(failure)
            return await self.miss(Computation(key, fn, args, kwargs, options), _MISSING)
        if not options.envelope:
            return found, _HIT
        entry = _unwrap(found)
        if entry is None:  # stored by a plain set
            return found, _HIT
        value, expires, delta = entry
        now = time.time()
        if expires is None or now < expires:
            beta = options.early_refresh
            if beta is not None and expires is not None and _xfetch(now, delta, beta, expires):
                self._refresh_early(Computation(key, fn, args, kwargs, options))
            return value, _HIT
        return await self.miss(Computation(key, fn, args, kwargs, options), value)  # expired: stale if it fails

    def _count_failed_read(self, failure_before: Any) -> None:
        """A read that failed open returned "absent": count it as the miss it is for the caller."""
        if self._host.last_failure is not failure_before:
            self._host.telemetry.counters.misses += 1

    # -- single-flight --------------------------------------------------------------------------
    async def miss(self, work: Computation, stale: Any) -> tuple[Any, str]:
        """Compute once for every concurrent caller of ``key`` in this process.

        The first caller runs the computation in its own task; the others await its future,
        shielded, so a waiter's cancellation is its own. If the runner is cancelled, the future
        says so and the first waiter to wake takes over; an exception reaches every waiter.
        """
        key = work.key
        loop = asyncio.get_running_loop()
        flights = self._flights
        while True:
            flight = flights.get(key)
            if flight is None or flight.get_loop() is not loop:
                return await self._run(work, stale, loop)
            outcome = await asyncio.shield(flight)
            if outcome is _TAKE_OVER:
                continue
            value, source = outcome
            if source == _STALE:
                self.telemetry.stale_served()
            else:
                self.telemetry.coalesced(sc.SCOPE_PROCESS)
            return value, (_STALE if source == _STALE else _COALESCED)

    async def _run(self, work: Computation, stale: Any, loop: asyncio.AbstractEventLoop) -> tuple[Any, str]:
        key, options = work.key, work.options
        flight: asyncio.Future[Any] = loop.create_future()
        flights = self._flights
        flights[key] = flight
        try:
            if options.lock:
                outcome = await self._locked(work, stale)
            else:
                outcome = await self._compute(work, stale)
        except asyncio.CancelledError:
            _land(flights, key, flight, _TAKE_OVER)
            raise
        except BaseException as exc:
            _land(flights, key, flight, exc)
            raise
        _land(flights, key, flight, outcome)
        return outcome

    async def _compute(self, work: Computation, stale: Any) -> tuple[Any, str]:
        """Run the factory under its span, count it, store a value (None is not stored)."""
        key, options = work.key, work.options
        telemetry = self.telemetry
        started = perf_counter()
        try:
            with telemetry.factory_span(_name_of(work.fn)):
                value = work.fn(*work.args, **work.kwargs)
                if inspect.isawaitable(value):
                    value = await value
        except Exception:
            telemetry.computed(False, perf_counter() - started)
            if stale is _MISSING:
                raise
            log.debug("factory for a cached key failed: serving the expired value", exc_info=True)
            telemetry.stale_served()
            return stale, _STALE
        elapsed = perf_counter() - started
        telemetry.computed(True, elapsed)
        if value is not None or STORE_NONE:
            await self._store(key, value, options, elapsed)
        return value, _COMPUTED

    async def _store(self, key: str, value: Any, options: Options, elapsed: float) -> None:
        host = self._host
        ttl = options.ttl if options.ttl is not None else host.config.default_ttl
        if not options.envelope:
            await host.set(key, value, ttl=options.ttl, tags=options.tags)
            return
        expires = None if ttl is None else time.time() + ttl
        kept = ttl
        if ttl is not None and options.stale_ttl is not None:
            kept = ttl + options.stale_ttl  # the expired value stays for stale-on-error
        entry = {ENVELOPE: 1, "v": value, "x": expires, "d": elapsed}
        await host.set(key, entry, ttl=kept, tags=options.tags)

    # -- the lock -------------------------------------------------------------------------------
    async def _locked(self, work: Computation, stale: Any, early: bool = False) -> tuple[Any, str]:
        """Compute under the key's backend lock, or wait for its holder's value.

        A waiter looks at the lock (not the value: no extra misses) with a growing interval;
        once it is gone, it reads the value. After ``lock_wait`` seconds it computes for itself,
        so a lock never deadlocks a caller. An unreachable backend with ``fail_open`` computes
        unlocked; without, raises.
        """
        key, options = work.key, work.options
        host = self._host
        backend = host.backend
        config = host.config
        name = LOCK_ROOT + config.key_prefix + key
        token = secrets.token_hex(16)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + config.lock_wait
        while True:
            try:
                taken = await self._call(backend.acquire_lock, name, token, config.lock_ttl)
            except CacheBackendError:
                if not config.fail_open:
                    raise
                return await self._compute(work, stale)
            if taken:
                return await self._holding(name, token, work, stale, early)
            if early:  # someone else refreshes it already
                return _MISSING, _HIT
            if not await self._await_release(name, give_up):
                log.debug("lock wait for a cached key ran out: computing without it")
                return await self._compute(work, stale)
            found = await self._read(key, options)
            if found is not _MISSING:
                self.telemetry.coalesced(sc.SCOPE_LOCK)
                return found, _COALESCED

    async def _holding(self, name: str, token: str, work: Computation, stale: Any, early: bool) -> tuple[Any, str]:
        """Lock taken: look again (its last holder may have just stored it), then compute."""
        key, options = work.key, work.options
        try:
            if not early:
                found = await self._read(key, options)
                if found is not _MISSING:
                    self.telemetry.coalesced(sc.SCOPE_LOCK)
                    return found, _COALESCED
            return await self._compute(work, stale)
        finally:
            try:
                await self._call(self._host.backend.release_lock, name, token)
            except (Exception, asyncio.CancelledError):  # it expires by itself
                log.debug("releasing a cache-aside lock failed; it expires by itself", exc_info=True)

    async def _await_release(self, name: str, give_up: float) -> bool:
        """Wait until nobody holds ``name``; False when ``give_up`` (loop time) came first."""
        loop = asyncio.get_running_loop()
        backend = self._host.backend
        pause = _FIRST_POLL
        while loop.time() < give_up:
            await asyncio.sleep(min(pause, max(0.0, give_up - loop.time())))
            pause = min(pause * 2, _LAST_POLL)
            try:
                if not await self._call(backend.lock_held, name):
                    return True
            except CacheBackendError:
                return False
        return False

    async def _read(self, key: str, options: Options) -> Any:
        found = await self._host.get(key, _MISSING)
        if found is _MISSING or not options.envelope:
            return found
        entry = _unwrap(found)
        return found if entry is None else entry[0]

    # -- early refresh --------------------------------------------------------------------------
    def _refresh_early(self, work: Computation) -> None:
        """XFetch chose this caller: recompute in the background while callers keep the value."""
        key = work.key
        flights = self._flights
        if key in flights:
            return
        self.telemetry.early_refresh()
        loop = asyncio.get_running_loop()
        flight = flights[key] = loop.create_future()  # now: the next caller's draw sees it
        task = loop.create_task(self._early(work, flight))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _early(self, work: Computation, flight: asyncio.Future[Any]) -> None:
        key, options = work.key, work.options
        flights = self._flights
        outcome: Any = _TAKE_OVER  # unless a value was computed, a waiter computes instead
        try:
            if options.lock:
                result = await self._locked(work, _MISSING, early=True)
            else:
                result = await self._compute(work, _MISSING)
            if result[1] == _COMPUTED:
                outcome = result
        except Exception:
            log.debug("early refresh failed; the value stays until it expires", exc_info=True)
        finally:
            _land(flights, key, flight, outcome)

    # -- the decorator --------------------------------------------------------------------------
    def decorate(
        self, options: Options, key: Callable[..., str] | None
    ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        """``@cache.cached(...)``: see :func:`cached_function`."""
        if key is not None and not callable(key):
            raise TypeError(f"key: expected a callable that returns a str, or None, got {type(key).__name__}")

        def decorator(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            return cached_function(self, fn, options, key)

        return decorator


def cached_function(
    aside: CacheAside, fn: Callable[..., Awaitable[Any]], options: Options, custom: Callable[..., str] | None
) -> Callable[..., Awaitable[Any]]:
    """Wrap an async function: its calls are cached under keys from ``cache_keys.key_builder`` (or
    ``custom(*args, **kwargs)``); the wrapper gains ``invalidate(*args, **kwargs)`` and ``key_of``.

    The hit path is the wrapper, the key and one ``get``: no span, no lock, no extra coroutine.
    """
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"cached: expected an async function (async def), got {_name_of(fn)}")
    build = key_builder(fn)
    host = aside._host

    def key_of(*args: Any, **kwargs: Any) -> str:
        """The cache key (under the cache's prefix) this call is stored under; a method's
        arguments come without ``self`` (``Repo.find.key_of(3)`` and ``repo.find.key_of(3)``)."""
        return call_key((None, *args) if method else args, kwargs)

    def call_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if custom is None:
            return build(args, kwargs)
        made = custom(*args, **kwargs)
        if type(made) is not str:
            raise TypeError(f"key: the key function must return a str, got {type(made).__name__}")
        return made

    method = build.skips_self  # type: ignore[attr-defined]
    make_key = build if custom is None else call_key
    fast = not options.envelope
    telemetry = host.telemetry
    get = host.get
    miss = aside.miss
    fetch = aside.fetch

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = make_key(args, kwargs)
        if fast and not telemetry.tracing_enabled:
            failure = host.last_failure
            found = await get(key, _MISSING)
            if found is not _MISSING:
                return found
            aside._count_failed_read(failure)
            return (await miss(Computation(key, fn, args, kwargs, options), _MISSING))[0]
        return await fetch(key, fn, args, kwargs, options)

    async def invalidate(*args: Any, **kwargs: Any) -> bool:
        """Delete the entry this call would read; True when there was one (a method's
        arguments without ``self``, as for :func:`key_of`)."""
        return await host.delete(key_of(*args, **kwargs))

    wrapper.invalidate = invalidate  # type: ignore[attr-defined]
    wrapper.key_of = key_of  # type: ignore[attr-defined]
    return wrapper


def _land(flights: dict[str, asyncio.Future[Any]], key: str, flight: asyncio.Future[Any], outcome: Any) -> None:
    """End a flight: forget it, then hand its waiters the outcome (an exception is raised to each)."""
    if flights.get(key) is flight:
        del flights[key]
    if flight.done():
        return
    if isinstance(outcome, BaseException):
        flight.set_exception(outcome)
        flight.exception()  # retrieved: with no waiter, asyncio would log it as never retrieved
    else:
        flight.set_result(outcome)


def _unwrap(found: Any) -> tuple[Any, float | None, float] | None:
    if type(found) is dict and found.get(ENVELOPE) == 1:
        return found.get("v"), found.get("x"), float(found.get("d") or 0.0)
    return None


def _xfetch(now: float, delta: float, beta: float, expires: float) -> bool:
    """XFetch: recompute early with a probability that grows as expiry nears and with the last
    computation's duration ``delta`` (``now - delta * beta * ln(rand) >= expires``)."""
    return now - delta * beta * math.log(1.0 - random.random()) >= expires


def _name_of(fn: Any) -> str:
    return str(getattr(fn, "__qualname__", None) or type(fn).__qualname__)
