"""Caches clean up after themselves: close(), the garbage collector, other event loops, cancellation."""

from __future__ import annotations

import asyncio
import gc
import os
import time
import warnings

import pytest
import redis

from yokedcache import CacheClosedError, CacheConfig, YokedCache
from yokedcache.backends import RedisBackend

from .conftest import _require_redis
from .redis_server import RedisServer


def _our_clients(url: str, name: str | None = None) -> int:
    """Connections the private server sees, less the one asking."""
    client = redis.Redis.from_url(url)
    try:
        return len(client.client_list()) - 1
    finally:
        client.close()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _settle(condition, deadline_s: float = 5.0) -> None:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < deadline_s, "did not settle in time"
        gc.collect()
        await asyncio.sleep(0.02)


async def test_caches_dropped_without_close_release_sockets_and_tasks_with_a_resource_warning(redis_url):
    baseline_clients, baseline_fds = _our_clients(redis_url), _fds()
    baseline_tasks = len(asyncio.all_tasks())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(50):
            cache = YokedCache(CacheConfig(redis_url=redis_url, key_prefix="dropped:"))
            assert await cache.set(f"k{i}", i) is True  # opens a connection and the background refresher
        assert _our_clients(redis_url) >= 1
        del cache
        await _settle(
            lambda: _our_clients(redis_url) == baseline_clients
            and len(asyncio.all_tasks()) == baseline_tasks
            and _fds() <= baseline_fds + 2
        )
    unclosed = [w for w in caught if issubclass(w.category, ResourceWarning) and "'dropped:'" in str(w.message)]
    assert len(unclosed) == 50


async def test_close_waits_for_operations_in_flight_then_releases_every_connection(redis_url):
    cache = YokedCache(CacheConfig(redis_url=redis_url, close_timeout=5.0))
    await cache.set("k", "v")
    closed_errors = 0

    async def worker() -> int:
        nonlocal closed_errors
        done = 0
        while True:
            try:
                assert await cache.get("k") == "v"  # in flight when close() starts: it finishes
            except CacheClosedError:
                closed_errors += 1
                return done
            done += 1

    tasks = [asyncio.create_task(worker()) for _ in range(20)]
    await asyncio.sleep(0.1)
    assert _our_clients(redis_url) >= 2
    await cache.close()
    results = await asyncio.gather(*tasks)
    assert closed_errors == 20 and all(n > 0 for n in results)
    assert cache.telemetry.counters.error_total == 0  # nothing was cut off mid-command
    assert _our_clients(redis_url) == 0


async def test_after_close_operations_raise_and_open_no_connection(redis_url):
    cache = YokedCache(CacheConfig(redis_url=redis_url))
    await cache.set("k", "v")
    await cache.close()
    for call in (cache.get("k"), cache.set("k", 1), cache.get_many(["k"]), cache.delete("k"), cache.clear()):
        with pytest.raises(CacheClosedError, match="closed"):
            await call
    assert await cache.health() is False
    report = await cache.detailed_health_check()
    assert report["status"] == "unhealthy" and "cache is closed" in report["reasons"][0]
    assert _our_clients(redis_url) == 0
    await cache.close()  # idempotent


def test_one_cache_works_across_asyncio_run_twice_without_writing_then_raising(redis_server, redis_url):
    cache = YokedCache(CacheConfig(redis_url=redis_url, fail_open=False))
    assert asyncio.run(cache.set("first", 1)) is True
    assert asyncio.run(cache.get("first")) == 1  # a second loop: reconnects instead of "Event loop is closed"

    async def third() -> tuple[bool, object]:
        return await cache.set("third", 3), await cache.get("third")

    assert asyncio.run(third()) == (True, 3)
    assert cache.telemetry.counters.error_total == 0
    asyncio.run(cache.close())  # from yet another loop: no error
    assert _our_clients(redis_url) == 0


@pytest.fixture(scope="module")
def shared_cache(request):
    """One cache across tests, as a module-level cache would be with per-test event loops."""
    url = request.getfixturevalue("redis_server").url(2)
    cache = YokedCache(CacheConfig(redis_url=url, fail_open=False))
    yield cache
    asyncio.run(cache.close())


@pytest.mark.parametrize("round_", range(3))
async def test_a_module_level_cache_serves_every_per_test_event_loop(shared_cache, round_):
    assert await shared_cache.set(f"r{round_}", round_) is True
    assert await shared_cache.get(f"r{round_}") == round_


def test_a_backend_passed_in_refuses_a_second_loop_before_sending_anything(redis_url):
    backend = RedisBackend(redis_url)
    cache = YokedCache(CacheConfig(backend=backend))
    assert asyncio.run(cache.set("a", 1)) is True
    with pytest.raises(RuntimeError, match="another event loop"):
        asyncio.run(cache.set("b", 2))
    client = redis.Redis.from_url(redis_url)
    assert client.exists("yokedcache:b") == 0  # never written-then-raised
    client.close()


@pytest.fixture(scope="module")
def debug_url():
    """A private server that accepts DEBUG SLEEP (to keep callers waiting)."""
    _require_redis()
    server = RedisServer("--enable-debug-command", "yes")
    server.start()
    yield server.url()
    server.close()


async def test_cancelled_callers_are_not_backend_errors(debug_url):
    redis_url = debug_url
    cache = YokedCache(CacheConfig(redis_url=redis_url))
    await cache.set("k", "v")
    slow = redis.asyncio.Redis.from_url(redis_url)
    try:
        cancelled = 0
        for _ in range(5):
            sleeper = asyncio.create_task(slow.execute_command("DEBUG", "SLEEP", "0.2"))
            await asyncio.sleep(0.02)
            waits = [asyncio.create_task(asyncio.wait_for(cache.get("k"), 0.05)) for _ in range(20)]
            for result in await asyncio.gather(*waits, return_exceptions=True):
                cancelled += isinstance(result, (asyncio.TimeoutError, asyncio.CancelledError))
            await sleeper
        assert cancelled > 0
        counters = cache.telemetry.counters
        assert counters.cancellations == cancelled
        assert counters.error_total == 0
        assert cache.get_comprehensive_metrics().error_rate == 0.0
        assert (await cache.detailed_health_check())["status"] == "healthy"
    finally:
        await slow.aclose()
        await cache.close()


async def test_cancellations_are_exported_apart_from_errors(debug_url, telemetry):
    redis_url = debug_url
    cache = YokedCache(CacheConfig(redis_url=redis_url, meter_provider=telemetry.meter_provider))
    await cache.set("k", "v")
    slow = redis.asyncio.Redis.from_url(redis_url)
    try:
        sleeper = asyncio.create_task(slow.execute_command("DEBUG", "SLEEP", "0.2"))
        await asyncio.sleep(0.02)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(cache.get("k"), 0.05)
        await sleeper
        metrics = telemetry.metrics()
        assert [p.value for _, p in metrics["yokedcache.cache.cancellations"]] == [1]
        assert "yokedcache.cache.errors" not in metrics or not [p for _, p in metrics["yokedcache.cache.errors"]]
    finally:
        await slow.aclose()
        await cache.close()
