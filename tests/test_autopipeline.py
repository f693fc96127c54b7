"""Auto-pipelining against a real redis-server: replies, cancellation, failures, telemetry."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from yokedcache import CacheConfig, YokedCache
from yokedcache.backends.redis import RedisBackend
from yokedcache.errors import CacheCommandError, CacheConnectionError
from yokedcache.telemetry import semconv as sc

from .redis_server import RedisServer


def redis_cache(url: str, telemetry=None, **kw) -> YokedCache:
    if telemetry is not None:
        kw.setdefault("meter_provider", telemetry.meter_provider)
        kw.setdefault("tracer_provider", telemetry.tracer_provider)
    return YokedCache(CacheConfig(redis_url=url, **kw))


def pause_server(url: str, seconds: float) -> None:
    """Hold every client's commands for ``seconds`` (CLIENT PAUSE), so a batch stays in flight."""
    client = redis.Redis.from_url(url)
    client.execute_command("CLIENT", "PAUSE", int(seconds * 1000), "ALL")
    client.close()


async def warm(cache: YokedCache) -> None:
    """One batch first, so the batch connection exists before the test pauses the server."""
    await asyncio.gather(cache.exists("warm-up"), cache.exists("warm-up"))
    assert cache.backend.pipeliner.batches == 1


async def test_every_caller_gets_its_own_reply(redis_url, telemetry):
    async with redis_cache(redis_url, telemetry, fail_open=False) as cache:
        pipeliner = cache.backend.pipeliner
        assert pipeliner is not None

        async def one(i: int) -> None:
            key = f"k{i}"
            assert await cache.set(key, {"i": i}, tags=["even"] if i % 2 == 0 else None)
            assert await cache.get(key) == {"i": i}
            assert await cache.exists(key)
            assert await cache.get_many([key, f"absent{i}"]) == {key: {"i": i}, f"absent{i}": None}
            assert await cache.set_many({f"m{i}": i, f"n{i}": -i}, ttl=60)
            assert await cache.get(f"n{i}") == -i
            assert await cache.delete(f"m{i}") is True
            assert await cache.delete(f"m{i}") is False
            assert await cache.exists(f"m{i}") is False

        await asyncio.gather(*(one(i) for i in range(200)))
        assert pipeliner.batches > 0
        assert pipeliner.batched_operations > 1000, "most of the 2,000 operations rode in batches"
        # tagged writes landed with their tag sets, atomically per write
        assert await cache.invalidate_tags(["even"]) == 100
        assert await cache.get("k0") is None
        assert await cache.get("k1") == {"i": 1}


async def test_a_lone_command_goes_out_at_once(redis_url):
    async with redis_cache(redis_url, fail_open=False) as cache:
        pipeliner = cache.backend.pipeliner
        for i in range(20):
            await cache.set(f"k{i}", i, tags=["t"])
            assert await cache.get(f"k{i}") == i
            await cache.get_many([f"k{i}"])
            await cache.set_many({f"k{i}": i})
            await cache.exists(f"k{i}")
            await cache.delete(f"k{i}")
        assert pipeliner.batches == 0, "one task at a time never waits for a batch"


