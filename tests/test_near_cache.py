"""The near cache against a real redis-server: coherence, the in-flight race, link loss, bounds.

Two ``YokedCache`` instances on the same server stand for two processes (each has its own
connections and its own invalidation link); ``test_near_cache_property.py`` runs real processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
import redis

from yokedcache import CacheConfig, NearCacheConfig, YokedCache
from yokedcache.backends.memory import MemoryBackend
from yokedcache.telemetry import semconv as sc

from .redis_server import RedisSentinelServer, RedisServer

FAST = NearCacheConfig(max_staleness=0.05)


def near_cache(url: str, near: NearCacheConfig | bool = FAST, **kw: object) -> YokedCache:
    return YokedCache(CacheConfig(redis_url=url, near_cache=near, default_ttl=None, **kw))  # type: ignore[arg-type]


async def until(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll ``predicate`` (plain or async) until true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def live(cache: YokedCache) -> YokedCache:
    """Make the cache start its link (first operation) and wait until it is subscribed."""
    await cache.exists("warm-up")
    await until(lambda: cache._near is not None and cache._near.live)
    return cache


async def held(cache: YokedCache, key: str) -> bool:
    """Whether ``key``'s value would be served from process memory now (not counted)."""
    near = cache._near
    assert near is not None
    entry = near.store.entries.get(cache.config.key_prefix + key)
    return entry is not None and time.monotonic() < near.fresh_until


# -- configuration --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [({"max_entries": 0}, ValueError, "near_cache.max_entries"),
     ({"max_bytes": 1.5}, TypeError, "near_cache.max_bytes"),
     ({"max_staleness": 0.0}, ValueError, "near_cache.max_staleness"),
     ({"max_ttl": -1}, ValueError, "near_cache.max_ttl"), ({"max_entries": True}, TypeError, "near_cache.max_entries")],
)  # fmt: skip
def test_bad_settings_name_the_field(kwargs, error, field):
    with pytest.raises(error, match=field):
        NearCacheConfig(**kwargs)


def test_the_config_accepts_true_and_refuses_what_cannot_be_tracked():
    assert CacheConfig(redis_url="redis://127.0.0.1:1/0", near_cache=True).near_cache == NearCacheConfig()
    assert CacheConfig(redis_url="redis://127.0.0.1:1/0", near_cache=False).near_cache is None
    with pytest.raises(TypeError, match="near_cache: expected a NearCacheConfig"):
        CacheConfig(near_cache={"max_entries": 5})
    with pytest.raises(ValueError, match="near_cache: needs a Redis backend"):
        CacheConfig(backend="memory", near_cache=True)
    with pytest.raises(ValueError, match="near_cache: the memory backend has no server"):
        YokedCache(CacheConfig(backend=MemoryBackend(), near_cache=True))
    with pytest.raises(ValueError, match="near_cache: not supported on Redis Cluster: each node sends"):
        YokedCache(CacheConfig(redis_url="redis+cluster://127.0.0.1:1/0", near_cache=True))


# -- serving and coherence ------------------------------------------------------------------
async def test_hot_keys_are_served_locally_and_every_kind_of_change_removes_them(redis_url):
    async with near_cache(redis_url) as a, near_cache(redis_url) as b:
        await live(a)
        await live(b)
        await a.set("k", 1)
        assert await a.get("k") == 1  # from Redis: fills the local copy
        assert await held(a, "k")
        hits = a.near_stats.hits
        assert await a.get("k") == 1 and a.near_stats.hits == hits + 1

        await b.set("k", 2)  # another process writes
        await until(lambda: not a._near.store.entries)
        assert await a.get("k") == 2

        await a.get("k")
        await b.delete("k")
        await until(lambda: not a._near.store.entries)
        assert await a.get("k") is None

        await b.set("t", "x", tags=["grp"])
        await b.set("p:1", "y")
        assert await a.get("t") == "x" and await a.get("p:1") == "y"
        assert await held(a, "t") and await held(a, "p:1")
        await b.invalidate_tags("grp")
        await until(lambda: "yokedcache:t" not in a._near.store.entries)
        await b.invalidate_pattern("p:*")
        await until(lambda: "yokedcache:p:1" not in a._near.store.entries)
        assert await a.get("t") is None and await a.get("p:1") is None

        await b.set("f", 1)
        assert await a.get("f") == 1 and await held(a, "f")
        raw = redis.Redis.from_url(redis_url)
        raw.flushdb()
        raw.close()
        await until(lambda: not a._near.store.entries)
        assert await a.get("f") is None
        assert a.near_stats.invalidations >= 5


