"""LRU eviction, size accounting and expiry of the in-memory backend."""

from __future__ import annotations

import pytest

from yokedcache import CacheConfig, YokedCache
from yokedcache.backends import MemoryBackend


async def test_lru_eviction_by_key_count_keeps_recently_used():
    backend = MemoryBackend(max_keys=3)
    for k in "abc":
        await backend.set(k, b"1", None)
    await backend.get("a")  # a is now most recent; b is the LRU
    await backend.set("d", b"1", None)
    assert await backend.exists("b") is False
    assert all([await backend.exists(k) for k in "acd"])
    assert backend.evictions == 1


async def test_eviction_by_bytes_counts_serialised_key_and_value():
    backend = MemoryBackend(max_memory_bytes=30)
    await backend.set("k1", b"x" * 8, None)  # 10 bytes
    await backend.set("k2", b"x" * 8, None)  # 20
    await backend.set("k3", b"x" * 8, None)  # 30
    assert backend.snapshot().bytes == 30
    await backend.set("k4", b"x" * 8, None)  # 40 -> evict k1
    assert backend.snapshot().bytes == 30
    assert backend.snapshot().keys == 3
    assert backend.evictions == 1
    assert await backend.exists("k1") is False


async def test_overwrite_replaces_size_and_keeps_the_key_in_its_old_tags_as_redis_does():
    backend = MemoryBackend()
    await backend.set("k", b"12345", None, ["t1"])
    await backend.set("k", b"1", None, ["t2"])
    assert backend.snapshot().bytes == len("k") + 1
    assert await backend.invalidate_tags(["t1"]) == 1
    assert await backend.invalidate_tags(["t2"]) == 0  # the key went with t1


async def test_value_larger_than_the_whole_budget_is_rejected():
    backend = MemoryBackend(max_memory_bytes=10)
    with pytest.raises(ValueError, match="max_memory_bytes"):
        await backend.set("k", b"x" * 100, None)
    assert backend.snapshot().keys == 0


async def test_expired_entries_are_purged_and_stop_counting(monkeypatch):
    backend = MemoryBackend()
    now = [1000.0]
    backend._clock = lambda: now[0]
    await backend.set("a", b"1", 10)
    await backend.set("b", b"1", None)
    now[0] += 11
    await backend.set("c", b"1", None)  # writes purge what has expired
    assert backend.snapshot().keys == 2
    assert backend.expirations == 1


async def test_cache_size_accounts_for_prefix_and_json():
    cache = YokedCache(CacheConfig(key_prefix="p:", max_keys=2))
    await cache.set("a", "xy")  # key "p:a" (3) + '"xy"' (4)
    assert cache.backend.snapshot().bytes == 7
    await cache.set("b", 1)
    await cache.set("c", 1)
    assert cache.backend.evictions == 1
    await cache.close()
