"""A real three-primary Redis Cluster on loopback: every operation works across nodes."""

from __future__ import annotations

import asyncio

import pytest
import redis
from redis.cluster import RedisCluster as SyncCluster

from yokedcache import CacheConfig, YokedCache
from yokedcache.backends import RedisClusterBackend

from .redis_server import RedisClusterServers


@pytest.fixture(scope="module")
def cluster():
    from .conftest import _require_redis

    _require_redis()
    servers = RedisClusterServers()
    servers.start()
    yield servers
    servers.close()


@pytest.fixture
async def cluster_cache(cluster, telemetry):
    client = SyncCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    client.flushall(target_nodes=SyncCluster.PRIMARIES)
    client.close()
    cache = YokedCache(CacheConfig(redis_url=cluster.url(), meter_provider=telemetry.meter_provider,
                                   tracer_provider=telemetry.tracer_provider, fail_open=False))  # fmt: skip
    yield cache
    await cache.close()


def keys_per_node(cluster, prefix: str) -> dict[int, int]:
    counts = {}
    for node in cluster.nodes:
        client = redis.Redis(host="127.0.0.1", port=node.port)
        counts[node.port] = sum(1 for _ in client.scan_iter(match=prefix + "*"))
        client.close()
    return counts


async def test_keys_spread_over_every_node_and_round_trip(cluster, cluster_cache):
    assert isinstance(cluster_cache.backend, RedisClusterBackend)
    for i in range(300):
        assert await cluster_cache.set(f"user:{i}", {"i": i})
    spread = keys_per_node(cluster, "yokedcache:user:")
    assert len(spread) == 3 and all(n > 50 for n in spread.values()), spread  # not forced into one slot
    assert [await cluster_cache.get(f"user:{i}") for i in range(0, 300, 37)] == [{"i": i} for i in range(0, 300, 37)]
    many = await cluster_cache.get_many([f"user:{i}" for i in range(20)] + ["missing"])
    assert many["user:7"] == {"i": 7} and many["missing"] is None
    assert await cluster_cache.set_many({f"batch:{i}": i for i in range(50)}, tags=["batch"])
    assert await cluster_cache.exists("batch:49") and await cluster_cache.delete("batch:49")


async def test_concurrent_commands_are_pipelined_by_node(cluster, cluster_cache):
    """Commands issued together share a cluster pipeline (one write per node); replies stay each caller's."""
    pipeliner = cluster_cache.backend.pipeliner
    assert pipeliner is not None

    async def one(i: int) -> None:
        assert await cluster_cache.set(f"p:{i}", i, tags=["p"] if i % 2 else None)
        assert await cluster_cache.get(f"p:{i}") == i
        assert await cluster_cache.get_many([f"p:{i}", f"absent:{i}"]) == {f"p:{i}": i, f"absent:{i}": None}
        assert await cluster_cache.set_many({f"q:{i}": i, f"r:{i}": -i}, tags=["q"])
        assert await cluster_cache.exists(f"q:{i}")
        assert await cluster_cache.delete(f"r:{i}") is True

    await asyncio.gather(*(one(i) for i in range(120)))
    assert pipeliner.batches > 0 and pipeliner.batched_operations > 300
    spread = keys_per_node(cluster, "yokedcache:p:")
    assert len(spread) == 3 and all(n > 20 for n in spread.values()), spread
    assert await cluster_cache.invalidate_tags(["p"]) == 60
    assert await cluster_cache.invalidate_tags(["q"]) == 120
    assert await cluster_cache.get("p:2") == 2 and await cluster_cache.get("p:1") is None


async def test_tags_and_patterns_invalidate_across_nodes(cluster, cluster_cache):
    for i in range(200):
        await cluster_cache.set(f"product:{i}", i, tags=["products", f"category:{i % 4}"])
    await cluster_cache.set("other", 1)
    assert sum(keys_per_node(cluster, "yokedcache:product:").values()) == 200
    assert await cluster_cache.invalidate_tags("category:1") == 50
    assert await cluster_cache.get("product:1") is None and await cluster_cache.get("product:2") == 2
    expected = sum(1 for i in range(200) if str(i).startswith("1") and i % 4 != 1)
    assert await cluster_cache.invalidate_pattern("product:1*") == expected
    remaining = sum(keys_per_node(cluster, "yokedcache:product:").values())
    assert await cluster_cache.invalidate_tags("products") == remaining
    assert sum(keys_per_node(cluster, "yokedcache:product:").values()) == 0
    assert await cluster_cache.get("other") == 1


async def test_usage_health_and_pool_cover_every_node(cluster, cluster_cache):
    for i in range(120):
        await cluster_cache.set(f"k{i}", "x" * 100)
    usage = await cluster_cache.refresh_usage()
    assert usage.keys == 120 and usage.bytes > 120 * 100
    report = await cluster_cache.detailed_health_check()
    assert report["status"] == "healthy" and report["redis_connected"] is True
    pool = report["connection_pool"]
    assert {n["node"] for n in pool["nodes"]} == {f"127.0.0.1:{n.port}" for n in cluster.nodes}
    assert pool["created"] == sum(n["in_use"] + n["idle"] for n in pool["nodes"]) >= 3


async def test_sampled_statistics_add_up_over_every_primary(cluster, cluster_cache):
    # more keys per node than the sample, so every primary answers with RANDOMKEY draws
    client = SyncCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    for start in range(0, 6_000, 1_000):
        pipe = client.pipeline()
        for i in range(start, start + 1_000):
            pipe.set(f"yokedcache:s{i}", b"v")
        for i in range(start, start + 1_000):
            pipe.set(f"elsewhere:{i}", b"v")
        pipe.execute()
    client.close()
    stats = await cluster_cache.get_stats()
    assert stats.usage_method == "sampled" and stats.usage_samples > 300
    assert stats.database_keys == 12_000
    assert abs(stats.total_keys - 6_000) <= 2 * stats.total_keys_error
    await cluster_cache.invalidate_pattern("s*")
    assert (await cluster_cache.get_stats()).total_keys == 0


async def test_cluster_writes_are_named_pipelines_not_transactions(cluster_cache, telemetry):
    await cluster_cache.set("a", 1, tags=["t"])
    await cluster_cache.set_many({"b": 1, "c": 2})
    await cluster_cache.get("a")
    spans = telemetry.spans.get_finished_spans()
    ops = {dict(s.attributes).get("yokedcache.cache.operation"): s for s in spans}
    # keys and tag sets sit in different slots: no MULTI on a cluster, and the spans say so
    assert (ops["set"].name, dict(ops["set"].attributes)["db.operation.name"]) == ("PIPELINE", "PIPELINE")
    assert (ops["set_many"].name, dict(ops["set_many"].attributes)["db.operation.name"]) == ("PIPELINE", "PIPELINE")
    assert ops["get"].name == "GET"


async def test_a_dead_primary_makes_the_cluster_unhealthy(cluster_cache, cluster):
    await cluster_cache.set("k", 1)
    assert await cluster_cache.health() is True
    victim = cluster.nodes[2]
    victim.stop()
    try:
        assert await cluster_cache.health() is False
    finally:
        victim.start()


def test_readiness_before_the_first_operation_reaches_the_cluster(cluster):
    from yokedcache import health

    cache = YokedCache(CacheConfig(redis_url=cluster.url()))  # no loop has used it: the /readyz path
    report = health.readiness_report(cache, 5.0)
    assert report["status"] == "healthy" and report["redis_connected"] is True
    assert "one-off" in report["checked_on"]
