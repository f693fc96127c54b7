"""Fail-open means fail-open: a reachable Redis that refuses commands never raises through it.

Each test runs a real ``redis-server`` put into the state that hurts: full under ``maxmemory``
with ``noeviction`` (OOM), a read-only replica (READONLY), a replica whose primary is gone with
stale reads off (MASTERDOWN), a password we do not have (WRONGPASS / NOAUTH), and a server held
by a long script (BUSY).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from yokedcache import (
    CacheCommandError,
    CacheConfig,
    CacheUnavailableError,
    YokedCache,
)
from yokedcache.backends.base import REJECTED, TRANSIENT, UNAVAILABLE
from yokedcache.backends.redis_errors import classify_redis_error

from .conftest import _require_redis
from .redis_server import RedisServer, free_port


@contextlib.contextmanager
def server(*args: str, password: str | None = None) -> Iterator[RedisServer]:
    _require_redis()
    srv = RedisServer(*args, password=password)
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


def config(url: str, **kw: object) -> CacheConfig:
    kw.setdefault("retry_attempts", 0)
    return CacheConfig(redis_url=url, **kw)  # type: ignore[arg-type]


async def every_operation(cache: YokedCache) -> dict[str, object]:
    """Each public operation once; under fail-open none may raise."""
    return {
        "set": await cache.set("k", "v"),
        "set_tagged": await cache.set("k2", "v", tags=["t"]),
        "set_many": await cache.set_many({"a": 1, "b": 2}),
        "get": await cache.get("k", "dflt"),
        "get_many": await cache.get_many(["a", "b"]),
        "exists": await cache.exists("k"),
        "delete": await cache.delete("k"),
        "invalidate_tags": await cache.invalidate_tags(["t"]),
        "invalidate_pattern": await cache.invalidate_pattern("*"),
        "clear": await cache.clear(),
    }


def fill_until_oom(url: str) -> None:
    """Put Redis over ``maxmemory``: from then on it refuses every write, however small.

    The limit is set well below what the data already uses (not reached by writing up to it),
    so client buffers coming and going cannot bring the server back under it mid-test.
    """
    client = redis.Redis.from_url(url)
    try:
        for i in range(2_000):
            client.set(f"filler:{i}", b"x" * 1_000)
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", str(used - 500_000))
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.set("one-more", b"x")
    finally:
        client.close()


async def test_out_of_memory_fails_writes_open_leaves_reads_and_the_breaker_alone(caplog):
    with server("--maxmemory-policy", "noeviction") as srv:
        seed = redis.Redis.from_url(srv.url())
        seed.set("yokedcache:present", b'"here"')
        seed.close()
        fill_until_oom(srv.url())
        cache = YokedCache(config(srv.url()))
        try:
            for i in range(20):  # more than circuit_failure_threshold
                assert await cache.set(f"k{i}", "x" * 100) is False
            assert await cache.set_many({"a": 1}) is False
            assert await cache.get("present") == "here"  # reads still served
            assert cache.breaker is not None and cache.breaker.opens == 0  # one write's OOM is not an outage
            errors = cache.telemetry.counters.errors
            assert errors[("set", "redis.exceptions.OutOfMemoryError")] == 20
            report = await cache.detailed_health_check()
            assert report["status"] == "degraded", report
            assert any("out of memory" in r and "OOM" in r for r in report["reasons"])
            assert sum("out of memory" in r.getMessage() for r in caplog.records) == 1  # said once
        finally:
            await cache.close()

        strict = YokedCache(config(srv.url(), fail_open=False))
        try:
            with pytest.raises(CacheCommandError) as info:
                await strict.set("k", "v")
            assert info.value.code == "OOM" and isinstance(info.value.__cause__, redis.exceptions.OutOfMemoryError)
        finally:
            await strict.close()


async def test_a_read_only_replica_never_raises_through_fail_open_and_opens_the_breaker():
    with server() as primary, server("--replicaof", "127.0.0.1", str(primary.port)) as replica:
        cache = YokedCache(config(replica.url(), circuit_recovery_timeout=30.0))
        try:
            results = await every_operation(cache)
            assert results["set"] is False and results["set_many"] is False and results["delete"] is False
            assert results["invalidate_tags"] == 0
            types = {etype for _, etype in cache.telemetry.counters.errors}
            assert "redis.exceptions.ReadOnlyError" in types
            for _ in range(5):
                await cache.set("k", "v")
            assert cache.breaker is not None and cache.breaker.state == "open"  # documented: READONLY opens it
            report = await cache.detailed_health_check()
            assert report["status"] == "unhealthy"
            assert "read-only replica" in (report["circuit_breaker"]["last_error"] or "")
        finally:
            await cache.close()

        strict = YokedCache(config(replica.url(), fail_open=False))
        try:
            with pytest.raises(CacheUnavailableError) as info:
                await strict.set("k", "v")
            assert isinstance(info.value, ConnectionError) and info.value.code == "READONLY"
            assert isinstance(info.value.__cause__, redis.exceptions.ReadOnlyError)
        finally:
            await strict.close()


async def test_a_replica_whose_primary_is_gone_answers_masterdown_and_we_fail_open():
    dead = free_port()
    with server("--replicaof", "127.0.0.1", str(dead), "--replica-serve-stale-data", "no") as replica:
        cache = YokedCache(config(replica.url()))
        try:
            results = await every_operation(cache)
            assert results["get"] == "dflt"
            assert any(etype == "redis.exceptions.MasterDownError" for _, etype in cache.telemetry.counters.errors)
            assert cache.last_failure is not None and cache.last_failure[2] == "MASTERDOWN"
        finally:
            await cache.close()


@pytest.mark.parametrize("given", ["wrong-password", None])
async def test_a_refused_password_fails_open_and_health_says_authentication_failed(given, caplog):
    with server(password="the-right-one") as srv:
        auth = f":{given}@" if given else ""
        url = f"redis://{auth}127.0.0.1:{srv.port}/0"
        cache = YokedCache(config(url))
        try:
            results = await every_operation(cache)
            assert results["get"] == "dflt" and results["set"] is False
            report = await cache.detailed_health_check()
            assert report["status"] == "unhealthy"
            assert any("authentication failed" in r for r in report["reasons"]), report["reasons"]
            assert [r for r in caplog.records if "authentication failed" in r.getMessage()]
            assert "wrong-password" not in caplog.text and "wrong-password" not in repr(report)
        finally:
            await cache.close()

        strict = YokedCache(config(url, fail_open=False, circuit_breaker_enabled=False))
        try:
            with pytest.raises(CacheUnavailableError) as info:
                await strict.get("k")
            assert "authentication failed" in str(info.value)
            assert "wrong-password" not in str(info.value)
        finally:
            await strict.close()


async def test_a_server_busy_with_a_script_fails_open_with_busy():
    with server("--busy-reply-threshold", "50") as srv:
        started = threading.Event()

        def hog() -> None:  # a script that holds the server for about 1.5 s
            client = redis.Redis.from_url(srv.url(), socket_timeout=10)
            started.set()
            client.eval(
                "local t = redis.call('TIME') "
                "while true do local n = redis.call('TIME') "
                "if (n[1] - t[1]) * 1000000 + (n[2] - t[2]) > 1500000 then break end end",
                0,
            )
            client.close()

        thread = threading.Thread(target=hog)
        thread.start()
        started.wait(5)
        cache = YokedCache(config(srv.url(), operation_timeout=5.0))
        try:
            deadline = time.monotonic() + 5
            while cache.last_failure is None or cache.last_failure[2] != "BUSY":
                assert time.monotonic() < deadline, "never saw BUSY"
                assert await cache.get("k", "dflt") == "dflt"
            assert cache.last_failure[1] == "server busy running a script"
        finally:
            thread.join(10)
            await cache.close()

        strict = YokedCache(config(srv.url(), fail_open=False))
        try:
            assert await strict.set("after", 1) is True  # the script ended: the server serves again
        finally:
            await strict.close()


def test_loading_and_other_server_replies_are_classified_as_documented():
    from redis._parsers.base import BaseParser

    def reply(text: str) -> BaseException:  # the exception redis-py raises for this server reply
        return BaseParser.parse_error(text)

    cases = {
        "LOADING Redis is loading the dataset in memory": (UNAVAILABLE, "LOADING"),
        "READONLY You can't write against a read only replica.": (UNAVAILABLE, "READONLY"),
        "MASTERDOWN Link with MASTER is down": (UNAVAILABLE, "MASTERDOWN"),
        "BUSY Redis is busy running a script.": (UNAVAILABLE, "BUSY"),
        "WRONGPASS invalid username-password pair": (UNAVAILABLE, "WRONGPASS"),
        "NOAUTH Authentication required.": (UNAVAILABLE, "NOAUTH"),
        "OOM command not allowed when used memory > 'maxmemory'.": (REJECTED, "OOM"),
        "WRONGTYPE Operation against a key holding the wrong kind of value": (REJECTED, "WRONGTYPE"),
        "NOSCRIPT No matching script.": (REJECTED, "NOSCRIPT"),
        "NOPERM this user has no permissions": (REJECTED, "NOPERM"),
        "TRYAGAIN Multiple keys request during rehashing": (TRANSIENT, "TRYAGAIN"),
    }
    for text, (kind, code) in cases.items():
        failure = classify_redis_error(reply(text))
        assert failure is not None and (failure.kind, failure.code) == (kind, code), text
    assert classify_redis_error(ValueError("a bug of ours")) is None
    assert classify_redis_error(asyncio.CancelledError()) is None
