"""Cache-aside: get_or_set, @cached, single-flight, the lock, early refresh, stale-on-error.

Real parts only: memory, a private redis-server, Sentinel and Cluster servers, real processes
(one SIGKILLed while it holds a lock). Waits are events or polls with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yokedcache import CacheConfig, CacheConnectionError, YokedCache
from yokedcache.cache_aside import ENVELOPE, LOCK_ROOT
from yokedcache.cache_keys import encode, key_builder
from yokedcache.telemetry import semconv as sc

from .redis_server import free_port

WORKER = str(Path(__file__).with_name("cache_aside_worker.py"))


async def _until(predicate: Any, deadline: float = 10.0) -> None:
    """Poll ``predicate`` each loop turn (or ms) until true; fail after ``deadline`` seconds."""
    give_up = time.monotonic() + deadline
    while not predicate():
        assert time.monotonic() < give_up, "condition not reached in time"
        await asyncio.sleep(0.001)


async def _all_waiting(cache: YokedCache, misses: int) -> None:
    """Every caller's read has missed: it waits on the flight (reads on Redis answer in batches)."""
    await _until(lambda: cache.telemetry.counters.misses >= misses)
    await asyncio.sleep(0)


class Gate:
    """A factory that counts its calls and returns only when let through."""

    def __init__(self, result: Any = "value", error: BaseException | None = None) -> None:
        self.calls = 0
        self.started = asyncio.Event()
        self.go = asyncio.Event()
        self.result, self.error = result, error

    async def __call__(self) -> Any:
        self.calls += 1
        self.started.set()
        await self.go.wait()
        if self.error is not None:
            raise self.error
        return self.result


# -- get_or_set on every backend -----------------------------------------------------------
async def test_a_miss_computes_once_for_every_concurrent_caller_and_a_hit_never(make_cache, telemetry):
    cache = make_cache()
    gate = Gate({"rows": [1, 2]})
    callers = [asyncio.ensure_future(cache.get_or_set("k", gate, ttl=60)) for _ in range(50)]
    await _all_waiting(cache, 50)
    gate.go.set()
    assert [await c for c in callers] == [{"rows": [1, 2]}] * 50
    assert gate.calls == 1
    assert await cache.get_or_set("k", gate) == {"rows": [1, 2]} and gate.calls == 1
    assert await cache.get("k") == {"rows": [1, 2]}
    assert cache.computations()["saved"] == 49
    assert telemetry.value(sc.COMPUTATIONS, outcome="ok") == 1
    assert telemetry.value(sc.COALESCED, scope="process") == 49
    durations = telemetry.metrics()[sc.COMPUTE_DURATION]
    assert [(attrs, point.count) for attrs, point in durations] == [({"outcome": "ok"}, 1)]


async def test_sync_factories_work_too(make_cache):
    cache = make_cache()
    assert await cache.get_or_set("k", lambda: 41 + 1) == 42
    assert await cache.get_or_set("k", lambda: 0) == 42


async def test_an_exception_reaches_every_waiter_nothing_is_stored_and_the_next_call_retries(make_cache, telemetry):
    cache = make_cache()
    gate = Gate(error=LookupError("db down"))
    callers = [asyncio.ensure_future(cache.get_or_set("k", gate)) for _ in range(10)]
    await _all_waiting(cache, 10)
    gate.go.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, LookupError) and str(r) == "db down" for r in results)
    assert gate.calls == 1
    assert await cache.get("k", "absent") == "absent"
    assert await cache.get_or_set("k", lambda: "fine") == "fine"
    assert telemetry.value(sc.COMPUTATIONS, outcome="error") == 1


async def test_none_is_returned_but_not_stored(make_cache):
    cache = make_cache()
    calls = []

    async def nothing() -> None:
        calls.append(1)

    assert await cache.get_or_set("k", nothing) is None
    assert await cache.get_or_set("k", nothing) is None
    assert len(calls) == 2
    assert not await cache.exists("k")


