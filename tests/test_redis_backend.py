"""Redis specifics: round trips, sharing between processes, credentials never shown."""

from __future__ import annotations

import pytest
import redis

from yokedcache import CacheConfig, YokedCache
from yokedcache.backends import RedisBackend


async def test_get_hit_is_a_single_round_trip(redis_url):
    observer = redis.Redis.from_url(redis_url)
    # The background usage refresh (one sampling script) may run meanwhile; it is not the GET's.
    background = {"info", "evalsha", "eval", "script|load", "time", "hget", "dbsize", "randomkey", "scan",
                  "memory|usage", "hset", "pexpire"}  # fmt: skip

    def calls() -> dict[str, int]:
        stats = observer.info("commandstats")
        return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items() if k.startswith("cmdstat_")}

    async with YokedCache(CacheConfig(redis_url=redis_url, enable_metrics=False)) as cache:
        await cache.set("k", "v")
        await cache.get("k")  # warm the connection
        before = calls()
        assert await cache.get("k") == "v"
        after = calls()
    observer.close()
    delta = {cmd: n - before.get(cmd, 0) for cmd, n in after.items() if n != before.get(cmd, 0)}
    assert {cmd: n for cmd, n in delta.items() if cmd not in background} == {"get": 1}  # no TOUCH, no EXISTS
    assert "touch" not in after


async def test_tags_and_patterns_work_across_cache_instances(redis_url):
    writer = YokedCache(CacheConfig(redis_url=redis_url))
    reader = YokedCache(CacheConfig(redis_url=redis_url))
    try:
        await writer.set("user:1", {"n": 1}, tags=["users"])
        await writer.set("user:2", {"n": 2})
        assert await reader.get("user:1") == {"n": 1}
        assert await reader.invalidate_tags(["users"]) == 1
        assert await writer.get("user:1") is None
        assert await reader.invalidate_pattern("user:*") == 1
        assert await writer.get("user:2") is None
    finally:
        await writer.close()
        await reader.close()


async def test_tag_sets_expire_with_their_longest_lived_member(redis_url):
    async with YokedCache(CacheConfig(redis_url=redis_url, default_ttl=None)) as cache:
        await cache.set("a", 1, ttl=5, tags=["t"])
        await cache.set("b", 1, ttl=50, tags=["t"])
        await cache.set("c", 1, ttl=20, tags=["t"])
        raw = redis.Redis.from_url(redis_url)
        ttl = raw.ttl("yokedcache-tags:yokedcache:t")
        await cache.set("d", 1, ttl=None, tags=["forever"])
        forever_ttl = raw.ttl("yokedcache-tags:yokedcache:forever")
        raw.close()
    assert 45 < ttl <= 50
    assert forever_ttl == -1


async def test_expiry_is_applied_in_milliseconds(redis_url):
    async with YokedCache(CacheConfig(redis_url=redis_url)) as cache:
        await cache.set("k", 1, ttl=1.5)
        raw = redis.Redis.from_url(redis_url)
        pttl = raw.pttl("yokedcache:k")
        raw.close()
    assert 1000 < pttl <= 1500


async def test_usage_counts_only_this_prefix(redis_url):
    async with (
        YokedCache(CacheConfig(redis_url=redis_url, key_prefix="mine:")) as mine,
        YokedCache(CacheConfig(redis_url=redis_url, key_prefix="theirs:")) as theirs,
    ):
        await mine.set_many({"a": 1, "b": 2}, tags=["t"])
        await theirs.set("c", 3)
        usage = await mine.refresh_usage()
    assert usage is not None and usage.keys == 2 and usage.bytes > 0


def test_password_never_in_repr_or_config_repr():
    url = "redis://user:s3cr3t-sentinel@127.0.0.1:6390/2"
    backend = RedisBackend(url)
    assert "s3cr3t-sentinel" not in repr(backend)
    assert "s3cr3t-sentinel" not in repr(backend.info)
    assert "s3cr3t-sentinel" not in repr(CacheConfig(redis_url=url))
    assert backend.info.host == "127.0.0.1" and backend.info.port == 6390 and backend.info.db == "2"


async def test_password_url_authenticates(tmp_path):
    from .redis_server import RedisServer

    server = RedisServer(password="pa ss/word")
    server.start()
    try:
        from urllib.parse import quote

        url = f"redis://:{quote('pa ss/word', safe='')}@127.0.0.1:{server.port}/0"
        async with YokedCache(CacheConfig(redis_url=url, fail_open=False)) as cache:
            assert await cache.set("k", 1)
            assert await cache.get("k") == 1
    finally:
        server.close()


def test_bad_url_error_names_field_without_password():
    with pytest.raises(ValueError, match="redis_url") as info:
        RedisBackend("http://u:hunter2@host/0")
    assert "hunter2" not in str(info.value)


def test_env_var_selects_redis(monkeypatch, redis_url):
    monkeypatch.setenv("YOKEDCACHE_REDIS_URL", redis_url)
    cache = YokedCache()
    assert cache.backend.info.kind == "redis"


def test_rediss_url_enables_tls():
    backend = RedisBackend("rediss://127.0.0.1:6380/0")
    assert backend.info.extra["tls"] is True


async def test_total_keys_is_exact_right_after_writes_while_the_database_is_small(redis_url):
    """What a newcomer tries first: set, then get_stats. Under redis_usage.EXACT_LIMIT keys the
    figures are counted (usage_method "exact"), fresh after this cache's own writes; above it they
    are sampled and labelled so, with an error bar."""
    from yokedcache.backends.redis_usage import EXACT_LIMIT

    async with YokedCache(CacheConfig(redis_url=redis_url, stats_refresh_interval=3600)) as cache:
        await cache.set("a", 1)
        first = await cache.get_stats()
        assert (first.total_keys, first["usage_method"], first.estimated) == (1, "exact", False)
        await cache.set_many({f"k{i}": i for i in range(50)})
        await cache.delete("k0")
        after = await cache.get_stats()
        assert (after.total_keys, after.usage_method, after.total_keys_error) == (50, "exact", 0)
        client = redis.Redis.from_url(redis_url)
        try:
            # other data beyond the limit: the same call now samples, and says so. A third of the
            # database is ours, so a 500-key sample always sees some; twice the 95 % half-width is
            # about 4 standard deviations (a random sample, so not the 1-in-20 edge of the bar).
            await cache.set_many({f"m{i}": i for i in range(3000)})
            client.mset({f"other:{i}": 1 for i in range(EXACT_LIMIT + 1000)})
            await cache.set("b", 2)
            big = await cache.get_stats()
            assert big.usage_method == "sampled" and big.estimated and big.total_keys_error > 0
            assert abs(big.total_keys - 3051) <= 2 * big.total_keys_error
        finally:
            client.close()
