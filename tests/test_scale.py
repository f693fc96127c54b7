"""Statistics and invalidation whose cost does not grow with the keyspace (issue 13).

Behaviour only, never timing: how many commands of which kind reach Redis (INFO commandstats),
how big the largest one is (SLOWLOG with a 0 µs threshold logs every command with its argument
count), counts after clear, no missed keys, nothing sent after close().
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Iterator

import pytest
import redis

from yokedcache import CacheConfig, YokedCache
from yokedcache.backends.redis import BATCH

from .conftest import _require_redis
from .redis_server import RedisServer


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """A private server that allows DEBUG POPULATE (fills 100k keys in a few milliseconds)."""
    _require_redis()
    srv = RedisServer("--enable-debug-command", "yes")
    srv.start()
    yield srv
    srv.close()


@pytest.fixture
def raw(server: RedisServer) -> Iterator[redis.Redis]:
    if server.proc is None or server.proc.poll() is not None:
        server.start()
    client = redis.Redis.from_url(server.url())
    client.flushall()
    client.config_set("slowlog-log-slower-than", 10000)
    yield client
    client.close()


def populate(raw: redis.Redis, count: int, prefix: str) -> None:
    raw.execute_command("DEBUG", "POPULATE", count, prefix)


def calls(raw: redis.Redis) -> dict[str, int]:
    stats = raw.info("commandstats")
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


def record_every_command(raw: redis.Redis) -> None:
    raw.config_set("slowlog-max-len", 100000)
    raw.slowlog_reset()
    raw.config_set("slowlog-log-slower-than", 0)


def logged_commands(raw: redis.Redis) -> list[tuple[str, int]]:
    """(command, argument count) of every command since :func:`record_every_command`."""
    raw.config_set("slowlog-log-slower-than", 10000)
    out = []
    for entry in raw.slowlog_get(-1):
        args = [a.decode(errors="replace") if isinstance(a, bytes) else str(a) for a in entry["command"].split()]
        argc = len(args)
        more = re.search(r"\.\.\. \((\d+) more arguments\)", " ".join(args))
        if more:
            argc = argc - 4 + int(more.group(1))  # the marker itself is 4 words
        out.append((args[0].lower(), argc))
    return out


def config(server: RedisServer, **kw: object) -> CacheConfig:
    kw.setdefault("enable_metrics", False)
    kw.setdefault("enable_tracing", False)
    return CacheConfig(redis_url=server.url(), **kw)  # type: ignore[arg-type]


async def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# -- statistics -------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [20_000, 200_000])
async def test_a_refresh_sends_the_same_bounded_commands_at_any_size(server, raw, size):
    populate(raw, size, "yokedcache:")
    async with YokedCache(config(server)) as cache:
        await cache.refresh_usage()  # the script is loaded and cached from now on
        before = calls(raw)
        usage = await cache.refresh_usage()
        sent = delta(before, calls(raw))
    # one round trip: the sampling script plus two INFO sections; 500 O(1) lookups inside it
    assert sent.pop("info") == 2 + 1 and sent.pop("evalsha") == 1  # + 1: calls() itself
    assert sent.pop("randomkey") == 500 and sent.pop("memory|usage") <= 500
    assert set(sent) <= {"time", "dbsize", "hget", "hset", "pexpire"}, sent  # no SCAN at any size
    assert usage is not None and usage.method == "sampled" and usage.samples == 500


async def test_estimate_is_within_its_stated_error_and_labelled(server, raw):
    populate(raw, 30_000, "yokedcache:")
    populate(raw, 50_000, "other:")
    async with YokedCache(config(server)) as cache:
        stats = await cache.get_stats()
    assert stats.estimated and stats.usage_method == "sampled" and stats.usage_samples == 500
    assert stats.database_keys in (80_000, 80_001)  # every prefix (and the shared sample's key)
    assert stats.server_used_memory_bytes > 0
    # the stated error is a 95 % half-width: twice it is ~4 standard errors (fails ~1 in 15,000)
    assert 0 < stats.total_keys_error < 80_000 * 0.1
    assert abs(stats.total_keys - 30_000) <= 2 * stats.total_keys_error
    assert stats.total_memory_bytes > 0 and stats.total_memory_bytes_error > 0
    assert stats.to_dict()["estimated"] is True


async def test_a_small_database_is_counted_exactly(server, raw):
    async with YokedCache(config(server)) as cache:
        await cache.set_many({f"k{i}": i for i in range(120)})
        raw.set("elsewhere", 1)
        stats = await cache.get_stats()
    assert (stats.total_keys, stats.usage_method, stats.estimated, stats.total_keys_error) == (120, "exact", False, 0)


@pytest.mark.parametrize("how", ["clear", "invalidate_pattern", "invalidate_tags"])
async def test_an_invalidation_is_reflected_in_the_next_get_stats(server, raw, how):
    populate(raw, 30_000, "other:")
    async with YokedCache(config(server, stats_refresh_interval=3600)) as cache:
        await cache.set_many({f"user:{i}": i for i in range(20_000)}, tags=["users"])
        assert (await cache.get_stats()).total_keys > 5_000  # measured once, then cached
        if how == "clear":
            await cache.clear()
        elif how == "invalidate_pattern":
            await cache.invalidate_pattern("user:*")
        else:
            await cache.invalidate_tags("users")
        stats = await cache.get_stats()
    assert stats.total_keys == 0 and stats.total_memory_bytes == 0


async def test_caches_and_processes_share_one_sample_per_interval(server, raw):
    populate(raw, 50_000, "yokedcache:")
    caches = [YokedCache(config(server, stats_refresh_interval=600)) for _ in range(6)]
    try:
        before = calls(raw)
        for cache in caches:
            await cache.get("k")  # starts each background refresher
        await wait_for(lambda: all(c._usage is not None for c in caches))
        sent = delta(before, calls(raw))
        figures = {(c._usage.keys, c._usage.bytes) for c in caches}
    finally:
        for cache in caches:
            await cache.close()
    assert sent["randomkey"] == 500  # sampled once, by whichever refresh came first
    assert sent["evalsha"] + sent.get("eval", 0) == 6
    assert len(figures) == 1  # and every cache reports that same sample


async def test_exact_key_count_is_an_opt_in_and_counts_exactly(server, raw):
    populate(raw, 12_345, "yokedcache:")
    populate(raw, 20_000, "other:")
    async with YokedCache(config(server, stats_exact_keys=True, stats_exact_cpu_budget=0.5)) as cache:
        await cache.get("k")
        await wait_for(lambda: cache._exact_keys is not None)
        stats = await cache.get_stats()
        assert (stats.total_keys, stats.usage_method, stats.total_keys_error) == (12_345, "exact_keys", 0)
        assert stats.estimated  # the bytes are still the sample's mean size times the count
        await cache.invalidate_pattern("*")
        after = await cache.get_stats()
    assert after.total_keys == 0  # the pre-clear exact count is not reported


async def test_no_scan_without_the_opt_in(server, raw):
    populate(raw, 50_000, "yokedcache:")
    before = calls(raw)
    async with YokedCache(config(server)) as cache:
        await cache.get("k")
        await wait_for(lambda: cache._usage is not None)
    assert "scan" not in delta(before, calls(raw))


def test_exact_budget_is_validated():
    with pytest.raises(ValueError, match="stats_exact_cpu_budget"):
        CacheConfig(stats_exact_cpu_budget=0)
    with pytest.raises(ValueError, match="stats_exact_cpu_budget"):
        CacheConfig(stats_exact_cpu_budget=1.5)
    with pytest.raises(TypeError, match="stats_exact_keys"):
        CacheConfig(stats_exact_keys="yes")


# -- invalidation in bounded batches ----------------------------------------------------------
async def test_invalidate_tags_walks_a_big_tag_in_bounded_batches(server, raw):
    members = 20_000
    async with YokedCache(config(server, stats_refresh_interval=3600)) as cache:
        await cache.set("x", 0)
        await wait_for(lambda: cache._usage is not None)
        for start in range(0, members, 5_000):
            await cache.set_many({f"p{i}": i for i in range(start, start + 5_000)}, tags=["big"])
        record_every_command(raw)
        removed = await cache.invalidate_tags("big")
        commands = logged_commands(raw)
    assert removed == members
    assert raw.dbsize() <= 2  # "x" and the shared statistics key; the tag set is gone
    names = {name for name, _ in commands}
    assert not names & {"eval", "evalsha", "smembers"}, names  # no one-shot call over the whole set
    assert sum(1 for name, _ in commands if name == "sscan") >= members // BATCH
    assert max(argc for _, argc in commands) <= BATCH + 2  # UNLINK/SREM of one batch at most


async def test_invalidate_tags_under_concurrent_writes_leaves_no_key_untagged(server, raw):
    async with (
        YokedCache(config(server)) as cache,
        YokedCache(config(server)) as writer,
    ):
        old = {f"old{i}": i for i in range(20_000)}
        for start in range(0, len(old), 5_000):
            await cache.set_many(dict(list(old.items())[start : start + 5_000]), tags=["t"])
        stop = asyncio.Event()
        written: list[str] = []

        async def write() -> None:
            i = 0
            while not stop.is_set():
                key = f"new{i}"
                await writer.set(key, i, tags=["t"])
                written.append(key)
                i += 1
                if i % 20 == 0:
                    await asyncio.sleep(0)

        task = asyncio.create_task(write())
        await wait_for(lambda: len(written) > 10)
        await cache.invalidate_tags("t")
        stop.set()
        await task
        tag = "yokedcache-tags:yokedcache:t"
        assert written
        assert not any(raw.exists(f"yokedcache:{k}") for k in list(old)[:: len(old) // 50])
        assert raw.scan(0, match="yokedcache:old*", count=100_000)[1] == []  # every earlier key went
        for key in written:  # a key written meanwhile was deleted or is still tagged
            assert not raw.exists(f"yokedcache:{key}") or raw.sismember(tag, f"yokedcache:{key}"), key
        await cache.invalidate_tags("t")
        assert raw.scan(0, match="yokedcache:new*", count=100_000)[1] == []
        assert not raw.exists(tag)


async def test_invalidate_pattern_scans_in_bounded_batches_and_misses_nothing(server, raw):
    populate(raw, 50_000, "yokedcache:bulk:")
    async with YokedCache(config(server, stats_refresh_interval=3600)) as cache:
        await cache.set_many({f"hit:{i}": i for i in range(1_111)})
        await wait_for(lambda: cache._usage is not None)
        record_every_command(raw)
        removed = await cache.invalidate_pattern("hit:*")
        commands = logged_commands(raw)
    assert removed == 1_111
    assert raw.scan(0, match="yokedcache:hit:*", count=100_000)[1] == []
    assert raw.dbsize() == 50_001  # everything else is still there (plus the statistics key)
    assert sum(1 for name, _ in commands if name == "scan") > 50_000 // 1_000  # the whole keyspace
    assert max(argc for _, argc in commands) <= BATCH + 1


# -- close --------------------------------------------------------------------------------------
@pytest.mark.parametrize("exact", [False, True])
async def test_no_command_reaches_redis_after_close(server, raw, exact):
    populate(raw, 100_000, "yokedcache:")
    me = raw.client_id()
    rng = random.Random(13)

    def others() -> list[dict]:
        return [c for c in raw.client_list() if int(c["id"]) != me]

    for _ in range(8):
        cache = YokedCache(config(server, stats_exact_keys=exact, stats_exact_cpu_budget=1.0))
        await cache.get("k")  # starts the background work
        await asyncio.sleep(rng.uniform(0.0, 0.3))  # close at a random point of it
        await cache.close()
        after_close = calls(raw)
        await wait_for(lambda: not others())  # every connection of the cache is gone ...
        await asyncio.sleep(0.3)  # ... and stays gone: nothing is sent after close() returned
        assert not others()
        sent = delta(after_close, calls(raw))
        sent.pop("info", None), sent.pop("client|list", None), sent.pop("client|id", None)
        assert sent == {}