async def test_switched_off_in_config(redis_url):
    async with redis_cache(redis_url, auto_pipeline=False) as cache:
        assert cache.backend.pipeliner is None
        await asyncio.gather(*(cache.set(f"k{i}", i) for i in range(50)))
        assert await cache.get_many([f"k{i}" for i in range(50)]) == {f"k{i}": i for i in range(50)}
    with pytest.raises(TypeError, match="auto_pipeline"):
        CacheConfig(auto_pipeline="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="auto_pipeline"):
        RedisBackend(redis_url, auto_pipeline=1)  # type: ignore[arg-type]


async def test_switched_off_each_operation_has_a_connection_of_its_own_within_max_connections(redis_url):
    """auto_pipeline=False: operations never share a round trip, and however many callers there
    are the server sees at most max_connections of them (plus the side reserve)."""
    admin = redis.Redis.from_url(redis_url)
    before = len(admin.client_list())
    try:
        async with redis_cache(redis_url, auto_pipeline=False, max_connections=4) as cache:
            results = await asyncio.gather(*(cache.set(f"k{i}", {"i": i}) for i in range(200)))
            assert results == [True] * 200
            assert await asyncio.gather(*(cache.get(f"k{i}") for i in range(200))) == [{"i": i} for i in range(200)]
            assert await cache.set("tagged", 1, tags=["t"]) and await cache.invalidate_tags(["t"]) == 1
            stats = cache.backend.pool_stats()
            assert stats["pipeline_connections"] == 0 and 1 <= stats["idle"] <= 4 + 2, stats
            assert len(admin.client_list()) - before <= 4 + 2
        deadline = asyncio.get_running_loop().time() + 5
        while len(admin.client_list()) != before:  # close() hung them all up (the server notices soon)
            assert asyncio.get_running_loop().time() < deadline, admin.client_list()
            await asyncio.sleep(0.01)
    finally:
        admin.close()


async def test_a_caller_cancelled_while_queued_is_never_sent(redis_url, telemetry):
    async with redis_cache(redis_url, telemetry, fail_open=False) as cache:
        pipeliner = cache.backend.pipeliner
        await cache.set("first", 0)
        await warm(cache)
        pause_server(redis_url, 0.2)
        busy = asyncio.create_task(cache.get("first"))  # a lone GET: in flight on its own
        await asyncio.sleep(0)
        writers = [asyncio.create_task(cache.set(f"w{i}", i)) for i in range(10)]
        await asyncio.sleep(0)  # every writer is queued; the flush runs after this task
        assert len(pipeliner._queue) == 10
        writers[3].cancel()
        results = await asyncio.gather(*writers, return_exceptions=True)
        assert await busy == 0
        assert isinstance(results[3], asyncio.CancelledError)
        assert [r for i, r in enumerate(results) if i != 3] == [True] * 9
        assert pipeliner.batched_operations == 1 + 9  # warm-up: one batched EXISTS
        assert await cache.get("w3") is None, "the cancelled write was dropped before it was sent"
        assert await cache.get_many([f"w{i}" for i in range(10) if i != 3]) == {f"w{i}": i for i in range(10) if i != 3}
        assert cache.telemetry.counters.cancellations == 1
        assert cache.telemetry.counters.error_total == 0


async def test_a_caller_cancelled_in_flight_disturbs_no_one(redis_url, telemetry):
    async with redis_cache(redis_url, telemetry, fail_open=False) as cache:
        pipeliner = cache.backend.pipeliner
        await cache.set_many({f"r{i}": i for i in range(10)})
        await warm(cache)
        pause_server(redis_url, 0.3)
        busy = asyncio.create_task(cache.get("r0"))
        await asyncio.sleep(0)
        readers = [asyncio.create_task(cache.get(f"r{i}")) for i in range(10)]
        writer = asyncio.create_task(cache.set("late", "written"))
        for _ in range(20):  # the batch leaves and waits for the sleeping server
            await asyncio.sleep(0)
        assert pipeliner.batches_in_flight == 1 and not pipeliner._queue
        readers[4].cancel()
        writer.cancel()
        results = await asyncio.gather(*readers, writer, return_exceptions=True)
        assert await busy == 0
        assert isinstance(results[4], asyncio.CancelledError)
        assert isinstance(results[-1], asyncio.CancelledError)
        assert [r for i, r in enumerate(results[:10]) if i != 4] == [i for i in range(10) if i != 4]
        # the connection stayed in step: the next batch reads its own replies, not the discarded ones
        got = await asyncio.gather(*(cache.get(f"r{i}") for i in range(10)), cache.get("late"))
        assert got == [*range(10), "written"], "a write in flight when its caller left was still made"
        assert cache.telemetry.counters.cancellations == 2


async def test_an_error_reply_fails_only_its_own_operation(redis_url, telemetry):
    async with redis_cache(redis_url, telemetry, fail_open=False) as cache:
        sync = redis.Redis.from_url(redis_url)
        sync.sadd("yokedcache:a-set", "member")  # GET on a set: WRONGTYPE
        await cache.set_many({f"k{i}": i for i in range(5)})
        results = await asyncio.gather(
            *(cache.get(f"k{i}") for i in range(5)), cache.get("a-set"), cache.set("k9", 9), return_exceptions=True
        )
        assert results[:5] == list(range(5))
        assert isinstance(results[5], CacheCommandError) and results[5].code == "WRONGTYPE"
        assert results[6] is True
        assert cache.backend.pipeliner.batches >= 1
        assert cache.breaker.consecutive_failures == 0, "an error reply says the server is up"
        sync.close()


async def test_a_tagged_write_refused_for_memory_fails_as_oom(telemetry):
    server = RedisServer("--maxmemory", "1mb", "--maxmemory-policy", "noeviction")
    server.start()
    try:
        async with redis_cache(server.url(), telemetry, fail_open=False) as cache:
            big = "x" * 300_000
            results = await asyncio.gather(
                *(cache.set(f"big{i}", big, tags=["t"]) for i in range(8)), return_exceptions=True
            )
            refused = [r for r in results if isinstance(r, CacheCommandError)]
            assert refused and all(r.code == "OOM" for r in refused)
            assert all(r is True or isinstance(r, CacheCommandError) for r in results)
            assert cache.breaker.state == "closed"
            # what was accepted is whole: each stored key is in its tag set
            sync = redis.Redis(port=server.port)
            members = sync.smembers("yokedcache-tags:yokedcache:t")
            stored = {k for k in sync.keys("yokedcache:big*")}
            assert members == stored
            sync.close()
    finally:
        server.close()


async def test_a_lost_connection_fails_exactly_its_batch_and_counts_once(telemetry):
    server = RedisServer()
    server.start()
    try:
        async with redis_cache(server.url(), telemetry, fail_open=False, retry_attempts=0,
                               circuit_failure_threshold=3) as cache:  # fmt: skip
            pipeliner = cache.backend.pipeliner
            await cache.set_many({f"k{i}": i for i in range(20)})
            await warm(cache)
            pause_server(server.url(), 5)
            busy = asyncio.create_task(cache.get("k0"))
            await asyncio.sleep(0)
            batch = [asyncio.create_task(cache.get(f"k{i}")) for i in range(20)]
            for _ in range(20):
                await asyncio.sleep(0)
            assert pipeliner.batches_in_flight == 1
            server.stop()  # SIGKILL while the batch waits for its replies
            results = await asyncio.gather(*batch, busy, return_exceptions=True)
            errors = results[:21]
            assert all(isinstance(e, CacheConnectionError) for e in errors), errors
            # one lost round trip for the batch, one for the lone GET: below the threshold of 3
            assert cache.breaker.total_failures == 2
            assert cache.breaker.state == "closed"
            assert cache.telemetry.counters.error_total == 21, "every failed operation is counted"
            server.start()
            got = await asyncio.gather(*(cache.get(f"k{i}") for i in range(5)), cache.set("after", 1))
            assert got == [None] * 5 + [True], "served again (the data died with the server)"
    finally:
        server.close()


async def test_fail_open_returns_defaults_for_a_lost_batch(telemetry):
    server = RedisServer()
    server.start()
    try:
        async with redis_cache(server.url(), telemetry, retry_attempts=0) as cache:
            await cache.set("k", 1)
            await warm(cache)
            pause_server(server.url(), 5)
            busy = asyncio.create_task(cache.get("k"))
            await asyncio.sleep(0)
            calls = [cache.get("k", "default"), cache.set("k2", 2), cache.exists("k"), cache.delete("k"),
                     cache.get_many(["k", "k2"], default=0), cache.set_many({"a": 1}, tags=["t"])]  # fmt: skip
            batch = [asyncio.create_task(c) for c in calls]
            for _ in range(20):
                await asyncio.sleep(0)
            server.stop()
            results = await asyncio.gather(*batch)
            await asyncio.gather(busy, return_exceptions=True)
            assert results == ["default", False, False, False, {"k": 0, "k2": 0}, False]
    finally:
        server.close()


async def test_batches_are_traced_and_measured_exactly(redis_url, telemetry):
    async with redis_cache(redis_url, telemetry) as cache:
        await cache.set_many({f"k{i}": i for i in range(30)})
        telemetry.spans.clear()
        pipeliner = cache.backend.pipeliner
        batches_before, ops_before = pipeliner.batches, pipeliner.batched_operations
        await asyncio.gather(*(cache.get(f"k{i}") for i in range(30)), cache.set("x", 1, tags=["t"]))
        batched = pipeliner.batched_operations - ops_before
        assert pipeliner.batches - batches_before >= 1 and batched >= 29

        spans = telemetry.spans.get_finished_spans()
        pipelines = [s for s in spans if s.name == "PIPELINE"]
        operations = [s for s in spans if s.name != "PIPELINE"]
        assert len(operations) == 31
        assert pipelines and sum(p.attributes[sc.PIPELINE_OPERATIONS] for p in pipelines) == batched
        by_id = {s.context.span_id: s for s in operations}
        for pipeline in pipelines:
            assert pipeline.kind.name == "CLIENT"
            assert pipeline.attributes[sc.DB_OPERATION_NAME] == "PIPELINE"
            assert pipeline.attributes[sc.DB_SYSTEM_NAME] == "redis"
            riders = [by_id[link.context.span_id] for link in pipeline.links]
            assert len(riders) == pipeline.attributes[sc.PIPELINE_OPERATIONS]
            # db.operation.batch.size counts Redis commands: the tagged SET is MULTI+SET+SADD+2 EXPIRE+EXEC
            commands = sum(6 if r.name == "MULTI" else 1 for r in riders)
            assert pipeline.attributes.get(sc.DB_BATCH_SIZE) == (commands if commands > 1 else None)
            assert pipeline.parent.span_id == riders[0].context.span_id
            for rider in riders:  # and each operation links back to the batch it rode in
                assert [link.context.span_id for link in rider.links] == [pipeline.context.span_id]
        assert sum(1 for s in operations if s.links) == batched

        metrics = telemetry.metrics()
        (_, sizes), = metrics[sc.PIPELINE_BATCH_SIZE]  # fmt: skip
        assert sizes.count == pipeliner.batches and sizes.sum == pipeliner.batched_operations
        durations = {a["operation"]: p.count for a, p in metrics[sc.DURATION]}
        assert durations == {"get": 30, "set": 1, "set_many": 1}, "one duration record per operation"
        assert telemetry.value(sc.GETS, result="hit") == 30


async def test_each_duration_includes_the_wait_for_its_batch(redis_url, telemetry):
    async with redis_cache(redis_url, telemetry, enable_tracing=False) as cache:
        await cache.set("k", 1)
        pause_server(redis_url, 0.2)
        await asyncio.gather(*(cache.get("k") for i in range(10)))
        cache.telemetry.flush()
        gets = [p for a, p in telemetry.metrics()[sc.DURATION] if a["operation"] == "get"]
        assert gets[0].count == 10
        assert gets[0].min >= 0.1, "every get waited for the sleeping server, inside its own duration"


async def test_values_round_trip_as_stored_by_others(redis_url):
    """Batched replies decode like direct ones: bytes written by another client read back."""
    sync = redis.Redis.from_url(redis_url)
    sync.mset({f"yokedcache:o{i}": json.dumps([i, "é"]) for i in range(10)})
    async with redis_cache(redis_url, fail_open=False) as cache:
        got = await asyncio.gather(*(cache.get(f"o{i}") for i in range(10)))
        assert got == [[i, "é"] for i in range(10)]
        assert cache.backend.pipeliner.batches >= 1
    sync.close()


async def test_a_lone_command_cancelled_in_flight_leaves_no_stale_reply(redis_url):
    async with redis_cache(redis_url, fail_open=False) as cache:
        await cache.set_many({"a": "A", "b": "B"})
        pause_server(redis_url, 0.2)
        lone = asyncio.create_task(cache.get("a"))
        for _ in range(5):
            await asyncio.sleep(0)
        assert cache.backend.pipeliner._direct == 1
        lone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await lone
        # "A" is still on its way on that connection; the next caller must get its own reply
        assert await cache.get("b") == "B"
        assert await cache.get("a") == "A"
        assert cache.backend.pool_stats()["pipeline_connections"] == 1


async def test_pipelined_calls_are_not_capped_by_admission(redis_url):
    """The pipeliner bounds its own connections; admitting max_connections calls at once would
    only cut its batches to that size."""
    async with redis_cache(redis_url, fail_open=False, max_connections=4) as cache:
        await cache.set("k", 1)
        sizes: list[int] = []
        pipeliner = cache.backend.pipeliner
        inner = pipeliner.observer

        class Sizes:
            pipeline_context = inner.pipeline_context
            pipeline_finished = inner.pipeline_finished

            def pipeline_started(self, operations, commands, contexts):
                sizes.append(operations)
                return inner.pipeline_started(operations, commands, contexts)

        pipeliner.observer = Sizes()
        assert await asyncio.gather(*(cache.get("k") for _ in range(40))) == [1] * 40
        assert max(sizes) >= 39
        assert cache.backend.pool_stats()["pipeline_connections"] <= 3


async def test_a_hung_server_times_out_each_batch_once(redis_url):
    from yokedcache.errors import CacheTimeoutError

    async with redis_cache(redis_url, fail_open=False, retry_attempts=0, operation_timeout=0.2,
                           circuit_recovery_timeout=0.1) as cache:  # fmt: skip
        await cache.set("k", 1)
        await warm(cache)
        pause_server(redis_url, 0.6)
        results = await asyncio.gather(*(cache.get("k") for _ in range(10)), return_exceptions=True)
        assert all(isinstance(r, CacheTimeoutError) for r in results), results
        assert cache.breaker.total_failures == 2, "the lone GET's round trip and the batch's"
        deadline = asyncio.get_running_loop().time() + 10
        while True:  # poll until the pause ends
            try:
                assert await cache.get("k") == 1
                break
            except CacheConnectionError:
                assert asyncio.get_running_loop().time() < deadline
        assert await asyncio.gather(*(cache.get("k") for _ in range(10))) == [1] * 10


_arguments = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=20),  # keys: UTF-8 encodable
    st.binary(max_size=40),
    st.integers(-(2**63), 2**63 - 1),
)
_commands = st.tuples(st.sampled_from(["GET", "SET", "EXPIRE", "MULTI"]), st.lists(_arguments, max_size=4))


@given(commands=st.lists(_commands.map(lambda c: (c[0], *c[1])), min_size=1, max_size=6))
def test_batches_are_packed_byte_for_byte_as_redis_py_packs_them(commands):
    from redis.asyncio.connection import Connection

    from yokedcache.backends.autopipeline import _pack

    connection = Connection()
    assert _pack(commands, connection.encoder) == b"".join(connection.pack_commands(commands))