async def test_own_writes_are_read_back_at_once(redis_url):
    async with near_cache(redis_url) as a:
        await live(a)
        for i in range(20):
            await a.set("k", i, tags=["g"])
            assert await a.get("k") == i
            assert await a.get("k") == i  # the second one may be local: still the new value
        await a.invalidate_tags("g")
        assert await a.get("k") is None
        await a.set("k", 1)
        await a.get("k")
        await a.invalidate_pattern("k")
        assert await a.get("k") is None
        await a.set_many({"m1": 1, "m2": 2})
        assert await a.get("m1") == 1
        await a.set_many({"m1": 3})
        assert await a.get("m1") == 3
        await a.delete("m1")
        assert await a.get("m1") is None
        await a.set("c", 1)
        await a.get("c")
        await a.clear()
        assert await a.get("c") is None


async def test_ttls_are_honoured_locally(redis_url):
    async with near_cache(redis_url) as a:
        await live(a)
        raw = redis.Redis.from_url(redis_url)
        raw.set("yokedcache:e", b"1", px=300)
        await a._near.sync()  # its invalidation must not land during the read (that read stores nothing)
        started = time.monotonic()
        assert await a.get("e") == 1
        deadline = a._near.store.entries["yokedcache:e"][1]
        assert started < deadline <= time.monotonic() + 0.3  # never past Redis's own expiry
        raw.set("yokedcache:n", b"1")  # no TTL: kept until invalidated, or max_ttl
        await a._near.sync()
        assert await a.get("n") == 1
        assert a._near.store.entries["yokedcache:n"][1] > time.monotonic() + 3600
        raw.close()
    capped = NearCacheConfig(max_staleness=0.05, max_ttl=0.2)
    async with near_cache(redis_url, capped) as c:
        await live(c)
        await c.set("n", 2)
        assert await c.get("n") == 2
        assert c._near.store.entries["yokedcache:n"][1] <= time.monotonic() + 0.2


async def test_an_eviction_by_redis_removes_the_local_copy(redis_url, redis_server):
    raw = redis.Redis.from_url(redis_url)
    async with near_cache(redis_url) as a:
        await live(a)
        await a.set("victim", "v" * 100)
        assert await a.get("victim") and await held(a, "victim")
        used = int(raw.info("memory")["used_memory"])
        raw.config_set("maxmemory-policy", "allkeys-lru")
        raw.config_set("maxmemory", str(used + 200_000))
        try:
            i = 0
            while raw.exists("yokedcache:victim"):
                raw.set(f"filler:{i}", b"x" * 2000)  # not under the prefix: only evictions reach us
                i += 1
                assert i < 5000
            await until(lambda: "yokedcache:victim" not in a._near.store.entries)
        finally:
            raw.config_set("maxmemory", "0")
            raw.config_set("maxmemory-policy", "noeviction")
            raw.close()


async def test_the_store_is_bounded_with_lru_eviction(redis_url):
    tiny = NearCacheConfig(max_staleness=0.05, max_entries=3)
    async with near_cache(redis_url, tiny) as a:
        await live(a)
        for i in range(4):
            await a.set(f"k{i}", i)
        for i in range(3):
            await a.get(f"k{i}")
        await a.get("k0")  # k0 is now the most recently used; k1 the least
        await a.get("k3")
        assert list(a._near.store.entries) == ["yokedcache:k2", "yokedcache:k0", "yokedcache:k3"]
        assert a.near_stats.entries == 3
    by_bytes = NearCacheConfig(max_staleness=0.05, max_bytes=3000)
    async with near_cache(redis_url, by_bytes) as b:
        await live(b)
        for i in range(5):
            await b.set(f"big{i}", "x" * 900)
            await b.get(f"big{i}")
        assert 0 < b.near_stats.bytes <= 3000
        assert list(b._near.store.entries)[-1] == "yokedcache:big4"
        await b.set("huge", "x" * 5000)
        await b.get("huge")  # larger than the whole bound: never kept
        assert "yokedcache:huge" not in b._near.store.entries