async def test_a_cancelled_runner_hands_over_to_a_waiter(make_cache):
    cache = make_cache()
    gate = Gate("v")
    runner = asyncio.ensure_future(cache.get_or_set("k", gate))
    await gate.started.wait()
    waiters = [asyncio.ensure_future(cache.get_or_set("k", gate)) for _ in range(5)]
    await _all_waiting(cache, 6)
    gate.started.clear()
    runner.cancel()
    await gate.started.wait()  # a waiter runs the factory again
    gate.go.set()
    assert await asyncio.gather(*waiters) == ["v"] * 5
    assert runner.cancelled()
    assert gate.calls == 2


async def test_a_cancelled_waiter_cancels_nobody_else(make_cache):
    cache = make_cache()
    gate = Gate("v")
    runner = asyncio.ensure_future(cache.get_or_set("k", gate))
    await gate.started.wait()
    quitter = asyncio.ensure_future(cache.get_or_set("k", gate))
    stayer = asyncio.ensure_future(cache.get_or_set("k", gate))
    await _all_waiting(cache, 3)
    quitter.cancel()
    gate.go.set()
    assert await runner == "v" and await stayer == "v"
    assert quitter.cancelled() and gate.calls == 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    callers=st.integers(1, 30),
    fails=st.booleans(),
    cancel_runner=st.booleans(),
)
def test_property_single_flight(callers: int, fails: bool, cancel_runner: bool) -> None:
    """Whatever the number of callers, the outcome and a cancelled runner: one factory run per
    flight, every caller gets that run's value or exception, a failure stores nothing."""

    async def scenario() -> None:
        async with YokedCache() as cache:
            gate = Gate("v", LookupError("x") if fails else None)
            tasks = [asyncio.ensure_future(cache.get_or_set("k", gate)) for _ in range(callers)]
            await gate.started.wait()
            if cancel_runner:
                gate.started.clear()
                await asyncio.sleep(0)
                tasks[0].cancel()
                if callers > 1:
                    await gate.started.wait()
            gate.go.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            survivors = results[1:] if cancel_runner else results
            expected_calls = 2 if cancel_runner and callers > 1 else 1
            assert gate.calls == expected_calls
            for r in survivors:
                assert isinstance(r, LookupError) if fails else r == "v"
            if cancel_runner:
                assert isinstance(results[0], asyncio.CancelledError)
            assert (await cache.get("k")) == (None if fails or (cancel_runner and callers == 1) else "v")

    asyncio.run(scenario())


# -- outages ---------------------------------------------------------------------------------
#: A Redis of each flavour that nothing answers (plain, Sentinel, Cluster).
DEAD = {
    "plain": "redis://127.0.0.1:{port}/0",
    "sentinel": "redis+sentinel://127.0.0.1:{port}/mymaster",
    "cluster": "redis+cluster://127.0.0.1:{port}",
}


@pytest.mark.parametrize("flavour", DEAD)
@pytest.mark.parametrize("lock", [False, True])
async def test_fail_open_with_redis_unreachable_computes_and_counts_the_miss(lock, flavour, telemetry):
    dead = DEAD[flavour].format(port=free_port())
    async with YokedCache(CacheConfig(redis_url=dead, retry_attempts=0, lock=lock,
                                      meter_provider=telemetry.meter_provider)) as cache:  # fmt: skip
        assert await cache.get_or_set("k", lambda: "computed") == "computed"
        assert cache.telemetry.counters.misses == 1
        assert cache.computations()["computations_ok"] == 1


@pytest.mark.parametrize("flavour", DEAD)
@pytest.mark.parametrize("lock", [False, True])
async def test_fail_closed_with_redis_unreachable_raises_and_never_computes(lock, flavour):
    dead = DEAD[flavour].format(port=free_port())
    calls = []
    async with YokedCache(CacheConfig(redis_url=dead, retry_attempts=0, lock=lock, fail_open=False)) as cache:
        with pytest.raises(CacheConnectionError):
            await cache.get_or_set("k", lambda: calls.append(1))
    assert calls == []


# -- spans -----------------------------------------------------------------------------------
async def lookup_user() -> dict[str, int]:
    return {"id": 7}


