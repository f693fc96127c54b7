"""What the instrumentation point records, asserted with the SDK's in-memory reader/exporter."""

from __future__ import annotations

import asyncio
import time

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from yokedcache import CacheConfig, CacheConnectionError, YokedCache
from yokedcache.telemetry import semconv as sc

SECRET_KEY = "user:alice@example.com"


async def run_known_sequence(cache: YokedCache) -> None:
    await cache.set(SECRET_KEY, {"v": 1}, tags=["people"])
    await cache.set("b", 2)
    await cache.get(SECRET_KEY)  # hit
    await cache.get("b")  # hit
    await cache.get("nope")  # miss
    await cache.get_many([SECRET_KEY, "x", "y"])  # 1 hit, 2 misses
    await cache.set_many({"c": 3, "d": 4})
    await cache.delete("b")
    await cache.exists("c")
    await cache.invalidate_tags(["people"])
    await cache.invalidate_pattern("c*")


async def test_exact_counts_after_a_known_sequence(make_cache, telemetry):
    cache = make_cache()
    await run_known_sequence(cache)
    t = telemetry
    assert t.value(sc.GETS, result="hit") == 3
    assert t.value(sc.GETS, result="miss") == 3
    assert t.value(sc.HITS) == 3
    assert t.value(sc.MISSES) == 3
    assert t.value(sc.SETS) == 4
    assert t.value(sc.DELETES) == 1
    assert t.value(sc.INVALIDATIONS) == 2
    assert t.value(sc.HIT_RATE) == pytest.approx(0.5)
    durations = {a["operation"]: p.count for a, p in t.metrics()[sc.DURATION]}
    assert durations == {
        "set": 2, "get": 3, "get_many": 1, "set_many": 1, "delete": 1, "exists": 1,
        "invalidate_tags": 1, "invalidate_pattern": 1,
    }  # fmt: skip


async def test_instrument_names_units_and_scope(make_cache, telemetry):
    cache = make_cache()
    await run_known_sequence(cache)
    await cache.refresh_usage()
    found = telemetry.instruments()
    expected_units = {
        sc.GETS: "{get}", sc.SETS: "{set}", sc.DELETES: "{delete}", sc.HITS: "{hit}", sc.MISSES: "{miss}",
        sc.INVALIDATIONS: "{invalidation}", sc.HIT_RATE: "{ratio}", sc.SIZE: "By", sc.KEYS_COUNT: "{key}",
        sc.DURATION: "s",
    }  # fmt: skip
    for name, unit in expected_units.items():
        metric, scope = found[name]
        assert metric.unit == unit, name
        assert scope.name == "yokedcache"
        assert scope.schema_url == sc.SCHEMA_URL


async def test_histogram_uses_sub_millisecond_buckets(make_cache, telemetry):
    cache = make_cache()
    await cache.get("k")
    (_, point), *_ = telemetry.metrics()[sc.DURATION]
    bounds = tuple(point.explicit_bounds)
    assert bounds == sc.DURATION_BUCKETS
    assert 0.001 in bounds and 0.01 in bounds and bounds[0] < 0.0001


async def test_no_key_value_or_tag_ever_becomes_a_metric_attribute(make_cache, telemetry):
    cache = make_cache()
    await run_known_sequence(cache)
    allowed = {sc.ATTR_OPERATION, sc.ATTR_RESULT, sc.ATTR_ERROR_TYPE, sc.ATTR_POOL_STATE,
               sc.DB_CONNECTION_POOL_NAME, sc.DB_CONNECTION_STATE,
               # db.client.operation.duration: where the database is and which command, never a key
               sc.DB_SYSTEM_NAME, sc.DB_NAMESPACE, sc.DB_OPERATION_NAME, sc.DB_QUERY_SUMMARY, sc.SERVER_ADDRESS,
               sc.SERVER_PORT, sc.DB_RESPONSE_STATUS_CODE}  # fmt: skip
    for name, points in telemetry.metrics().items():
        for attrs, _ in points:
            assert set(attrs) <= allowed, (name, attrs)
            blob = repr(attrs)
            assert "alice" not in blob and "people" not in blob


async def test_size_and_keys_gauges_follow_content(make_cache, telemetry):
    cache = make_cache()
    await cache.set_many({"a": "x" * 100, "b": "y"})
    await cache.refresh_usage()
    assert telemetry.value(sc.KEYS_COUNT) == 2
    assert telemetry.value(sc.SIZE) >= 100


