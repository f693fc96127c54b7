"""Circuit breaker and bounded retries around a backend.

Order matters: the breaker is checked before every attempt, so an open breaker fails fast
(no network wait, no retry sleep). A half-open breaker lets exactly one trial call through;
if that trial is cancelled (``CancelledError`` is a ``BaseException``) its slot is released,
so the breaker can never be wedged open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .backends.base import MISCONFIGURED, REJECTED, RESERVED_CONNECTIONS, TRANSIENT, UNAVAILABLE, Failure
from .errors import (
    CacheBackendError,
    CacheClosedError,
    CacheCommandError,
    CacheConfigurationError,
    CacheConnectionError,
    CacheTimeoutError,
    CacheUnavailableError,
    CircuitOpenError,
)

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "Admission", "CircuitBreaker", "Guard", "worst_case_call_seconds"]

log = logging.getLogger("yokedcache.resilience")
T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


def worst_case_call_seconds(operation_timeout: float, retry_attempts: int, retry_backoff: float) -> float:
    """The longest a guarded call can take (docs/deadlines.md), event-loop delays aside.

    Each attempt ends by its deadline, ``operation_timeout`` seconds after it starts (its wait
    for admission or in the pipeliner's queue included), and the back-off before retry ``k``
    (from 0) is at most ``1.5 * retry_backoff * 2**k`` (the jitter is 0.5x to 1.5x)::

        (retry_attempts + 1) * operation_timeout + 1.5 * retry_backoff * (2**retry_attempts - 1)
    """
    return (retry_attempts + 1) * operation_timeout + 1.5 * retry_backoff * (2**retry_attempts - 1)


class CircuitBreaker:
    """closed -> open after ``failure_threshold`` consecutive failures -> half-open after
    ``recovery_timeout`` seconds -> closed on one successful trial (or open again)."""

    def __init__(
        self,
        failure_threshold: int = 5,
        recovery_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self._clock = clock
        self.state = CLOSED
        self.consecutive_failures = 0
        self.total_failures = 0
        self.total_successes = 0
        self.opens = 0
        self.last_failure_at: float | None = None  # wall-clock seconds
        self.last_error: str | None = None
        self._opened_at = 0.0
        self._trial_in_flight = False
        #: Called as ``listener(old, new)`` on every state change (must not raise or block).
        self.listeners: list[Callable[[str, str], None]] = []

    def acquire(self) -> bool:
        """Allow a call or raise :class:`CircuitOpenError`. Returns True when it is the trial."""
        state = self.state
        if state == CLOSED:
            return False
        if state == OPEN:
            if self._clock() - self._opened_at < self.recovery_timeout:
                raise CircuitOpenError(
                    f"circuit breaker is open (last error: {self.last_error}); backend calls are failing fast",
                    reason=f"circuit breaker open (last error: {self.last_error})",
                )
            self._transition(HALF_OPEN)
        if self._trial_in_flight:
            raise CircuitOpenError(
                "circuit breaker is half-open; a trial call is already in flight",
                reason=f"circuit breaker half-open (last error: {self.last_error})",
            )
        self._trial_in_flight = True
        return True

    def success(self, trial: bool) -> None:
        self.consecutive_failures = 0
        self.total_successes += 1
        if trial:
            self._trial_in_flight = False
            self._transition(CLOSED)

    def failure(self, trial: bool, exc: BaseException, reason: str | None = None) -> None:
        self.consecutive_failures += 1
        self.total_failures += 1
        self.last_failure_at = time.time()
        self.last_error = reason or type(exc).__name__
        if trial:
            self._trial_in_flight = False
            self._open()
        elif self.state == CLOSED and self.consecutive_failures >= self.failure_threshold:
            self._open()

    def release(self, trial: bool) -> None:
        """The call ended without a verdict (cancelled, or an error that says nothing of health)."""
        if trial:
            self._trial_in_flight = False

    def retry_allowed(self) -> bool:
        return self.state == CLOSED

    def _open(self) -> None:
        self._opened_at = self._clock()
        self.opens += 1
        self._transition(OPEN)

    def _transition(self, new: str) -> None:
        if new != self.state:
            old, self.state = self.state, new
            # DEBUG: the cache says once per outage what failed and once that it recovered
            # (YokedCache._note_failure); a line per transition would repeat every cool-down.
            log.debug(
                "circuit breaker %s -> %s (consecutive failures: %d, last error: %s)",
                old,
                new,
                self.consecutive_failures,
                self.last_error,
            )
            for listener in self.listeners:
                try:
                    listener(old, new)
                except Exception:  # a listener must never break the call path
                    log.exception("circuit breaker listener failed")

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "consecutive_failures": self.consecutive_failures,
            "total_failures": self.total_failures,
            "opens": self.opens,
            "last_failure_at": self.last_failure_at,
            "last_error": self.last_error,
            "failure_threshold": self.failure_threshold,
            "recovery_timeout": self.recovery_timeout,
        }


class Admission:
    """At most ``limit`` calls at once, admitted first come, first served.

    redis-py's blocking pool lets a task that just released a connection take it straight back,
    so under a burst some callers starve until the pool's timeout ("No connection available").
    A freed slot here goes to the longest waiter. Unlike ``asyncio.Semaphore`` the uncontended
    case is a plain method call (no coroutine), which matters on a per-operation path.
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_enter(self) -> bool:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def enter(self) -> None:
        """Wait for a slot (call after :meth:`try_enter` said no)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # handed a slot just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def leave(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot moves straight to the longest waiter
                return
        self._free += 1


class Guard:
    """Runs backend calls through the breaker with bounded, jittered retries.

    ``classify`` tells what an exception means (see :mod:`yokedcache.backends.redis_errors`):
    transient failures are counted by the breaker and retried while it is closed; "unavailable"
    ones are counted, not retried; "rejected" commands leave the breaker alone. All three come
    out as a :class:`~yokedcache.errors.CacheBackendError` with the driver's exception chained.
    Anything the classifier does not know (a bug, cancellation) passes through untouched.
    """

    def __init__(
        self,
        classify: Callable[[BaseException], Failure | None] | tuple[type[BaseException], ...],
        breaker: CircuitBreaker | None,
        retry_attempts: int = 1,
        retry_backoff: float = 0.02,
        max_concurrency: int | None = None,
        timeout: float | None = None,
    ) -> None:
        if isinstance(classify, tuple):
            classify = _classify_as_transient(classify)
        self.classify = classify
        self.breaker = breaker
        self.retry_attempts = retry_attempts
        self.retry_backoff = retry_backoff
        self.max_concurrency = max_concurrency
        self._slots = Admission(max_concurrency) if max_concurrency is not None else None
        self._side = Admission(RESERVED_CONNECTIONS) if max_concurrency is not None else None
        #: Each attempt's deadline, in seconds from the moment it starts: its wait for admission
        #: and the whole backend command (write and reply). A true total deadline, cheaper than
        #: the driver's per-read timeouts; the whole call's bound is in docs/deadlines.md.
        self.timeout = timeout
        self._side_timeout = None if timeout is None else max(5.0, 5 * timeout)
        #: Calls to this object's methods skip admission and this deadline: it bounds its own
        #: connections, serves callers in arrival order and holds each operation to the same
        #: deadline itself, its wait in the queue included (the Redis backend's auto-pipeliner).
        self.self_admitting: object | None = None
        #: Calls between entry and return (close() waits for them, with a deadline).
        self.in_flight = 0
        #: Called once, by the next call that succeeds, then cleared: the cache arms it when an
        #: outage starts so it can say the backend is back (one attribute test per success).
        self.on_next_success: Callable[[], None] | None = None
        #: Set by the cache's close(): a retry after it would open a new connection.
        self.closed = False
        self._idle: asyncio.Event | None = None

    @property
    def waiting(self) -> int:
        """Calls queued for a slot (the pool is saturated while this is above zero)."""
        return self._slots.waiting if self._slots is not None else 0

    def reset_for_loop(self) -> None:
        """Forget waiters and events that belong to an event loop that is gone."""
        if self._slots is not None:
            self._slots = Admission(self.max_concurrency)  # type: ignore[arg-type]
            self._side = Admission(RESERVED_CONNECTIONS)
        self.in_flight = 0
        self._idle = None

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for calls in flight to return; True if they all did."""
        if self.in_flight == 0:
            return True
        self._idle = idle = asyncio.Event()
        try:
            await asyncio.wait_for(idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def side_call(self, fn: Callable[..., Awaitable[T]], *args: Any, bounded: bool = True) -> T:
        """Side work (health pings, statistics): its own few connections, no breaker, no retry.

        It must neither take a connection an operation was admitted for nor count as one.
        """
        side = self._side
        if side is None:
            return await fn(*args)
        if not side.try_enter():
            await side.enter()
        try:
            if self._side_timeout is None or not bounded:
                return await fn(*args)
            return await _deadline(fn(*args), self._side_timeout)
        finally:
            side.leave()

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        # One coroutine per call, nothing nested: this is every Redis operation's path
        # (benchmarks/overhead.py target 1).
        breaker = self.breaker
        slots = self._slots
        timeout = self.timeout
        owner = self.self_admitting
        if owner is not None and getattr(fn, "__self__", None) is owner:
            slots = timeout = None
        attempt = 0
        self.in_flight += 1
        try:
            while True:
                if self.closed:
                    raise CacheClosedError("cache is closed: it opens no new connections (create a new YokedCache)")
                # closed is the common case: decide it without a method call
                trial = False if breaker is None or breaker.state is CLOSED else breaker.acquire()
                try:
                    budget = timeout
                    if slots is not None and not slots.try_enter():
                        # the attempt's deadline covers its wait for admission too
                        budget = await _admit(slots, timeout)
                    try:
                        if budget is None:
                            result = await fn(*args)
                        elif _timeout is not None:
                            async with _timeout(budget):
                                result = await fn(*args)
                        else:  # Python 3.10
                            result = await asyncio.wait_for(fn(*args), budget)
                    finally:
                        if slots is not None:
                            slots.leave()  # before any retry back-off below
                except BaseException as exc:
                    delay = self._after_failure(exc, trial, attempt)  # a typed error raises there
                    if delay is None:
                        raise
                    attempt += 1
                    await asyncio.sleep(delay)
                    continue
                if breaker is not None:
                    if trial or breaker.consecutive_failures:
                        breaker.success(trial)
                    else:
                        breaker.total_successes += 1
                if self.on_next_success is not None:  # one attribute check: the recovery log line
                    hook, self.on_next_success = self.on_next_success, None
                    hook()
                return result

        finally:
            self.in_flight -= 1
            if self._idle is not None and self.in_flight == 0:
                self._idle.set()

    def _after_failure(self, exc: BaseException, trial: bool, attempt: int) -> float | None:
        """What a failed attempt means: the back-off before a retry, or None to re-raise ``exc``
        untouched (a cancellation, or anything the classifier does not know); a backend
        failure that is not retried raises its typed error from here.

        Apart from :meth:`call` so that the success path stays one short coroutine.
        """
        breaker = self.breaker
        failure = self.classify(exc) if isinstance(exc, Exception) else None
        if failure is None:  # the call ended without a verdict on the backend's health
            if breaker is not None:
                breaker.release(trial)
            return None
        if failure.kind == REJECTED:
            if breaker is not None:  # the server answered: it is up
                breaker.success(trial)
            raise _translate(failure, exc) from exc
        if failure.kind == MISCONFIGURED:  # not an outage: no retry, no breaker
            if breaker is not None:
                breaker.release(trial)
            raise _translate(failure, exc) from exc
        if breaker is not None and (trial or _first_report(exc)):
            breaker.failure(trial, exc, failure.reason)
        if failure.kind == TRANSIENT and attempt < self.retry_attempts and (breaker is None or breaker.retry_allowed()):
            return self.retry_backoff * (2**attempt) * random.uniform(0.5, 1.5)
        raise _translate(failure, exc) from exc


_timeout: Any = getattr(asyncio, "timeout", None)  # Python >= 3.11: ~3.7 µs, against wait_for's ~12 µs


async def _deadline(awaitable: Awaitable[T], seconds: float) -> T:
    if _timeout is not None:
        async with _timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


async def _admit(slots: Admission, timeout: float | None) -> float | None:
    """Wait for an admission slot within the attempt's deadline; the time left of it.

    A caller that waited its whole deadline here never reached the backend: its timeout is
    raised marked as counted, so the breaker is not told (no round trip failed; the calls that
    hold the slots are counted themselves when they fail).
    """
    if timeout is None:
        await slots.enter()
        return None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        await _deadline(slots.enter(), timeout)
    except (TimeoutError, asyncio.TimeoutError) as exc:  # one class from Python 3.11 on
        _not_sent(exc)
        raise
    return max(0.0, deadline - loop.time())


def _not_sent(exc: BaseException) -> None:
    """Mark a timeout of an attempt that never reached the backend (it waited for admission
    until its deadline): the breaker is not told, since no round trip failed (see below)."""
    with contextlib.suppress(AttributeError):
        exc._yokedcache_counted = True  # type: ignore[attr-defined]


def _first_report(exc: BaseException) -> bool:
    """False when the breaker already counted this very exception object.

    An auto-pipelined batch that loses its connection (or times out) hands one exception object
    to every command it carried: one failed round trip is one failure for the breaker, not one
    per command, or a single lost batch of 50 would open it ten times over (docs/operations.md, "Failure
    behaviour"). Each retry is a new round trip with a new exception, counted again.
    """
    if getattr(exc, "_yokedcache_counted", False):
        return False
    with contextlib.suppress(AttributeError):  # an exception class with __slots__: count each
        exc._yokedcache_counted = True  # type: ignore[attr-defined]
    return True


def _classify_as_transient(types: tuple[type[BaseException], ...]) -> Callable[[BaseException], Failure | None]:
    def classify(exc: BaseException) -> Failure | None:
        if isinstance(exc, types):
            return Failure(TRANSIENT, "timed out" if isinstance(exc, TimeoutError) else "connection failed")
        return None

    return classify


def _translate(failure: Failure, exc: BaseException) -> CacheBackendError | CacheConfigurationError:
    detail = f"{failure.reason} ({failure.code or type(exc).__name__})"
    if failure.kind == MISCONFIGURED:
        return CacheConfigurationError(f"configuration error: {failure.reason}", reason=failure.reason)
    if failure.kind == REJECTED:
        return CacheCommandError(f"backend refused the command: {detail}", reason=failure.reason, code=failure.code)
    if failure.kind == UNAVAILABLE:
        return CacheUnavailableError(f"backend unavailable: {detail}", reason=failure.reason, code=failure.code)
    if failure.reason == "timed out":
        return CacheTimeoutError(f"backend timed out ({type(exc).__name__})", reason=failure.reason)
    return CacheConnectionError(f"backend unreachable: {detail}", reason=failure.reason)