# -- the in-flight race ------------------------------------------------------------------------
async def test_an_invalidation_during_a_read_keeps_the_old_reply_out(redis_url):
    async with near_cache(redis_url) as a:
        near = await live(a)
        await a.set("k", "old")
        # The ordering Redis's docs warn about, forced: the invalidation is handled between the
        # GET being sent and its reply being read.
        read = asyncio.ensure_future(near._near.fill("yokedcache:k"))
        await asyncio.sleep(0)  # the GET is on the wire
        near._near._invalidated([b"yokedcache:k"])
        assert await read == b'"old"'
        assert "yokedcache:k" not in near._near.store.entries
        # A read that starts after the invalidation stores its reply.
        await near._near.fill("yokedcache:k")
        assert "yokedcache:k" in near._near.store.entries


async def test_racing_reads_and_foreign_writes_never_leave_an_old_copy(redis_url):
    """Both arrival orders, for real: a write by another client lands while reads are in flight."""
    writer = redis.Redis.from_url(redis_url)
    async with near_cache(redis_url) as a:
        await live(a)
        for i in range(60):
            writer.set("yokedcache:r", str(i))
            reads = [asyncio.ensure_future(a.get("r")) for _ in range(3)]
            await asyncio.sleep(0)
            writer.set("yokedcache:r", str(i + 1000))  # blocks the loop: both replies queue up
            await asyncio.gather(*reads)
            await a._near.sync()  # every invalidation Redis sent so far has been applied
            assert await a.get("r") == i + 1000
    writer.close()


# -- link loss and restarts ---------------------------------------------------------------------
async def test_a_killed_link_flushes_everything_and_serves_nothing_until_back(redis_url):
    raw = redis.Redis.from_url(redis_url)
    async with near_cache(redis_url) as a:
        await live(a)
        await a.set("k", 1)
        await a.get("k")
        assert await held(a, "k")
        flushes = a.near_stats.flushes
        raw.client_kill_filter(_type="pubsub")
        await until(lambda: not a._near.live or a.near_stats.flushes > flushes)
        assert not a._near.store.entries
        raw.set("yokedcache:k", b"2")  # written while no invalidation can reach us
        assert await a.get("k") == 2
        await until(lambda: a._near.live)
        assert await a.get("k") == 2
        assert await a.get("k") == 2 and await held(a, "k")
    raw.close()


async def test_a_restart_of_redis_is_survived(redis_server):
    url = redis_server.url()
    async with near_cache(url, retry_attempts=3) as a:
        await live(a)
        await a.set("k", 1)
        await a.get("k")
        assert await held(a, "k")
        redis_server.restart()  # the data is gone with it
        await until(lambda: not a._near.live, timeout=10)
        assert not a._near.store.entries
        await until(lambda: a._near.live, timeout=10)
        await until(lambda: a.set("k", 3), timeout=10)  # True once Redis answers again
        assert await a.get("k") == 3 and await a.get("k") == 3
        assert await held(a, "k")


# -- Sentinel --------------------------------------------------------------------------------
async def test_it_works_through_sentinel():
    from .conftest import _require_redis

    _require_redis()
    primary = RedisServer(password="near-pw")
    primary.start()
    watcher = RedisSentinelServer(primary)
    watcher.start()
    try:
        async with near_cache(watcher.url()) as a, near_cache(watcher.url()) as b:
            await live(a)
            await live(b)
            await a.set("k", 1)
            assert await b.get("k") == 1 and await held(b, "k")
            await a.set("k", 2)
            await until(lambda: not b._near.store.entries)
            assert await b.get("k") == 2
    finally:
        watcher.close()
        primary.close()


