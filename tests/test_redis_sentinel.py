"""A Sentinel-managed primary: discovery through a real ``redis-server --sentinel``."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from yokedcache import CacheConfig, YokedCache
from yokedcache.backends import RedisSentinelBackend

from .redis_server import RedisSentinelServer, RedisServer

PASSWORD = "sentinel-test-pw"


@pytest.fixture(scope="module")
def sentinel():
    from .conftest import _require_redis

    _require_redis()
    primary = RedisServer(password=PASSWORD)
    primary.start()
    watcher = RedisSentinelServer(primary)
    watcher.start()
    yield watcher
    watcher.close()
    primary.close()


async def test_the_cache_finds_the_primary_through_sentinel(sentinel):
    async with YokedCache(CacheConfig(redis_url=sentinel.url(db=2))) as cache:
        assert isinstance(cache.backend, RedisSentinelBackend)
        assert await cache.set("user:1", {"n": 1}, tags=["users"]) is True
        assert await cache.get("user:1") == {"n": 1}
        direct = redis.Redis(port=sentinel.primary.port, password=PASSWORD, db=2)
        assert direct.get("yokedcache:user:1") == b'{"n":1}'  # written on the primary Sentinel named
        direct.close()
        assert await cache.get_many(["user:1", "nope"]) == {"user:1": {"n": 1}, "nope": None}
        assert await cache.invalidate_tags("users") == 1 and await cache.get("user:1") is None
        report = await cache.detailed_health_check()
        assert report["status"] == "healthy" and report["redis_connected"] is True
        assert report["connection_pool"]["max_connections"] == 50
        assert PASSWORD not in repr(cache) + repr(report)


@pytest.mark.parametrize("url", ["redis+sentinel://127.0.0.1:26379", "redis+sentinel://nohost/mymaster/0",
                                 "redis+sentinel://127.0.0.1:26379/mymaster/x"])  # fmt: skip
def test_malformed_sentinel_urls_name_the_field(url):
    with pytest.raises(ValueError, match="redis_url"):
        YokedCache(CacheConfig(redis_url=url))


async def test_an_unreachable_sentinel_is_unhealthy_not_a_crash():
    from .redis_server import free_port

    async with YokedCache(CacheConfig(redis_url=f"redis+sentinel://127.0.0.1:{free_port()}/mymaster/0",
                                      retry_attempts=0)) as cache:  # fmt: skip
        assert await cache.get("k", "fallback") == "fallback"
        assert (await cache.detailed_health_check())["status"] == "unhealthy"


async def test_the_cache_follows_a_sentinel_failover_to_the_promoted_replica():
    """Kill the primary: Sentinel promotes the replica and the cache, through its breaker, follows."""
    from .conftest import _require_redis

    _require_redis()
    primary = RedisServer(password=PASSWORD)
    primary.start()
    replica = RedisServer("--replicaof", "127.0.0.1", str(primary.port), "--masterauth", PASSWORD, password=PASSWORD)
    replica.start()
    watcher = RedisSentinelServer(primary, down_after_ms=300)
    watcher.start()
    cache = YokedCache(CacheConfig(redis_url=watcher.url(), retry_attempts=0, circuit_recovery_timeout=0.5))
    try:
        deadline = time.monotonic() + 20
        while len(watcher.command("SENTINEL", "REPLICAS", "mymaster")) < 1:  # type: ignore[arg-type]
            assert time.monotonic() < deadline, "sentinel never saw the replica"
            await asyncio.sleep(0.1)
        assert await cache.set("before", {"n": 1}) is True
        direct_replica = redis.Redis(port=replica.port, password=PASSWORD)
        while direct_replica.get("yokedcache:before") is None:  # replicated before the primary dies
            assert time.monotonic() < deadline, "the replica never caught up"
            await asyncio.sleep(0.05)

        primary.stop()
        killed = time.monotonic()
        while watcher.primary_port() != replica.port:
            assert await cache.get("before", "fallback") in ({"n": 1}, "fallback")  # degrades, never raises
            assert time.monotonic() - killed < 30, "sentinel did not promote the replica"
            await asyncio.sleep(0.05)
        promoted = time.monotonic() - killed
        while not await cache.set("after", {"n": 2}):  # the breaker's next trial reconnects via Sentinel
            assert time.monotonic() - killed < promoted + 10, "the cache did not follow the failover"
            await asyncio.sleep(0.05)
        followed = time.monotonic() - killed
        assert await cache.get("before") == {"n": 1}  # the data the replica held survived
        assert direct_replica.get("yokedcache:after") == b'{"n":2}'  # written on the new primary
        report = await cache.detailed_health_check()
        # serving again; "degraded" (the outage's failures as its reason) until they age out
        assert report["status"] in ("healthy", "degraded") and PASSWORD not in repr(report)
        assert report["circuit_breaker"]["state"] == "closed" and report["redis_connected"] is True
        assert cache.breaker is not None and cache.breaker.opens >= 1
        direct_replica.close()
        print(
            f"\nsentinel promoted the replica {promoted:.2f}s after the kill; the cache wrote to it at {followed:.2f}s"
        )
    finally:
        await cache.close()
        watcher.close()
        replica.close()
        primary.close()


def test_readiness_before_the_first_operation_asks_sentinel(sentinel):
    from yokedcache import health

    cache = YokedCache(CacheConfig(redis_url=sentinel.url()))  # no loop has used it: the /readyz path
    report = health.readiness_report(cache, 5.0)
    assert report["status"] == "healthy" and "one-off" in report["checked_on"]
    assert PASSWORD not in repr(report)