async def test_closed_cache_stops_reporting_but_its_counts_stay(make_cache, telemetry):
    other = make_cache()
    cache = make_cache()
    await cache.set("a", 1)
    await cache.get("k")
    await other.get("k")
    await cache.refresh_usage()  # now: DictBackend (tests/test_backend_contract.py) never yields to the refresh
    # the gauge reports "a" (on Redis both caches see it under the shared prefix, once each
    # has sampled), so its absence after close below is news
    assert telemetry.value(sc.MISSES) == 2 and telemetry.value(sc.KEYS_COUNT) >= 1
    await cache.close()
    await other.get("k")
    # counters are monotonic across a cache closing (no false reset seen by rate()) ...
    assert telemetry.value(sc.MISSES) == 3
    assert telemetry.value(sc.GETS, result="miss") == 3 and telemetry.value(sc.SETS) == 1
    await other.close()
    assert telemetry.value(sc.MISSES) == 3
    # ... while the gauges of what is gone disappear
    found = telemetry.metrics()
    assert sc.HIT_RATE not in found and sc.KEYS_COUNT not in found and sc.HEALTH not in found


async def test_two_caches_on_one_provider_are_summed_not_duplicated(make_cache, telemetry):
    a, b = make_cache(key_prefix="a:"), make_cache(key_prefix="b:")
    await a.get("k")
    await b.set("k", 1)
    await b.get("k")
    assert telemetry.value(sc.GETS, result="miss") == 1
    assert telemetry.value(sc.GETS, result="hit") == 1


async def test_hit_rate_is_absent_before_any_read(make_cache, telemetry):
    cache = make_cache()
    await cache.set("k", 1)
    assert sc.HIT_RATE not in telemetry.metrics()


async def test_redis_spans_follow_database_conventions(redis_url, redis_server, telemetry):
    cache = YokedCache(
        CacheConfig(redis_url=redis_url, meter_provider=telemetry.meter_provider,
                    tracer_provider=telemetry.tracer_provider)
    )  # fmt: skip
    await cache.set(SECRET_KEY, 1)
    await cache.get(SECRET_KEY)
    await cache.get("missing")
    await cache.get_many(["a", "b", "c"])
    await cache.close()
    spans = telemetry.spans.get_finished_spans()
    # named after db.query.summary: the Redis command (MGET is one command, not a batch)
    assert [s.name for s in spans] == ["SET", "GET", "GET", "MGET"]
    for span in spans:
        assert span.kind is SpanKind.CLIENT
        attrs = dict(span.attributes)
        assert attrs[sc.DB_SYSTEM_NAME] == "redis"
        assert attrs[sc.SERVER_ADDRESS] == "127.0.0.1"
        assert attrs[sc.SERVER_PORT] == redis_server.port
        assert attrs[sc.DB_NAMESPACE] == "0"
        assert "alice" not in repr(attrs)
        assert span.instrumentation_scope.schema_url == sc.SCHEMA_URL
    assert [dict(s.attributes)[sc.DB_OPERATION_NAME] for s in spans] == ["SET", "GET", "GET", "MGET"]
    assert [dict(s.attributes)[sc.DB_QUERY_SUMMARY] for s in spans] == ["SET", "GET", "GET", "MGET"]
    assert [dict(s.attributes)[sc.CACHE_OPERATION] for s in spans] == ["set", "get", "get", "get_many"]
    assert dict(spans[1].attributes)[sc.CACHE_HIT] is True
    assert dict(spans[2].attributes)[sc.CACHE_HIT] is False
    assert spans[2].status.status_code is StatusCode.UNSET  # a miss is not an error
    assert dict(spans[3].attributes)[sc.CACHE_KEYS] == 3 and sc.DB_BATCH_SIZE not in dict(spans[3].attributes)


async def test_keys_on_spans_only_when_enabled(redis_url, telemetry):
    for capture in (False, True):
        telemetry.spans.clear()
        cache = YokedCache(
            CacheConfig(redis_url=redis_url, tracer_provider=telemetry.tracer_provider, capture_keys=capture,
                        meter_provider=telemetry.meter_provider)
        )  # fmt: skip
        await cache.get(SECRET_KEY)
        await cache.close()
        (span,) = telemetry.spans.get_finished_spans()
        assert (sc.CACHE_KEY in span.attributes) is capture


async def test_memory_backend_spans_are_off_by_default_and_internal_when_on(telemetry):
    quiet = YokedCache(CacheConfig(tracer_provider=telemetry.tracer_provider))
    await quiet.get("k")
    assert telemetry.spans.get_finished_spans() == ()
    loud = YokedCache(CacheConfig(tracer_provider=telemetry.tracer_provider, enable_tracing=True))
    await loud.get("k")
    (span,) = telemetry.spans.get_finished_spans()
    assert span.kind is SpanKind.INTERNAL
    assert sc.DB_SYSTEM_NAME not in span.attributes
    await quiet.close()
    await loud.close()