# -- observed ------------------------------------------------------------------------------------
async def test_local_hits_are_counted_apart_and_record_a_duration_but_no_span(redis_url, telemetry):
    cfg = CacheConfig(redis_url=redis_url, near_cache=FAST, meter_provider=telemetry.meter_provider,
                      tracer_provider=telemetry.tracer_provider, default_ttl=None)  # fmt: skip
    async with YokedCache(cfg) as a:
        await live(a)
        await a.set("k", 1)
        await a.get("k")  # Redis
        telemetry.spans.clear()
        for _ in range(5):
            assert await a.get("k") == 1
        assert telemetry.spans.get_finished_spans() == ()
        a.telemetry.flush()
        points = telemetry.metrics()
        assert points[sc.NEAR_HITS][0][1].value == 5
        assert points[sc.NEAR_MISSES][0][1].value == 1  # the first get went on to Redis
        assert points[sc.HITS][0][1].value == 6  # the seed's hit count keeps counting every hit
        assert points[sc.NEAR_ENTRIES][0][1].value == 1
        assert points[sc.NEAR_SIZE][0][1].value > 0
        gets = [p for attrs, p in points[sc.DURATION] if attrs.get(sc.ATTR_OPERATION) == "get"]
        assert gets and gets[0].count == 6
        # the lag: one of this process's own SETs, sampled
        await a.set("lag", 1)
        await until(lambda: _lag_count(telemetry) >= 1)
        assert sc.NEAR_INVALIDATIONS in telemetry.metrics()


def _lag_count(telemetry) -> int:
    points = telemetry.metrics().get(sc.NEAR_INVALIDATION_LAG, [])
    return sum(p.count for _, p in points)


class FreezingProxy:
    """A TCP relay in front of Redis that can stop delivering to the invalidation link only:
    the link then goes silent (a partition that sends no reset) while the data path works."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.thawed = asyncio.Event()
        self.thawed.set()
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        is_link = [False]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool) -> None:
            while data := await src.read(65536):
                if upstream and b"SUBSCRIBE" in data:
                    is_link[0] = True
                if not upstream and is_link[0]:
                    await self.thawed.wait()
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False), return_exceptions=True)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_a_silent_link_stops_local_serving_within_max_staleness(redis_server, redis_url):
    proxy = FreezingProxy(redis_server.port)
    port = await proxy.start()
    writer = redis.Redis.from_url(redis_url)
    try:
        async with near_cache(f"redis://127.0.0.1:{port}/0", NearCacheConfig(max_staleness=0.2)) as a:
            await live(a)
            await a.set("k", 1)
            assert await a.get("k") == 1 and await held(a, "k")
            flushes = a.near_stats.flushes
            proxy.thawed.clear()  # invalidations and pongs stop arriving; nothing is reset
            writer.set("yokedcache:k", b"2")
            replied = time.monotonic()  # the write's reply was received: the promise counts from here
            deadline = replied + 5
            while True:  # every read that starts more than max_staleness after it sees the write
                started = time.monotonic()
                value = await a.get("k")
                assert value == 2 or started <= replied + 0.2, f"stale {started - replied:.3f} s after the write"
                if value == 2:
                    break
                assert started < deadline
                await asyncio.sleep(0.01)
            # the staleness bound did it, not a flush: the link is still taken for alive
            assert a._near.live and a.near_stats.flushes == flushes
            proxy.thawed.set()
            await until(lambda: a._near.fresh_until > time.monotonic())
    finally:
        writer.close()
        await proxy.close()


async def test_the_prometheus_names_are_the_documented_ones(redis_url):
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    cfg = CacheConfig(redis_url=redis_url, near_cache=FAST, meter_provider=provider, default_ttl=None)
    async with YokedCache(cfg) as a:
        await a.connect()
        await a.set("k", 1)
        await a.get("k")
        await a.get("k")
        await until(lambda: _lag_samples(provider, registry) > 0)
        text = generate_latest(registry).decode()
    documented = _documented_prometheus_names()
    for name in documented:
        assert f"\n{name}" in text or text.startswith(name), name
    assert len(documented) == 7
    provider.shutdown()


async def test_two_near_caches_on_one_provider_are_both_observed(redis_url):
    """The near-cache instruments are made once per meter and summed per cache.name: a second
    cache on the same provider is observed too (a per-cache instrument would be ignored by the SDK,
    which keeps the first one registered under a name)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    made = [CacheConfig(redis_url=redis_url, near_cache=FAST, meter_provider=provider, name=n, key_prefix=f"{n}:")
            for n in ("one", "two")]  # fmt: skip
    async with YokedCache(made[0]) as one, YokedCache(made[1]) as two:
        for cache, gets in ((one, 3), (two, 5)):
            await cache.connect()
            await cache.set("k", 1)
            for _ in range(gets):
                await cache.get("k")
        hits = {n: c.near_stats.hits for n, c in (("one", one), ("two", two))}
        data = reader.get_metrics_data()
    points = {
        p.attributes[sc.CACHE_NAME]: p.value
        for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics if m.name == sc.NEAR_HITS
        for p in m.data.data_points
    }  # fmt: skip
    assert points == hits and set(points) == {"one", "two"} and all(hits.values())
    provider.shutdown()


