"""Circuit breaker, retries and fault injection against a private redis-server we kill."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest

from yokedcache import CacheConfig, YokedCache, health
from yokedcache.backends.base import RESERVED_CONNECTIONS
from yokedcache.errors import CacheConnectionError, CacheTimeoutError, CircuitOpenError
from yokedcache.resilience import CLOSED, HALF_OPEN, OPEN, Admission, CircuitBreaker, Guard
from yokedcache.telemetry import semconv as sc

from .redis_server import RedisServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Flaky:
    """A backend call that fails while ``down`` and counts how often it ran."""

    def __init__(self) -> None:
        self.down = True
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.down:
            raise OSError("connection refused")
        return "ok"


def make_guard(threshold: int = 3, retries: int = 0, backoff: float = 0.0) -> tuple[Guard, CircuitBreaker, FakeClock]:
    clock = FakeClock()
    breaker = CircuitBreaker(threshold, recovery_timeout=5.0, clock=clock)
    return Guard((OSError,), breaker, retries, backoff), breaker, clock


# -- breaker and guard -------------------------------------------------------------------
async def test_breaker_opens_after_consecutive_failures_and_then_fails_fast():
    guard, breaker, _ = make_guard(threshold=3)
    fn = Flaky()
    for _ in range(3):
        with pytest.raises(CacheConnectionError):
            await guard.call(fn)
    assert breaker.state == OPEN and breaker.opens == 1
    with pytest.raises(CircuitOpenError):
        await guard.call(fn)
    assert fn.calls == 3  # the open breaker did not touch the "network"


async def test_open_breaker_does_not_sleep_between_retries():
    guard, breaker, _ = make_guard(threshold=1, retries=5, backoff=30.0)
    fn = Flaky()
    with pytest.raises(CacheConnectionError):
        # the first failure opens the breaker, so no 30 s back-off may follow
        await asyncio.wait_for(guard.call(fn), timeout=5)
    assert breaker.state == OPEN and fn.calls == 1


async def test_retries_transient_errors_while_closed():
    guard, breaker, _ = make_guard(threshold=10, retries=2)
    fn = Flaky()
    with pytest.raises(CacheConnectionError):
        await guard.call(fn)
    assert fn.calls == 3 and breaker.consecutive_failures == 3


async def test_half_open_trial_success_closes_and_failure_reopens(caplog):
    guard, breaker, clock = make_guard(threshold=1)
    fn = Flaky()
    caplog.set_level(logging.DEBUG, logger="yokedcache.resilience")
    with pytest.raises(CacheConnectionError):
        await guard.call(fn)
    clock.now += 5.0
    with pytest.raises(CacheConnectionError):  # the trial fails: open again, for another cool-down
        await guard.call(fn)
    assert breaker.state == OPEN and breaker.opens == 2
    with pytest.raises(CircuitOpenError):
        await guard.call(fn)
    clock.now += 5.0
    fn.down = False
    assert await guard.call(fn) == "ok"
    assert breaker.state == CLOSED and breaker.consecutive_failures == 0
    transitions = [r.getMessage() for r in caplog.records]
    assert any("closed -> open" in m for m in transitions)
    assert any("half_open -> closed" in m for m in transitions)


async def test_only_one_half_open_trial_at_a_time():
    guard, breaker, clock = make_guard(threshold=1)
    gate = asyncio.Event()

    async def slow_ok() -> str:
        await gate.wait()
        return "ok"

    breaker.failure(False, OSError())
    clock.now += 5.0
    trial = asyncio.ensure_future(guard.call(slow_ok))
    await asyncio.sleep(0)
    assert breaker.state == HALF_OPEN
    with pytest.raises(CircuitOpenError):
        await guard.call(slow_ok)
    gate.set()
    assert await trial == "ok"
    assert breaker.state == CLOSED


async def test_cancelled_half_open_trial_does_not_wedge_the_breaker():
    guard, breaker, clock = make_guard(threshold=1)
    breaker.failure(False, OSError())
    clock.now += 5.0
    hang = asyncio.ensure_future(guard.call(asyncio.Event().wait))
    await asyncio.sleep(0)
    assert breaker.state == HALF_OPEN
    hang.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hang
    fn = Flaky()
    fn.down = False
    assert await guard.call(fn) == "ok"  # a new trial was allowed through
    assert breaker.state == CLOSED


async def test_non_transient_errors_pass_through_without_counting():
    guard, breaker, _ = make_guard(threshold=1)

    async def bad() -> None:
        raise ValueError("bad command")

    with pytest.raises(ValueError):
        await guard.call(bad)
    assert breaker.state == CLOSED and breaker.total_failures == 0


# -- admission (at most max_connections calls at once, first come first served) -------------
async def test_admission_serves_waiters_in_arrival_order():
    admission = Admission(1)
    assert admission.try_enter()
    order: list[int] = []

    async def waiter(n: int) -> None:
        await admission.enter()
        order.append(n)
        admission.leave()

    tasks = [asyncio.ensure_future(waiter(n)) for n in range(5)]
    await asyncio.sleep(0)  # every waiter queued
    assert admission.waiting == 5
    admission.leave()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert admission.try_enter() and not admission.try_enter()  # exactly one slot came back


async def test_admission_slot_is_not_lost_when_a_waiter_is_cancelled():
    admission = Admission(1)
    assert admission.try_enter()
    first = asyncio.ensure_future(admission.enter())
    second = asyncio.ensure_future(admission.enter())
    third = asyncio.ensure_future(admission.enter())
    await asyncio.sleep(0)
    third.cancel()  # cancelled while queued: leaves the queue
    with pytest.raises(asyncio.CancelledError):
        await third
    assert admission.waiting == 2
    admission.leave()  # the slot is handed to `first`...
    first.cancel()  # ...which is cancelled before it runs: it must pass the slot on
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)
    admission.leave()
    assert admission.waiting == 0
    assert admission.try_enter() and not admission.try_enter()


# -- against a real redis-server we kill and restart -------------------------------------
@pytest.fixture
def own_redis():
    from .conftest import _require_redis

    _require_redis()
    server = RedisServer()
    server.start()
    yield server
    server.close()


async def poll(condition, deadline_s: float, interval: float = 0.01) -> float:
    """Await ``condition()`` (async) until it is true; return the seconds it took."""
    started = time.monotonic()
    while not await condition():
        assert time.monotonic() - started < deadline_s, f"condition not met within {deadline_s}s"
        await asyncio.sleep(interval)
    return time.monotonic() - started


async def test_kill_and_restart_under_50_concurrent_tasks(own_redis, telemetry):
    recovery = 1.0
    cache = YokedCache(
        CacheConfig(
            redis_url=own_redis.url(),
            circuit_failure_threshold=5,
            circuit_recovery_timeout=recovery,
            operation_timeout=0.5,
            connect_timeout=0.5,
            meter_provider=telemetry.meter_provider,
        )
    )
    calls = Counter()
    stop = asyncio.Event()

    async def worker(n: int) -> None:
        i = 0
        while not stop.is_set():
            key = f"k{(n * 7 + i) % 100}"
            op = i % 3
            if op == 0:
                await cache.set(key, {"n": n, "i": i}, ttl=30)
                calls["set"] += 1
            elif op == 1:
                await cache.get(key)
                calls["get"] += 1
            else:
                await cache.exists(key)
                calls["exists"] += 1
            i += 1
            await asyncio.sleep(0.002)

    tasks = [asyncio.create_task(worker(n)) for n in range(50)]
    try:
        await poll(lambda: _true(sum(calls.values()) > 500), 10)
        assert await cache.health() is True
        assert cache.telemetry.counters.error_total == 0

        killed_at = time.monotonic()
        own_redis.stop()

        async def unhealthy() -> bool:
            return (await cache.health()) is False and (await cache.detailed_health_check())["status"] == "unhealthy"

        await poll(unhealthy, 1.0)
        detected = time.monotonic() - killed_at
        await poll(lambda: _true(cache.breaker.state == OPEN), 1.0)
        assert telemetry.value(sc.HEALTH) == 0
        assert telemetry.value(sc.BREAKER_STATE) == 2
        report = await cache.detailed_health_check()
        assert report["redis_connected"] is False
        assert report["circuit_breaker"]["opens"] >= 1
        errors_while_down = cache.telemetry.counters.error_total
        assert errors_while_down > 0

        own_redis.start()
        restarted_at = time.monotonic()

        async def recovered() -> bool:
            return cache.breaker.state == CLOSED and await cache.health() and telemetry.value(sc.HEALTH) == 1

        await poll(recovered, recovery + 1.0)
        recovered_in = time.monotonic() - restarted_at
        # Once closed it stays closed: no stale pooled socket fails after the restart.
        errors_before, opens_before, calls_before = (
            cache.telemetry.counters.error_total,
            cache.breaker.opens,
            sum(calls.values()),
        )
        await poll(lambda: _true(sum(calls.values()) > calls_before + 1000), 10)
        assert (cache.telemetry.counters.error_total, cache.breaker.opens) == (errors_before, opens_before)
        assert await cache.set("after", 1) is True and await cache.get("after") == 1
    finally:
        stop.set()
        await asyncio.gather(*tasks)  # any exception a task saw surfaces here
    counters = cache.telemetry.counters
    issued = sum(calls.values()) + 2  # plus the two checks after recovery
    assert counters.total_calls == issued
    successes = issued - counters.error_total
    assert successes + counters.error_total == counters.total_calls
    assert counters.calls["get"] == calls["get"] + 1 and counters.calls["set"] == calls["set"] + 1
    error_types = {etype for _, etype in counters.errors}
    # error.type names the driver's exception (semconv); only a fast-failing breaker is ours
    assert error_types <= {
        "redis.exceptions.ConnectionError",
        "redis.exceptions.TimeoutError",
        "TimeoutError",
        sc.error_type(CircuitOpenError()),
    }
    await cache.close()
    print(f"\ndetected outage in {detected:.3f}s, recovered {recovered_in:.3f}s after restart (cool-down {recovery}s)")


async def _true(value: bool) -> bool:
    return value


@pytest.mark.parametrize("fail_open", [True, False])
async def test_hung_redis_gives_timeouts_not_hangs(fail_open):
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)  # the kernel accepts; nobody ever answers
    url = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"
    cache = YokedCache(CacheConfig(redis_url=url, operation_timeout=0.2, retry_attempts=0, fail_open=fail_open))
    try:
        if fail_open:
            result = await asyncio.wait_for(cache.get("k", default="fallback"), timeout=5)
            assert result == "fallback"
        else:
            with pytest.raises(CacheTimeoutError) as info:
                await asyncio.wait_for(cache.get("k"), timeout=5)
            # docs/monitoring.md, 'Error Rate Monitoring': its `except ConnectionError` works
            assert isinstance(info.value, ConnectionError)
        assert cache.telemetry.counters.errors == {("get", "TimeoutError"): 1}  # the deadline of ours
    finally:
        await asyncio.wait_for(cache.close(), timeout=5)
        hung.close()


async def test_fail_closed_raises_builtin_connection_error(own_redis):
    own_redis.stop()
    async with YokedCache(CacheConfig(redis_url=own_redis.url(), fail_open=False, retry_attempts=0)) as cache:
        with pytest.raises(ConnectionError):
            await cache.set("k", 1)
        assert cache.telemetry.counters.error_total == 1


async def test_readyz_follows_redis_health(own_redis):
    from yokedcache.monitoring import CacheMetrics, PrometheusCollector

    collector = PrometheusCollector(port=0)
    metrics = CacheMetrics([collector])
    cache = YokedCache(CacheConfig(redis_url=own_redis.url(), metrics=metrics, circuit_recovery_timeout=0.5))

    def fetch(path: str) -> tuple[int, dict | bytes]:
        try:
            with urllib.request.urlopen(collector.url + path, timeout=10) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        return status, json.loads(body) if path == "/readyz" else body

    try:
        await cache.set("k", 1)
        status, report = await asyncio.to_thread(fetch, "/readyz")
        assert status == 200 and report["status"] == "healthy"
        assert report["connection_pool"]["max_connections"] == 50
        assert await asyncio.to_thread(fetch, "/healthz") == (200, b"ok\n")

        own_redis.stop()

        async def not_ready() -> bool:
            status, report = await asyncio.to_thread(fetch, "/readyz")
            return status == 503 and report["status"] == "unhealthy" and report["redis_connected"] is False

        await poll(not_ready, 5, interval=0.1)
        own_redis.start()

        async def ready() -> bool:
            status, _ = await asyncio.to_thread(fetch, "/readyz")
            return status == 200

        await poll(ready, 5, interval=0.1)
    finally:
        await cache.close()
        metrics.shutdown()


def _fetch_readyz(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait_for_readyz(url: str, status: int, deadline_s: float = 5.0) -> dict:
    """/readyz reuses a report for 1 s, so a change shows within about a second."""
    deadline = time.monotonic() + deadline_s
    while True:
        got, report = _fetch_readyz(url)
        if got == status:
            return report
        assert time.monotonic() < deadline, f"/readyz stayed {got}: {report}"
        time.sleep(0.1)


def test_readyz_before_the_first_operation_checks_on_a_one_off_connection(own_redis):
    """A pod whose cache has not served a request yet must still become ready (or traffic never comes)."""
    from yokedcache.monitoring import CacheMetrics, PrometheusCollector

    collector = PrometheusCollector(port=0)
    metrics = CacheMetrics([collector])
    cache = YokedCache(CacheConfig(redis_url=own_redis.url(), metrics=metrics))  # at import time: no loop yet
    try:
        report = _wait_for_readyz(collector.url, 200)
        assert report["status"] == "healthy" and report["redis_connected"] is True
        assert "one-off" in report["checked_on"]
        assert cache.backend.pool_stats()["created"] == 0  # the cache's own pool is still unbound
        assert cache.telemetry.counters.total_calls == 0

        own_redis.stop()
        report = _wait_for_readyz(collector.url, 503)
        assert report["redis_connected"] is False
        own_redis.start()
        _wait_for_readyz(collector.url, 200)

        async def first_use() -> None:  # the app's own loop, after the probes
            assert await cache.set("k", 1) is True and await cache.get("k") == 1
            await cache.close()

        asyncio.run(first_use())
    finally:
        metrics.shutdown()


def test_readyz_before_the_first_operation_answers_against_a_hung_redis():
    from yokedcache.monitoring import CacheMetrics, PrometheusCollector

    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)  # the kernel accepts; nobody ever answers
    collector = PrometheusCollector(port=0)
    metrics = CacheMetrics([collector])
    url = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"
    # kept referenced: a cache the collector has already dropped reports nothing
    cache = YokedCache(CacheConfig(redis_url=url, metrics=metrics, health_check_timeout=0.5))
    try:
        started = time.monotonic()
        status, report = _fetch_readyz(collector.url)
        assert (status, report["status"]) == (503, "unhealthy")
        assert "timed out" in report["reasons"][0]
        assert time.monotonic() - started < 3.0  # bounded by health_check_timeout (+ closing the twin)
    finally:
        del cache
        metrics.shutdown()
        hung.close()


async def test_exported_pool_gauges_are_real_numbers(own_redis, telemetry):
    async with YokedCache(CacheConfig(redis_url=own_redis.url(), max_connections=7,
                                      meter_provider=telemetry.meter_provider)) as cache:  # fmt: skip
        await asyncio.gather(*(cache.set(f"k{i}", i) for i in range(20)))
        assert telemetry.value(sc.POOL_MAX) == 7
        used = telemetry.value(sc.POOL_CONNECTIONS, state="used")
        idle = telemetry.value(sc.POOL_CONNECTIONS, state="idle")
        pool = cache.backend.pool_stats()
        # the same numbers the health check reports; side work (the usage refresh) has its reserve
        assert 1 <= used + idle == pool["created"] <= 7 + RESERVED_CONNECTIONS
        assert telemetry.value(sc.POOL_UTILIZATION) == pytest.approx(used / 7)
        assert telemetry.value(sc.HEALTH) == 1 and telemetry.value(sc.BREAKER_STATE) == 0
        assert telemetry.value(sc.BREAKER_OPENS) == 0


async def test_memory_cache_reports_healthy_without_pool_or_breaker(telemetry):
    async with YokedCache(CacheConfig(meter_provider=telemetry.meter_provider)) as cache:
        await cache.get("k")
        found = telemetry.metrics()
        assert telemetry.value(sc.HEALTH) == 1
        assert sc.BREAKER_STATE not in found and sc.POOL_MAX not in found


async def test_readyz_for_a_memory_cache_and_after_close():
    from yokedcache.monitoring import CacheMetrics, PrometheusCollector

    collector = PrometheusCollector(port=0)
    metrics = CacheMetrics([collector])

    def fetch() -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(collector.url + "/readyz", timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    try:
        status, body = await asyncio.to_thread(fetch)
        assert (status, body["reasons"]) == (503, ["no cache reports to this server"])
        cache = YokedCache(CacheConfig(metrics=metrics))
        status, body = await asyncio.to_thread(fetch)  # within the 1 s reuse window: same answer
        assert status == 503
        await poll(lambda: asyncio.to_thread(lambda: fetch()[0] == 200), 5, interval=0.2)
        status, body = await asyncio.to_thread(fetch)
        assert body["status"] == "healthy" and body["backend"]["kind"] == "memory"
        with pytest.raises(RuntimeError, match="await detailed_health_check"):
            health.readiness_report(cache, 2.0)  # what /readyz runs: it would block its own loop
        await cache.close()
    finally:
        metrics.shutdown()
