"""A Sentinel-managed primary: discovery through a real ``redis-server --sentinel``."""

from __future__ import annotations

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