async def test_the_operation_span_carries_cache_hit_and_the_factory_runs_under_its_own(redis_url, telemetry):
    from opentelemetry.trace import SpanKind

    async with YokedCache(CacheConfig(redis_url=redis_url, tracer_provider=telemetry.tracer_provider,
                                      meter_provider=telemetry.meter_provider)) as cache:  # fmt: skip
        await cache.get_or_set("u", lookup_user)
        await cache.get_or_set("u", lookup_user)
    spans = telemetry.spans.get_finished_spans()
    operations = [s for s in spans if s.name == "yokedcache get_or_set"]
    assert [s.attributes[sc.SPAN_CACHE_HIT] for s in operations] == [False, True]
    factory = [s for s in spans if s.name == "lookup_user"]
    assert len(factory) == 1 and factory[0].kind is SpanKind.INTERNAL
    assert factory[0].parent.span_id == operations[0].context.span_id
    assert {s.name for s in spans if s.parent and s.parent.span_id == operations[0].context.span_id} >= {
        "GET", "SET", "lookup_user"}  # fmt: skip


# -- the decorator ----------------------------------------------------------------------------
async def test_the_decorator_caches_by_arguments_and_invalidates(make_cache):
    cache = make_cache()
    calls = []

    @cache.cached(ttl=60)
    async def report(day: str, limit: int = 10) -> list[Any]:
        calls.append((day, limit))
        return [day, limit]

    assert await report("mon") == ["mon", 10]
    assert await report(day="mon") == ["mon", 10]
    assert await report("mon", limit=10) == ["mon", 10]
    assert await report("mon", 10) == ["mon", 10]
    assert calls == [("mon", 10)]
    assert await report("tue") == ["tue", 10] and len(calls) == 2
    assert await report.invalidate(day="mon") is True
    assert await report("mon") == ["mon", 10] and len(calls) == 3
    assert report.__name__ == "report"


async def test_two_functions_with_the_same_arguments_never_share_a_key(make_cache):
    cache = make_cache()

    @cache.cached()
    async def a(x: int) -> str:
        return "a"

    @cache.cached()
    async def b(x: int) -> str:
        return "b"

    assert (await a(1), await b(1)) == ("a", "b")
    assert a.key_of(1) != b.key_of(1)


async def test_methods_are_keyed_without_self(make_cache):
    cache = make_cache()

    class Repo:
        calls = 0

        @cache.cached()
        async def find(self, ident: int) -> int:
            Repo.calls += 1
            return ident * 2

    repo = Repo()
    assert await Repo().find(3) == 6 and await repo.find(ident=3) == 6
    assert Repo.calls == 1
    assert repo.find.key_of(3) == Repo.find.key_of(ident=3)
    assert await repo.find.invalidate(3) is True  # without self, however it is reached
    assert await repo.find(3) == 6 and Repo.calls == 2


async def test_an_unkeyable_argument_raises_a_type_error_at_call_time_naming_it(make_cache):
    cache = make_cache()
    calls = []

    @cache.cached()
    async def f(conn: object, n: int) -> int:
        calls.append(1)
        return n

    with pytest.raises(TypeError, match=r"argument 'conn': object has no stable key \(pass key="):
        await f(object(), 1)
    with pytest.raises(TypeError, match="argument 'n'"):
        await f(None, [object()])
    assert calls == []


async def test_a_key_callable_makes_the_key(make_cache):
    cache = make_cache()

    @cache.cached(key=lambda conn, user_id: f"user:{user_id}")
    async def load(conn: object, user_id: int) -> int:
        return user_id

    assert await load(object(), 5) == 5
    assert await cache.get("user:5") == 5
    assert await load.invalidate(None, 5) is True
    with pytest.raises(TypeError, match="key: the key function must return a str, got int"):
        await cache.cached(key=lambda conn, user_id: 1)(load)(None, 1)