def _lag_samples(provider, registry) -> int:
    from prometheus_client import generate_latest

    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("yokedcache_cache_near_invalidation_lag_seconds_count"):
            return int(float(line.split()[-1]))
    return 0


def _documented_prometheus_names() -> list[str]:
    """The Prometheus column of docs/near-cache.md's metrics table."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "near-cache.md").read_text()
    section = page[page.index("## Observing it") :]
    return re.findall(r"^\| `[a-z._]+` \| `([a-z_]+)` \|", section, flags=re.M)


async def test_a_server_that_refuses_tracking_degrades_health_and_reads_still_work(redis_server, redis_url):
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("ACL", "SETUSER", "notrack", "on", ">notrack-pw", "~*", "&*", "+@all", "-client")
    try:
        url = f"redis://notrack:notrack-pw@127.0.0.1:{redis_server.port}/0"
        async with near_cache(url) as a:
            await a.connect()
            await until(lambda: a.near_stats.link_error is not None)
            await a.set("k", 1)
            assert await a.get("k") == 1 and await a.get("k") == 1
            assert a.near_stats.hits == 0 and not a._near.store.entries  # nothing kept without the link
            report = await a.detailed_health_check()
            assert report["status"] == "degraded"
            assert any("near cache invalidation link down" in r for r in report["reasons"])
            assert report["near_cache"]["link_up"] is False
            assert "notrack-pw" not in repr(report)
        async with near_cache(redis_url) as b:
            await b.connect()
            report = await b.detailed_health_check()
            assert report["status"] == "healthy" and report["near_cache"]["link_up"] is True
    finally:
        admin.execute_command("ACL", "DELUSER", "notrack")
        admin.close()


def test_a_second_event_loop_gets_its_own_link_and_keeps_the_counts(redis_url):
    cache = near_cache(redis_url)

    async def use(value: int) -> int:
        await cache.get("k")  # the first operation on a loop moves the cache there (not connect():
        await until(lambda: cache._near is not None and cache._near.live)  # it pings the old backend)
        await cache.set("k", value)
        hits = cache.near_stats.hits
        await until(lambda: reads_locally(cache, value, hits))
        return cache.near_stats.hits

    first = asyncio.run(use(1))
    second = asyncio.run(use(2))  # a new loop: the backend and its near cache are rebuilt
    assert second > first > 0
    asyncio.run(cache.close())


async def reads_locally(cache: YokedCache, value: int, hits_before: int) -> bool:
    assert await cache.get("k") == value
    return cache.near_stats.hits > hits_before


async def test_pipelined_calls_skip_the_guards_admission_and_invalidations_keep_it(redis_url):
    """As without a near cache: calls that end in the pipeliner are bounded by it (connections,
    a deadline per round trip); invalidations, which scan on pooled connections, are admitted."""
    async with near_cache(redis_url) as a:
        await a.get("x")
        near, backend = a._near, a.backend
        assert a._guard is not None and a._guard.self_admitting is near
        for fn in (backend.get, backend.set, backend.set_many, backend.delete, backend.get_many, backend.exists):
            assert fn.__self__ is near
        for fn in (backend.invalidate_pattern, backend.invalidate_tags):
            assert getattr(fn, "__self__", None) is not near
    async with near_cache(redis_url, auto_pipeline=False) as b:
        await b.set("k", 1)
        assert await b.get("k") == 1
        await until(lambda: reads_locally(b, 1, 0))
        assert b._guard is not None and b._guard.self_admitting is None  # the pool: every call admitted


async def test_the_link_ignores_a_health_check_interval_in_the_url(redis_url):
    """redis-py's own health check would read replies on the link behind its reader's back."""
    async with near_cache(redis_url + "?health_check_interval=1") as a:
        await a.connect()
        assert a._near is not None and a._near.live
        assert a._near._conn.health_check_interval == 0
        await a.set("k", 1)
        await until(lambda: reads_locally(a, 1, 0))