async def test_failures_are_counted_with_error_type_and_marked_on_spans(redis_server, telemetry):
    from .redis_server import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    cache = YokedCache(
        CacheConfig(redis_url=dead, meter_provider=telemetry.meter_provider, retry_attempts=0,
                    tracer_provider=telemetry.tracer_provider, circuit_breaker_enabled=False)
    )  # fmt: skip
    assert await cache.get("k", default="fallback") == "fallback"  # fail-open
    assert await cache.set("k", 1) is False
    points = telemetry.metrics()[sc.ERRORS]
    assert {(a["operation"], a["error.type"]) for a, _ in points} == {
        ("get", "redis.exceptions.ConnectionError"),
        ("set", "redis.exceptions.ConnectionError"),
    }
    spans = telemetry.spans.get_finished_spans()
    assert all(s.status.status_code is StatusCode.ERROR for s in spans)
    assert all(s.attributes[sc.ERROR_TYPE] == "redis.exceptions.ConnectionError" for s in spans)
    closed = YokedCache(CacheConfig(redis_url=dead, fail_open=False, retry_attempts=0))
    with pytest.raises(ConnectionError):
        await closed.get("k")
    with pytest.raises(CacheConnectionError):
        await closed.set("k", 1)
    await cache.close()
    await closed.close()


async def test_no_sdk_means_no_error_and_no_spans():
    # The global providers are the API's no-ops in this test process.
    async with YokedCache(CacheConfig(enable_tracing=True)) as cache:
        await cache.set("k", 1)
        assert await cache.get("k") == 1
        assert cache.telemetry.start_span(sc.OP_GET) is None


async def test_every_built_in_instrument_is_listed_with_its_unit(redis_url, telemetry):
    """``semconv.BUILT_IN_UNITS`` lists exactly what is exported: the Prometheus collector keeps
    application metrics clear of these families, so a missing or stale entry would let them collide."""
    from .redis_server import free_port

    mp = telemetry.meter_provider
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with (
        YokedCache(CacheConfig(redis_url=redis_url, meter_provider=mp)) as redis_cache,
        YokedCache(CacheConfig(meter_provider=mp, max_keys=1)) as memory_cache,  # evicts: sizes, evictions
        YokedCache(CacheConfig(redis_url=dead, meter_provider=mp, retry_attempts=0)) as failing,  # errors
    ):
        await redis_cache.set("k", 1)
        await asyncio.gather(redis_cache.get("k"), redis_cache.get("k"))  # the second one is pipelined
        await memory_cache.set("a", 1)
        await memory_cache.set("b", 2)
        await failing.get("k")
        await _every_cache_aside_event(memory_cache)
        found = {name: metric.unit for name, (metric, _) in telemetry.instruments().items()}
    assert found == sc.BUILT_IN_UNITS


async def _every_cache_aside_event(cache: YokedCache) -> None:
    """A computation, a coalesced caller, a failed one, a stale serve and an early refresh."""
    from yokedcache.cache_aside import ENVELOPE

    async def one() -> int:
        await asyncio.sleep(0)
        return 1

    await asyncio.gather(cache.get_or_set("c", one), cache.get_or_set("c", one))
    with pytest.raises(ZeroDivisionError):
        await cache.get_or_set("e", lambda: 1 / 0)
    await cache.set("s", {ENVELOPE: 1, "v": 1, "x": 0.0, "d": 0.0})  # expired
    assert await cache.get_or_set("s", lambda: 1 / 0, stale_ttl=60) == 1
    await cache.set("r", {ENVELOPE: 1, "v": 1, "x": time.time() + 1000, "d": 1e9})  # due for XFetch
    assert await cache.get_or_set("r", one, early_refresh=True) == 1
    counts = cache.computations()
    assert counts["coalesced_process"] == 1 and counts["stale_serves"] == 1 and counts["early_refreshes"] == 1


async def test_duration_records_are_queued_off_the_call_and_all_counted(telemetry):
    """Records run in batches on the loop; a caller that never yields cannot grow the queue
    without bound; a collection sees every operation."""
    from yokedcache.telemetry import instrumentation

    async with YokedCache(CacheConfig(meter_provider=telemetry.meter_provider)) as cache:
        await cache.set("k", 1)
        for _ in range(10_000):  # a memory get never yields: the loop gets no turn in here
            await cache.get("k")
            assert len(cache.telemetry._pending) <= instrumentation._FLUSH_LIMIT
        assert cache.telemetry._pending  # some are still queued...
        (point,) = [p for a, p in telemetry.metrics()[sc.DURATION] if a == {"operation": "get"}]
        assert point.count == 10_000  # ...and the collection recorded them first
        await cache.get("k")
        await asyncio.sleep(0)  # the loop's turn: the flush scheduled during the loop runs
        assert not cache.telemetry._pending
        below = instrumentation._FLUSH_BATCH - 1
        for _ in range(below):
            await cache.get("k")
        await asyncio.sleep(0)  # a batch below the threshold waits for more (or a collection)...
        assert len(cache.telemetry._pending) == below
        for _ in range(instrumentation._FLUSH_BATCH):
            await cache.get("k")
        await asyncio.sleep(0)  # ...a full one is recorded as soon as the caller yields
        assert not cache.telemetry._pending


async def test_without_an_sdk_nothing_is_queued():
    async with YokedCache(CacheConfig()) as cache:  # the API's no-op histogram: called inline
        await cache.set("k", 1)
        for _ in range(100):
            await cache.get("k")
        assert not cache.telemetry._pending