def test_the_decorator_refuses_what_it_cannot_serve():
    cache = YokedCache()
    with pytest.raises(TypeError, match="cached: expected an async function"):
        cache.cached()(lambda: 1)
    with pytest.raises(TypeError, match="key: expected a callable"):
        cache.cached(key="fixed")
    with pytest.raises(ValueError, match="ttl"):
        cache.cached(ttl=-1)
    with pytest.raises(TypeError, match="lock"):
        cache.cached(lock="yes")


def test_keys_are_stable_across_interpreter_runs_and_documented():
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, WORKER, "key"], env=env, capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout))
    assert runs[0] == runs[1]
    keys = runs[0]
    head = "__main__.keys.<locals>.report("
    colour = "e33:__main__.keys.<locals>.Colour.RED"
    assert keys[0] == keys[1] == f"{head}s10:2026-12-08,i10,{colour},{{}})"
    assert keys[2] == f"{head}s1:d,i10,{colour},{{s4:deep={{s1:z=[i1,T]}},s4:tags=<s1:a,s1:b>,s4:when=(f1.5,N,b1:00)}})"
    assert keys[3] == f"{head}#fc717ea37ae8d1b796abdd33493efba50cd340c18ce6e97ef92bf1f12e3d765b)"


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(a=values, b=values)
def test_property_values_encode_alike_exactly_when_equal_with_the_same_types(a: Any, b: Any) -> None:
    assert (encode(a) == encode(b)) == _equal_deep(a, b)
    assert encode(a) == encode(a)


