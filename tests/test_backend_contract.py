"""The backend contract (src/yokedcache/backends/base.py) is enough to write a backend.

``DictBackend`` implements only the abstract members, over plain dicts. tests/conftest.py
parametrises ``backend_kind`` with ``"minimal"``, which runs the cache's whole behaviour suite
(tests/test_cache_operations.py, tests/test_telemetry.py, ...) on it: every capability it does
not declare falls back to the defaults in base.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from yokedcache import CacheConfig, YokedCache
from yokedcache._glob import compile_glob
from yokedcache.backends import Backend, BackendInfo, MemoryBackend, Usage


class DictBackend(Backend):
    """A minimal third backend: values with their deadlines, tag sets beside them."""

    def __init__(self) -> None:
        self.info = BackendInfo(kind="minimal")
        self.data: dict[str, tuple[bytes, float | None]] = {}
        self.tags: dict[str, set[str]] = {}

    def _live(self, key: str) -> bytes | None:
        entry = self.data.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at is not None and expires_at <= time.monotonic():
            del self.data[key]
            return None
        return value

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def set(self, key: str, value: bytes, ttl: float | None, tags: Sequence[str] = ()) -> None:
        self.data[key] = (value, None if ttl is None else time.monotonic() + ttl)
        for tag in tags:  # as on Redis, a key stays in its tag sets until they are invalidated
            self.tags.setdefault(tag, set()).add(key)

    async def delete(self, keys: Sequence[str]) -> int:
        found = [key for key in keys if self._live(key) is not None]
        for key in found:
            del self.data[key]
        return len(found)

    async def invalidate_pattern(self, pattern: str) -> int:
        match = compile_glob(pattern).match
        return await self.delete([key for key in list(self.data) if match(key)])

    async def invalidate_tags(self, tag_keys: Sequence[str]) -> int:
        members = set().union(*(self.tags.pop(tag, set()) for tag in tag_keys))
        return await self.delete(sorted(members))

    async def usage(self, pattern: str) -> Usage:
        match = compile_glob(pattern).match
        live = [key for key in list(self.data) if match(key) and self._live(key) is not None]
        return Usage(len(live), sum(len(key) + len(self.data[key][0]) for key in live))


class Incomplete(Backend):
    """Leaves out ``usage``: a store that cannot say how much it holds is not a backend yet."""

    info = BackendInfo(kind="incomplete")

    async def get(self, key: str) -> bytes | None:
        return None

    async def set(self, key: str, value: bytes, ttl: float | None, tags: Sequence[str] = ()) -> None:
        return None

    async def delete(self, keys: Sequence[str]) -> int:
        return 0

    async def invalidate_pattern(self, pattern: str) -> int:
        return 0

    async def invalidate_tags(self, tag_keys: Sequence[str]) -> int:
        return 0


def test_a_backend_missing_an_abstract_member_cannot_be_created():
    with pytest.raises(TypeError, match="usage"):
        Incomplete()  # type: ignore[abstract]


def test_an_object_that_is_no_backend_is_refused_by_the_config():
    with pytest.raises(TypeError, match="expected 'memory', 'redis' or a Backend instance, got dict"):
        CacheConfig(backend={})  # type: ignore[arg-type]


def test_the_undeclared_capabilities_default_to_a_plain_in_process_store():
    backend = DictBackend()
    assert (backend.remote, backend.loop_bound, backend.supports_nowait) == (False, False, False)
    assert (backend.max_connections, backend.evictions, backend.invalidations, backend.pipeliner) == (None,) * 4
    assert backend.classify_error(ConnectionError("refused")) is None
    assert backend.current_usage() is None and backend.pool_stats() is None
    with pytest.raises(NotImplementedError, match="DictBackend has no synchronous get"):
        backend.get_nowait("k")


async def test_the_defaults_for_batches_and_statistics_go_through_the_abstract_members():
    backend = DictBackend()
    await backend.set_many([("p:a", b"1"), ("p:b", b"22"), ("q:c", b"3")], ttl=None, tags=["t"])
    assert await backend.get_many(["p:a", "missing", "q:c"]) == [b"1", None, b"3"]
    assert await backend.exists("p:b") and not await backend.exists("missing")
    assert await backend.estimate_usage("p:") == Usage(2, 3 + 3 + 3)
    assert not backend.counts_keys  # exact counting is offered, not assumed: no unpaced full scans
    with pytest.raises(NotImplementedError, match="does not count keys"):
        await backend.count_keys("p:*")
    assert await backend.invalidate_tags(["t"]) == 3
    await backend.ping()
    await backend.drop_idle_connections()
    backend.abandon_connections()
    await backend.close()


async def test_a_cache_on_the_minimal_backend_has_no_guard_and_counts_in_the_background(telemetry):
    backend = DictBackend()
    config = CacheConfig(backend=backend, meter_provider=telemetry.meter_provider, stats_refresh_interval=0.01)
    async with YokedCache(config) as cache:
        assert cache.breaker is None and cache._guard is None  # nothing remote: no outage to survive
        assert not cache.telemetry.tracing_enabled
        await cache.set("k", "v")
        for _ in range(200):  # the background refresh measures with usage(), as it does on Redis
            usage = cache.usage_snapshot()
            if usage is not None and usage.keys == 1:
                break
            await asyncio.sleep(0.01)
        assert usage == Usage(1, len("yokedcache:k") + len(b'"v"'))
        assert (await cache.get_stats()).backend == "minimal"
        report = await cache.detailed_health_check()
        assert report["status"] == "healthy" and report["redis_connected"] is None
        assert report["connection_pool"] is None and report["circuit_breaker"] == {"state": "disabled"}


def test_the_memory_backend_declares_its_fast_path_and_live_figures():
    backend = MemoryBackend()
    assert backend.supports_nowait and not backend.remote and not backend.loop_bound
    backend.set_nowait("k", b"v", None)
    assert backend.get_nowait("k") == b"v"
    assert backend.current_usage() == backend.snapshot()


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:1/0", "redis+cluster://127.0.0.1:1/0", "redis+sentinel://127.0.0.1:1/mymaster/0"]
)
def test_every_redis_flavour_is_set_up_by_the_one_redis_backend_init(url):
    from yokedcache.backends import RedisBackend  # redis is a test dependency: missing is a failure

    flavour = _flavour(url)
    with pytest.raises(ValueError, match="max_connections: must be a positive int, got 0"):
        flavour(url, max_connections=0)
    backend = flavour(url, auto_pipeline=False)
    assert isinstance(backend, RedisBackend) and backend.remote and backend.loop_bound
    assert backend.invalidations == 0 and backend.max_connections == 50
    assert backend.info.host == "127.0.0.1" and backend.info.port == 1
    assert backend.info.extra["url"] == url and backend.info.extra["tls"] is False
    # without pipelining: the lone path one operation at a time, or on a cluster the class's own
    from yokedcache.backends.autopipeline import DirectCommands

    if "cluster" in url:
        assert "get" not in vars(backend)
    else:
        assert isinstance(vars(backend)["get"].__self__, DirectCommands)


def _flavour(url: str) -> type:
    from yokedcache.backends import RedisBackend, RedisClusterBackend, RedisSentinelBackend

    scheme = url.split("://", 1)[0]
    return {"redis+cluster": RedisClusterBackend, "redis+sentinel": RedisSentinelBackend}.get(scheme, RedisBackend)


async def test_a_backend_that_does_not_count_keys_gets_no_exact_counter():
    # stats_exact_keys asks for paced exact counts; a backend that cannot pace one is sampled only
    cache = YokedCache(CacheConfig(backend=DictBackend(), stats_exact_keys=True, stats_refresh_interval=0.05))
    try:
        await cache.set("a", 1)
        deadline = asyncio.get_running_loop().time() + 5
        while cache.usage_snapshot() is None:  # the background work has started and measured once
            assert asyncio.get_running_loop().time() < deadline, "no background refresh within 5 s"
            await asyncio.sleep(0.01)
        assert cache._exact_counter is None
        assert cache.usage_snapshot().keys == 1
    finally:
        await cache.close()
