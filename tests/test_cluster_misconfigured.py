"""A ``redis+cluster://`` URL pointed at a real non-cluster redis-server is a configuration error.

The cache connects lazily, so "start-up" is its first contact with the server: ``await
cache.connect()`` (a start-up check), the first operation, or a health check, whichever comes
first. No retry, failover or breaker cool-down can turn a single server into a cluster, so it is
neither an outage to fail open on nor a raw ``RedisClusterException``: every operation raises
``CacheConfigurationError`` (a ``ValueError`` naming ``redis_url``, the node and the fix)
whatever ``fail_open`` says, the breaker stays out of it, and health reports it in the same words.
Before: operations returned defaults forever under ``fail_open`` (one WARNING), and the breaker
then made them fail fast without a word.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
from redis.exceptions import RedisClusterException

from yokedcache import CacheConfig, CacheConfigurationError, CacheConnectionError, YokedCache

from .redis_server import RedisServer, free_port

PASSWORD = "s3cret-Pa55"


@pytest.fixture(scope="module")
def single_node(redis_server) -> Iterator[RedisServer]:
    """A plain redis-server (no cluster mode) that requires a password, so we can check it never leaks."""
    server = RedisServer(password=PASSWORD)
    server.start()
    yield server
    server.close()


def cluster_url(node: RedisServer) -> str:
    return f"redis+cluster://:{PASSWORD}@127.0.0.1:{node.port}/0"


@pytest.mark.parametrize("fail_open", [True, False])
async def test_every_operation_raises_a_configuration_error_whatever_fail_open(single_node, telemetry, fail_open):
    cache = YokedCache(CacheConfig(redis_url=cluster_url(single_node), fail_open=fail_open,
                                   circuit_failure_threshold=2, meter_provider=telemetry.meter_provider))  # fmt: skip
    operations = [
        lambda: cache.get("k"), lambda: cache.set("k", 1), lambda: cache.delete("k"), lambda: cache.exists("k"),
        lambda: cache.get_many(["a", "b"]), lambda: cache.set_many({"a": 1}), lambda: cache.invalidate_tags(["t"]),
        lambda: cache.invalidate_pattern("x*"),
    ]  # fmt: skip
    try:
        for operation in operations * 2:  # more than the breaker's threshold: it must stay out of it
            with pytest.raises(CacheConfigurationError) as caught:
                await operation()
            error = caught.value
            assert isinstance(error, ValueError)
            assert isinstance(error.__cause__, RedisClusterException)
            message = str(error)
            assert f"redis_url redis+cluster://:***@127.0.0.1:{single_node.port}/0 asks for a Redis Cluster" in message
            assert f"127.0.0.1:{single_node.port} is not a cluster node (cluster mode is not enabled)" in message
            assert f"use redis://:***@127.0.0.1:{single_node.port}/0 for a single server" in message
            assert PASSWORD not in message and PASSWORD not in repr(error)
        assert cache.breaker is not None and cache.breaker.state == "closed" and cache.breaker.opens == 0
        # counted as errors under the driver's exception, like every other failure
        errors = telemetry.metrics()["yokedcache.cache.errors"]
        assert {a["error.type"] for a, _ in errors} == {"redis.exceptions.RedisClusterException"}
        assert sum(p.value for _, p in errors) == 2 * len(operations)
    finally:
        await cache.close()


async def test_connect_is_the_start_up_check(single_node, redis_url, caplog):
    misconfigured = YokedCache(CacheConfig(redis_url=cluster_url(single_node)))  # fail_open by default
    with pytest.raises(CacheConfigurationError, match="is not a cluster node"):
        await misconfigured.connect()
    await misconfigured.close()

    # The same check passes quietly on a reachable server, and an outage stays an outage:
    async with YokedCache(CacheConfig(redis_url=redis_url)) as fine:
        await fine.connect()
    port = free_port()
    dead = f"redis://127.0.0.1:{port}/0"
    with caplog.at_level(logging.WARNING, logger="yokedcache"):
        async with YokedCache(CacheConfig(redis_url=dead, retry_attempts=0)) as down:
            await down.connect()  # fail_open: one WARNING, no exception
    assert [r.getMessage() for r in caplog.records if r.name == "yokedcache"] == [
        f"cache backend 127.0.0.1:{port} failing: connection refused; returning defaults (fail_open)"
    ]
    async with YokedCache(CacheConfig(redis_url=dead, retry_attempts=0, fail_open=False)) as strict:
        with pytest.raises(CacheConnectionError, match="connection refused"):
            await strict.connect()


async def test_health_and_the_cli_say_it_in_the_same_words(single_node):
    async with YokedCache(CacheConfig(redis_url=cluster_url(single_node))) as cache:
        assert await cache.health() is False
        report = await cache.detailed_health_check()
    assert report["status"] == "unhealthy"
    assert report["reasons"] == [
        f"backend ping failed: redis_url redis+cluster://:***@127.0.0.1:{single_node.port}/0 asks for a Redis "
        f"Cluster, but 127.0.0.1:{single_node.port} is not a cluster node (cluster mode is not enabled); use "
        f"redis://:***@127.0.0.1:{single_node.port}/0 for a single server"
    ]
    result = subprocess.run([sys.executable, "-m", "yokedcache", "health", "--redis-url", cluster_url(single_node)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert "is not a cluster node (cluster mode is not enabled); use redis://:***@" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