def _equal_deep(a: Any, b: Any) -> bool:
    """Equal as values, with the same types all the way down (what the key must honour)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal_deep(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal_deep(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return repr(a) == repr(b)
    return bool(a == b)


@settings(max_examples=100, deadline=None)
@given(x=values, y=values, by_keyword=st.sets(st.sampled_from(["x", "y"])), use_default=st.booleans())
def test_property_positional_and_keyword_spellings_give_one_key(x: Any, y: Any, by_keyword: set[str],
                                                               use_default: bool) -> None:  # fmt: skip
    async def f(x: Any, y: Any = 3) -> None:
        return None

    build = key_builder(f)
    if use_default:
        y = 3
    reference = build((x, y), {})
    if "x" in by_keyword:
        args, kwargs = (), {"x": x, **({"y": y} if "y" in by_keyword or not use_default else {})}
    else:
        args = (x,) if "y" in by_keyword or use_default else (x, y)
        kwargs = {"y": y} if "y" in by_keyword else {}
    assert build(args, kwargs) == reference


# -- the lock -------------------------------------------------------------------------------
async def test_the_lock_gives_one_computation_across_caches_on_every_backend(make_cache):
    """Two caches on one store have two single-flights: only the lock joins them (memory:
    each cache is its own store, so the process-local lock is per store)."""
    first = make_cache(lock=True)
    second = make_cache(lock=True) if first.backend.shared_locks else first
    calls = []

    async def slow() -> str:
        calls.append(1)
        await asyncio.sleep(0.05)
        return "v"

    got = await asyncio.gather(*(c.get_or_set("k", slow) for c in (first, second) for _ in range(25)))
    assert got == ["v"] * 50 and len(calls) == 1
    if first is not second:
        assert second.computations()["coalesced_lock"] + first.computations()["coalesced_lock"] == 1


async def _one_computation_across_two_caches(url: str) -> None:
    calls = []

    async def slow() -> str:
        calls.append(1)
        await asyncio.sleep(0.05)
        return "v"

    config = CacheConfig(redis_url=url, lock=True, fail_open=False)
    async with YokedCache(config) as a, YokedCache(config) as b:
        got = await asyncio.gather(*(c.get_or_set("k", slow) for c in (a, b) for _ in range(25)))
        assert got == ["v"] * 50 and len(calls) == 1


async def test_the_lock_works_on_redis_cluster():
    from .conftest import _require_redis
    from .redis_server import RedisClusterServers

    _require_redis()
    servers = RedisClusterServers()
    servers.start()
    try:
        await _one_computation_across_two_caches(servers.url())
    finally:
        servers.close()


async def test_the_lock_works_through_sentinel():
    from .conftest import _require_redis
    from .redis_server import RedisSentinelServer, RedisServer

    _require_redis()
    primary = RedisServer()
    primary.start()
    watcher = RedisSentinelServer(primary)
    try:
        watcher.start()
        await _one_computation_across_two_caches(watcher.url())
    finally:
        watcher.close()
        primary.close()


async def test_a_waiter_gives_up_on_a_held_lock_after_lock_wait_and_computes(redis_url):
    patient = CacheConfig(redis_url=redis_url, lock=True)
    hasty = CacheConfig(redis_url=redis_url, lock=True, lock_wait=0.2)
    async with YokedCache(patient) as holder, YokedCache(hasty) as waiter:
        gate = Gate("holder's")
        held = asyncio.ensure_future(holder.get_or_set("k", gate))
        await gate.started.wait()
        assert await waiter.get_or_set("k", lambda: "waiter's") == "waiter's"
        gate.go.set()
        assert await held == "holder's"
    client = redis.Redis.from_url(redis_url)
    assert client.exists(LOCK_ROOT + "yokedcache:k") == 0  # released by compare-and-delete
    client.close()


def test_four_processes_of_250_callers_on_a_cold_key_compute_exactly_once(redis_url):
    workers = [
        subprocess.Popen(
            [sys.executable, WORKER, "stampede", redis_url, "250"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for w in workers:
            assert w.stdout.readline().strip() == "ready"
        for w in workers:
            w.stdin.write("go\n")
            w.stdin.flush()
        reports = [json.loads(w.stdout.readline()) for w in workers]
    finally:
        for w in workers:
            w.wait(timeout=60)
    assert [r["values"] for r in reports] == [["computed"]] * 4
    client = redis.Redis.from_url(redis_url)
    assert int(client.get("test:factory-calls")) == 1
    client.close()
    assert sum(r["counts"]["computations_ok"] for r in reports) == 1


def test_a_sigkilled_holders_lock_expires_and_the_next_caller_computes(redis_url):
    async def next_caller() -> Any:
        async with YokedCache(CacheConfig(redis_url=redis_url, lock=True, lock_wait=30)) as cache:
            return await cache.get_or_set("cold", lambda: "after the holder died"), cache.computations()

    holder = subprocess.Popen([sys.executable, WORKER, "hold", redis_url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "computing"
        client = redis.Redis.from_url(redis_url)
        assert 0 < client.pttl(LOCK_ROOT + "yokedcache:cold") <= 1000  # held, and set to expire
        client.close()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        value, counts = asyncio.run(next_caller())
        assert value == "after the holder died" and counts["computations_ok"] == 1
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


# -- early refresh and stale-on-error ----------------------------------------------------------
async def test_early_refresh_recomputes_once_while_callers_keep_the_cached_value(make_cache, telemetry):
    cache = make_cache()
    gate = Gate("new")
    # due for XFetch: the last computation took "forever" beside the time left
    await cache.set("k", {ENVELOPE: 1, "v": "old", "x": time.time() + 1000, "d": 1e9}, ttl=2000)
    got = await asyncio.gather(*(cache.get_or_set("k", gate, ttl=60, early_refresh=True) for _ in range(20)))
    assert got == ["old"] * 20
    await gate.started.wait()
    gate.go.set()
    await _until(lambda: cache.computations()["computations_ok"] == 1)
    await _until(lambda: not cache.cache_aside._background)
    assert await cache.get_or_set("k", gate, early_refresh=True) == "new"
    assert gate.calls == 1 and cache.computations()["early_refreshes"] == 1
    assert telemetry.value(sc.EARLY_REFRESHES) == 1


async def test_a_fresh_entry_is_not_refreshed_early(make_cache):
    cache = make_cache()
    calls = []
    await cache.get_or_set("k", lambda: calls.append(1) or "v", ttl=3600, early_refresh=True)
    for _ in range(50):
        assert await cache.get_or_set("k", lambda: calls.append(1) or "x", ttl=3600, early_refresh=True) == "v"
    assert len(calls) == 1 and cache.computations()["early_refreshes"] == 0


async def test_stale_on_error_serves_the_expired_value_and_counts_it(make_cache, telemetry):
    cache = make_cache()
    await cache.set("k", {ENVELOPE: 1, "v": "last good", "x": time.time() - 1, "d": 0.01}, ttl=60)
    gate = Gate(error=LookupError("db down"))
    callers = [asyncio.ensure_future(cache.get_or_set("k", gate, stale_ttl=60)) for _ in range(5)]
    await gate.started.wait()
    await _until(lambda: cache.telemetry.counters.hits >= 5)  # every caller read the expired entry
    await asyncio.sleep(0)
    gate.go.set()
    assert await asyncio.gather(*callers) == ["last good"] * 5
    assert cache.computations()["stale_serves"] == 5
    assert telemetry.value(sc.STALE_SERVES) == 5
    with pytest.raises(LookupError):  # without stale_ttl the failure is the caller's
        await cache.get_or_set("other", gate)


async def test_stale_ttl_keeps_an_entry_past_its_ttl_and_it_recomputes_when_the_factory_works(make_cache):
    cache = make_cache()
    assert await cache.get_or_set("k", lambda: "v1", ttl=0.05, stale_ttl=60) == "v1"
    expired_at = time.time() + 0.06
    await _until(lambda: time.time() > expired_at)
    assert await cache.get_or_set("k", lambda: "v2", ttl=0.05, stale_ttl=60) == "v2"


# -- settings and the lock primitives ------------------------------------------------------------
def test_lock_settings_are_validated_by_name():
    with pytest.raises(TypeError, match="lock: expected a bool, got str"):
        CacheConfig(lock="yes")
    with pytest.raises(ValueError, match="lock_ttl: must be a positive finite number"):
        CacheConfig(lock_ttl=0)
    with pytest.raises(ValueError, match="lock_wait: must be a positive finite number"):
        CacheConfig(lock_wait=-1)
    with pytest.raises(ValueError, match="early_refresh"):
        YokedCache().cached(early_refresh=-1)
    with pytest.raises(ValueError, match="stale_ttl"):
        YokedCache().cached(stale_ttl=0)
    with pytest.raises(ValueError, match="ttl: must be a positive number of seconds up to"):
        YokedCache().cached(ttl=1e11)


async def test_get_or_set_refuses_a_factory_that_is_not_callable_and_bad_tags_before_computing():
    calls = []
    async with YokedCache() as cache:
        with pytest.raises(TypeError, match="factory: expected a callable, got int"):
            await cache.get_or_set("k", 42)
        with pytest.raises(TypeError, match="tags: every tag must be a str, got int"):
            await cache.get_or_set("k", lambda: calls.append(1), tags=[1])
        with pytest.raises(TypeError, match="tags: every tag must be a str, got int"):
            cache.cached(tags=[1])
        assert await cache.get_or_set("k", lambda: 5, tags="t") == 5
        assert await cache.invalidate_tags("t") == 1
    assert calls == []


async def test_a_redis_lock_is_released_only_by_its_own_token(redis_url):
    from yokedcache.backends import RedisBackend

    backend = RedisBackend(redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        assert await backend.acquire_lock("l", "mine", 10)
        assert not await backend.acquire_lock("l", "theirs", 10)
        assert 9000 < client.pttl("l") <= 10000
        client.set("l", "theirs")  # mine expired meanwhile and another process took it
        assert not await backend.release_lock("l", "mine")
        assert client.get("l") == b"theirs" and await backend.lock_held("l")
        assert await backend.release_lock("l", "theirs") and not await backend.lock_held("l")
    finally:
        client.close()
        await backend.close()


async def test_the_process_local_lock_expires():
    from yokedcache.backends.base import ProcessLocks

    locks = ProcessLocks()
    assert locks.acquire("l", "a", 0.01) and not locks.acquire("l", "b", 10)
    await _until(lambda: not locks.held("l"))
    assert locks.acquire("l", "b", 10)
    assert not locks.release("l", "a") and locks.release("l", "b")
