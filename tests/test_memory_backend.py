"""LRU eviction, size accounting and expiry of the in-memory backend."""

from __future__ import annotations

import gc
import sys
import tracemalloc

import pytest

from yokedcache import CacheConfig, YokedCache
from yokedcache.backends import MemoryBackend
from yokedcache.backends.memory import ENTRY_OVERHEAD, EXPIRY_OVERHEAD, TAG_MEMBERSHIP_OVERHEAD, entry_size

ENTRY = 10 + ENTRY_OVERHEAD  # a 2-byte key, an 8-byte value, no TTL, no tags


async def test_lru_eviction_by_key_count_keeps_recently_used():
    backend = MemoryBackend(max_keys=3)
    for k in "abc":
        await backend.set(k, b"1", None)
    await backend.get("a")  # a is now most recent; b is the LRU
    await backend.set("d", b"1", None)
    assert await backend.exists("b") is False
    assert all([await backend.exists(k) for k in "acd"])
    assert backend.evictions == 1


async def test_eviction_by_bytes_counts_key_value_and_entry_overhead():
    backend = MemoryBackend(max_memory_bytes=3 * ENTRY)
    await backend.set("k1", b"x" * 8, None)
    await backend.set("k2", b"x" * 8, None)
    await backend.set("k3", b"x" * 8, None)
    assert backend.snapshot().bytes == 3 * ENTRY
    await backend.set("k4", b"x" * 8, None)  # one entry too many -> evict k1
    assert backend.snapshot().bytes == 3 * ENTRY
    assert backend.snapshot().keys == 3
    assert backend.evictions == 1
    assert await backend.exists("k1") is False


async def test_overwrite_replaces_size_and_keeps_the_key_in_its_old_tags_as_redis_does():
    backend = MemoryBackend()
    await backend.set("k", b"12345", None, ["t1"])
    await backend.set("k", b"1", None, ["t2"])
    # the key keeps t1 as on Redis, so the entry holds both tags
    tags = frozenset(["t1", "t2"])
    assert backend.snapshot().bytes == len("k") + 1 + ENTRY_OVERHEAD + sys.getsizeof(tags) + 2 * TAG_MEMBERSHIP_OVERHEAD
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
    await cache.set("a", "xy")  # key "p:a" (3) + '"xy"' (4), with the default TTL
    assert cache.backend.snapshot().bytes == 7 + ENTRY_OVERHEAD + EXPIRY_OVERHEAD
    await cache.set("b", 1)
    await cache.set("c", 1)
    assert cache.backend.evictions == 1
    await cache.close()


def test_entry_size_adds_what_ttl_and_tags_cost():
    plain = entry_size("key", b"value", False)
    assert plain == 8 + ENTRY_OVERHEAD
    assert entry_size("key", b"value", True) == plain + EXPIRY_OVERHEAD
    tags = frozenset(["a", "b"])
    assert entry_size("key", b"value", False, tags) == plain + sys.getsizeof(tags) + 2 * TAG_MEMBERSHIP_OVERHEAD
    assert entry_size("é", b"", False) == 2 + ENTRY_OVERHEAD  # UTF-8 bytes, not characters


@pytest.mark.parametrize("tags", [None, ["catalog"]])
async def test_memory_growth_stays_within_twice_max_memory_bytes_with_small_values(tags):
    # The case: a 4 MiB limit and small values grew the process by 136 MiB (34x), because
    # only key and value bytes were counted. Fill far past the limit and trace what stays.
    limit = 4 * 1024 * 1024
    cache = YokedCache(CacheConfig(max_memory_bytes=limit))
    await cache.set("warm-up", 0, tags=tags)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(60_000):  # about 1.2 MB of keys and values; ~20 MB of entries without eviction
            await cache.set(f"user:{i}", i, tags=tags)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert cache.backend.evictions > 0  # the limit was reached
    assert cache.backend.snapshot().bytes <= limit
    print(
        f"\n4 MiB limit, 60,000 sets (tags={tags}): {cache.backend.snapshot().keys:,} entries held, "
        f"{grown / 2**20:.1f} MiB traced growth"
    )  # docs/getting-started.md (the memory backend); run with -s
    assert grown <= 2 * limit, f"grew {grown / limit:.2f}x max_memory_bytes"
    await cache.close()
